//! `certroll set`: assign a stored certificate now (the seeds'
//! `Set-CsCertificate -Type T -Thumbprint X`).

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;

use super::output::{self, describe_assign};
use super::{App, Reported};
use crate::cert::policy::{self, Severity};
use crate::cert::{CertInfo, UsageType};

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Usage type(s), comma-separated (e.g. OAuthTokenIssuer or Default,WebServicesInternal)
    #[arg(long = "type", value_name = "T[,T..]")]
    pub types: String,

    /// Scope: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S", default_value = "global")]
    pub scope: String,

    /// The certificate: its thumbprint, or a unique prefix of at least 8 hex digits
    #[arg(long, value_name = "X")]
    pub thumbprint: String,

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

/// Checks `cert` against the policy of every type. Prints each finding on
/// its own line; refuses (exit 1) on any error, and on warnings without
/// `--force`.
pub(super) fn enforce_policy(
    app: &App,
    types: &[UsageType],
    cert: &CertInfo,
    has_private_key: bool,
    at: DateTime<Utc>,
    force: bool,
) -> Result<()> {
    let findings: Vec<_> = types
        .iter()
        .flat_map(|t| {
            policy::evaluate(
                t,
                app.config.policy(t),
                app.config.sip_domain.as_deref(),
                cert,
                has_private_key,
                at,
            )
        })
        .collect();
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    for f in &findings {
        match f.severity {
            Severity::Error => eprintln!("error: {f}"),
            Severity::Warning if force => eprintln!("warning: {f}"),
            Severity::Warning => eprintln!("warning: {f} (use --force to accept)"),
        }
    }
    if errors > 0 || (warnings > 0 && !force) {
        if errors == 0 {
            eprintln!("error: refused: {warnings} policy warning(s) need --force; nothing changed");
        }
        return Err(Reported(super::EXIT_FAILED).into());
    }
    Ok(())
}

pub fn run(app: &App, args: SetArgs) -> Result<()> {
    let types = app.parse_types(&args.types)?;
    let slots = app.slots(&types, &args.scope)?;
    let mut store = app.open_store()?;
    let cert = store.find_cert(&args.thumbprint)?;
    let ctx = app.ctx();
    enforce_policy(
        app,
        &types,
        &cert.info,
        cert.has_private_key,
        ctx.now,
        args.force,
    )?;

    let thumbprint = cert.info.thumbprint.clone();
    let changes = if args.what_if {
        store.plan_assign(&thumbprint, &slots)?
    } else {
        store.assign(None, &thumbprint, &slots, &ctx)?.changes
    };
    if args.json {
        output::print_json(&json!({
            "what_if": args.what_if,
            "certificate": output::cert_json(&cert),
            "changes": changes.iter().map(output::assign_change_json).collect::<Vec<_>>(),
        }))?;
    } else {
        for c in &changes {
            let line = describe_assign(&c.slot, &c.plan, &thumbprint, args.what_if);
            if args.what_if {
                println!("what if: {line}");
            } else {
                println!("{line}");
            }
        }
    }
    Ok(())
}
