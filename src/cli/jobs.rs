//! `certroll jobs`: list, show, cancel and retry roll jobs.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::output::{self, short};
use super::{App, UsageError};
use crate::cert::Scope;
use crate::store::{Job, JobFilter, JobState, StoreError, describe_lateness};

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List roll jobs, newest first
    List {
        /// Only jobs in this state: scheduled, running, succeeded, failed, cancelled
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of these usage type(s)
        #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
        types: Option<String>,
        /// Only jobs at this scope
        #[arg(long, value_name = "S")]
        scope: Option<String>,
        /// Only the newest N jobs
        #[arg(long, value_name = "N", value_parser = super::limit_arg)]
        limit: Option<usize>,
        /// Print the jobs as a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Show one job
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a scheduled job: its certificate stops being pending; current and previous stay
    Cancel {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Queue a failed job again, to run at once
    Retry {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

pub use crate::json::job_json;

fn job_line(j: &Job) -> String {
    let mut s = format!(
        "{:>6}  {:<10} {}  {}  due {}",
        j.id,
        j.state.as_str(),
        j.slot,
        short(&j.thumbprint),
        output::when(j.due_at)
    );
    if let Some(us) = j.lateness_us {
        s.push_str(&format!(
            ", ran {}",
            describe_lateness(chrono::Duration::microseconds(us))
        ));
    }
    if let Some(e) = &j.last_error
        && j.state != JobState::Succeeded
    {
        s.push_str(&format!(" ({e})"));
    }
    s
}

fn print_one(j: &Job, json: bool) -> Result<()> {
    if json {
        return output::print_json(&job_json(j));
    }
    say!("job {}: {} {}", j.id, j.state, j.slot);
    say!("  certificate  {}", j.thumbprint);
    say!("  due          {}", output::when(j.due_at));
    if j.run_after != j.due_at && j.state == JobState::Scheduled {
        say!("  next attempt {}", output::when(j.run_after));
    }
    say!("  attempts     {}", j.attempts);
    say!(
        "  created      {} by {}",
        output::when(j.created_at),
        j.created_by
    );
    if let Some(t) = j.started_at {
        say!("  started      {}", output::when(t));
    }
    if let Some(t) = j.finished_at {
        say!(
            "  finished     {} by {}",
            output::when(t),
            j.finished_by.as_deref().unwrap_or("?")
        );
    }
    if let Some(us) = j.lateness_us {
        say!(
            "  ran          {}",
            describe_lateness(chrono::Duration::microseconds(us))
        );
    }
    if let (Some(o), Some(t)) = (&j.lease_owner, j.lease_expires_at) {
        say!("  lease        {o} until {}", output::when(t));
    }
    if let Some(e) = &j.last_error {
        say!("  last error   {e}");
    }
    Ok(())
}

pub fn run(app: &App, args: JobsArgs) -> Result<()> {
    match args.command {
        JobsCommand::List {
            state,
            types,
            scope,
            limit,
            json,
        } => {
            let state = state
                .map(|s| {
                    JobState::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                        UsageError(format!(
                            "--state {s}: use scheduled, running, succeeded, failed or cancelled"
                        ))
                    })
                })
                .transpose()?;
            let filter = JobFilter {
                types: match &types {
                    Some(t) => app.parse_types(t)?,
                    None => Vec::new(),
                },
                scope: scope.as_deref().map(Scope::parse).transpose()?,
            };
            let store = app.open_store_read_only()?;
            let jobs = store.jobs(state, &filter, limit)?;
            if json {
                return output::print_json(&Value::Array(jobs.iter().map(job_json).collect()));
            }
            if jobs.is_empty() {
                say!("no roll jobs");
            }
            for j in &jobs {
                say!("{}", job_line(j));
            }
            Ok(())
        }
        JobsCommand::Show { id, json } => {
            let store = app.open_store_read_only()?;
            let job = store.job(id)?.ok_or(StoreError::NoSuchJob(id))?;
            print_one(&job, json)
        }
        JobsCommand::Cancel { id, json } => {
            let mut store = app.open_store()?;
            let job = store.cancel_job(id, &app.ctx())?;
            if json {
                return print_one(&job, true);
            }
            say!(
                "job {id} cancelled: {} will not roll to {}; its current and previous certificates stay",
                job.slot,
                short(&job.thumbprint)
            );
            Ok(())
        }
        JobsCommand::Retry { id, json } => {
            let mut store = app.open_store()?;
            let job = store.retry_job(id, &app.ctx())?;
            if json {
                return print_one(&job, true);
            }
            say!(
                "job {id} queued again: {} rolls to {} at the next run",
                job.slot,
                short(&job.thumbprint)
            );
            Ok(())
        }
    }
}
