//! `certroll history`: the audit trail, oldest first.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use super::App;
use super::output::{self, short, short_opt};
use crate::cert::Scope;
use crate::store::HistoryFilter;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only changes of these usage type(s), comma-separated
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: Option<String>,

    /// Only changes at this scope
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,

    /// Only the newest N entries
    #[arg(long, value_name = "N", value_parser = super::limit_arg)]
    pub limit: Option<usize>,

    /// Print the entries as a JSON array
    #[arg(long)]
    pub json: bool,
}

pub fn run(app: &App, args: HistoryArgs) -> Result<()> {
    let filter = HistoryFilter {
        types: match &args.types {
            Some(t) => app.parse_types(t)?,
            None => Vec::new(),
        },
        scope: args.scope.as_deref().map(Scope::parse).transpose()?,
        limit: args.limit,
    };
    let store = app.open_store_read_only()?;
    let entries = store.history(&filter)?;
    if args.json {
        let list: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "at": output::time(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "scope": e.slot.as_ref().map(|s| s.scope.to_string()),
                    "type": e.slot.as_ref().map(|s| s.usage_type.to_string()),
                    "thumbprint": e.thumbprint,
                    "before": e.before,
                    "after": e.after,
                    "detail": e.detail,
                })
            })
            .collect();
        return output::print_json(&Value::Array(list));
    }
    if entries.is_empty() {
        say!("no history yet");
        return Ok(());
    }
    for e in entries {
        let what = match &e.slot {
            Some(slot) => {
                let roles = [
                    ("current", &e.before.current, &e.after.current),
                    ("previous", &e.before.previous, &e.after.previous),
                    ("pending", &e.before.pending, &e.after.pending),
                ];
                let changed: Vec<String> = roles
                    .iter()
                    .filter(|(_, b, a)| b != a)
                    .map(|(role, b, a)| {
                        format!(
                            "{role} {} -> {}",
                            short_opt(b.as_deref()),
                            short_opt(a.as_deref())
                        )
                    })
                    .collect();
                let mut s = format!("{slot}  ");
                if changed.is_empty() {
                    s.push_str(&e.thumbprint.as_deref().map(short).unwrap_or_default());
                } else {
                    s.push_str(&changed.join(", "));
                }
                if let Some(d) = &e.detail {
                    s.push_str(&format!(" ({d})"));
                }
                s
            }
            None => format!(
                "{}{}",
                e.thumbprint.as_deref().map(short).unwrap_or_default(),
                e.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        };
        say!(
            "{}  {:<16} {:<12} {}",
            output::when(e.at),
            e.action,
            e.actor,
            what
        );
    }
    Ok(())
}
