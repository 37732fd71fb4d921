//! `certroll renew`: the rollover policies by hand. Without options, one
//! pass of the renewal duty `serve` runs (for hosts without serve, from a
//! timer); `--what-if` shows, for every slot under a policy, what would be
//! made and when it would become current, changing nothing; `--now` makes
//! the next certificate at once, whatever the policy's dates say.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use super::output::{self, short};
use super::{App, EXIT_FAILED, Reported, UsageError};
use crate::cert::Scope;
use crate::cert::renewal::Decision;
use crate::ops::renew::{self, Outcome};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
certroll renew --what-if\n  \
certroll renew --now --type OAuthTokenIssuer\n  \
certroll renew            # one pass of serve's renewal duty (hosts without serve)\n\n\
Policies are the configuration's [renewal.<Type>] tables; nothing renews without one. \
A roll made by a renewal is an ordinary scheduled roll: 'certroll jobs', 'certroll get' and \
'certroll timeline' show it. Cancelling it ('certroll jobs cancel'), or rolling the slot back to the \
certificate it renewed, withdraws the renewal: nothing is made again for that certificate until \
'certroll renew --now' (the overdue and critical alerts still come).")]
pub struct RenewArgs {
    /// Only these usage types (comma-separated)
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: Option<String>,

    /// Only this scope: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,

    /// Print, for each slot under a policy, what would be made and when it would be promoted; change nothing
    #[arg(long, conflicts_with = "now")]
    pub what_if: bool,

    /// Make the next certificate of each selected slot now, and schedule its roll by the policy
    #[arg(long)]
    pub now: bool,

    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

fn outcome_json(slot: &crate::cert::SlotKey, o: &Outcome) -> Value {
    let mut v = match o {
        Outcome::Generated {
            thumbprint,
            effective_at,
            job_id,
        } => json!({"outcome": "generated", "thumbprint": thumbprint,
                    "effective_at": output::time(*effective_at), "job_id": job_id}),
        Outcome::Scheduled {
            thumbprint,
            effective_at,
            job_id,
        } => json!({"outcome": "scheduled", "thumbprint": thumbprint,
                    "effective_at": output::time(*effective_at), "job_id": job_id}),
        Outcome::Requested { request_id } => {
            json!({"outcome": "requested", "request_id": request_id})
        }
        Outcome::Failed {
            error,
            attempts,
            next_attempt_at,
        } => json!({"outcome": "failed", "error": error, "attempts": attempts,
                    "next_attempt_at": output::time(*next_attempt_at)}),
        Outcome::Retired { thumbprint } => {
            json!({"outcome": "retired", "thumbprint": thumbprint})
        }
        Outcome::Nothing => json!({"outcome": "nothing"}),
    };
    v["type"] = json!(slot.usage_type);
    v["scope"] = json!(slot.scope.to_string());
    v
}

fn outcome_line(slot: &crate::cert::SlotKey, o: &Outcome) -> String {
    match o {
        Outcome::Generated {
            thumbprint,
            effective_at,
            job_id,
        } => format!(
            "{slot}: made {thumbprint}; current at {} (job {})",
            output::when_both(*effective_at),
            job_id.map_or("-".into(), |j| j.to_string())
        ),
        Outcome::Scheduled {
            thumbprint,
            effective_at,
            ..
        } => format!(
            "{slot}: the CA's answer {thumbprint} is scheduled; current at {}",
            output::when_both(*effective_at)
        ),
        Outcome::Requested { request_id } => format!(
            "{slot}: request {request_id} made for the CA: 'certroll requests show {request_id} --csr' prints it"
        ),
        Outcome::Failed {
            error,
            next_attempt_at,
            ..
        } => format!(
            "{slot}: renewal failed: {error} (the duty tries again at {})",
            output::when(*next_attempt_at)
        ),
        Outcome::Retired { thumbprint } => {
            format!("{slot}: previous certificate {thumbprint} retired after its overlap")
        }
        Outcome::Nothing => format!("{slot}: nothing to do"),
    }
}

pub fn run(app: &App, args: RenewArgs) -> Result<()> {
    if app.config.renewal.is_empty() {
        return Err(UsageError(
            "no rollover policy is configured: add a [renewal.<Type>] table (see config/certroll.toml)"
                .into(),
        )
        .into());
    }
    let types = match &args.types {
        Some(t) => app.parse_types(t)?,
        None => Vec::new(),
    };
    for t in &types {
        if !app.config.renewal.contains_key(t) {
            return Err(UsageError(format!(
                "{t} has no rollover policy: add a [renewal.{t}] table"
            ))
            .into());
        }
    }
    let scope = args.scope.as_deref().map(Scope::parse).transpose()?;
    let now = app.now();
    if args.what_if {
        let store = app.open_store_read_only()?;
        let all = renew::survey(&store, &app.config, now, &types, scope.as_ref())?;
        if args.json {
            return output::print_json(&Value::Array(
                all.iter()
                    .map(|c| {
                        let mut v = output::renewal_json(c);
                        match renew::next_spec(&app.config, c) {
                            Some(Ok(spec)) => {
                                v["names"] = json!(spec.sans);
                                v["subject"] = json!(spec.subject.to_rfc4514());
                                v["key"] = json!(spec.key.to_string());
                            }
                            Some(Err(e)) => v["refused"] = json!(e),
                            None => {}
                        }
                        v
                    })
                    .collect(),
            ));
        }
        if all.is_empty() {
            say!("no slot is under a rollover policy yet (a slot needs a current certificate)");
        }
        for c in &all {
            let (state, detail) = output::renewal_text(c);
            let mut flags = String::new();
            if c.plan.critical {
                flags.push_str("  CRITICAL");
            } else if c.pending.is_none() && c.plan.timing.is_some_and(|t| now >= t.promote_at) {
                flags.push_str("  OVERDUE");
            }
            let cur = c.current.as_ref().map_or("-".to_string(), |s| {
                format!(
                    "{} until {}",
                    short(&s.info.thumbprint),
                    output::when(s.info.not_after)
                )
            });
            say!("{}  {cur}  {state}: {detail}{flags}", c.slot);
            match renew::next_spec(&app.config, c) {
                Some(Ok(spec)) if c.pending.is_none() => say!(
                    "    next: {}, names {}",
                    spec.subject.to_rfc4514(),
                    spec.sans.join(", ")
                ),
                Some(Err(e)) => say!("    next: refused by the type's policy: {e}"),
                _ => {}
            }
        }
        return Ok(());
    }
    let mut store = app.open_store()?;
    let ctx = app.ctx();
    let outcomes = if args.now {
        let all = renew::survey(&store, &app.config, now, &types, scope.as_ref())?;
        if all.is_empty() {
            return Err(UsageError(
                "no slot under a rollover policy matches (a slot needs a current certificate)"
                    .into(),
            )
            .into());
        }
        let mut out = Vec::new();
        for c in &all {
            match &c.plan.decision {
                Decision::NoCurrent => tell!(
                    "{}: no current certificate to renew (give it one with 'certroll request --self-signed --assign' or 'certroll import')",
                    c.slot
                ),
                Decision::Pending(p) => tell!(
                    "{}: {} is already pending (current at {}); 'certroll jobs cancel' it first",
                    c.slot,
                    short(&p.thumbprint),
                    output::when(p.effective_at)
                ),
                Decision::AwaitingAnswer { request_id } => tell!(
                    "{}: request {request_id} already waits for the CA; cancel it with 'certroll requests cancel {request_id}' to make another",
                    c.slot
                ),
                _ => {
                    let o = renew::act(&mut store, &app.config, c, now, &ctx.actor, true)?;
                    out.push((c.slot.clone(), o));
                }
            }
        }
        out
    } else {
        renew::pass(&mut store, &app.config, now, &ctx.actor)?.outcomes
    };
    if args.json {
        output::print_json(&Value::Array(
            outcomes.iter().map(|(s, o)| outcome_json(s, o)).collect(),
        ))?;
    } else {
        if outcomes.is_empty() && !args.now {
            say!("nothing is due: 'certroll renew --what-if' shows when each slot renews");
        }
        for (slot, o) in &outcomes {
            say!("{}", outcome_line(slot, o));
        }
    }
    let failed = outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Failed { .. }));
    let none_done = args.now && outcomes.is_empty();
    if failed || none_done {
        return Err(Reported(EXIT_FAILED).into());
    }
    Ok(())
}
