//! `certroll roll`: run the roll jobs that are due now, or with `--now`
//! promote pending certificates ahead of their instant.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::output::{self, short};
use super::{App, Reported, UsageError};
use crate::cert::Scope;
use crate::schedule::engine::Engine;
use crate::store::{JobFilter, RollOutcome, describe_lateness};

/// `roll --fail-if-idle` exit code when no job was due.
pub const EXIT_NOTHING_DUE: i32 = 3;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 rolled, or nothing was due (a timer that runs it sees no failure), \
1 a roll failed or must be retried, 2 usage or configuration error, 3 nothing was due with \
--fail-if-idle."
)]
pub struct RollArgs {
    /// Only jobs of these usage type(s), comma-separated
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: Option<String>,

    /// Only jobs at this scope
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,

    /// Promote the pending certificates now, ahead of their effective date (needs --type)
    #[arg(long)]
    pub now: bool,

    /// Print which rolls would happen (or fail, and why), and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Exit 3 when nothing was due (default: 0)
    #[arg(long)]
    pub fail_if_idle: bool,

    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(app: &App, args: RollArgs) -> Result<()> {
    let filter = JobFilter {
        types: match &args.types {
            Some(t) => app.parse_types(t)?,
            None => Vec::new(),
        },
        scope: args.scope.as_deref().map(Scope::parse).transpose()?,
    };
    if args.now && filter.types.is_empty() {
        return Err(UsageError(
            "--now needs --type: name the slots whose pending certificate to promote".into(),
        )
        .into());
    }
    if args.dry_run {
        let store = app.open_store_read_only()?;
        let engine = Engine::new(store, Arc::new(app.config.clone()), crate::clock::system())?;
        return print_plan(&engine.plan_once(&filter, args.now)?, args.json);
    }
    let store = app.open_store()?;
    let config = Arc::new(app.config.clone());
    let mut engine = Engine::new(store, config.clone(), crate::clock::system())?
        .with_stagers(crate::deploy::deployer::stagers(config));
    let (summary, results) = engine.run_once(&filter, args.now)?;

    if args.json {
        output::print_json(&json!({
            "succeeded": summary.succeeded,
            "failed": summary.failed,
            "retried": summary.retried,
            "jobs": results.iter().map(|r| {
                let (outcome, detail, lateness) = match &r.outcome {
                    RollOutcome::Succeeded { lateness, .. } => ("succeeded", None, Some(*lateness)),
                    RollOutcome::Failed { reason, lateness } => ("failed", Some(reason.clone()), Some(*lateness)),
                    RollOutcome::LeaseLost => ("lease-lost", None, None),
                    RollOutcome::Retry { error } => ("retry", Some(error.clone()), None),
                };
                json!({
                    "id": r.job_id,
                    "scope": r.slot.scope.to_string(),
                    "type": r.slot.usage_type.to_string(),
                    "thumbprint": r.thumbprint,
                    "due_at": output::time(r.due_at),
                    "outcome": outcome,
                    "detail": detail,
                    "lateness_ms": lateness.map(|l| l.num_microseconds().unwrap_or(0) as f64 / 1000.0),
                })
            }).collect::<Vec<_>>(),
        }))?;
    } else {
        for r in &results {
            match &r.outcome {
                RollOutcome::Succeeded {
                    transition,
                    lateness,
                    ..
                } => say!(
                    "{}: rolled to {}; previous {} (job {}, {})",
                    r.slot,
                    short(&r.thumbprint),
                    output::short_opt(transition.after.previous.as_deref()),
                    r.job_id,
                    describe_lateness(*lateness)
                ),
                RollOutcome::Failed { reason, .. } => {
                    tell!(
                        "error: {}: roll to {} (job {}) failed: {reason}; the slot is unchanged",
                        r.slot,
                        short(&r.thumbprint),
                        r.job_id
                    )
                }
                RollOutcome::LeaseLost => tell!(
                    "warning: {}: job {} was taken over by another process",
                    r.slot,
                    r.job_id
                ),
                RollOutcome::Retry { error } => {
                    tell!(
                        "error: {}: job {} hit a transient error ({error}); it will be retried",
                        r.slot,
                        r.job_id
                    )
                }
            }
        }
        if results.is_empty() {
            say!("nothing was due");
        }
    }
    if summary.failed + summary.retried > 0 {
        return Err(Reported(super::EXIT_FAILED).into());
    }
    if summary.succeeded == 0 && args.fail_if_idle {
        return Err(Reported(EXIT_NOTHING_DUE).into());
    }
    Ok(())
}

/// `roll --dry-run`: each due job and what running it would do.
fn print_plan(plan: &[crate::schedule::engine::PlannedRoll], json: bool) -> Result<()> {
    if json {
        return output::print_json(&json!({
            "dry_run": true,
            "jobs": plan.iter().map(|p| json!({
                "id": p.job.id,
                "scope": p.job.slot.scope.to_string(),
                "type": p.job.slot.usage_type.to_string(),
                "thumbprint": p.job.thumbprint,
                "due_at": output::time(p.job.due_at),
                "outcome": if p.outcome.is_ok() { "would-succeed" } else { "would-fail" },
                "detail": p.outcome.as_ref().err(),
                "previous": p.outcome.as_ref().ok().and_then(|t| t.after.previous.clone()),
            })).collect::<Vec<_>>(),
        }));
    }
    for p in plan {
        match &p.outcome {
            Ok(t) => say!(
                "dry run: {}: would roll to {}; previous {} (job {}, due {})",
                p.job.slot,
                short(&p.job.thumbprint),
                output::short_opt(t.after.previous.as_deref()),
                p.job.id,
                output::when(p.job.due_at)
            ),
            Err(reason) => say!(
                "dry run: {}: the roll to {} (job {}) would fail: {reason}",
                p.job.slot,
                short(&p.job.thumbprint),
                p.job.id
            ),
        }
    }
    if plan.is_empty() {
        say!("dry run: nothing is due");
    }
    say!("dry run: nothing was changed");
    Ok(())
}
