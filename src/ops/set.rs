//! Assigning and scheduling: the checks every front end applies before a
//! certificate goes into a slot (scope, policy, lead time, staging, a
//! pending roll in the way), and the operation itself. The command line's
//! `set`, `import`, `request` and `rollback` and the HTTP API call these.

use chrono::{DateTime, Utc};

use crate::cert::policy::{self, Finding, Severity};
use crate::cert::slot::{AssignPlan, SchedulePlan};
use crate::cert::{Scope, SlotKey, UsageType};
use crate::config::{Config, ConfigError};
use crate::store::{OpCtx, SlotChange, Store, StoreError, StoredCert};

/// Why an operation did not happen. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The request itself is wrong (a scope, a flag, a name): the command
    /// line's usage error, HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// The policy refuses, whatever the flags (HTTP 409).
    #[error("{0}")]
    Policy(String),
    /// The policy's findings refuse (HTTP 409).
    #[error("{0}")]
    Refused(Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Policy findings that stop an operation: errors, or warnings without
/// `force`. `shown` holds the findings that decide it (the errors only,
/// when there are errors: the warnings would not change the outcome).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub shown: Vec<Finding>,
    /// Warnings that `force` would accept (0 when there are errors).
    pub need_force: usize,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.need_force > 0 {
            write!(
                f,
                "refused: {} warning(s) need --force; nothing changed",
                self.need_force
            )?;
        } else {
            f.write_str("refused")?;
        }
        for x in &self.shown {
            write!(f, "; {x}")?;
        }
        Ok(())
    }
}

/// Decides on `findings`: refused on any error, and on warnings without
/// `force`; otherwise the warnings that were accepted.
pub fn enforce(findings: &[Finding], force: bool) -> Result<Vec<Finding>, Refusal> {
    let errors: Vec<Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .cloned()
        .collect();
    if !errors.is_empty() {
        return Err(Refusal {
            shown: errors,
            need_force: 0,
        });
    }
    if !findings.is_empty() && !force {
        return Err(Refusal {
            shown: findings.to_vec(),
            need_force: findings.len(),
        });
    }
    Ok(findings.to_vec())
}

/// Refuses slots at a scope their type's policy does not allow (rule
/// scope: OAuthTokenIssuer is configured once, at global), and, when
/// `[[server]]` entries are configured, a site, pool or server scope that
/// names none of them, with the nearest names. `force` allows a scope for
/// servers not configured yet, with the note it returns.
pub fn check_scope(
    config: &Config,
    slots: &[SlotKey],
    force: bool,
) -> Result<Option<String>, OpError> {
    let refusals: Vec<String> = slots
        .iter()
        .filter_map(|s| {
            policy::scope_refusal(&s.usage_type, config.policy(&s.usage_type), &s.scope)
        })
        .collect();
    if !refusals.is_empty() {
        return Err(OpError::Policy(refusals.join("; ")));
    }
    let servers = &config.servers;
    let Some(scope) = slots.first().map(|s| &s.scope) else {
        return Ok(None);
    };
    if servers.is_empty() || matches!(scope, Scope::Global) {
        return Ok(None);
    }
    let known: Vec<String> = servers
        .iter()
        .flat_map(|s| s.scopes())
        .filter(|k| k.kind() == scope.kind())
        .map(|k| k.to_string())
        .collect();
    if known
        .iter()
        .any(|k| Scope::parse(k).is_ok_and(|k| k.key() == scope.key()))
    {
        return Ok(None);
    }
    if force {
        return Ok(Some(format!(
            "{scope} names no configured [[server]]: assigned anyway (--force)"
        )));
    }
    let mut near: Vec<(f64, &String)> = known
        .iter()
        .map(|k| (strsim::normalized_levenshtein(k, &scope.to_string()), k))
        .collect();
    near.sort_by(|a, b| b.0.total_cmp(&a.0));
    near.dedup_by(|a, b| a.1 == b.1);
    let names: Vec<&str> = near.iter().take(3).map(|(_, k)| k.as_str()).collect();
    let hint = if names.is_empty() {
        format!("no configured server has a {}", scope.kind())
    } else {
        format!("the nearest: {}", names.join(", "))
    };
    Err(OpError::Invalid(format!(
        "--scope {scope} names no configured [[server]] ({hint}); --force assigns it anyway, for servers not configured yet"
    )))
}

/// With `require_staged`, refuses slots that no configured server stages
/// (nothing could ever release the roll).
pub fn check_staging(
    config: &Config,
    store: &Store,
    slots: &[SlotKey],
    require_staged: bool,
) -> Result<(), OpError> {
    if !require_staged {
        return Ok(());
    }
    let units = crate::deploy::deployer::units(store, config, None)?;
    for slot in slots {
        if crate::deploy::plan::stagers(&units, slot).is_empty() {
            return Err(OpError::Invalid(format!(
                "--require-staged: no configured server stages {slot}: give a [[target.file]] covering its servers a pending_path"
            )));
        }
    }
    Ok(())
}

/// Refuses when a slot already has another pending roll (which only
/// `force` replaces).
pub fn refuse_conflicts(
    config: &Config,
    plans: &[SlotChange<SchedulePlan>],
) -> Result<(), StoreError> {
    for c in plans {
        if let SchedulePlan::Conflict(p) = &c.plan {
            return Err(StoreError::Refused(format!(
                "{} already has pending certificate {} effective {}; --force replaces it",
                c.slot,
                p.thumbprint,
                p.effective_at
                    .with_timezone(&config.timezone)
                    .format("%Y-%m-%d %H:%M:%S %Z")
            )));
        }
    }
    Ok(())
}

/// What to put where: a stored certificate into the slots of `types` at
/// `scope`, now, or at `at` as a scheduled roll.
#[derive(Debug, Clone)]
pub struct SetRequest {
    pub types: Vec<UsageType>,
    pub scope: Scope,
    /// A thumbprint, or a unique prefix of at least 8 hex digits.
    pub thumbprint: String,
    pub at: Option<DateTime<Utc>>,
    pub force: bool,
    pub require_staged: bool,
    pub what_if: bool,
}

impl SetRequest {
    pub fn slots(&self) -> Vec<SlotKey> {
        self.types
            .iter()
            .map(|t| SlotKey::new(self.scope.clone(), t.clone()))
            .collect()
    }
}

/// What changed (or, with `what_if`, would change).
#[derive(Debug)]
pub enum SetChange {
    Assigned(Vec<SlotChange<AssignPlan>>),
    Scheduled {
        at: DateTime<Utc>,
        changes: Vec<SlotChange<SchedulePlan>>,
        job_ids: Vec<i64>,
    },
}

#[derive(Debug)]
pub struct SetOutcome {
    pub cert: StoredCert,
    /// Warnings accepted with `force`, and notes.
    pub warnings: Vec<Finding>,
    pub notes: Vec<String>,
    pub change: SetChange,
}

/// Assigns or schedules `req` (the seeds' `Set-CsCertificate`), after every
/// check: scope, policy at the instant it takes effect, lead time,
/// staging, a conflicting pending roll. One transaction with its audit
/// rows and events; nothing changes when it is refused.
pub fn set(
    config: &Config,
    store: &mut Store,
    req: &SetRequest,
    ctx: &OpCtx,
) -> Result<SetOutcome, OpError> {
    let slots = req.slots();
    let notes: Vec<String> = check_scope(config, &slots, req.force)?
        .into_iter()
        .collect();
    let cert = store.find_cert(&req.thumbprint)?;
    let thumbprint = cert.info.thumbprint.clone();
    let at_or_now = req.at.unwrap_or(ctx.now);
    let mut all = super::findings(
        config,
        &req.types,
        &cert.info,
        &cert.chain,
        cert.has_private_key,
        at_or_now,
    )?;
    if let Some(at) = req.at {
        all.extend(super::lead_time_findings(config, store, &slots, at)?);
    }
    let warnings = enforce(&all, req.force).map_err(OpError::Refused)?;
    let change = match req.at {
        None => SetChange::Assigned(if req.what_if {
            store.plan_assign(&thumbprint, &slots)?
        } else {
            store.assign(None, &thumbprint, &slots, ctx)?.changes
        }),
        Some(at) => {
            check_staging(config, store, &slots, req.require_staged)?;
            let plans = store.plan_schedule(&thumbprint, &slots, at, req.force)?;
            refuse_conflicts(config, &plans)?;
            if req.what_if {
                SetChange::Scheduled {
                    at,
                    changes: plans,
                    job_ids: Vec::new(),
                }
            } else {
                let report = store.schedule_with(
                    None,
                    &thumbprint,
                    &slots,
                    at,
                    req.force,
                    req.require_staged,
                    ctx,
                )?;
                SetChange::Scheduled {
                    at,
                    changes: report.changes,
                    job_ids: report.job_ids,
                }
            }
        }
    };
    Ok(SetOutcome {
        cert,
        warnings,
        notes,
        change,
    })
}
