//! Logging: tracing to stderr (journald picks it up under systemd), as text
//! or one JSON object per line. `-v` raises and `-q` lowers the level;
//! `RUST_LOG` overrides both. Secrets are never passed to a log call.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;

use crate::cli::LogFormat;

/// Installs the global subscriber. `verbose` counts `-v`; `quiet` is `-q`;
/// a `daemon` (serve) logs its activity (info) by default, a one-shot
/// command only warnings.
pub fn init(verbose: u8, quiet: bool, format: LogFormat, daemon: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if daemon => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Text lines: every field's control characters escaped (tracing's own
    // sanitising leaves newlines), so a value from a certificate or a peer
    // cannot forge a log line. JSON escapes them by itself.
    let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = crate::text::escape(&text);
        match field.name() {
            "message" => write!(w, "{text}"),
            name => write!(w, "{name}={text}"),
        }
    })
    .delimited(" ");
    let _ = match format {
        LogFormat::Text => builder
            .fmt_fields(fields)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}
