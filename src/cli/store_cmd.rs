//! `certroll store`: the store itself. `store copy --to postgres://...`
//! copies the embedded SQLite store into an empty PostgreSQL database, the
//! step from one machine to a pool.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};

use super::{App, UsageError};
use crate::store::{Database, Location, PostgresTarget, SslMode, Store};

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy this SQLite store (every certificate, sealed key, slot, job, audit row, request and notification) into an empty PostgreSQL database
    #[command(
        long_about = "Copy this SQLite store (every certificate, sealed key, slot, job, audit row, request and notification) into an empty PostgreSQL database, in one transaction, and compare the counts. The target must hold no certroll data. Stop 'certroll serve' first, so nothing changes during the copy. Private keys stay sealed with the same master key: give every machine of the pool that master.key. Then set [store] url to the target."
    )]
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The target: postgres://USER@HOST:PORT/DBNAME (no password in it)
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// A file holding the target database's password (else $CERTROLL_STORE_PASSWORD)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// TLS to the target: disable, prefer, require or verify-full
    #[arg(long, value_name = "MODE")]
    pub sslmode: Option<String>,

    /// The CA certificates (PEM) of the target server's certificate (verify-full)
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

pub fn run(app: &App, args: StoreArgs) -> Result<()> {
    match args.command {
        StoreCommand::Copy(c) => copy(app, c),
    }
}

fn copy(app: &App, args: CopyArgs) -> Result<()> {
    if !matches!(app.location.database, Database::Sqlite) {
        return Err(UsageError(
            "store copy reads an SQLite store, but [store] url names PostgreSQL: run it with the configuration of the SQLite store".into(),
        )
        .into());
    }
    let sslmode = args
        .sslmode
        .as_deref()
        .map(|m| {
            SslMode::parse(m).ok_or_else(|| {
                UsageError(format!(
                    "--sslmode '{m}' is not one of disable, prefer, require, verify-full"
                ))
            })
        })
        .transpose()?;
    let password =
        crate::config::store_password(args.password_file.as_deref()).map_err(anyhow::Error::msg)?;
    let target = PostgresTarget::parse(
        &args.to,
        password.as_ref().map(|p| p.as_str()),
        sslmode,
        args.ca_file,
        false,
    )
    .map_err(|e| UsageError(format!("--to: {e}")))?;
    let db = app.data_dir.join("certroll.db");
    if !db.exists() {
        return Err(anyhow!(
            "{}: there is no store to copy (nothing was ever stored here)",
            db.display()
        ));
    }
    let source = app.open_store_read_only()?;
    let loc = Location {
        data_dir: app.data_dir.clone(),
        database: Database::Postgres(Box::new(target.clone())),
        master_key_file: app.location.master_key_file.clone(),
    };
    let mut dest = Store::open_at(&loc)?;
    let report = source.copy_into(&mut dest)?;
    let parts: Vec<String> = report
        .tables
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    say!(
        "copied {} into {target}; the counts match",
        if parts.is_empty() {
            "an empty store".to_string()
        } else {
            parts.join(", ")
        }
    );
    say!(
        "next: set [store] url = \"{}\" in the configuration of every engine and agent, and give each the master key {}",
        target.describe(),
        app.location.master_key_path().display()
    );
    Ok(())
}
