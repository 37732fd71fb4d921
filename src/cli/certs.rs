//! `certroll certs`: every stored certificate, soonest expiry first, with a
//! summary of the slots that use it; `certs show` one certificate whole.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::App;
use super::output;
use crate::cert::{Role, SlotKey};
use crate::store::StoredCert;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: Option<CertsCommand>,

    /// Only certificates that expire within DAYS days (expired ones included)
    #[arg(long, value_name = "DAYS")]
    pub expiring_within: Option<u32>,

    /// Print the certificates as a JSON array
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// One certificate whole: its names, issuer, chain, key, and every slot it serves
    Show {
        /// Its thumbprint, or a unique prefix of at least 8 hex digits
        thumbprint: String,
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
}

/// The slots of a certificate, as a JSON array.
fn assigned_json(a: &[(SlotKey, Role)]) -> Value {
    json!(
        a.iter()
            .map(|(slot, role)| json!({
                "scope": slot.scope.to_string(),
                "type": slot.usage_type.to_string(),
                "role": role.as_str(),
            }))
            .collect::<Vec<_>>()
    )
}

/// "3 slots: OAuthTokenIssuer@global (current), ... and 1,997 more": at most
/// three named, so a certificate serving thousands of slots stays one line.
fn assigned_summary(a: &[(SlotKey, Role)]) -> String {
    if a.is_empty() {
        return "unassigned".into();
    }
    let count = |r: Role| a.iter().filter(|(_, x)| *x == r).count();
    let roles: Vec<String> = [Role::Current, Role::Previous, Role::Pending]
        .into_iter()
        .filter(|r| count(*r) > 0)
        .map(|r| format!("{} {}", count(r), r.as_str()))
        .collect();
    let named: Vec<String> = a
        .iter()
        .take(3)
        .map(|(s, r)| format!("{s} ({r})"))
        .collect();
    let more = if a.len() > 3 {
        format!(" and {} more", a.len() - 3)
    } else {
        String::new()
    };
    format!(
        "{} slot(s) [{}]: {}{more}",
        a.len(),
        roles.join(", "),
        named.join(", ")
    )
}

pub fn run(app: &App, args: CertsArgs) -> Result<()> {
    if let Some(CertsCommand::Show { thumbprint, json }) = &args.command {
        return show(app, thumbprint, *json);
    }
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
        // Where a certificate is current under a rollover policy: when its
        // successor is made and promoted.
        let renewals = crate::ops::renew::survey(&store, &app.config, now, &[], None)?;
        let list: Vec<Value> = rows
            .iter()
            .map(|(c, a)| {
                let mut v = output::cert_json(c);
                v["assigned"] = assigned_json(a);
                v["renewals"] = Value::Array(
                    renewals
                        .iter()
                        .filter(|r| {
                            r.current
                                .as_ref()
                                .is_some_and(|cur| cur.info.thumbprint == c.info.thumbprint)
                        })
                        .map(output::renewal_json)
                        .collect(),
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
    let mut many = false;
    for (c, assigned) in rows {
        many |= assigned.len() > 3;
        let slots = assigned_summary(&assigned);
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
    if many {
        say!();
        say!("every slot of a certificate: certroll certs show THUMBPRINT");
    }
    Ok(())
}

/// `certs show`: everything about one certificate.
fn show(app: &App, query: &str, as_json: bool) -> Result<()> {
    let store = app.open_store_read_only()?;
    let c: StoredCert = store.find_cert(query)?;
    let assigned = store.assignments(c.id)?;
    if as_json {
        let mut v = output::cert_json(&c);
        v["assigned"] = assigned_json(&assigned);
        v["ekus"] = json!(c.info.ekus.as_ref().map(|e| {
            e.oids
                .iter()
                .map(|o| crate::cert::x509::eku_name(o))
                .collect::<Vec<_>>()
        }));
        return output::print_json(&v);
    }
    let now = app.now();
    let i = &c.info;
    let field = |name: &str, value: &str| say!("  {name:<13} {value}");
    say!("{}  {}", i.thumbprint, i.label());
    field("subject", &i.subject);
    field("names", &i.sans.join(", "));
    field("issuer", &i.issuer);
    field("serial", &i.serial);
    field(
        "valid",
        &format!(
            "{} to {} ({})",
            output::when(i.not_before),
            output::when(i.not_after),
            output::expiry(i, now)
        ),
    );
    field("key", &output::key_desc(i));
    field(
        "private key",
        if c.has_private_key {
            "in the store (sealed)"
        } else {
            "none"
        },
    );
    field("signature", &i.signature_algorithm);
    if let Some(e) = &i.ekus {
        let names: Vec<String> = e
            .oids
            .iter()
            .map(|o| crate::cert::x509::eku_name(o))
            .collect();
        field("key usage", &names.join(", "));
    }
    field("sha256", &i.sha256);
    if let Some(f) = &c.friendly_name {
        field("friendly name", f);
    }
    if let Some(f) = &c.source_file {
        field(
            "imported from",
            &format!("{f}, {}", output::when(c.imported_at)),
        );
    }
    if c.chain.is_empty() {
        field("chain", "none stored");
    }
    for (n, link) in c.chain.iter().enumerate() {
        let name = if n == 0 { "chain" } else { "" };
        field(
            name,
            &format!(
                "{}  {} (expires {})",
                output::short(&link.thumbprint),
                link.subject,
                link.not_after.format("%Y-%m-%d")
            ),
        );
    }
    if assigned.is_empty() {
        field("slots", "unassigned");
    }
    for (n, (slot, role)) in assigned.iter().enumerate() {
        let name = if n == 0 { "slots" } else { "" };
        field(name, &format!("{slot} ({role})"));
    }
    Ok(())
}
