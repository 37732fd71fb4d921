//! `certroll certs`: every stored certificate, soonest expiry first, with
//! the slots that use it.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use super::App;
use super::output;

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Only certificates that expire within DAYS days (expired ones included)
    #[arg(long, value_name = "DAYS")]
    pub expiring_within: Option<u32>,

    /// Print the certificates as a JSON array
    #[arg(long)]
    pub json: bool,
}

pub fn run(app: &App, args: CertsArgs) -> Result<()> {
    let now = app.now();
    let before = match args.expiring_within {
        None => None,
        Some(d) => Some(
            crate::schedule::when::days_after(now, d.into()).ok_or_else(|| {
                super::UsageError(format!(
                    "--expiring-within {d}: that is beyond the year 9999"
                ))
            })?,
        ),
    };
    let store = app.open_store_read_only()?;
    let certs = store.certs(before)?;
    let mut rows = Vec::new();
    for c in &certs {
        rows.push((c, store.assignments(c.id)?));
    }
    if args.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|(c, a)| {
                let mut v = output::cert_json(c);
                v["assigned"] = json!(
                    a.iter()
                        .map(|(slot, role)| json!({
                            "scope": slot.scope.to_string(),
                            "type": slot.usage_type.to_string(),
                            "role": role.as_str(),
                        }))
                        .collect::<Vec<_>>()
                );
                v
            })
            .collect();
        return output::print_json(&Value::Array(list));
    }
    if rows.is_empty() {
        match args.expiring_within {
            Some(d) => say!("no certificate expires within {d} days"),
            None => say!("no certificate in the store"),
        }
        return Ok(());
    }
    for (c, assigned) in rows {
        let slots = if assigned.is_empty() {
            "unassigned".to_string()
        } else {
            assigned
                .iter()
                .map(|(s, r)| format!("{s} ({r})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        say!("{}  {}", c.info.thumbprint, c.info.label());
        say!(
            "    {}  {}  {}  {}",
            output::expiry(&c.info, now),
            output::key_desc(&c.info),
            if c.has_private_key {
                "private key"
            } else {
                "no private key"
            },
            slots
        );
    }
    Ok(())
}
