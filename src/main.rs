//! The `certroll` binary: parse the command line, install logging, run the
//! command, map the outcome to an exit code. Nothing else.

use std::process::ExitCode;

use clap::Parser;

use certroll::cli::{self, Cli};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // A monitoring plugin's usage error is UNKNOWN (3), on one line.
        Err(e) if cli::is_check(&args) && e.use_stderr() => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("usage error");
            println!(
                "CERTROLL UNKNOWN - {}",
                certroll::text::escape(first.trim_start_matches("error: "))
            );
            return ExitCode::from(3);
        }
        // Help and version: clap's text, without the spaces it leaves on
        // its blank lines.
        Err(e) if !e.use_stderr() => {
            let text = e.render().to_string();
            for line in text.lines() {
                println!("{}", line.trim_end());
            }
            return ExitCode::SUCCESS;
        }
        Err(e) => match cli::usage_hint(&args) {
            Some(hint) => {
                eprintln!("error: {hint}");
                return ExitCode::from(cli::EXIT_USAGE as u8);
            }
            None => e.exit(),
        },
    };
    let daemon = cli.command.is_serve();
    if !daemon {
        // A one-shot command whose reader went away (`certroll certs | head`)
        // ends quietly, as Unix tools do, instead of panicking in println!.
        // SAFETY: setting a signal disposition to its default is always sound.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    certroll::logging::init(cli.verbose, cli.quiet, cli.log_format, daemon);
    match cli::run(cli) {
        Ok(()) => ExitCode::from(cli::EXIT_OK as u8),
        Err(err) => {
            if err.downcast_ref::<cli::Reported>().is_none() {
                // One line: a value from a file cannot start another.
                eprintln!("error: {}", certroll::text::escape(&format!("{err:#}")));
            }
            ExitCode::from(cli::exit_code(&err) as u8)
        }
    }
}
