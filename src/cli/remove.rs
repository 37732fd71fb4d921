//! `certroll remove`: clear the previous, pending or current certificate of
//! a slot (the seeds' `Remove-CsCertificate -Previous`). The certificate
//! stays in the store.

use anyhow::Result;
use clap::{ArgGroup, Args};
use serde_json::json;

use super::output::{self, short};
use super::{App, Reported};
use crate::cert::Role;
use crate::cert::slot::RemovePlan;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("role").required(true).args(["previous", "pending", "current"])))]
pub struct RemoveArgs {
    /// Usage type(s), comma-separated
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: String,

    /// Scope: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S", default_value = "global")]
    pub scope: String,

    /// Remove the previous certificate
    #[arg(long)]
    pub previous: bool,

    /// Remove the pending certificate (cancels its scheduled roll)
    #[arg(long)]
    pub pending: bool,

    /// Remove the current certificate (needs --force: the slot is left without one)
    #[arg(long)]
    pub current: bool,

    /// Allow removing the current certificate
    #[arg(long)]
    pub force: bool,

    /// Print what would change and change nothing
    #[arg(long)]
    pub what_if: bool,

    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(app: &App, args: RemoveArgs) -> Result<()> {
    let types = app.parse_types(&args.types)?;
    let slots = app.slots(&types, &args.scope)?;
    let role = if args.previous {
        Role::Previous
    } else if args.pending {
        Role::Pending
    } else {
        Role::Current
    };
    if role == Role::Current && !args.force {
        tell!(
            "error: refusing to remove the current certificate of {} without --force: the slot would be left without one; nothing changed",
            slots
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Err(Reported(super::EXIT_FAILED).into());
    }
    let mut store = app.open_store()?;
    let changes = if args.what_if {
        store.plan_remove(&slots, role)?
    } else {
        store.remove(&slots, role, &app.ctx())?
    };
    if args.json {
        return output::print_json(&json!({
            "what_if": args.what_if,
            "role": role.as_str(),
            "changes": changes.iter().map(output::remove_change_json).collect::<Vec<_>>(),
        }));
    }
    let prefix = if args.what_if { "what if: " } else { "" };
    for c in &changes {
        match &c.plan {
            RemovePlan::Nothing => say!(
                "{prefix}{}: no {role} certificate; nothing to remove",
                c.slot
            ),
            RemovePlan::Change(t) => {
                let removed = t.before.get(role).map(short).unwrap_or_default();
                let verb = if args.what_if {
                    "would be removed"
                } else {
                    "removed"
                };
                say!(
                    "{prefix}{}: {role} certificate {removed} {verb} (it stays in the store)",
                    c.slot
                );
            }
        }
    }
    Ok(())
}
