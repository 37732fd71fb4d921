//! `certroll get`: slots with their current, previous and pending
//! certificates (the seeds' `Get-CsCertificate`).

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use super::output::{self, cert_line};
use super::{App, UsageError};
use crate::cert::{Scope, UsageType};
use crate::deploy::plan::effective;
use crate::store::SlotView;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Only these usage type(s), comma-separated
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: Option<String>,

    /// Only this scope: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S", conflicts_with = "server")]
    pub scope: Option<String>,

    /// What this configured [[server]] uses: per type, the certificates of its most
    /// specific assigned scope (server, pool, site, global), and that scope (the seeds'
    /// Get-CsCertificate on a Front End)
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,

    /// Print the slots as a JSON array
    #[arg(long)]
    pub json: bool,
}

pub fn run(app: &App, args: GetArgs) -> Result<()> {
    let types = match &args.types {
        Some(t) => app.parse_types(t)?,
        None => Vec::new(),
    };
    if let Some(name) = &args.server {
        return run_server(app, &args, name, &types);
    }
    let scope = args.scope.as_deref().map(Scope::parse).transpose()?;
    let store = app.open_store_read_only()?;
    let slots = store.slots(&types, scope.as_ref())?;
    let now = app.now();
    // Slots under a rollover policy: when they renew.
    let renewals: std::collections::HashMap<_, _> =
        crate::ops::renew::survey(&store, &app.config, now, &types, scope.as_ref())?
            .into_iter()
            .map(|c| (c.slot.clone(), c))
            .collect();
    if args.json {
        return output::print_json(&Value::Array(
            slots
                .iter()
                .map(|s| {
                    let mut v = output::slot_json(s);
                    v["renewal"] = renewals
                        .get(&s.key)
                        .map_or(Value::Null, output::renewal_json);
                    v
                })
                .collect(),
        ));
    }
    if slots.is_empty() {
        say!("no certificate assigned{}", filter_text(&args));
        return Ok(());
    }
    for (i, s) in slots.iter().enumerate() {
        if i > 0 {
            say!();
        }
        say!("{}", s.key);
        print_roles(s, now);
        if let Some(c) = renewals.get(&s.key) {
            let (state, detail) = output::renewal_text(c);
            say!("  renewal   {state}: {detail}");
        }
    }
    Ok(())
}

fn print_roles(s: &SlotView, now: chrono::DateTime<chrono::Utc>) {
    let line = |c: Option<&crate::store::StoredCert>| match c {
        Some(c) => cert_line(c, now),
        None => "none".to_string(),
    };
    say!("  current   {}", line(s.current.as_ref()));
    say!("  previous  {}", line(s.previous.as_ref()));
    match &s.pending {
        Some((c, at)) => say!(
            "  pending   {}  effective {}",
            cert_line(c, now),
            output::when(*at)
        ),
        None => say!("  pending   none"),
    }
}

/// `get --server NAME`: per type, the slot the server takes (the same rule
/// the deployer follows).
fn run_server(app: &App, args: &GetArgs, name: &str, types: &[UsageType]) -> Result<()> {
    let servers = &app.config.servers;
    let Some(server) = servers.iter().find(|s| s.name.eq_ignore_ascii_case(name)) else {
        let known: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        return Err(UsageError(if known.is_empty() {
            format!(
                "--server {name}: no [[server]] is configured, so its pool and site are unknown"
            )
        } else {
            format!(
                "--server {name}: no such [[server]] in the configuration (configured: {})",
                known.join(", ")
            )
        })
        .into());
    };
    let store = app.open_store_read_only()?;
    // The slots of each of its scopes, most specific first.
    let mut views: Vec<SlotView> = Vec::new();
    for scope in server.scopes() {
        views.extend(store.slots(types, Some(&scope))?);
    }
    let mut wanted: Vec<UsageType> = Vec::new();
    for v in &views {
        if !wanted.contains(&v.key.usage_type) {
            wanted.push(v.key.usage_type.clone());
        }
    }
    wanted.sort_by_key(|t| t.to_string());
    let effective: Vec<&SlotView> = wanted
        .iter()
        .filter_map(|t| {
            effective(server, |scope| {
                views.iter().find(|v| {
                    v.key.usage_type == *t
                        && v.key.scope.key() == scope.key()
                        && (v.current.is_some() || v.pending.is_some())
                })
            })
        })
        .collect();
    if args.json {
        let list = effective
            .iter()
            .map(|v| {
                let mut j = output::slot_json(v);
                j["server"] = json!(server.name);
                j
            })
            .collect();
        return output::print_json(&Value::Array(list));
    }
    let mut head = server.name.clone();
    if let Some(p) = &server.pool {
        head.push_str(&format!(", pool {p}"));
    }
    if let Some(s) = &server.site {
        head.push_str(&format!(", site {s}"));
    }
    say!("{head}");
    if effective.is_empty() {
        say!("  no certificate assigned at any of its scopes");
        return Ok(());
    }
    let now = app.now();
    for v in effective {
        say!();
        say!("{}  from {}", v.key.usage_type, v.key.scope);
        print_roles(v, now);
    }
    Ok(())
}

fn filter_text(args: &GetArgs) -> String {
    match (&args.types, &args.scope) {
        (None, None) => String::new(),
        (Some(t), None) => format!(" for {t}"),
        (None, Some(s)) => format!(" at {s}"),
        (Some(t), Some(s)) => format!(" for {t} at {s}"),
    }
}
