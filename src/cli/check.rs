//! `certroll check`: the health of every slot for a monitoring system,
//! with the monitoring-plugin exit codes (0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN) and a one-line summary first.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::output;
use super::{App, Reported};
use crate::cert::ScopePattern;
use crate::cert::expiry::{Health, health};
use crate::store::JobState;

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes (monitoring plugins): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the store or \
configuration cannot be read, no store, nothing assigned, a usage error, or -t passed). Thresholds: warning_days and critical_days in [check]; a deployment \
still failing after [deploy] lagging_after_minutes is a WARNING, and so is a certificate request \
waiting longer than [check] request_warning_days. Under a rollover policy ([renewal.<Type>]) a slot is a \
WARNING while its last renewal attempt has failed or once its promotion date passed with nothing pending, \
and CRITICAL past critical_before_days.\n\n\
The summary line ends with performance data: | days_left_min=N;WARN:;CRIT:;; slots=N slots_warning=N \
slots_critical=N rolls_scheduled=N rolls_failed=N notifications_dead=N servers_out_of_date=N requests_waiting=N."
)]
pub struct CheckArgs {
    /// Print the details as JSON (after the summary line's status, in "status")
    #[arg(long)]
    pub json: bool,

    /// WARNING when a current certificate has at most DAYS left with nothing pending
    /// [default: [check] warning_days]
    #[arg(short = 'w', long = "warning", value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(0..=36500))]
    pub warning: Option<u32>,

    /// CRITICAL when a current certificate has at most DAYS left with nothing pending
    /// [default: [check] critical_days]
    #[arg(short = 'c', long = "critical", value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(0..=36500))]
    pub critical: Option<u32>,

    /// Only the slots of these usage type(s), comma-separated (one service per type)
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: Option<String>,

    /// Only the slots at this scope; '*' matches any text (pool:*)
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,

    /// UNKNOWN if the check has not finished within SECONDS
    #[arg(short = 't', long = "timeout", value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub timeout: u32,
}

fn code(h: Health) -> i32 {
    match h {
        Health::Ok => 0,
        Health::Warning => 1,
        Health::Critical => 2,
    }
}

/// A check that cannot look (no store, nothing assigned, bad thresholds):
/// UNKNOWN, exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unknown(pub String);

pub fn run(app: &App, args: CheckArgs) -> Result<()> {
    let warning_days = args.warning.unwrap_or(app.config.check.warning_days);
    let critical_days = args.critical.unwrap_or(app.config.check.critical_days);
    if critical_days > warning_days {
        return Err(Unknown(format!(
            "the critical threshold ({critical_days} days) is above the warning one ({warning_days} days)"
        ))
        .into());
    }
    let types = match &args.types {
        Some(t) => app.parse_types(t)?,
        None => Vec::new(),
    };
    let scope = args.scope.as_deref().map(ScopePattern::parse).transpose()?;
    let store = app.open_store_read_only()?;
    let db = app.data_dir.join("certroll.db");
    if store.is_absent() {
        return Err(Unknown(format!(
            "{}: no store: nothing is watched (import and assign a certificate first, or point --data-dir at the service's store)",
            db.display()
        ))
        .into());
    }
    let selected = |slot: &crate::cert::SlotKey| {
        (types.is_empty() || types.contains(&slot.usage_type))
            && scope.as_ref().is_none_or(|p| p.matches(&slot.scope))
    };
    let filtered = !types.is_empty() || scope.is_some();
    let now = app.now();
    let facts: Vec<_> = store
        .slot_facts()?
        .into_iter()
        .filter(|f| selected(&f.slot))
        .collect();
    if facts.is_empty() {
        let what = match (&args.types, &args.scope) {
            (None, None) => String::new(),
            (Some(t), None) => format!(" for {t}"),
            (None, Some(s)) => format!(" at {s}"),
            (Some(t), Some(s)) => format!(" for {t} at {s}"),
        };
        return Err(Unknown(format!(
            "{}: no certificate assigned{what}: nothing is watched",
            db.display()
        ))
        .into());
    }
    let overdue = chrono::Duration::seconds(app.config.serve.late_after_seconds.into());
    let mut slots = health(
        &facts,
        &|s| app.config.expiry_rules(s),
        warning_days,
        critical_days,
        overdue,
        now,
    );
    // Rollover policies: a failed, overdue or critical renewal.
    for c in crate::ops::renew::survey(&store, &app.config, now, &types, None)? {
        let Some(s) = slots.iter_mut().find(|s| s.slot == c.slot) else {
            continue;
        };
        for (h, p) in crate::cert::renewal::health(&c.plan, now) {
            s.health = s.health.max(h);
            s.problems.push((h, p));
        }
    }
    // Dead notifications belong to no slot: a check of some types or
    // scopes leaves them to the check of everything.
    let dead: i64 = if filtered {
        0
    } else {
        store
            .delivery_counts()?
            .iter()
            .filter(|(_, s, _)| s == "dead")
            .map(|(_, _, n)| n)
            .sum()
    };
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
        .filter(|r| types.is_empty() || types.contains(&r.unit.usage_type))
        .filter_map(|r| {
            let st = r.state.as_ref()?;
            let since = st.out_of_date_since?;
            (since + lag <= now).then(|| {
                format!(
                    "{}: {} {} not deployed since {} ({})",
                    r.unit.server.name,
                    r.unit.usage_type,
                    r.unit.role.as_str(),
                    output::when(since),
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
        .filter(|r| {
            types.is_empty()
                || app
                    .parse_types(&r.usage_type)
                    .is_ok_and(|ts| ts.iter().any(|t| types.contains(t)))
        })
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
            warning_days, critical_days
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
