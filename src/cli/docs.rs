//! `certroll completions SHELL` and `certroll man`: shell completions and
//! man pages generated from the clap definitions, so they cannot drift
//! from the binary. The Debian package installs both.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
certroll completions bash > /etc/bash_completion.d/certroll\n  \
certroll completions zsh > \"${fpath[1]}/_certroll\"\n  \
certroll completions fish > ~/.config/fish/completions/certroll.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  certroll man | man -l -\n  certroll man --dir /usr/share/man/man1"
)]
pub struct ManArgs {
    /// Write certroll.1 and one page per command (certroll-import.1, ...)
    /// into DIR instead of printing certroll.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "certroll", &mut out);
    out.flush()?;
    Ok(())
}

pub fn man(args: ManArgs) -> Result<()> {
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("{}: cannot write the man pages", dir.display()))?;
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            out.flush()?;
            Ok(())
        }
    }
}
