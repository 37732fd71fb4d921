//! Recurring duties (maintenance now, the expiry scan later) from cron
//! expressions evaluated in the configured IANA time zone.
//!
//! The next occurrence is computed afresh from the zone's rules each time,
//! with croner, in the service's own loop: a daily 02:30 Europe/London duty
//! fires at 02:30 UTC in winter and at 01:30 UTC after the March change.
//! (tokio-cron-scheduler keeps the UTC offset fixed at creation and fires
//! one-shot jobs up to a second early; it is not used.) A time in the
//! spring-forward gap runs at the first instant after the gap; a time in the
//! autumn fold runs once.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{expr}' is not a cron expression ({reason}); use five fields: minute hour day month weekday"
)]
pub struct CronError {
    expr: String,
    reason: String,
}

/// A named recurring duty.
#[derive(Clone, Debug)]
pub struct Duty {
    pub name: &'static str,
    expr: String,
    cron: Cron,
    tz: Tz,
}

impl Duty {
    pub fn new(name: &'static str, expr: &str, tz: Tz) -> Result<Duty, CronError> {
        let cron = Cron::from_str(expr).map_err(|e| CronError {
            expr: expr.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Duty {
            name,
            expr: expr.to_string(),
            cron,
            tz,
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first instant strictly after `t` at which the duty is due.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use chrono_tz::Europe;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// Fires every occurrence from `from` for `n` steps.
    fn fires(d: &Duty, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = d.next_after(t).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn daily_0230_london_follows_the_march_change() {
        let d = Duty::new("test", "30 2 * * *", Europe::London).unwrap();
        // 2027: clocks go forward on Sunday 28 March at 01:00 UTC.
        assert_eq!(
            fires(&d, utc(2027, 3, 26, 12, 0), 4),
            [
                utc(2027, 3, 27, 2, 30), // GMT: 02:30 local = 02:30 UTC
                utc(2027, 3, 28, 1, 30), // BST: 02:30 local = 01:30 UTC
                utc(2027, 3, 29, 1, 30),
                utc(2027, 3, 30, 1, 30),
            ]
        );
    }

    #[test]
    fn daily_0230_london_follows_the_october_change() {
        let d = Duty::new("test", "30 2 * * *", Europe::London).unwrap();
        // 2027: clocks go back on Sunday 31 October at 01:00 UTC.
        assert_eq!(
            fires(&d, utc(2027, 10, 29, 12, 0), 3),
            [
                utc(2027, 10, 30, 1, 30),
                utc(2027, 10, 31, 2, 30),
                utc(2027, 11, 1, 2, 30)
            ]
        );
    }

    #[test]
    fn a_time_in_the_gap_runs_once_after_it_and_a_time_in_the_fold_once() {
        // 01:30 London does not exist on 28 March 2027, and exists twice on
        // 31 October 2027.
        let d = Duty::new("test", "30 1 * * *", Europe::London).unwrap();
        let spring = fires(&d, utc(2027, 3, 27, 12, 0), 2);
        assert_eq!(spring, [utc(2027, 3, 28, 1, 0), utc(2027, 3, 29, 0, 30)]);
        let autumn = fires(&d, utc(2027, 10, 30, 12, 0), 2);
        assert_eq!(autumn.len(), 2);
        assert_eq!(autumn[1], utc(2027, 11, 1, 1, 30));
        assert!(autumn[0] == utc(2027, 10, 31, 0, 30) || autumn[0] == utc(2027, 10, 31, 1, 30));
    }

    #[test]
    fn bad_expressions_are_refused() {
        assert!(Duty::new("test", "every day", Tz::UTC).is_err());
        assert!(Duty::new("test", "61 * * * *", Tz::UTC).is_err());
    }
}
