//! `certroll set`: assign a stored certificate now (the seeds'
//! `Set-CsCertificate -Type T -Thumbprint X`), or schedule it with
//! `--effective-date WHEN --roll`.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;

use super::output::{self, describe_assign, describe_schedule};
use super::{App, Reported, UsageError, WhenArgs};
use crate::cert::policy::{Finding, Severity};
use crate::cert::slot::SchedulePlan;
use crate::cert::{CertInfo, SlotKey, UsageType};
use crate::ops::set::{OpError, Refusal, SetChange, SetRequest};
use crate::store::{SlotChange, Store};

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
/// on warnings without `--force` (the rule: [`crate::ops::set::enforce`]).
/// When there are errors only they are printed: the warnings would not
/// change the outcome.
pub(super) fn enforce(findings: &[Finding], force: bool) -> Result<()> {
    match crate::ops::set::enforce(findings, force) {
        Ok(accepted) => {
            print_accepted(&accepted);
            Ok(())
        }
        Err(r) => Err(print_refusal(&r)),
    }
}

/// "warning: ..." for each warning accepted with --force.
pub(super) fn print_accepted(accepted: &[Finding]) {
    for f in accepted {
        tell!("warning: {f}");
    }
}

/// Prints a refusal's findings; the error that ends the command (exit 1).
pub(super) fn print_refusal(r: &Refusal) -> anyhow::Error {
    for f in &r.shown {
        match f.severity {
            Severity::Error => tell!("error: {f}"),
            Severity::Warning => tell!("warning: {f} (use --force to accept)"),
        }
    }
    if r.need_force > 0 {
        tell!(
            "error: refused: {} warning(s) need --force; nothing changed",
            r.need_force
        );
    }
    Reported(super::EXIT_FAILED).into()
}

/// An operation's error as the command line reports it: a usage error
/// (exit 2), a refusal with its findings (exit 1), or the error itself.
pub(super) fn op_error(e: OpError) -> anyhow::Error {
    match e {
        OpError::Invalid(m) => UsageError(m).into(),
        OpError::Refused(r) => print_refusal(&r),
        other => other.into(),
    }
}

pub fn run(app: &App, args: SetArgs) -> Result<()> {
    let types = app.parse_types(&args.types)?;
    let scope = crate::cert::Scope::parse(&args.scope)?;
    let at = args.when.instant(app)?;
    let req = SetRequest {
        types,
        scope,
        thumbprint: args.thumbprint.clone(),
        at,
        force: args.force,
        require_staged: args.when.require_staged,
        what_if: args.what_if,
    };
    let mut store = app.open_store()?;
    let out = crate::ops::set::set(&app.config, &mut store, &req, &app.ctx()).map_err(op_error)?;
    for n in &out.notes {
        tell!("warning: {n}");
    }
    print_accepted(&out.warnings);
    let thumbprint = &out.cert.info.thumbprint;
    match out.change {
        SetChange::Assigned(changes) => {
            if args.json {
                return output::print_json(&crate::json::assign_json(
                    &changes,
                    args.what_if,
                    &out.cert,
                ));
            }
            let prefix = if args.what_if { "what if: " } else { "" };
            for c in &changes {
                say!(
                    "{prefix}{}",
                    describe_assign(&c.slot, &c.plan, thumbprint, args.what_if)
                );
            }
            Ok(())
        }
        SetChange::Scheduled {
            at,
            changes,
            job_ids,
        } => print_schedule(
            &changes,
            &job_ids,
            thumbprint,
            at,
            args.what_if,
            args.json,
            Some(output::cert_json(&out.cert)),
        ),
    }
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
    if json {
        return output::print_json(&crate::json::schedule_json(
            changes, job_ids, at, what_if, cert,
        ));
    }
    let with_jobs = crate::json::with_job_ids(changes, job_ids, what_if);
    let prefix = if what_if { "what if: " } else { "" };
    for (c, id) in with_jobs {
        say!(
            "{prefix}{}",
            describe_schedule(&c.slot, &c.plan, thumbprint, at, id, what_if)
        );
    }
    Ok(())
}
