//! Effective dates (`--effective-date WHEN`), parsed against a given `now`
//! and time zone; no clock is read here.
//!
//! Accepted forms:
//! - RFC 3339 with an offset: `2026-07-01T00:00:00+02:00`, `2026-07-01T00:00:00Z`;
//! - `YYYY-MM-DD[ HH:MM[:SS]]` (or with `T`), local time in the zone;
//! - the seeds' `M/D/YYYY[ H:MM[:SS][ AM|PM]]`, local time in the zone;
//! - relative `+90s`, `+15m`, `+48h`, `+7d` (combinable: `+1h30m`).
//!
//! A local time that does not exist (spring-forward gap) is an error; one
//! that exists twice (fall-back fold) is an error that asks for an offset;
//! an instant that is not in the future is an error.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WhenError {
    #[error(
        "'{0}' is not a date: use 2026-07-01T00:00:00+02:00, 2026-07-01 [HH:MM[:SS]], 7/1/2026 [H:MM[:SS] [AM|PM]] or +90s/+15m/+48h/+7d"
    )]
    Unrecognised(String),
    #[error(
        "'{input}' does not exist in {tz}: the clocks skip that hour (daylight saving time starts)"
    )]
    Gap { input: String, tz: Tz },
    #[error(
        "'{input}' happens twice in {tz} (daylight saving time ends): give the offset, {first} or {second}"
    )]
    Ambiguous {
        input: String,
        tz: Tz,
        first: String,
        second: String,
    },
    #[error("'{0}' is beyond the dates certroll handles (years 1 to 9999)")]
    OutOfRange(String),
    #[error("'{input}' is {at}, which is not in the future (now is {now})")]
    Past {
        input: String,
        at: String,
        now: String,
    },
}

/// Parses `input` to a UTC instant, past or future (`certroll timeline
/// --at`); relative forms may also go back (`-7d`).
pub fn parse_instant(input: &str, tz: Tz, now: DateTime<Utc>) -> Result<DateTime<Utc>, WhenError> {
    let s = input.trim();
    let unrecognised = || WhenError::Unrecognised(input.to_string());
    let out_of_range = || WhenError::OutOfRange(input.to_string());
    let at = if let Some(rel) = s.strip_prefix('+') {
        now.checked_add_signed(parse_relative(rel).ok_or_else(unrecognised)?)
            .ok_or_else(out_of_range)?
    } else if let Some(rel) = s.strip_prefix('-') {
        now.checked_sub_signed(parse_relative(rel).ok_or_else(unrecognised)?)
            .ok_or_else(out_of_range)?
    } else if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else if let Some(naive) = parse_local(s) {
        resolve_local(input, naive, tz)?
    } else {
        return Err(unrecognised());
    };
    if !in_range(at) {
        return Err(out_of_range());
    }
    // The store keeps instants to the millisecond; so does everything after.
    Ok(chrono::SubsecRound::trunc_subsecs(at, 3))
}

/// The instants certroll stores and prints: years 1 to 9999 (RFC 3339's
/// four-digit years, which also sort as text).
pub fn in_range(at: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&at.year())
}

/// `now` plus `days` days, or `None` past the year 9999.
pub fn days_after(now: DateTime<Utc>, days: u64) -> Option<DateTime<Utc>> {
    let d = Duration::try_days(i64::try_from(days).ok()?)?;
    now.checked_add_signed(d).filter(|t| in_range(*t))
}

/// An IANA time zone by name ("Europe/London"), as the configuration's
/// `timezone`, `--timezone` and the API's `timezone` give it.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown IANA time zone '{name}'"))
}

/// Parses `input` to a UTC instant strictly after `now`.
pub fn parse_when(input: &str, tz: Tz, now: DateTime<Utc>) -> Result<DateTime<Utc>, WhenError> {
    if input.trim().starts_with('-') {
        return Err(WhenError::Unrecognised(input.to_string()));
    }
    let at = parse_instant(input, tz, now)?;
    if at <= now {
        return Err(WhenError::Past {
            input: input.to_string(),
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            now: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }
    Ok(at)
}

fn parse_relative(s: &str) -> Option<Duration> {
    let mut total = Duration::zero();
    let mut digits = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            's' => Duration::try_seconds(n)?,
            'm' => Duration::try_minutes(n)?,
            'h' => Duration::try_hours(n)?,
            'd' => Duration::try_days(n)?,
            _ => return None,
        };
        total = total.checked_add(&unit)?;
        any = true;
    }
    (any && digits.is_empty()).then_some(total)
}

fn parse_local(s: &str) -> Option<NaiveDateTime> {
    // ISO: date, then optional time after ' ' or 'T'.
    let (date_part, time_part) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim())),
        None => (s, None),
    };
    if let Ok(date) = NaiveDate::parse_from_str(date_part, "%Y-%m-%d") {
        let time = match time_part {
            None => NaiveTime::MIN,
            Some(t) => NaiveTime::parse_from_str(t, "%H:%M:%S")
                .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
                .ok()?,
        };
        return Some(date.and_time(time));
    }
    // The seeds' US form: M/D/YYYY [H:MM[:SS] [AM|PM]].
    let mut parts = s.split_whitespace();
    let date = NaiveDate::parse_from_str(parts.next()?, "%m/%d/%Y").ok()?;
    let rest: Vec<&str> = parts.collect();
    let time = match rest.as_slice() {
        [] => NaiveTime::MIN,
        [t] => NaiveTime::parse_from_str(t, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
            .ok()?,
        [t, ampm] => {
            let text = format!("{t} {}", ampm.to_ascii_uppercase());
            NaiveTime::parse_from_str(&text, "%I:%M:%S %p")
                .or_else(|_| NaiveTime::parse_from_str(&text, "%I:%M %p"))
                .ok()?
        }
        _ => return None,
    };
    Some(date.and_time(time))
}

fn resolve_local(input: &str, naive: NaiveDateTime, tz: Tz) -> Result<DateTime<Utc>, WhenError> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::None => Err(WhenError::Gap {
            input: input.to_string(),
            tz,
        }),
        LocalResult::Ambiguous(a, b) => Err(WhenError::Ambiguous {
            input: input.to_string(),
            tz,
            first: a.to_rfc3339(),
            second: b.to_rfc3339(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Europe};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn rfc3339_with_offset() {
        assert_eq!(
            parse_when("2027-07-01T00:00:00+02:00", Tz::UTC, now()).unwrap(),
            utc(2027, 6, 30, 22, 0, 0)
        );
        assert_eq!(
            parse_when("2027-07-01T00:00:00Z", Europe::London, now()).unwrap(),
            utc(2027, 7, 1, 0, 0, 0)
        );
    }

    #[test]
    fn iso_local_dates_use_the_zone() {
        // London is on BST (UTC+1) in July.
        assert_eq!(
            parse_when("2027-07-01", Europe::London, now()).unwrap(),
            utc(2027, 6, 30, 23, 0, 0)
        );
        assert_eq!(
            parse_when("2027-07-01 09:30", Europe::London, now()).unwrap(),
            utc(2027, 7, 1, 8, 30, 0)
        );
        assert_eq!(
            parse_when("2027-01-15T09:30:15", Europe::London, now()).unwrap(),
            utc(2027, 1, 15, 9, 30, 15)
        );
    }

    #[test]
    fn the_seeds_us_format() {
        // Set-CsCertificate ... -EffectiveDate "7/1/2027"
        assert_eq!(
            parse_when("7/1/2027", America::New_York, now()).unwrap(),
            utc(2027, 7, 1, 4, 0, 0)
        );
        assert_eq!(
            parse_when("7/1/2027 2:30 PM", America::New_York, now()).unwrap(),
            utc(2027, 7, 1, 18, 30, 0)
        );
        assert_eq!(
            parse_when("12/31/2026 11:59:59 pm", Tz::UTC, now()).unwrap(),
            utc(2026, 12, 31, 23, 59, 59)
        );
        assert_eq!(
            parse_when("07/01/2027 14:30", Tz::UTC, now()).unwrap(),
            utc(2027, 7, 1, 14, 30, 0)
        );
    }

    #[test]
    fn relative_offsets() {
        assert_eq!(
            parse_when("+90s", Tz::UTC, now()).unwrap(),
            now() + Duration::seconds(90)
        );
        assert_eq!(
            parse_when("+15m", Tz::UTC, now()).unwrap(),
            now() + Duration::minutes(15)
        );
        assert_eq!(
            parse_when("+48h", Tz::UTC, now()).unwrap(),
            now() + Duration::hours(48)
        );
        assert_eq!(
            parse_when("+7d", Tz::UTC, now()).unwrap(),
            now() + Duration::days(7)
        );
        assert_eq!(
            parse_when("+1h30m", Tz::UTC, now()).unwrap(),
            now() + Duration::minutes(90)
        );
        for bad in ["+", "+5", "+5x", "+h", "+99999999999999999d"] {
            assert!(
                matches!(
                    parse_when(bad, Tz::UTC, now()),
                    Err(WhenError::Unrecognised(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn dst_gap_is_an_error() {
        // London springs forward 2027-03-28 01:00 -> 02:00.
        let err = parse_when("2027-03-28 01:30", Europe::London, now()).unwrap_err();
        assert!(matches!(err, WhenError::Gap { .. }), "{err}");
        assert!(err.to_string().contains("does not exist in Europe/London"));
        // New York: 2027-03-14 02:00 -> 03:00.
        assert!(matches!(
            parse_when("3/14/2027 2:30 AM", America::New_York, now()),
            Err(WhenError::Gap { .. })
        ));
    }

    #[test]
    fn dst_fold_is_an_error_that_offers_both_offsets() {
        // London falls back 2027-10-31 02:00 -> 01:00: 01:30 happens twice.
        let err = parse_when("2027-10-31 01:30", Europe::London, now()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, WhenError::Ambiguous { .. }), "{text}");
        assert!(
            text.contains("2027-10-31T01:30:00+01:00")
                && text.contains("2027-10-31T01:30:00+00:00"),
            "{text}"
        );
        // With the offset it is fine.
        assert_eq!(
            parse_when("2027-10-31T01:30:00+00:00", Europe::London, now()).unwrap(),
            utc(2027, 10, 31, 1, 30, 0)
        );
    }

    #[test]
    fn the_past_and_now_are_errors() {
        assert!(matches!(
            parse_when("7/1/2015", Tz::UTC, now()),
            Err(WhenError::Past { .. })
        ));
        assert!(matches!(
            parse_when("+0s", Tz::UTC, now()),
            Err(WhenError::Past { .. })
        ));
        assert!(matches!(
            parse_when("2026-11-25T12:00:00Z", Tz::UTC, now()),
            Err(WhenError::Past { .. })
        ));
    }

    #[test]
    fn garbage_is_unrecognised() {
        for bad in [
            "tomorrow",
            "2027-13-01",
            "13/1/2027",
            "7/1/2027 25:00",
            "2027-07-01 9am",
            "",
        ] {
            assert!(
                matches!(
                    parse_when(bad, Tz::UTC, now()),
                    Err(WhenError::Unrecognised(_))
                ),
                "{bad}"
            );
        }
    }
}
