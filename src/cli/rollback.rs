//! `certroll rollback`: undo a bad roll. The previous certificate becomes
//! current again and the bad one previous (or, with `--remove-bad`, leaves
//! the slot), now or at `--effective-date WHEN --roll`; deployed, audited
//! and alerted like any roll, and shown by `history` as the rollback of
//! the roll it undoes.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::output::{self, short};
use super::set::enforce;
use super::{App, WhenArgs};
use crate::cert::slot::RollbackPlan;
use crate::store::StoreError;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
certroll rollback --type OAuthTokenIssuer --what-if\n  \
certroll rollback --type OAuthTokenIssuer\n  \
certroll rollback --type Default --scope pool:lyncpool.contoso.com --remove-bad\n  \
certroll rollback --type OAuthTokenIssuer --effective-date '2027-07-01 02:00' --roll\n\n\
Refused when the slot has no previous certificate, when it has expired or lacks the private key its \
type needs, when the type's policy refuses it (warnings need --force), and while another roll is \
pending in the slot (cancel it first with 'certroll jobs cancel').")]
pub struct RollbackArgs {
    /// Usage type(s), comma-separated
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: String,

    /// Scope: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S", default_value = "global")]
    pub scope: String,

    /// Remove the bad certificate from the slot instead of keeping it as previous (now only)
    #[arg(long, conflicts_with = "effective_date")]
    pub remove_bad: bool,

    #[command(flatten)]
    pub when: WhenArgs,

    /// Go ahead despite policy warnings (never despite errors)
    #[arg(long)]
    pub force: bool,

    /// Print what would change and change nothing
    #[arg(long)]
    pub what_if: bool,

    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(app: &App, args: RollbackArgs) -> Result<()> {
    let types = app.parse_types(&args.types)?;
    let slots = app.slots(&types, &args.scope)?;
    let at = args.when.instant(app)?;
    let mut store = app.open_store()?;
    let ctx = app.ctx();
    // Every slot is checked before any changes.
    let mut plans = Vec::new();
    for slot in &slots {
        let report = store.plan_rollback(slot, args.remove_bad)?;
        if let Some(why) = report.plan.refusal(slot) {
            return Err(StoreError::Refused(format!("{why}; nothing changed")).into());
        }
        let RollbackPlan::Change(t) = &report.plan else {
            unreachable!("a plan without a refusal is a change")
        };
        let (bad, good) = (
            t.before.current.clone().unwrap_or_default(),
            t.before.previous.clone().unwrap_or_default(),
        );
        let previous = store.find_cert(&good)?;
        let mut all =
            crate::ops::rollback_findings(&app.config, slot, &previous, at.unwrap_or(ctx.now))?;
        if let Some(at) = at {
            all.extend(super::set::lead_time_findings(
                app,
                &store,
                std::slice::from_ref(slot),
                at,
            )?);
        }
        enforce(&all, args.force)?;
        plans.push((report, bad, good));
    }
    if at.is_some() {
        args.when.check_staging(app, &store, &slots)?;
    }
    let mut out = Vec::new();
    for (report, bad, good) in plans {
        let slot = report.slot.clone();
        let (report, job) = match (args.what_if, at) {
            (true, _) => (report, None),
            (false, None) => (
                store.rollback(&slot, (&bad, &good), args.remove_bad, &ctx)?,
                None,
            ),
            (false, Some(at)) => {
                let (r, s) = store.schedule_rollback(
                    &slot,
                    (&bad, &good),
                    at,
                    args.when.require_staged,
                    &ctx,
                )?;
                (r, s.job_ids.first().copied())
            }
        };
        out.push((report, bad, good, job));
    }
    if args.json {
        let v: Vec<_> = out
            .iter()
            .map(|(r, bad, good, job)| {
                json!({
                    "type": r.slot.usage_type,
                    "scope": r.slot.scope.to_string(),
                    "what_if": args.what_if,
                    "current": good,
                    "previous": (!args.remove_bad).then_some(bad),
                    "removed": args.remove_bad.then_some(bad),
                    "rolls_back_job": r.undone_job(),
                    "undoes": r.describe(),
                    "effective_at": at.map(output::time),
                    "job_id": job,
                })
            })
            .collect();
        return output::print_json(&serde_json::Value::Array(v));
    }
    let prefix = if args.what_if { "what if: " } else { "" };
    for (r, bad, good, job) in &out {
        let fate = if args.remove_bad {
            format!("{} removed", short(bad))
        } else {
            format!("{} previous", short(bad))
        };
        match (at, job) {
            (None, _) => say!(
                "{prefix}{}: {} current again, {fate} ({})",
                r.slot,
                short(good),
                r.describe()
            ),
            (Some(at), job) => say!(
                "{prefix}{}: {} becomes current again at {}, {fate} ({}{})",
                r.slot,
                short(good),
                output::when_both(at),
                r.describe(),
                job.map_or(String::new(), |j| format!(", job {j}"))
            ),
        }
    }
    Ok(())
}
