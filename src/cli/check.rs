//! `certroll check`: the health of every slot for a monitoring system,
//! with the monitoring-plugin exit codes (0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN) and a one-line summary first.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::output;
use super::{App, Reported};
use crate::cert::expiry::{Health, health};

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes (monitoring plugins): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the store or \
configuration cannot be read). Thresholds: warning_days and critical_days in [check]."
)]
pub struct CheckArgs {
    /// Print the details as JSON (after the summary line's status, in "status")
    #[arg(long)]
    pub json: bool,
}

fn code(h: Health) -> i32 {
    match h {
        Health::Ok => 0,
        Health::Warning => 1,
        Health::Critical => 2,
    }
}

pub fn run(app: &App, args: CheckArgs) -> Result<()> {
    let store = app.open_store()?;
    let now = app.now();
    let facts = store.slot_facts()?;
    let overdue = chrono::Duration::seconds(app.config.serve.late_after_seconds.into());
    let slots = health(
        &facts,
        &|s| app.config.expiry_rules(s),
        app.config.check.warning_days,
        app.config.check.critical_days,
        overdue,
        now,
    );
    let dead: i64 = store
        .delivery_counts()?
        .iter()
        .filter(|(_, s, _)| s == "dead")
        .map(|(_, _, n)| n)
        .sum();
    let mut status = slots.iter().map(|s| s.health).max().unwrap_or(Health::Ok);
    if dead > 0 {
        status = status.max(Health::Warning);
    }
    let count = |h: Health| slots.iter().filter(|s| s.health == h).count();
    let worst = slots
        .iter()
        .filter(|s| s.health == status && status != Health::Ok)
        .flat_map(|s| {
            s.problems
                .iter()
                .filter(|(h, _)| *h == status)
                .map(move |(_, p)| format!("{}: {p}", s.slot))
        })
        .next();
    let mut summary = format!(
        "CERTROLL {} - {} slot(s): {} critical, {} warning, {} ok",
        status.as_str(),
        slots.len(),
        count(Health::Critical),
        count(Health::Warning),
        count(Health::Ok)
    );
    if dead > 0 {
        summary.push_str(&format!("; {dead} dead notification(s)"));
    }
    if let Some(w) = &worst {
        summary.push_str(&format!(" - {w}"));
    }
    if slots.is_empty() {
        summary = format!("CERTROLL {} - no certificate assigned", status.as_str());
    }
    if args.json {
        output::print_json(&json!({
            "status": status.as_str(),
            "summary": summary,
            "dead_notifications": dead,
            "slots": slots.iter().map(|s| json!({
                "scope": s.slot.scope.to_string(),
                "type": s.slot.usage_type.to_string(),
                "status": s.health.as_str(),
                "days_left": s.days_left,
                "problems": s.problems.iter().map(|(h, p)| json!({"status": h.as_str(), "message": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        println!("{summary}");
        for s in &slots {
            for (h, p) in &s.problems {
                println!("{} {}: {p}", h.as_str(), s.slot);
            }
        }
    }
    match code(status) {
        0 => Ok(()),
        c => Err(Reported(c).into()),
    }
}
