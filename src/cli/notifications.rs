//! `certroll notifications` (the delivery queue) and `certroll notify test`.

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output;
use super::{App, Reported, UsageError};
use crate::notify::channel::SendResult;
use crate::notify::notifier::Notifier;

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(subcommand)]
    pub command: NotificationsCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// List deliveries (one per event and channel), newest first
    List {
        /// Only deliveries in this state: pending, sending, delivered, dead
        #[arg(long)]
        state: Option<String>,
        /// Only this channel
        #[arg(long)]
        channel: Option<String>,
        /// Only the newest N
        #[arg(long, value_name = "N", value_parser = super::limit_arg)]
        limit: Option<usize>,
        /// Print the deliveries as a JSON array (with their attempts)
        #[arg(long)]
        json: bool,
    },
    /// Queue a dead delivery again (or every dead one with --dead)
    Retry {
        /// The delivery's id
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        id: Option<i64>,
        /// Every dead delivery
        #[arg(long)]
        dead: bool,
    },
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test message through every channel (or one) and report each outcome
    Test {
        /// Only this channel
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
        /// Print the outcomes as JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(app: &App, args: NotificationsArgs) -> Result<()> {
    match args.command {
        NotificationsCommand::List {
            state,
            channel,
            limit,
            json,
        } => {
            if let Some(s) = &state
                && !["pending", "sending", "delivered", "dead"].contains(&s.as_str())
            {
                return Err(UsageError(format!(
                    "--state {s}: use pending, sending, delivered or dead"
                ))
                .into());
            }
            let store = app.open_store_read_only()?;
            let list = store.deliveries(state.as_deref(), channel.as_deref(), limit)?;
            if json {
                let mut out = Vec::new();
                for d in &list {
                    let attempts: Vec<Value> = store
                        .delivery_attempts(d.id)?
                        .iter()
                        .map(|a| json!({"at": output::time(a.at), "outcome": a.outcome, "detail": a.detail, "duration_ms": a.duration_ms}))
                        .collect();
                    out.push(json!({
                        "id": d.id,
                        "event_id": d.event_id,
                        "kind": d.kind,
                        "severity": d.severity.as_str(),
                        "scope": d.scope,
                        "type": d.usage_type,
                        "channel": d.channel,
                        "state": d.state,
                        "attempts": d.attempts,
                        "next_attempt_at": output::time(d.next_attempt_at),
                        "last_error": d.last_error,
                        "created_at": output::time(d.created_at),
                        "delivered_at": d.delivered_at.map(output::time),
                        "attempt_log": attempts,
                    }));
                }
                return output::print_json(&Value::Array(out));
            }
            if list.is_empty() {
                say!("no notification deliveries");
            }
            for d in &list {
                let slot = match (&d.usage_type, &d.scope) {
                    (Some(t), Some(s)) => format!("{t}@{s}"),
                    _ => "-".into(),
                };
                let mut line = format!(
                    "{:>6}  {:<9} {:<12} {:<22} {}  attempts {}",
                    d.id, d.state, d.channel, d.kind, slot, d.attempts
                );
                if d.state == "pending" && d.attempts > 0 {
                    line.push_str(&format!(", next {}", output::when(d.next_attempt_at)));
                }
                if let Some(e) = &d.last_error
                    && d.state != "delivered"
                {
                    line.push_str(&format!(" ({e})"));
                }
                say!("{line}");
            }
            Ok(())
        }
        NotificationsCommand::Retry { id, dead } => {
            let mut store = app.open_store()?;
            let n = store.retry_deliveries(if dead { None } else { id }, app.now())?;
            say!(
                "{n} deliver{} queued again; certroll serve sends {} at its next turn",
                if n == 1 { "y" } else { "ies" },
                if n == 1 { "it" } else { "them" }
            );
            Ok(())
        }
    }
}

pub fn run_notify(app: &App, args: NotifyArgs) -> Result<()> {
    let NotifyCommand::Test { channel, json } = args.command;
    let store = app.open_store()?;
    let notifier =
        Notifier::new(store, &app.config, crate::clock::system()).map_err(|e| anyhow!(e))?;
    if !notifier.has_channels() {
        return Err(UsageError(
            "no notification channel is configured ([[notify.email]] or [[notify.webhook]])".into(),
        )
        .into());
    }
    if let Some(name) = &channel
        && !app.config.notify.channel_names().any(|n| n == name)
    {
        return Err(UsageError(format!("no channel named '{name}'")).into());
    }
    let results = notifier.send_test(channel.as_deref(), app.now());
    let failed = results
        .iter()
        .filter(|(_, _, r)| !matches!(r, SendResult::Delivered(_)))
        .count();
    if json {
        output::print_json(&Value::Array(
            results
                .iter()
                .map(|(name, kind, r)| {
                    let (outcome, detail) = match r {
                        SendResult::Delivered(d) => ("delivered", d.clone()),
                        SendResult::Retry { error, .. } => ("failed", error.clone()),
                        SendResult::Dead(e) => ("failed", e.clone()),
                    };
                    json!({"channel": name, "kind": kind, "outcome": outcome, "detail": detail})
                })
                .collect(),
        ))?;
    } else {
        for (name, kind, r) in &results {
            match r {
                SendResult::Delivered(d) => say!("{name} ({kind}): delivered ({d})"),
                SendResult::Retry { error, .. } | SendResult::Dead(error) => {
                    tell!("error: {name} ({kind}): {error}")
                }
            }
        }
    }
    if failed > 0 {
        return Err(Reported(super::EXIT_FAILED).into());
    }
    Ok(())
}
