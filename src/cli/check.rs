//! `certroll check`: the health of every slot for a monitoring system,
//! with the monitoring-plugin exit codes (0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN) and a one-line summary first.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::output;
use super::{App, Reported};
use crate::cert::expiry::{Health, health};
use crate::store::JobState;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes (monitoring plugins): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the store or \
configuration cannot be read). Thresholds: warning_days and critical_days in [check]; a deployment \
still failing after [deploy] lagging_after_minutes is a WARNING, and so is a certificate request \
waiting longer than [check] request_warning_days.\n\n\
The summary line ends with performance data: | days_left_min=N;WARN:;CRIT:;; slots=N slots_warning=N \
slots_critical=N rolls_scheduled=N rolls_failed=N notifications_dead=N servers_out_of_date=N requests_waiting=N."
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
    let jobs = store.job_counts()?;
    let jobs_in = |state: JobState| {
        jobs.iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    };
    // Servers still out of date past [deploy] lagging_after_minutes.
    let deploy_rows = if app.config.servers.is_empty() {
        Vec::new()
    } else {
        crate::deploy::status::rows(&store, &app.config, None)?
    };
    let lag = chrono::Duration::minutes(app.config.deploy.lagging_after_minutes.into());
    let mut lagging: Vec<String> = deploy_rows
        .iter()
        .filter(|r| !r.up_to_date)
        .filter_map(|r| {
            let st = r.state.as_ref()?;
            let since = st.out_of_date_since?;
            (since + lag <= now).then(|| {
                format!(
                    "{}: {} {} not deployed since {} ({})",
                    r.unit.server.name,
                    r.unit.usage_type,
                    r.unit.role.as_str(),
                    output::time(since),
                    st.last_error.as_deref().unwrap_or("no error recorded")
                )
            })
        })
        .collect();
    lagging.sort();
    lagging.dedup();
    // Certificate requests the CA has not answered for too long.
    let waiting = store.requests(Some("pending"))?;
    let stale_days = i64::from(app.config.check.request_warning_days);
    let stale: Vec<String> = waiting
        .iter()
        .filter(|r| stale_days > 0 && now - r.created_at >= chrono::Duration::days(stale_days))
        .map(|r| {
            format!(
                "request {} ({} for {} at {}) has waited {} days for the CA's answer",
                r.id,
                r.subject,
                r.usage_type,
                r.scope,
                (now - r.created_at).num_days()
            )
        })
        .collect();

    let mut status = slots.iter().map(|s| s.health).max().unwrap_or(Health::Ok);
    if dead > 0 || !lagging.is_empty() || !stale.is_empty() {
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
    if !lagging.is_empty() {
        summary.push_str(&format!("; {} deployment(s) lagging", lagging.len()));
    }
    if !stale.is_empty() {
        summary.push_str(&format!(
            "; {} certificate request(s) unanswered for {stale_days}+ days",
            stale.len()
        ));
    }
    if slots.is_empty() {
        summary = format!("CERTROLL {} - no certificate assigned", status.as_str());
    }
    // Performance data, as monitoring plugins print it after a '|':
    // label=value;warn;crit;min;max. "30:" alerts below 30.
    let mut perf = Vec::new();
    if let Some(min) = slots.iter().filter_map(|s| s.days_left).min() {
        perf.push(format!(
            "days_left_min={min};{}:;{}:;;",
            app.config.check.warning_days, app.config.check.critical_days
        ));
    }
    let counts = [
        ("slots", slots.len() as i64),
        ("slots_warning", count(Health::Warning) as i64),
        ("slots_critical", count(Health::Critical) as i64),
        (
            "rolls_scheduled",
            jobs_in(JobState::Scheduled) + jobs_in(JobState::Running),
        ),
        ("rolls_failed", jobs_in(JobState::Failed)),
        ("notifications_dead", dead),
        (
            "servers_out_of_date",
            crate::deploy::status::servers_out_of_date(&deploy_rows) as i64,
        ),
        ("requests_waiting", waiting.len() as i64),
    ];
    perf.extend(counts.iter().map(|(k, v)| format!("{k}={v};;;0;")));
    let perfdata = perf.join(" ");
    if args.json {
        output::print_json(&json!({
            "status": status.as_str(),
            "summary": summary,
            "dead_notifications": dead,
            "lagging_deployments": lagging,
            "stale_requests": stale,
            "perfdata": counts.iter().map(|(k, v)| (k.to_string(), json!(v)))
                .chain(slots.iter().filter_map(|s| s.days_left).min().map(|m| ("days_left_min".to_string(), json!(m))))
                .collect::<serde_json::Map<_, _>>(),
            "slots": slots.iter().map(|s| json!({
                "scope": s.slot.scope.to_string(),
                "type": s.slot.usage_type.to_string(),
                "status": s.health.as_str(),
                "days_left": s.days_left,
                "problems": s.problems.iter().map(|(h, p)| json!({"status": h.as_str(), "message": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        say!("{summary} | {perfdata}");
        for s in &slots {
            for (h, p) in &s.problems {
                say!("{} {}: {p}", h.as_str(), s.slot);
            }
        }
        for l in lagging.iter().chain(&stale) {
            say!("WARNING {l}");
        }
    }
    match code(status) {
        0 => Ok(()),
        c => Err(Reported(c).into()),
    }
}
