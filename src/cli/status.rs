//! `certroll status` (the seeds' Get-CsManagementStoreReplicationStatus)
//! and `certroll agent`.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::json;

use super::output::{self, short_opt};
use super::{App, Reported, UsageError};
use crate::deploy::deployer::Deployer;
use crate::deploy::status::{StatusRow, rows};

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every server up to date, 1 a server is out of date (or its last deployment failed), \
2 usage or configuration error."
)]
pub struct StatusArgs {
    /// Only this server
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,

    /// Only these usage type(s)
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: Option<String>,

    /// Print the rows as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server (a [[server]] name of the configuration) to deploy to
    #[arg(long, value_name = "NAME")]
    pub server: String,

    /// One pass, then exit (exit 1 if a deployment failed)
    #[arg(long)]
    pub once: bool,

    /// With --once: print the files the pass would write or remove and the reloads it
    /// would run, and change nothing
    #[arg(long, requires = "once")]
    pub dry_run: bool,
}

pub fn run(app: &App, args: StatusArgs) -> Result<()> {
    if app.config.servers.is_empty() {
        return Err(UsageError("no [[server]] is configured".into()).into());
    }
    if let Some(s) = &args.server
        && !app
            .config
            .servers
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(s))
    {
        return Err(UsageError(format!("no [[server]] named '{s}'")).into());
    }
    let types = match &args.types {
        Some(t) => app.parse_types(t)?,
        None => Vec::new(),
    };
    let store = app.open_store_read_only()?;
    let rows: Vec<StatusRow> = rows(&store, &app.config, args.server.as_deref())?
        .into_iter()
        .filter(|r| types.is_empty() || types.contains(&r.unit.usage_type))
        .collect();
    let lagging = rows.iter().filter(|r| !r.up_to_date).count();
    if args.json {
        output::print_json(&json!({
            "up_to_date": lagging == 0,
            "rows": rows.iter().map(|StatusRow { unit: u, state: st, has, up_to_date: ok }| json!({
                "server": u.server.name,
                "pool": u.server.pool,
                "site": u.server.site,
                "type": u.usage_type.to_string(),
                "target": u.target.name,
                "role": u.role.as_str(),
                "slot": u.slot.to_string(),
                "should_have": u.wanted,
                "has": has,
                "up_to_date": ok,
                "last_attempt_at": st.as_ref().and_then(|s| s.last_attempt_at).map(output::time),
                "deployed_at": st.as_ref().and_then(|s| s.deployed_at).map(output::time),
                "attempts": st.as_ref().map_or(0, |s| s.attempts),
                "last_error": st.as_ref().and_then(|s| s.last_error.clone()),
                "next_attempt_at": st.as_ref().and_then(|s| s.next_attempt_at).map(output::time),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        if rows.is_empty() {
            say!("nothing to deploy: no configured server takes an assigned certificate");
        }
        for StatusRow {
            unit: u,
            state: st,
            has,
            up_to_date: ok,
        } in &rows
        {
            let mut line = format!(
                "{:<24} {:<22} {:<12} {:<8} should {}  has {}  {}",
                u.server.name,
                u.usage_type.as_str(),
                u.target.name,
                u.role.as_str(),
                short_opt(u.wanted.as_deref()),
                short_opt(has.as_deref()),
                if *ok { "up to date" } else { "OUT OF DATE" }
            );
            if let Some(s) = st {
                if let Some(t) = s.last_attempt_at {
                    line.push_str(&format!(", last attempt {}", output::when(t)));
                }
                if let Some(e) = &s.last_error {
                    line.push_str(&format!(" ({e})"));
                }
            } else {
                line.push_str(", never attempted (is certroll serve or agent running?)");
            }
            say!("{line}");
        }
    }
    if lagging > 0 {
        return Err(Reported(super::EXIT_FAILED).into());
    }
    Ok(())
}

pub fn run_agent(app: &App, args: AgentArgs) -> Result<()> {
    if !app
        .config
        .servers
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(&args.server))
    {
        return Err(UsageError(format!(
            "no [[server]] named '{}' in the configuration",
            args.server
        ))
        .into());
    }
    let config = Arc::new(app.config.clone());
    if args.once && args.dry_run {
        let mut d = Deployer::new(
            app.open_store_read_only()?,
            config,
            crate::clock::system(),
            Some(args.server.clone()),
        )
        .dry_run();
        let s = d.pass()?;
        let plan = d.take_plan();
        for line in &plan {
            say!("dry run: {line}");
        }
        say!(
            "dry run: {}: {} deployment(s) would be made, {} would fail; nothing was changed",
            args.server,
            s.deployed,
            s.failed
        );
        return Ok(());
    }
    if args.once {
        let mut d = Deployer::new(
            app.open_store()?,
            config,
            crate::clock::system(),
            Some(args.server.clone()),
        );
        let s = d.pass()?;
        say!(
            "{}: {} deployment(s) made, {} failed",
            args.server,
            s.deployed,
            s.failed
        );
        if s.failed > 0 {
            return Err(Reported(super::EXIT_FAILED).into());
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(crate::service::run_agent(
        config,
        &app.location,
        crate::clock::system(),
        args.server,
        crate::service::shutdown_signal(),
        app.reloader(),
    ))
}
