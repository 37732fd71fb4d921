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
}

pub fn run(_app: &App, args: BenchArgs) -> Result<()> {
    let plan = if args.quick {
        BenchPlan::quick()
    } else {
        BenchPlan::full()
    };
    let bin = std::env::current_exe()?;
    let mut out = std::io::stdout();
    bench::run(&plan, &mut out, &bin, args.scratch.as_deref())
}
