//! The command line: clap definitions, the context every command runs in,
//! error classes and their exit codes. One file per non-trivial command.

/// `println!` for lines of text output: the control characters of every
/// value are escaped ([`crate::text`]), so a certificate's subject cannot
/// forge a line or drive the terminal. A line never spans lines.
macro_rules! say {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!("{}", $crate::text::escape(&format!($($arg)*)))
    };
}

/// `eprintln!` for notes, warnings and errors, escaped as [`say!`] is.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::text::escape(&format!($($arg)*)))
    };
}

mod bench;
mod certs;
mod check;
mod docs;
mod export;
mod get;
mod history;
mod import;
mod jobs;
mod notifications;
pub mod output;
mod password;
mod remove;
mod renew;
mod request;
mod roll;
mod rollback;
mod set;
mod status;
mod store_cmd;
mod timeline;
mod user;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cert::{Scope, SlotKey, UsageType};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{OpCtx, Store};

pub use password::PasswordArgs;

/// Exit codes (see the README): 0 success, 1 the operation failed or was
/// refused, 2 usage or configuration error.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// A usage or configuration error (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The command already printed its errors; exit with this code.
#[derive(Debug, thiserror::Error)]
#[error("(reported)")]
pub struct Reported(pub i32);

/// Maps an error to its exit code.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(r) = err.downcast_ref::<Reported>() {
        return r.0;
    }
    let usage = err.downcast_ref::<UsageError>().is_some()
        || err.downcast_ref::<crate::config::ConfigError>().is_some()
        || err
            .downcast_ref::<crate::cert::types::TypeError>()
            .is_some()
        || err
            .downcast_ref::<crate::cert::types::ScopeError>()
            .is_some()
        || err.downcast_ref::<clap::Error>().is_some();
    if usage { EXIT_USAGE } else { EXIT_FAILED }
}

#[derive(Debug, Parser)]
#[command(
    name = "certroll",
    version,
    about = "Certificate rollover and expiry engine: current, previous and pending certificates per usage type and scope",
    long_about = "certroll keeps, for every usage type (OAuthTokenIssuer, Default, WebServicesInternal, ...) \
and scope (global, site, pool, server), a current and a previous certificate, and changes them only \
by atomic, audited operations that enforce each type's policy.\n\n\
Exit codes: 0 success, 1 the operation failed or was refused, 2 usage or configuration error.",
    after_help = "Passwords are never taken on the command line: use --password-file, --password-env, \
--password-stdin, or answer the prompt on a terminal."
)]
pub struct Cli {
    /// Configuration file [default: /etc/certroll/certroll.toml when present, else built-in defaults]
    #[arg(
        long,
        global = true,
        env = "CERTROLL_CONFIG",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,

    /// Data directory holding certroll.db and master.key
    /// [default: data_dir from the config, else $XDG_STATE_HOME/certroll or ~/.local/state/certroll]
    #[arg(
        long,
        global = true,
        env = "CERTROLL_DATA_DIR",
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub data_dir: Option<PathBuf>,

    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet", help_heading = "Global options")]
    pub verbose: u8,

    /// Only errors in the log output
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,

    /// Log line format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT", help_heading = "Global options")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a certificate (PFX/PKCS#12, PEM or DER) into the store; with --type, assign it now
    Import(import::ImportArgs),
    /// Assign a stored certificate now: it becomes current, the current one becomes previous
    Set(set::SetArgs),
    /// Show slots with their current, previous and pending certificates
    Get(get::GetArgs),
    /// List every stored certificate
    Certs(certs::CertsArgs),
    /// Remove the previous, pending or (with --force) current certificate of a slot
    Remove(remove::RemoveArgs),
    /// Show the audit trail
    History(history::HistoryArgs),
    /// A new key and a certificate request for the CA (or, with --self-signed, a self-signed certificate)
    Request(request::RequestArgs),
    /// Certificate requests waiting for the CA's response: list, show, cancel
    Requests(request::RequestsArgs),
    /// Write a stored certificate with its private key and chain to a PFX file
    Export(export::ExportArgs),
    /// Run the roll jobs that are due now (or with --now, promote pending certificates early)
    Roll(roll::RollArgs),
    /// Undo a roll: the previous certificate current again, now or at --effective-date WHEN --roll
    Rollback(rollback::RollbackArgs),
    /// Rollover policies: what each slot will renew and when (--what-if), renew now (--now), or run one pass
    Renew(renew::RenewArgs),
    /// List, show, cancel or retry roll jobs
    Jobs(jobs::JobsArgs),
    /// Health of every slot, for monitoring (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)
    Check(check::CheckArgs),
    /// The notification delivery queue: list, retry
    Notifications(notifications::NotificationsArgs),
    /// Send a test message through the notification channels
    Notify(notifications::NotifyArgs),
    /// Each slot's previous, current and pending certificates as bars on a date axis
    Timeline(timeline::TimelineArgs),
    /// Replication status: per server and type, the certificate it should have and the one it has
    Status(status::StatusArgs),
    /// Run only the deployment, for one server (for pools where each server runs its own process)
    Agent(status::AgentArgs),
    /// The store itself: copy an SQLite store into PostgreSQL
    Store(store_cmd::StoreArgs),
    /// Accounts and API tokens of the HTTP API and console
    User(user::UserArgs),
    /// Measure the roll queue on this machine, in a scratch store (takes about 5 minutes; --quick: seconds)
    Bench(bench::BenchArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(docs::CompletionsArgs),
    /// Print the man page (or write every page into a directory)
    Man(docs::ManArgs),
    /// Run the background service: rolls each pending certificate at its instant
    #[command(
        after_help = "Runs until SIGINT or SIGTERM, then finishes the roll in progress and exits 0. \
Logs go to stderr (journald under systemd). With [http] listen it serves /healthz, /readyz, /metrics \
and the JWKS; with [http] api = true also the HTTP API under /api/v1/ (accounts from 'certroll user add'; \
it refuses to start without one)."
    )]
    Serve,
}

impl Command {
    pub fn is_serve(&self) -> bool {
        matches!(self, Command::Serve) || matches!(self, Command::Agent(a) if !a.once)
    }
}

/// `--type T[,T..]` and `--scope S`, shared by the commands that change slots.
#[derive(Debug, Args)]
pub struct SlotArgs {
    /// Usage type(s), comma-separated (e.g. OAuthTokenIssuer or Default,WebServicesInternal)
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: Option<String>,

    /// Scope: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S", default_value = "global")]
    pub scope: String,
}

/// `--effective-date WHEN --roll [--timezone TZ]`: schedule instead of
/// assigning now.
#[derive(Debug, Args, Default)]
pub struct WhenArgs {
    /// When the certificate becomes current: 2026-07-01T00:00:00+02:00, 2026-07-01 [HH:MM[:SS]],
    /// 7/1/2026 [H:MM[:SS] [AM|PM]] (month/day/year, as the seeds write it), both in the
    /// configured time zone, or +90s, +15m, +48h, +7d; needs --roll
    #[arg(long, value_name = "WHEN", requires = "roll")]
    pub effective_date: Option<String>,

    /// Schedule the change for --effective-date instead of making it now (the seeds' -Roll)
    #[arg(long, requires = "effective_date")]
    pub roll: bool,

    /// IANA time zone for a WHEN without an offset [default: timezone from the configuration,
    /// else the system's zone: TZ, /etc/localtime]
    #[arg(long, value_name = "TZ", requires = "effective_date")]
    pub timezone: Option<String>,

    /// Hold the roll until every server that takes the slot has staged the certificate
    /// (its targets' pending_path files); promote at [deploy] staging_deadline_minutes anyway
    #[arg(long, requires = "roll")]
    pub require_staged: bool,
}

impl WhenArgs {
    /// With --require-staged, refuses slots that no configured server
    /// stages (nothing could ever release the roll).
    pub fn check_staging(&self, app: &App, store: &Store, slots: &[SlotKey]) -> Result<()> {
        crate::ops::set::check_staging(&app.config, store, slots, self.require_staged)
            .map_err(set::op_error)
    }

    /// The instant of a scheduled roll, or `None` to assign now.
    pub fn instant(&self, app: &App) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let Some(when) = &self.effective_date else {
            return Ok(None);
        };
        let tz = match &self.timezone {
            Some(name) => crate::schedule::when::parse_zone(name)
                .map_err(|e| UsageError(format!("--timezone: {e}")))?,
            None => app.config.timezone,
        };
        crate::schedule::when::parse_when(when, tz, app.now())
            .map(Some)
            .map_err(|e| UsageError(format!("--effective-date: {e}")).into())
    }
}

/// Who runs the command, for the audit trail: the passwd name of the real
/// user id (not $USER, which anyone can set), and, under sudo, who ran
/// sudo ("certroll (sudo from alice)").
fn actor_name() -> String {
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let name = passwd_name(uid).unwrap_or_else(|| format!("uid {uid}"));
    match std::env::var("SUDO_USER") {
        Ok(by) if !by.is_empty() && by != name => {
            format!("{name} (sudo from {})", crate::text::escape(&by))
        }
        _ => name,
    }
}

/// The login name of `uid` in the passwd database.
fn passwd_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero passwd is a valid out-parameter for getpwuid_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: the buffers outlive the call; getpwuid_r writes only into
    // them and sets `found` to &pwd or null.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string in buf.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The configuration file, for messages.
fn config_name(config: &Config) -> String {
    config.source.as_ref().map_or_else(
        || "the configuration".to_string(),
        |p| p.display().to_string(),
    )
}

/// What every command works with.
pub struct App {
    pub config: Config,
    /// `--config` (or `CERTROLL_CONFIG`) as given, to read it again.
    pub config_arg: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// The store: its database and master key, from `[store]`.
    pub location: crate::store::Location,
    clock: std::sync::Arc<dyn Clock>,
    actor: String,
}

impl App {
    pub fn new(cli: &Cli) -> Result<App> {
        let config = Config::load(cli.config.as_deref())?;
        output::set_zone(config.timezone);
        let data_dir = config.data_dir(cli.data_dir.as_deref())?;
        let location = config
            .store
            .location(&data_dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config_name(&config)))?;
        Ok(App {
            config,
            config_arg: cli.config.clone(),
            data_dir,
            location,
            clock: crate::clock::system(),
            actor: format!("cli:{}", actor_name()),
        })
    }

    /// Reads the configuration again from where it came (SIGHUP).
    pub fn reloader(&self) -> crate::service::Reload {
        let source = self.config_arg.clone();
        let data_dir = self.config.data_dir.clone();
        Box::new(move || {
            let c = Config::load(source.as_deref()).map_err(|e| format!("{e:#}"))?;
            if c.data_dir != data_dir {
                tracing::warn!(
                    "data_dir changed in the configuration: it takes effect at the next start"
                );
            }
            Ok(c)
        })
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn ctx(&self) -> OpCtx {
        OpCtx {
            now: self.now(),
            actor: self.actor.clone(),
        }
    }

    pub fn open_store(&self) -> Result<Store> {
        Ok(Store::open_at(&self.location)?)
    }

    /// For commands that only look: creates nothing (a data directory
    /// without a store reads as empty), and works for a user who may only
    /// read the database.
    pub fn open_store_read_only(&self) -> Result<Store> {
        Ok(Store::open_read_only_at(&self.location)?)
    }

    /// Refuses slots at a scope their type's policy does not allow (rule
    /// scope: OAuthTokenIssuer is configured once, at global), and, when
    /// `[[server]]` entries are configured, a site, pool or server scope
    /// that names none of them, with the nearest names (`force` allows a
    /// scope for servers not configured yet).
    pub fn check_slots(&self, slots: &[SlotKey], force: bool) -> Result<()> {
        if let Some(note) =
            crate::ops::set::check_scope(&self.config, slots, force).map_err(set::op_error)?
        {
            tell!("warning: {note}");
        }
        Ok(())
    }

    pub fn parse_types(&self, list: &str) -> Result<Vec<UsageType>> {
        Ok(self.config.types.parse_list(list)?)
    }

    pub fn slots(&self, types: &[UsageType], scope: &str) -> Result<Vec<SlotKey>> {
        let scope = Scope::parse(scope)?;
        Ok(types
            .iter()
            .map(|t| SlotKey::new(scope.clone(), t.clone()))
            .collect())
    }
}

pub fn run(cli: Cli) -> Result<()> {
    if let Command::Check(args) = &cli.command {
        return check_with_unknown(&cli, args);
    }
    // Neither reads the configuration or the store.
    match cli.command {
        Command::Completions(args) => return docs::completions(args),
        Command::Man(args) => return docs::man(args),
        _ => {}
    }
    let app = App::new(&cli)?;
    dispatch(&app, cli.command).map_err(|e| explained(e, &app.data_dir))
}

/// A database error as the operator can act on it: the file, and what to do.
fn explained(e: anyhow::Error, data_dir: &Path) -> anyhow::Error {
    let advice = e
        .chain()
        .find_map(|c| c.downcast_ref::<crate::store::StoreError>())
        .and_then(|s| s.explain(data_dir));
    match advice {
        Some(a) => anyhow::anyhow!(a),
        None => e,
    }
}

fn dispatch(app: &App, command: Command) -> Result<()> {
    match command {
        Command::Import(args) => import::run(app, args),
        Command::Set(args) => set::run(app, args),
        Command::Get(args) => get::run(app, args),
        Command::Certs(args) => certs::run(app, args),
        Command::Remove(args) => remove::run(app, args),
        Command::History(args) => history::run(app, args),
        Command::Export(args) => export::run(app, args),
        Command::Request(args) => request::run(app, args),
        Command::Requests(args) => request::run_requests(app, args),
        Command::Roll(args) => roll::run(app, args),
        Command::Renew(args) => renew::run(app, args),
        Command::Rollback(args) => rollback::run(app, args),
        Command::Jobs(args) => jobs::run(app, args),
        Command::Bench(args) => bench::run(app, args),
        Command::Store(args) => store_cmd::run(app, args),
        Command::User(args) => user::run(app, args),
        Command::Notifications(args) => notifications::run(app, args),
        Command::Notify(args) => notifications::run_notify(app, args),
        Command::Check(args) => check::run(app, args),
        Command::Status(args) => status::run(app, args),
        Command::Timeline(args) => timeline::run(app, args),
        Command::Agent(args) => status::run_agent(app, args),
        Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
        Command::Serve => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let config = std::sync::Arc::new(app.config.clone());
            runtime.block_on(crate::service::run(
                config,
                &app.location,
                crate::clock::system(),
                crate::service::shutdown_signal(),
                app.reloader(),
            ))
        }
    }
}

/// `check` reports any failure to look (configuration, store, a run past
/// its `-t`) as UNKNOWN (exit 3), as monitoring plugins do.
fn check_with_unknown(cli: &Cli, args: &check::CheckArgs) -> Result<()> {
    let timeout = std::time::Duration::from_secs(args.timeout.into());
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        say!("CERTROLL UNKNOWN - timed out after {} s", timeout.as_secs());
        std::process::exit(3);
    });
    let result = App::new(cli)
        .and_then(|app| check::run(&app, args.clone()).map_err(|e| explained(e, &app.data_dir)));
    match result {
        Err(e) if e.downcast_ref::<Reported>().is_none() => {
            say!("CERTROLL UNKNOWN - {e:#}");
            Err(Reported(3).into())
        }
        other => other,
    }
}

/// The subcommand of a command line (skipping the global options).
fn subcommand(args: &[std::ffi::OsString]) -> Vec<String> {
    let mut it = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let mut out = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "--data-dir" | "--log-format" => {
                it.next();
            }
            s if s.starts_with('-') => {}
            _ => {
                out.push(a);
                out.extend(it.next());
                break;
            }
        }
    }
    out
}

/// A hint for a command line that mixes up two commands
/// (`request list` for `requests list`).
pub fn usage_hint(args: &[std::ffi::OsString]) -> Option<String> {
    match subcommand(args).as_slice() {
        [r, sub] if r == "request" && ["list", "show", "cancel"].contains(&sub.as_str()) => {
            Some(format!(
                "'certroll request' makes a new request; the waiting ones are listed, shown and cancelled by 'certroll requests {sub}'"
            ))
        }
        _ => None,
    }
}

/// Whether the command line names the `check` subcommand: its usage
/// errors exit 3 (UNKNOWN), as monitoring plugins' do.
pub fn is_check(args: &[std::ffi::OsString]) -> bool {
    subcommand(args).first().is_some_and(|s| s == "check")
}

/// `--type T[,T..]`: any text (types may be declared in the configuration,
/// and several are comma-separated; the configuration checks them), with
/// the built-in types as the values shell completions offer.
#[derive(Clone, Debug)]
pub struct TypesArg;

impl clap::builder::TypedValueParser for TypesArg {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            crate::cert::types::BUILTIN_TYPES
                .iter()
                .map(|t| clap::builder::PossibleValue::new(*t)),
        ))
    }
}

/// `request --key`: the key kinds, offered by shell completions.
fn key_arg() -> impl clap::builder::TypedValueParser<Value = crate::cert::keygen::KeySpec> {
    use clap::builder::{PossibleValue, TypedValueParser};
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("rsa2048").alias("rsa"),
        PossibleValue::new("rsa3072"),
        PossibleValue::new("rsa4096"),
        PossibleValue::new("ec-p256").aliases(["p256", "ec"]),
        PossibleValue::new("ec-p384").alias("p384"),
    ])
    .map(|s| s.parse().expect("a listed key kind"))
}

/// `--limit N`: 1 to 1,000,000 rows.
fn limit_arg(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err("a number of rows from 1 to 1000000".into()),
    }
}

/// Reads an input file the operator named, with an error naming it.
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>> {
    crate::input::read(path, crate::input::MAX_CERT_FILE)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the file: {e}", path.display()))
}
