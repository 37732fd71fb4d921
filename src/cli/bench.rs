//! `certroll bench`: measure the roll queue on this machine (see
//! `crate::bench`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::App;
use crate::bench::{self, BenchPlan};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Small sizes and short waits (seconds instead of minutes): checks that the benchmark runs
    #[arg(long)]
    pub quick: bool,

    /// Scratch directory for the benchmark's stores [default: a temporary directory, removed after]
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,

    /// Also run the bursts and the spread on this PostgreSQL server (postgres://USER@HOST:PORT/DBNAME; the user needs CREATEDB: each case gets a scratch database, dropped after)
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// A file holding the PostgreSQL password (else $CERTROLL_STORE_PASSWORD)
    #[arg(long, value_name = "FILE", requires = "store")]
    pub password_file: Option<PathBuf>,

    /// Sizes of the bursts, comma-separated [default: 10000,100000; with --quick 1000]
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub bursts: Vec<u32>,

    /// Run only this measurement (repeat for more) [default: all]
    #[arg(long, value_name = "CASE", value_enum)]
    pub only: Vec<bench::Case>,
}

pub fn run(_app: &App, args: BenchArgs) -> Result<()> {
    let mut plan = if args.quick {
        BenchPlan::quick()
    } else {
        BenchPlan::full()
    };
    plan.only = args.only;
    if !args.bursts.is_empty() {
        plan.burst_sizes = args.bursts.iter().map(|&n| n as usize).collect();
    }
    let bin = std::env::current_exe()?;
    // Parsed first: a bad URL fails before minutes of SQLite figures.
    let target = match &args.store {
        Some(url) => {
            let password = crate::config::store_password(args.password_file.as_deref())
                .map_err(anyhow::Error::msg)?;
            Some(
                crate::store::PostgresTarget::parse(
                    url,
                    password.as_ref().map(|p| p.as_str()),
                    None,
                    None,
                    true,
                )
                .map_err(|e| super::UsageError(format!("--store: {e}")))?,
            )
        }
        None => None,
    };
    let mut out = std::io::stdout();
    bench::run(&plan, &mut out, &bin, args.scratch.as_deref())?;
    if let Some(t) = target {
        bench::run_postgres(&plan, &mut out, &bin, &t)?;
    }
    Ok(())
}
