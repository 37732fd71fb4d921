//! `certroll set`: assign a stored certificate now (the seeds'
//! `Set-CsCertificate -Type T -Thumbprint X`), or schedule it with
//! `--effective-date WHEN --roll`.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;

use super::output::{self, describe_assign, describe_schedule};
use super::{App, Reported, WhenArgs};
use crate::cert::policy::{Finding, Severity};
use crate::cert::slot::SchedulePlan;
use crate::cert::{CertInfo, SlotKey, UsageType};
use crate::store::{SlotChange, Store, StoreError};

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Usage type(s), comma-separated (e.g. OAuthTokenIssuer or Default,WebServicesInternal)
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: String,

    /// Scope: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S", default_value = "global")]
    pub scope: String,

    /// The certificate: its thumbprint, or a unique prefix of at least 8 hex digits
    #[arg(long, value_name = "X")]
    pub thumbprint: String,

    #[command(flatten)]
    pub when: WhenArgs,

    /// Go ahead despite policy warnings (never despite errors); with --roll,
    /// also replace a roll already pending in the slot
    #[arg(long)]
    pub force: bool,

    /// Print what would change and change nothing
    #[arg(long)]
    pub what_if: bool,

    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

/// The policy findings of `cert` for every type at `at` (see
/// [`crate::ops::findings`]).
pub(super) fn findings(
    app: &App,
    types: &[UsageType],
    cert: &CertInfo,
    chain: &[CertInfo],
    has_key: bool,
    at: DateTime<Utc>,
) -> Result<Vec<Finding>> {
    Ok(crate::ops::findings(
        &app.config,
        types,
        cert,
        chain,
        has_key,
        at,
    )?)
}

/// Rule 7's lead-time warnings for a roll at `at` in `slots`.
pub(super) fn lead_time_findings(
    app: &App,
    store: &Store,
    slots: &[SlotKey],
    at: DateTime<Utc>,
) -> Result<Vec<Finding>> {
    Ok(crate::ops::lead_time_findings(
        &app.config,
        store,
        slots,
        at,
    )?)
}

/// Prints each finding on its own line; refuses (exit 1) on any error, and
/// on warnings without `--force`. When there are errors only they are
/// printed: the warnings would not change the outcome.
pub(super) fn enforce(findings: &[Finding], force: bool) -> Result<()> {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    for f in findings
        .iter()
        .filter(|f| errors == 0 || f.severity == Severity::Error)
    {
        match f.severity {
            Severity::Error => tell!("error: {f}"),
            Severity::Warning if force => tell!("warning: {f}"),
            Severity::Warning => tell!("warning: {f} (use --force to accept)"),
        }
    }
    if errors > 0 || (warnings > 0 && !force) {
        if errors == 0 {
            tell!("error: refused: {warnings} warning(s) need --force; nothing changed");
        }
        return Err(Reported(super::EXIT_FAILED).into());
    }
    Ok(())
}

/// Refuses (exit 1) when a slot already has another pending roll and
/// `--force` was not given.
pub(super) fn refuse_conflicts(plans: &[SlotChange<SchedulePlan>]) -> Result<()> {
    for c in plans {
        if let SchedulePlan::Conflict(p) = &c.plan {
            return Err(StoreError::Refused(format!(
                "{} already has pending certificate {} effective {}; --force replaces it",
                c.slot,
                p.thumbprint,
                output::when(p.effective_at)
            ))
            .into());
        }
    }
    Ok(())
}

pub fn run(app: &App, args: SetArgs) -> Result<()> {
    let types = app.parse_types(&args.types)?;
    let slots = app.slots(&types, &args.scope)?;
    app.check_slots(&slots, args.force)?;
    let at = args.when.instant(app)?;
    let mut store = app.open_store()?;
    let cert = store.find_cert(&args.thumbprint)?;
    let ctx = app.ctx();
    let thumbprint = cert.info.thumbprint.clone();

    let Some(at) = at else {
        enforce(
            &findings(
                app,
                &types,
                &cert.info,
                &cert.chain,
                cert.has_private_key,
                ctx.now,
            )?,
            args.force,
        )?;
        let changes = if args.what_if {
            store.plan_assign(&thumbprint, &slots)?
        } else {
            store.assign(None, &thumbprint, &slots, &ctx)?.changes
        };
        if args.json {
            return output::print_json(&json!({
                "what_if": args.what_if,
                "certificate": output::cert_json(&cert),
                "changes": changes.iter().map(output::assign_change_json).collect::<Vec<_>>(),
            }));
        }
        let prefix = if args.what_if { "what if: " } else { "" };
        for c in &changes {
            say!(
                "{prefix}{}",
                describe_assign(&c.slot, &c.plan, &thumbprint, args.what_if)
            );
        }
        return Ok(());
    };

    let mut all = findings(
        app,
        &types,
        &cert.info,
        &cert.chain,
        cert.has_private_key,
        at,
    )?;
    all.extend(lead_time_findings(app, &store, &slots, at)?);
    enforce(&all, args.force)?;
    args.when.check_staging(app, &store, &slots)?;
    let plans = store.plan_schedule(&thumbprint, &slots, at, args.force)?;
    refuse_conflicts(&plans)?;
    let (changes, job_ids) = if args.what_if {
        (plans, Vec::new())
    } else {
        let report = store.schedule_with(
            None,
            &thumbprint,
            &slots,
            at,
            args.force,
            args.when.require_staged,
            &ctx,
        )?;
        (report.changes, report.job_ids)
    };
    print_schedule(
        &changes,
        &job_ids,
        &thumbprint,
        at,
        args.what_if,
        args.json,
        Some(output::cert_json(&cert)),
    )
}

/// Prints the outcome of scheduling (shared with `import`).
pub(super) fn print_schedule(
    changes: &[SlotChange<SchedulePlan>],
    job_ids: &[i64],
    thumbprint: &str,
    at: DateTime<Utc>,
    what_if: bool,
    json: bool,
    cert: Option<serde_json::Value>,
) -> Result<()> {
    let mut jobs = job_ids.iter();
    let with_jobs: Vec<(&SlotChange<SchedulePlan>, Option<i64>)> = changes
        .iter()
        .map(|c| {
            let id = match (&c.plan, what_if) {
                (SchedulePlan::Change(_), false) => jobs.next().copied(),
                _ => None,
            };
            (c, id)
        })
        .collect();
    if json {
        let mut v = json!({
            "what_if": what_if,
            "effective_at": output::time(at),
            "changes": with_jobs.iter().map(|(c, id)| output::schedule_change_json(c, *id)).collect::<Vec<_>>(),
        });
        if let Some(c) = cert {
            v["certificate"] = c;
        }
        return output::print_json(&v);
    }
    let prefix = if what_if { "what if: " } else { "" };
    for (c, id) in with_jobs {
        say!(
            "{prefix}{}",
            describe_schedule(&c.slot, &c.plan, thumbprint, at, id, what_if)
        );
    }
    Ok(())
}
