//! Renewing slots under their rollover policy (`[renewal.<Type>]`): which
//! slots a policy covers and what each needs ([`survey`]), and the step
//! that makes the next certificate and schedules its roll ([`act`]), as
//! the renewal duty of `serve` and `certroll renew` both run them. A step
//! is one store transaction (certificate, pending roll, job, record, audit
//! row and event together); a crash before it leaves nothing, after it the
//! slot has its pending roll and the next pass sees it.

use chrono::{DateTime, Utc};

use crate::cert::renewal::{self, Decision, Facts, Method, Plan, RenewalPolicy};
use crate::cert::slot::Pending;
use crate::cert::{CertInfo, Scope, SlotKey, UsageType};
use crate::config::Config;
use crate::store::{NewCert, NewRequest, OpCtx, Store, StoreError, StoredCert};

/// A slot under a policy, and what its renewal needs at the survey's
/// instant.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub slot: SlotKey,
    pub policy: RenewalPolicy,
    pub current: Option<StoredCert>,
    pub pending: Option<Pending>,
    /// The previous certificate's thumbprint, and since when it is previous.
    pub previous: Option<(String, Option<DateTime<Utc>>)>,
    /// The stored record of the renewal of `current` (none for a record
    /// about an earlier current certificate).
    pub record: Option<renewal::Record>,
    pub plan: Plan,
}

/// Every slot a policy covers (of `types`, at `scope`, when given), with
/// its plan at `now`. Reads only.
pub fn survey(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
    types: &[UsageType],
    scope: Option<&Scope>,
) -> Result<Vec<Candidate>, StoreError> {
    let records = store.renewal_records()?;
    let mut out = Vec::new();
    for (t, policy) in &config.renewal {
        if !types.is_empty() && !types.contains(t) {
            continue;
        }
        for view in store.slots(std::slice::from_ref(t), scope)? {
            if !policy.covers(&view.key.scope.to_string()) {
                continue;
            }
            let pending = view.pending.as_ref().map(|(c, at)| Pending {
                thumbprint: c.info.thumbprint.clone(),
                effective_at: *at,
            });
            // A record about an earlier current certificate says nothing.
            let record = records.get(&view.key).cloned().filter(|r| {
                view.current
                    .as_ref()
                    .is_some_and(|c| c.info.thumbprint == r.for_thumbprint)
            });
            let plan = renewal::decide(
                policy,
                Facts {
                    current: view.current.as_ref().map(|c| &c.info),
                    pending: pending.as_ref(),
                    record: record.as_ref(),
                },
                now,
            );
            out.push(Candidate {
                slot: view.key.clone(),
                policy: policy.clone(),
                current: view.current,
                pending,
                previous: view
                    .previous
                    .as_ref()
                    .map(|p| (p.info.thumbprint.clone(), view.previous_since)),
                record,
                plan,
            });
        }
    }
    Ok(out)
}

/// What a renewal step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new certificate was made and its roll scheduled.
    Generated {
        thumbprint: String,
        effective_at: DateTime<Utc>,
        job_id: Option<i64>,
    },
    /// A request for the CA was made (method `request`).
    Requested { request_id: i64 },
    /// The CA's imported answer was scheduled.
    Scheduled {
        thumbprint: String,
        effective_at: DateTime<Utc>,
        job_id: Option<i64>,
    },
    /// The attempt failed; recorded, with its next attempt.
    Failed {
        error: String,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
    },
    /// The previous certificate left the slot after its overlap.
    Retired { thumbprint: String },
    /// Nothing to do now (or the slot changed since the survey).
    Nothing,
}

impl Outcome {
    /// Its name in `certroll_renewals_total{outcome}`.
    pub fn metric(&self) -> Option<&'static str> {
        Some(match self {
            Outcome::Generated { .. } => "generated",
            Outcome::Requested { .. } => "requested",
            Outcome::Scheduled { .. } => "scheduled",
            Outcome::Failed { .. } => "failed",
            Outcome::Retired { .. } => "retired",
            Outcome::Nothing => return None,
        })
    }
}

/// Why a step made nothing, before the store was touched.
struct Refusal(String);

/// The servers of `pool` in the configuration (a pool's certificate names
/// each of them): the wizard's rule, for requests and renewals alike.
pub fn pool_servers(config: &Config, scope: &Scope) -> Vec<String> {
    match scope {
        Scope::Pool(pool) => config
            .servers
            .iter()
            .filter(|s| {
                s.pool
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case(pool))
            })
            .map(|s| s.name.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// What `c`'s next certificate is made from (names, key), by the rule the
/// renewal applies; `Err` says why the type's policy would refuse it.
pub fn next_spec(
    config: &Config,
    c: &Candidate,
) -> Option<Result<crate::cert::request::RequestSpec, String>> {
    let current = &c.current.as_ref()?.info;
    Some(renewal::next_spec(
        &c.policy,
        config.policy(&c.slot.usage_type),
        current,
        &c.slot.scope,
        config.sip_domain.as_deref(),
        &pool_servers(config, &c.slot.scope),
    ))
}

/// The next certificate of `c` by its policy's method, made in memory
/// (nothing stored), checked against the type's policy at `at`.
fn make(
    store: &mut Store,
    config: &Config,
    c: &Candidate,
    current: &CertInfo,
    at: DateTime<Utc>,
    ctx: &OpCtx,
) -> Result<Made, Refusal> {
    let now = ctx.now;
    let t = &c.slot.usage_type;
    let spec = renewal::next_spec(
        &c.policy,
        config.policy(t),
        current,
        &c.slot.scope,
        config.sip_domain.as_deref(),
        &pool_servers(config, &c.slot.scope),
    )
    .map_err(|e| Refusal(format!("{t} policy: {e}")))?;
    let key = crate::cert::keygen::generate(spec.key)
        .map_err(|e| Refusal(format!("cannot make a key: {e}")))?;
    match c.policy.method {
        Method::SelfSigned | Method::Acme => {
            let (cert, chain) = if c.policy.method == Method::Acme {
                let issued = super::acme::order(store, &config.acme, &spec, &key, ctx)
                    .map_err(|e| Refusal(format!("ACME: {e}")))?;
                (issued.cert, issued.chain)
            } else {
                // An hour back, so that servers with a slow clock accept it at once.
                let now = chrono::SubsecRound::trunc_subsecs(now, 0);
                let not_before = now - chrono::Duration::hours(1);
                let not_after = now + chrono::Duration::days(c.policy.validity_days.into());
                let der = crate::cert::request::self_signed(&spec, &key, not_before, not_after)
                    .map_err(|e| Refusal(e.to_string()))?;
                (
                    CertInfo::from_der(&der).map_err(|e| Refusal(e.to_string()))?,
                    Vec::new(),
                )
            };
            let findings =
                super::findings(config, std::slice::from_ref(t), &cert, &chain, true, at)
                    .map_err(|e| Refusal(e.to_string()))?;
            let errors: Vec<String> = findings
                .iter()
                .filter(|f| f.severity == crate::cert::policy::Severity::Error)
                .map(|f| f.to_string())
                .collect();
            if !errors.is_empty() {
                return Err(Refusal(errors.join("; ")));
            }
            Ok(Made::Cert { cert, chain, key })
        }
        Method::Request => {
            let csr =
                crate::cert::request::csr_pem(&spec, &key).map_err(|e| Refusal(e.to_string()))?;
            Ok(Made::Request { spec, key, csr })
        }
    }
}

/// What a step made, in memory until its transaction (one a renewal: the
/// size of its variants does not matter).
#[allow(clippy::large_enum_variant)]
enum Made {
    Cert {
        cert: CertInfo,
        chain: Vec<CertInfo>,
        key: crate::cert::key::PrivateKey,
    },
    Request {
        spec: crate::cert::request::RequestSpec,
        key: crate::cert::key::PrivateKey,
        csr: String,
    },
}

/// Runs `c`'s renewal step if its plan calls for one (or, with `force`,
/// makes the next certificate now whatever the plan's dates say). A
/// refusal or failure is recorded (`renewal.failed`, the next attempt
/// after the policy's backoff) and returned as `Outcome::Failed`; only
/// store errors are errors.
pub fn act(
    store: &mut Store,
    config: &Config,
    c: &Candidate,
    now: DateTime<Utc>,
    actor: &str,
    force: bool,
) -> Result<Outcome, StoreError> {
    let ctx = OpCtx {
        now,
        actor: actor.to_string(),
    };
    let Some(current) = c.current.as_ref().map(|s| &s.info) else {
        return Ok(Outcome::Nothing);
    };
    let promote_at = match &c.plan.decision {
        Decision::Generate { promote_at } => *promote_at,
        Decision::NotYet(_) | Decision::BackingOff { .. } | Decision::Withdrawn { .. } if force => {
            c.policy.promotion(current, now)
        }
        Decision::ScheduleAnswer {
            thumbprint,
            promote_at,
        } => {
            return schedule_answer(store, config, c, current, thumbprint, *promote_at, &ctx);
        }
        _ => return Ok(Outcome::Nothing),
    };
    let method = c.policy.method.as_str();
    if c.policy.require_staged {
        let units = crate::deploy::deployer::units(store, config, None)?;
        if crate::deploy::plan::stagers(&units, &c.slot).is_empty() {
            let e = format!(
                "require_staged: no configured server stages {}: give a [[target.file]] covering its servers a pending_path",
                c.slot
            );
            return failed(store, c, current, &e, &ctx);
        }
    }
    let made = match make(store, config, c, current, promote_at, &ctx) {
        Ok(m) => m,
        Err(Refusal(e)) => return failed(store, c, current, &e, &ctx),
    };
    crate::failpoint::crash_point("renewal.made");
    let result = match &made {
        Made::Cert { cert, chain, key } => {
            let friendly = format!(
                "{} {} renewal {}",
                c.slot.usage_type,
                c.slot.scope,
                now.with_timezone(&config.timezone).format("%Y-%m-%d")
            );
            let source = match c.policy.method {
                Method::Acme => "ordered by certroll from its ACME CA (renewal)",
                _ => "self-signed by certroll (renewal)",
            };
            let new = NewCert {
                cert,
                chain,
                key: Some(key),
                friendly_name: Some(&friendly),
                source_file: Some(source),
                request: None,
            };
            store
                .renew_with_cert(
                    &c.slot,
                    &current.thumbprint,
                    Some(&new),
                    &cert.thumbprint,
                    promote_at,
                    c.policy.require_staged,
                    method,
                    &ctx,
                )
                .map(|r| Outcome::Generated {
                    thumbprint: cert.thumbprint.clone(),
                    effective_at: promote_at,
                    job_id: r.job_id,
                })
        }
        Made::Request { spec, key, csr } => {
            let friendly = format!("{} {} renewal", c.slot.usage_type, c.slot.scope);
            store
                .renew_with_request(
                    &c.slot,
                    &current.thumbprint,
                    &NewRequest {
                        usage_type: c.slot.usage_type.as_str(),
                        scope: &c.slot.scope.to_string(),
                        subject: &spec.subject.to_rfc4514(),
                        sans: &spec.sans,
                        key_algorithm: &spec.key.to_string(),
                        friendly_name: Some(&friendly),
                        template: None,
                        key,
                        csr,
                        validity_days: Some(c.policy.validity_days),
                    },
                    &ctx,
                )
                .map(|request_id| Outcome::Requested { request_id })
        }
    };
    match result {
        Ok(o) => Ok(o),
        // The slot changed since the survey (rolled, assigned, another roll
        // scheduled): the next survey decides again.
        Err(StoreError::Refused(why)) => {
            tracing::info!(slot = %c.slot, reason = %why, "renewal skipped");
            Ok(Outcome::Nothing)
        }
        Err(e) => Err(e),
    }
}

fn schedule_answer(
    store: &mut Store,
    config: &Config,
    c: &Candidate,
    current: &CertInfo,
    thumbprint: &str,
    at: DateTime<Utc>,
    ctx: &OpCtx,
) -> Result<Outcome, StoreError> {
    let answer = store.find_cert(thumbprint)?;
    let findings = super::findings(
        config,
        std::slice::from_ref(&c.slot.usage_type),
        &answer.info,
        &[],
        answer.has_private_key,
        at,
    );
    let errors: Vec<String> = match findings {
        Ok(f) => f
            .iter()
            .filter(|f| f.severity == crate::cert::policy::Severity::Error)
            .map(|f| f.to_string())
            .collect(),
        Err(e) => vec![e.to_string()],
    };
    if !errors.is_empty() {
        return failed(store, c, current, &errors.join("; "), ctx);
    }
    match store.renew_with_cert(
        &c.slot,
        &current.thumbprint,
        None,
        thumbprint,
        at,
        c.policy.require_staged,
        "request",
        ctx,
    ) {
        Ok(r) => Ok(Outcome::Scheduled {
            thumbprint: thumbprint.to_string(),
            effective_at: at,
            job_id: r.job_id,
        }),
        Err(StoreError::Refused(why)) => {
            tracing::info!(slot = %c.slot, reason = %why, "renewal skipped");
            Ok(Outcome::Nothing)
        }
        Err(e) => Err(e),
    }
}

fn failed(
    store: &mut Store,
    c: &Candidate,
    current: &CertInfo,
    error: &str,
    ctx: &OpCtx,
) -> Result<Outcome, StoreError> {
    let now = ctx.now;
    let policy = &c.policy;
    let backoff = |attempts: u32| now + policy.backoff(attempts);
    match store.renewal_failed(&c.slot, &current.thumbprint, error, backoff, ctx) {
        Ok(attempts) => {
            tracing::warn!(slot = %c.slot, attempts, error, "renewal failed");
            Ok(Outcome::Failed {
                error: error.to_string(),
                attempts,
                next_attempt_at: backoff(attempts),
            })
        }
        Err(StoreError::Refused(_)) => Ok(Outcome::Nothing),
        Err(e) => Err(e),
    }
}

/// One pass of the renewal duty at `now`: every covered slot's due step,
/// and the overdue alerts. Returns what was done and when the next step
/// falls due (`None`: nothing is scheduled to come due).
pub fn pass(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<PassReport, StoreError> {
    let mut report = PassReport::default();
    let mut deployments = None;
    for c in survey(store, config, now, &[], None)? {
        if c.plan.overdue
            && let Some(cur) = &c.current
        {
            let at = c.plan.timing.map(|t| t.promote_at).unwrap_or(now);
            let message = format!(
                "{}: its renewal is overdue: the next certificate should have been current at {}, and {} expires at {} with nothing pending",
                c.slot,
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                cur.info.thumbprint,
                cur.info
                    .not_after
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            let data = serde_json::json!({
                "current": cur.info.thumbprint,
                "promote_at": at,
                "not_after": cur.info.not_after,
                "last_error": c.record.as_ref().and_then(|r| r.last_error.clone()),
            });
            let ctx = OpCtx {
                now,
                actor: actor.to_string(),
            };
            if store.renewal_overdue(&c.slot, &cur.info.thumbprint, &message, data, &ctx)? {
                report.alerts += 1;
            }
        }
        if let Some(retired) = retire(store, config, &c, now, actor, &mut deployments)? {
            report.outcomes.push((c.slot.clone(), retired));
        }
        let retire_at = c
            .previous
            .as_ref()
            .and_then(|(_, since)| renewal::retire_at(&c.policy, *since))
            .filter(|t| *t > now);
        if let Some(t) = retire_at {
            report.wake_at(t);
        }
        let outcome = act(store, config, &c, now, actor, false)?;
        if let Outcome::Failed {
            next_attempt_at, ..
        } = &outcome
        {
            let t = *next_attempt_at;
            report.wake_at(t);
        }
        if outcome != Outcome::Nothing {
            report.outcomes.push((c.slot.clone(), outcome));
        }
        // When this slot next needs the duty.
        let next = match &c.plan.decision {
            Decision::NotYet(t) => Some(t.generate_at),
            Decision::BackingOff { until, .. } => Some(*until),
            _ => None,
        };
        let overdue_at = c
            .plan
            .timing
            .filter(|_| c.pending.is_none() && !c.plan.overdue)
            .filter(|_| !c.record.as_ref().is_some_and(|r| r.overdue_alerted))
            .map(|t| t.promote_at)
            .filter(|t| *t > now);
        for t in [next, overdue_at].into_iter().flatten() {
            report.wake_at(t);
        }
    }
    Ok(report)
}

/// Retires `c`'s previous certificate when its policy says so, its overlap
/// has passed and every server that takes the slot has the current one
/// (`deployments`: the replication status, read once a pass when needed).
fn retire(
    store: &mut Store,
    config: &Config,
    c: &Candidate,
    now: DateTime<Utc>,
    actor: &str,
    deployments: &mut Option<Vec<crate::deploy::status::StatusRow>>,
) -> Result<Option<Outcome>, StoreError> {
    let (Some(current), Some((previous, since))) = (&c.current, &c.previous) else {
        return Ok(None);
    };
    let Some(at) = renewal::retire_at(&c.policy, *since) else {
        return Ok(None);
    };
    if now < at {
        return Ok(None);
    }
    if deployments.is_none() {
        *deployments = Some(if config.servers.is_empty() {
            Vec::new()
        } else {
            crate::deploy::status::rows(store, config, None)?
        });
    }
    let behind: Vec<&str> = deployments
        .iter()
        .flatten()
        .filter(|r| {
            r.unit.slot == c.slot && r.unit.role == crate::deploy::plan::DeployRole::Current
        })
        .filter(|r| !r.up_to_date)
        .map(|r| r.unit.server.name.as_str())
        .collect();
    if !behind.is_empty() {
        tracing::info!(slot = %c.slot, servers = %behind.join(", "), "previous certificate kept: servers do not have the current one yet");
        return Ok(None);
    }
    let hours = c.policy.retire_previous_after_hours.unwrap_or_default();
    let detail = format!(
        "retired {hours} h after it became previous; every server has {}",
        current.info.thumbprint
    );
    let ctx = OpCtx {
        now,
        actor: actor.to_string(),
    };
    match store.retire_previous(&c.slot, (&current.info.thumbprint, previous), &detail, &ctx) {
        Ok(()) => Ok(Some(Outcome::Retired {
            thumbprint: previous.clone(),
        })),
        Err(StoreError::Refused(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl PassReport {
    /// The next step falls due at `t` at the latest.
    fn wake_at(&mut self, t: DateTime<Utc>) {
        self.next = Some(self.next.map_or(t, |n| n.min(t)));
    }
}

/// What a pass did.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    pub outcomes: Vec<(SlotKey, Outcome)>,
    /// Overdue alerts raised.
    pub alerts: usize,
    /// When the next step falls due.
    pub next: Option<DateTime<Utc>>,
}
