//! Expiry watch and health: pure decisions over what the slots hold at a
//! given `now`.
//!
//! The watch alerts, once per (certificate, slot, alert), when:
//! - a **current** certificate crosses an expiry threshold (60, 30, 14, 7,
//!   3, 1 days by default) or expires; with nothing pending to replace it
//!   in time the alert is `expiry.no_successor`, one level more severe;
//! - a **pending** certificate expires before, or too soon after, its
//!   effective instant;
//! - a **previous** certificate expires while still inside its overlap
//!   (tokens signed with it would stop validating early).
//!
//! Only certificates that are in a slot are looked at: one that has been
//! replaced stops alerting.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use super::types::{EventSeverity, SlotKey};

/// What the watch needs to know of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub id: i64,
    pub thumbprint: String,
    pub label: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// A slot's certificates (and its last failed roll, for `check`).
#[derive(Clone, Debug)]
pub struct SlotFacts {
    pub slot: SlotKey,
    pub current: Option<CertFacts>,
    /// With the instant it became previous.
    pub previous: Option<(CertFacts, DateTime<Utc>)>,
    /// With its effective instant.
    pub pending: Option<(CertFacts, DateTime<Utc>)>,
    /// The slot's newest roll job failed: (job id, reason).
    pub failed_roll: Option<(i64, String)>,
}

/// The watch's rules for one usage type.
#[derive(Clone, Debug)]
pub struct ExpiryRules {
    /// Days before expiry, most distant first.
    pub thresholds_days: Vec<u32>,
    /// How long a previous certificate matters after it was replaced.
    pub previous_overlap: Duration,
    /// A pending certificate should stay valid this long after its instant.
    pub pending_margin: Duration,
}

/// Identifies an alert so it is sent once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub cert_id: i64,
    pub scope_key: String,
    pub usage_type: String,
    /// `current:30`, `current:expired`, `pending:short`, `previous:overlap`...
    pub alert: String,
}

#[derive(Clone, Debug)]
pub struct ExpiryAlert {
    pub key: AlertKey,
    pub slot: SlotKey,
    pub kind: &'static str,
    pub severity: EventSeverity,
    pub role: &'static str,
    pub cert: CertFacts,
    /// Whole days left (negative: expired that long ago).
    pub days_left: i64,
    pub message: String,
}

fn days_left(not_after: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (not_after - now).num_days()
}

fn severity_for(days: i64) -> EventSeverity {
    if days <= 3 {
        EventSeverity::Critical
    } else if days <= 14 {
        EventSeverity::Warning
    } else {
        EventSeverity::Info
    }
}

fn one_more(s: EventSeverity) -> EventSeverity {
    match s {
        EventSeverity::Info => EventSeverity::Warning,
        _ => EventSeverity::Critical,
    }
}

fn short(t: &str) -> &str {
    &t[..t.len().min(8)]
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The alerts due at `now` that `sent` does not hold yet.
pub fn scan(
    facts: &[SlotFacts],
    rules_for: &dyn Fn(&SlotKey) -> ExpiryRules,
    now: DateTime<Utc>,
    sent: &HashSet<AlertKey>,
) -> Vec<ExpiryAlert> {
    let mut out = Vec::new();
    for f in facts {
        let rules = rules_for(&f.slot);
        let mut push = |role: &'static str,
                        cert: &CertFacts,
                        alert: String,
                        kind: &'static str,
                        severity,
                        message: String| {
            let key = AlertKey {
                cert_id: cert.id,
                scope_key: f.slot.scope.key(),
                usage_type: f.slot.usage_type.to_string(),
                alert,
            };
            if !sent.contains(&key) {
                out.push(ExpiryAlert {
                    key,
                    slot: f.slot.clone(),
                    kind,
                    severity,
                    role,
                    cert: cert.clone(),
                    days_left: days_left(cert.not_after, now),
                    message,
                });
            }
        };

        if let Some(cur) = &f.current {
            let days = days_left(cur.not_after, now);
            // A successor that takes over before the current one expires.
            let successor = f
                .pending
                .as_ref()
                .filter(|(p, at)| *at < cur.not_after && p.not_after > *at);
            if cur.not_after <= now {
                push(
                    "current",
                    cur,
                    "current:expired".into(),
                    "expiry.expired",
                    EventSeverity::Critical,
                    format!(
                        "{}: the current certificate {} ({}) expired on {}",
                        f.slot,
                        short(&cur.thumbprint),
                        cur.label,
                        when(cur.not_after)
                    ),
                );
            } else if let Some(t) = rules
                .thresholds_days
                .iter()
                .rev()
                .find(|t| cur.not_after - now <= Duration::days(i64::from(**t)))
            {
                let (kind, severity, tail) = match successor {
                    Some((p, at)) => (
                        "expiry.approaching",
                        severity_for(days).min(EventSeverity::Info),
                        format!("; {} takes over at {}", short(&p.thumbprint), when(*at)),
                    ),
                    None => (
                        "expiry.no_successor",
                        one_more(severity_for(days)),
                        "; nothing is pending to replace it".to_string(),
                    ),
                };
                push(
                    "current",
                    cur,
                    format!("current:{t}"),
                    kind,
                    severity,
                    format!(
                        "{}: the current certificate {} ({}) expires in {days} day(s), on {}{tail}",
                        f.slot,
                        short(&cur.thumbprint),
                        cur.label,
                        when(cur.not_after)
                    ),
                );
            }
        }

        if let Some((p, at)) = &f.pending {
            if p.not_after <= *at {
                push(
                    "pending",
                    p,
                    "pending:before-effective".into(),
                    "expiry.pending_short",
                    EventSeverity::Critical,
                    format!(
                        "{}: the pending certificate {} ({}) expires on {}, before it takes effect at {}",
                        f.slot,
                        short(&p.thumbprint),
                        p.label,
                        when(p.not_after),
                        when(*at)
                    ),
                );
            } else if p.not_after - *at < rules.pending_margin {
                push(
                    "pending",
                    p,
                    "pending:short".into(),
                    "expiry.pending_short",
                    EventSeverity::Warning,
                    format!(
                        "{}: the pending certificate {} ({}) expires on {}, only {} day(s) after it takes effect at {}",
                        f.slot,
                        short(&p.thumbprint),
                        p.label,
                        when(p.not_after),
                        (p.not_after - *at).num_days(),
                        when(*at)
                    ),
                );
            }
        }

        if let Some((prev, since)) = &f.previous {
            let overlap_end = *since + rules.previous_overlap;
            if now < overlap_end && prev.not_after < overlap_end {
                push(
                    "previous",
                    prev,
                    "previous:overlap".into(),
                    "expiry.previous_overlap",
                    EventSeverity::Warning,
                    format!(
                        "{}: the previous certificate {} ({}) expires on {}, before its overlap ends at {}: tokens signed with it stop validating early",
                        f.slot,
                        short(&prev.thumbprint),
                        prev.label,
                        when(prev.not_after),
                        when(overlap_end)
                    ),
                );
            }
        }
    }
    out
}

/// A slot's state for `certroll check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    Warning,
    Critical,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "OK",
            Health::Warning => "WARNING",
            Health::Critical => "CRITICAL",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SlotHealth {
    pub slot: SlotKey,
    pub health: Health,
    pub problems: Vec<(Health, String)>,
    /// Days left on the current certificate.
    pub days_left: Option<i64>,
}

/// The health of every slot at `now`: CRITICAL for an expired current
/// certificate, one expiring within `critical_days` with nothing pending, a
/// pending certificate that expires before its instant, a failed or overdue
/// roll; WARNING within `warning_days` with nothing pending, a short-lived
/// pending certificate, a previous one expiring inside its overlap.
pub fn health(
    facts: &[SlotFacts],
    rules_for: &dyn Fn(&SlotKey) -> ExpiryRules,
    warning_days: u32,
    critical_days: u32,
    overdue_after: Duration,
    now: DateTime<Utc>,
) -> Vec<SlotHealth> {
    facts
        .iter()
        .map(|f| {
            let rules = rules_for(&f.slot);
            let mut problems = Vec::new();
            let days = f.current.as_ref().map(|c| days_left(c.not_after, now));
            match &f.current {
                None => problems.push((Health::Warning, "no current certificate".to_string())),
                Some(cur) => {
                    let successor = f
                        .pending
                        .as_ref()
                        .is_some_and(|(p, at)| *at < cur.not_after && p.not_after > *at);
                    let d = days_left(cur.not_after, now);
                    let within = |days: u32| cur.not_after - now <= Duration::days(i64::from(days));
                    if cur.not_after <= now {
                        problems.push((
                            Health::Critical,
                            format!("current certificate {} expired on {}", short(&cur.thumbprint), when(cur.not_after)),
                        ));
                    } else if !successor && within(critical_days) {
                        problems.push((
                            Health::Critical,
                            format!("current certificate {} expires in {d} day(s) and nothing is pending", short(&cur.thumbprint)),
                        ));
                    } else if !successor && within(warning_days) {
                        problems.push((
                            Health::Warning,
                            format!("current certificate {} expires in {d} day(s) and nothing is pending", short(&cur.thumbprint)),
                        ));
                    }
                }
            }
            if let Some((p, at)) = &f.pending {
                if p.not_after <= *at {
                    problems.push((
                        Health::Critical,
                        format!("pending certificate {} expires before it takes effect", short(&p.thumbprint)),
                    ));
                } else if p.not_after - *at < rules.pending_margin {
                    problems.push((
                        Health::Warning,
                        format!(
                            "pending certificate {} expires {} day(s) after it takes effect",
                            short(&p.thumbprint),
                            (p.not_after - *at).num_days()
                        ),
                    ));
                }
                if *at + overdue_after < now && f.failed_roll.is_none() {
                    problems.push((
                        Health::Critical,
                        format!("the roll to {} was due at {} and has not run: is certroll serve running?", short(&p.thumbprint), when(*at)),
                    ));
                }
            }
            if let Some((id, reason)) = &f.failed_roll {
                problems.push((Health::Critical, format!("roll job {id} failed: {reason}")));
            }
            if let Some((prev, since)) = &f.previous {
                let end = *since + rules.previous_overlap;
                if now < end && prev.not_after < end {
                    problems.push((
                        Health::Warning,
                        format!("previous certificate {} expires before its overlap ends", short(&prev.thumbprint)),
                    ));
                }
            }
            let health = problems.iter().map(|(h, _)| *h).max().unwrap_or(Health::Ok);
            SlotHealth {
                slot: f.slot.clone(),
                health,
                problems,
                days_left: days,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::cert::{Scope, UsageType};

    fn at(day: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, 8, 0, 0).unwrap() + Duration::days(day)
    }

    fn cert(id: i64, expires_day: i64) -> CertFacts {
        CertFacts {
            id,
            thumbprint: format!("{id:040}"),
            label: format!("cert{id}"),
            not_before: at(expires_day - 365),
            not_after: at(expires_day),
        }
    }

    fn slot() -> SlotKey {
        SlotKey::new(Scope::Global, UsageType::from_canonical("OAuthTokenIssuer"))
    }

    fn rules(_: &SlotKey) -> ExpiryRules {
        ExpiryRules {
            thresholds_days: vec![60, 30, 14, 7, 3, 1],
            previous_overlap: Duration::hours(24),
            pending_margin: Duration::days(30),
        }
    }

    fn facts(current: Option<CertFacts>) -> SlotFacts {
        SlotFacts {
            slot: slot(),
            current,
            previous: None,
            pending: None,
            failed_roll: None,
        }
    }

    /// Runs the scan once a day for `days` days, remembering what was sent.
    fn daily(
        f: &mut SlotFacts,
        days: i64,
        change: impl Fn(i64, &mut SlotFacts),
    ) -> Vec<(i64, String, &'static str)> {
        let mut sent = HashSet::new();
        let mut log = Vec::new();
        for d in 0..=days {
            change(d, f);
            for a in scan(std::slice::from_ref(f), &rules, at(d), &sent) {
                log.push((d, a.key.alert.clone(), a.kind));
                sent.insert(a.key);
            }
        }
        log
    }

    #[test]
    fn each_threshold_alerts_once_then_expiry() {
        let mut f = facts(Some(cert(1, 65)));
        let log = daily(&mut f, 70, |_, _| {});
        let alerts: Vec<&str> = log.iter().map(|(_, a, _)| a.as_str()).collect();
        assert_eq!(
            alerts,
            [
                "current:60",
                "current:30",
                "current:14",
                "current:7",
                "current:3",
                "current:1",
                "current:expired"
            ]
        );
        // Nothing pending: no_successor until it expires.
        assert!(log[..6].iter().all(|(_, _, k)| *k == "expiry.no_successor"));
        // "Within 30 days": 35 days after day 0, for a certificate expiring on day 65.
        assert_eq!(
            log.iter().find(|(_, a, _)| a == "current:30").unwrap().0,
            35
        );
        assert_eq!(log.iter().find(|(_, a, _)| a == "current:1").unwrap().0, 64);
    }

    #[test]
    fn a_replaced_certificate_stops_alerting() {
        let mut f = facts(Some(cert(1, 65)));
        let log = daily(&mut f, 70, |d, f| {
            if d == 40 {
                f.current = Some(cert(2, 400));
                f.previous = None;
            }
        });
        let alerts: Vec<(i64, &str)> = log.iter().map(|(d, a, _)| (*d, a.as_str())).collect();
        assert_eq!(alerts, [(5, "current:60"), (35, "current:30")]);
    }

    #[test]
    fn a_first_scan_late_sends_only_the_most_urgent_threshold() {
        let f = facts(Some(cert(1, 5)));
        let alerts = scan(std::slice::from_ref(&f), &rules, at(0), &HashSet::new());
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].key.alert, "current:7");
        assert_eq!(alerts[0].severity, EventSeverity::Critical);
    }

    #[test]
    fn a_scheduled_successor_makes_it_informational() {
        let mut f = facts(Some(cert(1, 20)));
        f.pending = Some((cert(2, 400), at(10)));
        let alerts = scan(std::slice::from_ref(&f), &rules, at(0), &HashSet::new());
        assert_eq!(alerts[0].kind, "expiry.approaching");
        assert_eq!(alerts[0].severity, EventSeverity::Info);
    }

    #[test]
    fn pending_that_expires_early_alerts_once() {
        let mut f = facts(Some(cert(1, 300)));
        f.pending = Some((cert(2, 15), at(10)));
        let a = scan(std::slice::from_ref(&f), &rules, at(0), &HashSet::new());
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].key.alert.as_str(), a[0].severity),
            ("pending:short", EventSeverity::Warning)
        );
        f.pending = Some((cert(3, 5), at(10)));
        let a = scan(std::slice::from_ref(&f), &rules, at(0), &HashSet::new());
        assert_eq!(
            (a[0].key.alert.as_str(), a[0].severity),
            ("pending:before-effective", EventSeverity::Critical)
        );
    }

    #[test]
    fn previous_expiring_inside_its_overlap() {
        let mut f = facts(Some(cert(1, 300)));
        f.previous = Some((
            CertFacts {
                not_after: at(0) + Duration::hours(6),
                ..cert(2, 0)
            },
            at(0) - Duration::hours(1),
        ));
        let a = scan(std::slice::from_ref(&f), &rules, at(0), &HashSet::new());
        assert_eq!(a[0].key.alert, "previous:overlap");
        // After the overlap it no longer matters.
        assert!(scan(std::slice::from_ref(&f), &rules, at(2), &HashSet::new()).is_empty());
    }

    #[test]
    fn health_levels() {
        let h = |f: &SlotFacts, now| {
            health(
                std::slice::from_ref(f),
                &rules,
                30,
                7,
                Duration::hours(1),
                now,
            )[0]
            .health
        };
        let f = facts(Some(cert(1, 100)));
        assert_eq!(h(&f, at(0)), Health::Ok);
        assert_eq!(h(&f, at(80)), Health::Warning);
        assert_eq!(h(&f, at(95)), Health::Critical);
        assert_eq!(h(&f, at(101)), Health::Critical);
        let mut f2 = f.clone();
        f2.pending = Some((cert(2, 500), at(98)));
        assert_eq!(h(&f2, at(95)), Health::Ok);
        assert_eq!(h(&f2, at(99)), Health::Critical, "overdue roll");
        let mut f3 = f2.clone();
        f3.failed_roll = Some((7, "boom".into()));
        assert_eq!(h(&f3, at(0)), Health::Critical);
    }
}
