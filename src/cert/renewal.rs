//! Rollover policies: when a slot's next certificate is made and when it
//! becomes current, as AD FS's AutoCertificateRollover does for its token
//! signers (the next one 20 days before expiry, promoted 5 days before,
//! critical at 2). Pure: every rule takes `now` and the facts the store
//! read; the renewal duty (`crate::renew`) acts on what they decide.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::keygen::KeySpec;
use super::slot::Pending;
use super::x509::CertInfo;

/// How a policy obtains the next certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Made and signed by certroll itself (token signers: no CA needed).
    SelfSigned,
    /// Ordered from an ACME CA (RFC 8555) with certroll's own CSR.
    Acme,
    /// A certificate request for the organisation's CA (`request.created`
    /// carries the CSR); its answer, once imported, is scheduled.
    Request,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SelfSigned => "self-signed",
            Method::Acme => "acme",
            Method::Request => "request",
        }
    }
}

/// When the next certificate is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// This many days before the current one expires.
    DaysBefore(u32),
    /// Once this share (percent) of the current one's lifetime has passed.
    LifetimePercent(u8),
}

/// A type's rollover policy (`[renewal.<Type>]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenewalPolicy {
    pub method: Method,
    pub trigger: Trigger,
    /// The roll is scheduled this many days before the current one expires.
    pub promote_before_days: u32,
    /// Past this many days before expiry with nothing made, the renewal is
    /// critical (an alert of its own, and `check` fails).
    pub critical_before_days: u32,
    /// The new key (a new one every time).
    pub key: KeySpec,
    /// Validity of a self-signed certificate; what a request asks of its CA.
    pub validity_days: u32,
    /// The kinds or names of scope the policy covers (`global`, `site`,
    /// `pool:lyncpool.contoso.com`, ...); empty: every scope of the type.
    pub scopes: Vec<String>,
    /// Hold each roll until every server has staged the new certificate.
    pub require_staged: bool,
    /// The first retry after a failure; each further one waits twice as long.
    pub retry_minutes: u32,
    /// The previous certificate leaves the slot this long after it became
    /// previous (once every server has the current one); `None`: it stays.
    pub retire_previous_after_hours: Option<u32>,
}

/// The longest wait between two attempts after failures.
pub const RETRY_MAX: Duration = Duration::hours(24);

/// A roll made for a renewal is scheduled at least this far ahead, so that
/// the servers can stage the new certificate before it becomes current.
pub const MIN_PROMOTION_LEAD: Duration = Duration::minutes(10);

impl RenewalPolicy {
    /// AD FS's defaults for `method`: made 20 days before expiry, promoted
    /// 5 days before, critical at 2; RSA 2048; a year of validity.
    pub fn defaults(method: Method) -> RenewalPolicy {
        RenewalPolicy {
            method,
            trigger: Trigger::DaysBefore(20),
            promote_before_days: 5,
            critical_before_days: 2,
            key: KeySpec::Rsa(2048),
            validity_days: 365,
            scopes: Vec::new(),
            require_staged: false,
            retry_minutes: 10,
            retire_previous_after_hours: None,
        }
    }

    /// Whether the policy covers a scope (its text form, e.g. `site:Redmond`).
    pub fn covers(&self, scope: &str) -> bool {
        self.scopes.is_empty()
            || self.scopes.iter().any(|s| {
                s.eq_ignore_ascii_case(scope)
                    || scope
                        .split(':')
                        .next()
                        .is_some_and(|kind| kind.eq_ignore_ascii_case(s))
            })
    }

    /// The instants of `current`'s renewal.
    pub fn timing(&self, current: &CertInfo) -> Timing {
        let days = |d: u32| Duration::days(d.into());
        let generate_at = match self.trigger {
            Trigger::DaysBefore(d) => current.not_after - days(d),
            Trigger::LifetimePercent(p) => {
                let life = current.not_after - current.not_before;
                current.not_before + life * i32::from(p) / 100
            }
        };
        let promote_at = current.not_after - days(self.promote_before_days);
        Timing {
            generate_at,
            // Never promoted before it is made.
            promote_at: promote_at.max(generate_at),
            critical_at: current.not_after - days(self.critical_before_days),
        }
    }

    /// When a certificate made at `now` for `current` becomes current: the
    /// policy's promotion instant, or `MIN_PROMOTION_LEAD` from now if that
    /// has passed.
    pub fn promotion(&self, current: &CertInfo, now: DateTime<Utc>) -> DateTime<Utc> {
        let t = self.timing(current).promote_at;
        let earliest = now + MIN_PROMOTION_LEAD;
        let t = t.max(earliest);
        // Whole seconds: an instant an operator reads and types back.
        chrono::SubsecRound::trunc_subsecs(t, 0)
    }

    /// The wait before attempt `failures + 1` after `failures` failures.
    pub fn backoff(&self, failures: u32) -> Duration {
        let base = Duration::minutes(self.retry_minutes.max(1).into());
        let factor = 1i32 << failures.saturating_sub(1).min(16);
        (base * factor).min(RETRY_MAX)
    }

    /// Checks the policy's numbers hang together.
    pub fn validate(&self) -> Result<(), String> {
        if let Trigger::DaysBefore(g) = self.trigger
            && g <= self.promote_before_days
        {
            return Err(format!(
                "generate_before_days ({g}) must exceed promote_before_days ({}): a certificate is made before it is promoted",
                self.promote_before_days
            ));
        }
        if let Trigger::LifetimePercent(p) = self.trigger
            && !(1..=99).contains(&p)
        {
            return Err(format!(
                "generate_at_percent must be from 1 to 99 (here {p})"
            ));
        }
        if self.critical_before_days >= self.promote_before_days {
            return Err(format!(
                "critical_before_days ({}) must be less than promote_before_days ({})",
                self.critical_before_days, self.promote_before_days
            ));
        }
        if let Trigger::DaysBefore(g) = self.trigger
            && self.method == Method::SelfSigned
            && self.validity_days <= g
        {
            return Err(format!(
                "validity_days ({}) must exceed generate_before_days ({g}): each new certificate would be due for renewal at once",
                self.validity_days
            ));
        }
        if !(1..=3650).contains(&self.validity_days) {
            return Err("validity_days must be from 1 to 3650".into());
        }
        Ok(())
    }
}

/// A `[renewal.<Type>]` table: `method` required, every other key
/// optional (AD FS's defaults), unknown keys refused.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RenewalTable {
    pub method: Method,
    pub generate_before_days: Option<u32>,
    pub generate_at_percent: Option<u8>,
    pub promote_before_days: Option<u32>,
    pub critical_before_days: Option<u32>,
    pub key: Option<String>,
    pub validity_days: Option<u32>,
    pub scopes: Option<Vec<String>>,
    pub require_staged: Option<bool>,
    pub retry_minutes: Option<u32>,
    pub retire_previous_after_hours: Option<u32>,
}

impl RenewalTable {
    /// The policy the table describes, its numbers checked.
    pub fn policy(&self) -> Result<RenewalPolicy, String> {
        let mut p = RenewalPolicy::defaults(self.method);
        p.trigger = match (self.generate_before_days, self.generate_at_percent) {
            (Some(_), Some(_)) => {
                return Err(
                    "generate_before_days and generate_at_percent exclude each other: choose one"
                        .into(),
                );
            }
            (Some(d), None) => Trigger::DaysBefore(d),
            (None, Some(pc)) => Trigger::LifetimePercent(pc),
            (None, None) => p.trigger,
        };
        if let Some(v) = self.promote_before_days {
            p.promote_before_days = v;
        }
        if let Some(v) = self.critical_before_days {
            p.critical_before_days = v;
        }
        if let Some(k) = &self.key {
            p.key = k.parse().map_err(|e| format!("key: {e}"))?;
        }
        if let Some(v) = self.validity_days {
            p.validity_days = v;
        }
        if let Some(v) = &self.scopes {
            for s in v {
                let kind = matches!(s.as_str(), "global" | "site" | "pool" | "server");
                if !kind && super::Scope::parse(s).is_err() {
                    return Err(format!(
                        "scopes: '{s}' is neither a kind of scope (global, site, pool, server) nor a scope like pool:FQDN"
                    ));
                }
            }
            p.scopes = v.clone();
        }
        if let Some(v) = self.require_staged {
            p.require_staged = v;
        }
        if let Some(v) = self.retry_minutes {
            if !(1..=1440).contains(&v) {
                return Err("retry_minutes must be from 1 to 1440".into());
            }
            p.retry_minutes = v;
        }
        if let Some(h) = self.retire_previous_after_hours {
            if !(1..=87_600).contains(&h) {
                return Err("retire_previous_after_hours must be from 1 to 87600".into());
            }
            p.retire_previous_after_hours = Some(h);
        }
        p.validate()?;
        Ok(p)
    }
}

/// What the next certificate of a slot is made from: the current one's
/// subject and names, the SIP domain, and for a pool the pool's servers;
/// the policy's key. Refused (rule, message) when the type's policy would
/// refuse such a request.
pub fn next_spec(
    policy: &RenewalPolicy,
    type_policy: &super::policy::Policy,
    current: &CertInfo,
    scope: &super::Scope,
    sip_domain: Option<&str>,
    pool_servers: &[String],
) -> Result<super::request::RequestSpec, String> {
    use super::request::{self, RequestSpec, Subject};
    let mut subject = Subject::of(current);
    if subject.common_name.is_empty() {
        subject.common_name = match (scope, sip_domain) {
            (super::Scope::Pool(f) | super::Scope::Server(f), _) => f.clone(),
            (_, Some(d)) => d.to_string(),
            (_, None) => {
                return Err(format!(
                    "the current certificate {} has no common name to renew under, and no sip_domain is configured",
                    current.thumbprint
                ));
            }
        };
    }
    let mut names = current.sans.clone();
    names.extend(pool_servers.iter().cloned());
    let sip: Vec<String> = sip_domain.into_iter().map(str::to_string).collect();
    let sans = request::compose_sans(&subject.common_name, &names, &sip, false)
        .map_err(|e| e.to_string())?;
    let spec = RequestSpec {
        subject,
        sans,
        ekus: request::ekus_for(type_policy),
        key: policy.key,
        template: None,
    };
    let refusals: Vec<String> = request::evaluate(type_policy, sip_domain, &spec)
        .into_iter()
        .map(|(rule, msg)| format!("rule {rule}: {msg}"))
        .collect();
    if !refusals.is_empty() {
        return Err(refusals.join("; "));
    }
    Ok(spec)
}

/// When a current certificate is renewed, promoted, and when its renewal
/// turns critical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timing {
    pub generate_at: DateTime<Utc>,
    pub promote_at: DateTime<Utc>,
    pub critical_at: DateTime<Utc>,
}

/// What the store remembers of a slot's renewal of its current
/// certificate: failures, an open request, what was made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The current certificate this renewal is for; a record for another
    /// one is stale (the slot rolled since).
    pub for_thumbprint: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// A request made for the CA, and the certificate that answered it
    /// (imported, not yet scheduled) if any.
    pub request_id: Option<i64>,
    pub request_open: bool,
    pub answer: Option<String>,
    /// The certificate the renewal made (or scheduled).
    pub made: Option<String>,
    /// The overdue alert was sent.
    pub overdue_alerted: bool,
}

/// What a slot's renewal needs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The slot has no current certificate: nothing to renew.
    NoCurrent,
    /// A roll is already pending (made by the renewal or by an operator).
    Pending(Pending),
    /// Not yet: made at `generate_at`.
    NotYet(Timing),
    /// Make the next certificate now, to become current at `promote_at`.
    Generate { promote_at: DateTime<Utc> },
    /// The request is with the CA (the `request` method).
    AwaitingAnswer { request_id: i64 },
    /// The CA's answer was imported: schedule it.
    ScheduleAnswer {
        thumbprint: String,
        promote_at: DateTime<Utc>,
    },
    /// The certificate this renewal made is no longer pending although the
    /// slot still has the certificate it renewed: its roll was cancelled,
    /// or the slot was rolled back to it. Nothing is made again without an
    /// operator (`renew --now`); the overdue and critical alerts still come.
    Withdrawn { thumbprint: String },
    /// The last attempt failed; the next is at `until`.
    BackingOff {
        until: DateTime<Utc>,
        attempts: u32,
        last_error: String,
    },
}

/// The facts a decision is made from.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub current: Option<&'a CertInfo>,
    pub pending: Option<&'a Pending>,
    /// The stored record, if it is for `current`.
    pub record: Option<&'a Record>,
}

/// A slot's renewal at `now`: what to do, and whether an overdue alert is
/// due (the promotion instant has come with nothing pending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub decision: Decision,
    pub timing: Option<Timing>,
    pub overdue: bool,
    /// Past `critical_at` with nothing pending.
    pub critical: bool,
}

pub fn decide(policy: &RenewalPolicy, facts: Facts<'_>, now: DateTime<Utc>) -> Plan {
    let Some(current) = facts.current else {
        return Plan {
            decision: Decision::NoCurrent,
            timing: None,
            overdue: false,
            critical: false,
        };
    };
    let timing = policy.timing(current);
    let record = facts
        .record
        .filter(|r| r.for_thumbprint == current.thumbprint);
    let stalled = facts.pending.is_none();
    let overdue = stalled && now >= timing.promote_at && !record.is_some_and(|r| r.overdue_alerted);
    let critical = stalled && now >= timing.critical_at;
    let decision = if let Some(p) = facts.pending {
        Decision::Pending(p.clone())
    } else if let Some(r) = record.filter(|r| r.answer.is_some()) {
        Decision::ScheduleAnswer {
            thumbprint: r.answer.clone().unwrap_or_default(),
            promote_at: policy.promotion(current, now),
        }
    } else if let Some(made) = record.and_then(|r| r.made.clone()) {
        Decision::Withdrawn { thumbprint: made }
    } else if let Some(id) = record.filter(|r| r.request_open).and_then(|r| r.request_id) {
        Decision::AwaitingAnswer { request_id: id }
    } else if now < timing.generate_at {
        Decision::NotYet(timing)
    } else if let Some((until, r)) = record
        .and_then(|r| r.next_attempt_at.map(|t| (t, r)))
        .filter(|(t, _)| now < *t)
    {
        Decision::BackingOff {
            until,
            attempts: r.attempts,
            last_error: r.last_error.clone().unwrap_or_default(),
        }
    } else {
        Decision::Generate {
            promote_at: policy.promotion(current, now),
        }
    };
    Plan {
        decision,
        timing: Some(timing),
        overdue,
        critical,
    }
}

/// When the previous certificate of a slot (previous since `since`) is
/// retired under `policy`, if ever.
pub fn retire_at(policy: &RenewalPolicy, since: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    Some(since? + Duration::hours(policy.retire_previous_after_hours?.into()))
}

/// What `check` says of a slot's renewal at `now`: CRITICAL past the
/// critical instant with nothing pending, WARNING once its promotion date
/// came with nothing pending, and while its last attempt has failed.
pub fn health(plan: &Plan, now: DateTime<Utc>) -> Vec<(super::expiry::Health, String)> {
    use super::expiry::Health;
    let mut out = Vec::new();
    let Some(t) = plan.timing else {
        return out;
    };
    let at = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let pending = matches!(plan.decision, Decision::Pending(_));
    if plan.critical {
        out.push((
            Health::Critical,
            format!(
                "renewal: nothing pending since the critical date {} (the next certificate was due at {})",
                at(t.critical_at),
                at(t.promote_at)
            ),
        ));
    } else if !pending && now >= t.promote_at {
        out.push((
            Health::Warning,
            format!(
                "renewal overdue: the next certificate should be current since {}",
                at(t.promote_at)
            ),
        ));
    }
    if let Decision::BackingOff {
        until,
        attempts,
        last_error,
    } = &plan.decision
    {
        out.push((
            Health::Warning,
            format!(
                "renewal failed {attempts} time(s), the last: {last_error}; next attempt at {}",
                at(*until)
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn cert(from: DateTime<Utc>, to: DateTime<Utc>) -> CertInfo {
        let mut c = crate::cert::fixture_cert("oauth1.crt.pem");
        c.not_before = from;
        c.not_after = to;
        c
    }

    #[test]
    fn ad_fs_defaults_make_at_20_days_promote_at_5_critical_at_2() {
        let p = RenewalPolicy::defaults(Method::SelfSigned);
        p.validate().unwrap();
        let c = cert(at(2026, 1, 1), at(2027, 1, 1));
        let t = p.timing(&c);
        assert_eq!(t.generate_at, at(2026, 12, 12));
        assert_eq!(t.promote_at, at(2026, 12, 27));
        assert_eq!(t.critical_at, at(2026, 12, 30));
        let plan = |now, pending: Option<&Pending>, record: Option<&Record>| {
            decide(
                &p,
                Facts {
                    current: Some(&c),
                    pending,
                    record,
                },
                now,
            )
        };
        assert_eq!(
            plan(at(2026, 12, 11), None, None).decision,
            Decision::NotYet(t)
        );
        assert_eq!(
            plan(at(2026, 12, 12), None, None).decision,
            Decision::Generate {
                promote_at: at(2026, 12, 27)
            }
        );
        // Made late (the policy configured with 3 days left): promoted soon,
        // never in the past; overdue and critical both.
        let late = plan(at(2026, 12, 29), None, None);
        assert_eq!(
            late.decision,
            Decision::Generate {
                promote_at: at(2026, 12, 29) + MIN_PROMOTION_LEAD
            }
        );
        assert!(late.overdue && !late.critical);
        assert!(plan(at(2026, 12, 30), None, None).critical);
        let pending = Pending {
            thumbprint: "ab".repeat(20),
            effective_at: at(2026, 12, 27),
        };
        let p2 = plan(at(2026, 12, 30), Some(&pending), None);
        assert_eq!(p2.decision, Decision::Pending(pending.clone()));
        assert!(!p2.overdue && !p2.critical);
    }

    #[test]
    fn a_share_of_the_lifetime_triggers_like_key_vault() {
        let mut p = RenewalPolicy::defaults(Method::Acme);
        p.trigger = Trigger::LifetimePercent(80);
        p.validate().unwrap();
        // 90 days (an ACME certificate): made at day 72.
        let c = cert(at(2026, 1, 1), at(2026, 4, 1));
        assert_eq!(p.timing(&c).generate_at, at(2026, 3, 14));
        assert_eq!(p.timing(&c).promote_at, at(2026, 3, 27));
        // A share so late that promotion would come first: promoted as made.
        p.trigger = Trigger::LifetimePercent(99);
        let t = p.timing(&c);
        assert_eq!(t.promote_at, t.generate_at);
    }

    #[test]
    fn failures_back_off_and_a_stale_record_is_ignored() {
        let p = RenewalPolicy::defaults(Method::Acme);
        assert_eq!(p.backoff(1), Duration::minutes(10));
        assert_eq!(p.backoff(2), Duration::minutes(20));
        assert_eq!(p.backoff(4), Duration::minutes(80));
        assert_eq!(p.backoff(40), RETRY_MAX);
        let c = cert(at(2026, 1, 1), at(2027, 1, 1));
        let now = at(2026, 12, 20);
        let mut r = Record {
            for_thumbprint: c.thumbprint.clone(),
            attempts: 2,
            last_error: Some("challenge failed".into()),
            next_attempt_at: Some(now + Duration::minutes(5)),
            ..Record::default()
        };
        let facts = |r: &Record| {
            decide(
                &p,
                Facts {
                    current: Some(&c),
                    pending: None,
                    record: Some(r),
                },
                now,
            )
            .decision
        };
        assert!(matches!(
            facts(&r),
            Decision::BackingOff { attempts: 2, .. }
        ));
        r.next_attempt_at = Some(now);
        assert!(matches!(facts(&r), Decision::Generate { .. }));
        // A record about an earlier current certificate says nothing.
        r.next_attempt_at = Some(now + Duration::hours(1));
        r.for_thumbprint = "00".repeat(20);
        assert!(matches!(facts(&r), Decision::Generate { .. }));
    }

    #[test]
    fn a_request_is_made_once_and_its_answer_scheduled() {
        let p = RenewalPolicy::defaults(Method::Request);
        let c = cert(at(2026, 1, 1), at(2027, 1, 1));
        let now = at(2026, 12, 15);
        let mut r = Record {
            for_thumbprint: c.thumbprint.clone(),
            request_id: Some(7),
            request_open: true,
            ..Record::default()
        };
        let d = |r: &Record| {
            decide(
                &p,
                Facts {
                    current: Some(&c),
                    pending: None,
                    record: Some(r),
                },
                now,
            )
        };
        assert_eq!(d(&r).decision, Decision::AwaitingAnswer { request_id: 7 });
        r.request_open = false;
        r.answer = Some("cd".repeat(20));
        assert_eq!(
            d(&r).decision,
            Decision::ScheduleAnswer {
                thumbprint: "cd".repeat(20),
                promote_at: at(2026, 12, 27)
            }
        );
        // Cancelled without an answer: a new request.
        r.answer = None;
        assert!(matches!(d(&r).decision, Decision::Generate { .. }));
    }

    #[test]
    fn the_overdue_alert_is_sent_once_and_scopes_filter() {
        let p = RenewalPolicy::defaults(Method::SelfSigned);
        let c = cert(at(2026, 1, 1), at(2027, 1, 1));
        let r = Record {
            for_thumbprint: c.thumbprint.clone(),
            overdue_alerted: true,
            ..Record::default()
        };
        let plan = decide(
            &p,
            Facts {
                current: Some(&c),
                pending: None,
                record: Some(&r),
            },
            at(2026, 12, 28),
        );
        assert!(!plan.overdue);
        let mut p = p;
        assert!(p.covers("site:Redmond"));
        p.scopes = vec!["global".into(), "pool:lyncpool.contoso.com".into()];
        assert!(p.covers("global") && p.covers("POOL:lyncpool.contoso.com"));
        assert!(!p.covers("site:Redmond") && !p.covers("pool:other.contoso.com"));
        p.scopes = vec!["site".into()];
        assert!(p.covers("site:Redmond"));
    }

    #[test]
    fn numbers_that_do_not_hang_together_are_refused() {
        let mut p = RenewalPolicy::defaults(Method::SelfSigned);
        p.trigger = Trigger::DaysBefore(5);
        assert!(p.validate().unwrap_err().contains("promote_before_days"));
        p.trigger = Trigger::DaysBefore(20);
        p.critical_before_days = 5;
        assert!(p.validate().unwrap_err().contains("critical_before_days"));
        p.critical_before_days = 2;
        p.validity_days = 15;
        assert!(p.validate().unwrap_err().contains("validity_days"));
    }

    #[test]
    fn a_withdrawn_renewal_is_not_made_again_by_itself() {
        let p = RenewalPolicy::defaults(Method::SelfSigned);
        let c = cert(at(2026, 1, 1), at(2027, 1, 1));
        let r = Record {
            for_thumbprint: c.thumbprint.clone(),
            made: Some("ef".repeat(20)),
            ..Record::default()
        };
        let plan = decide(
            &p,
            Facts {
                current: Some(&c),
                pending: None,
                record: Some(&r),
            },
            at(2026, 12, 28),
        );
        assert_eq!(
            plan.decision,
            Decision::Withdrawn {
                thumbprint: "ef".repeat(20)
            }
        );
        assert!(plan.overdue, "still alerted");
    }
}
