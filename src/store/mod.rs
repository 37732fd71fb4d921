//! The store: SQLite (bundled) in the data directory, behind a narrow
//! interface of domain operations ("import", "assign", "remove", queries).
//! No rusqlite type leaves this module.
//!
//! Every state change is one `IMMEDIATE` transaction that writes the new
//! state, its audit row and its notification outbox rows together: a crash
//! leaves the store before or after the change, never between. The database
//! runs in WAL mode with `synchronous=FULL`, foreign keys on and a busy
//! timeout, so several certroll processes can share one store.
//!
//! Layout of the data directory: `certroll.db` (mode 0600) and `master.key`
//! (mode 0600), which seals every private key (see [`keyring`]).

mod acme;
mod audit;
mod certs;
mod copy;
pub(crate) mod db;
mod delivery;
mod deployments;
mod jobs;
pub mod keyring;
mod leaders;
mod pg_schema;
mod renewals;
mod requests;
mod schema;
mod slots;
mod users;

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use crate::cert::types::EventSeverity;
pub use audit::{AuditEntry, HistoryFilter, Roles};
pub use certs::{ImportOutcome, NewCert, StoredCert};
pub use copy::CopyReport;
pub use delivery::{
    ClaimedDelivery, Delivery, DeliveryLimits, DeliveryOutcome, EXPIRY_PAGE, FanOut, OutboxEvent,
};
pub use deployments::{DeployEvent, DeployState};
pub use jobs::{
    Claimed, ExecOptions, Job, JobFilter, JobResult, JobState, NextWake, RollCheck, RollOutcome,
    ScheduleReport, describe_lateness,
};
pub use renewals::Renewed;
pub use requests::{CertRequest, NewRequest};
pub use schema::CURRENT_VERSION as SCHEMA_VERSION;
pub use slots::{AssignReport, RollbackReport, SlotView};
pub use users::{Principal, Session, TokenInfo, User};

use crate::cert::SlotKey;
pub use db::Backend;
pub use db::postgres::{PostgresTarget, SslMode};
use db::{Conn, Exec, vals};
use keyring::MasterKey;

/// A database error, kept opaque so no rusqlite or postgres type leaks out.
#[derive(Debug)]
pub enum DbError {
    Sqlite(rusqlite::Error),
    Postgres(::postgres::Error),
}

impl DbError {
    /// Whether the error is the database being locked by another process
    /// past the busy timeout (worth retrying).
    pub fn is_busy(&self) -> bool {
        match self {
            DbError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            DbError::Postgres(e) => e.code().is_some_and(|c| {
                [
                    ::postgres::error::SqlState::LOCK_NOT_AVAILABLE,
                    ::postgres::error::SqlState::T_R_SERIALIZATION_FAILURE,
                    ::postgres::error::SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(c)
            }),
        }
    }

    /// Whether a constraint (unique, check, foreign key) refused the change.
    pub fn is_constraint(&self) -> bool {
        match self {
            DbError::Sqlite(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            DbError::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sqlite(e) => e.fmt(f),
            DbError::Postgres(e) => f.write_str(&db::postgres::error_text(e)),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The I/O error is part of the message, not a `source`: messages are
    // printed with their sources, and the reason would show twice.
    #[error("{}: cannot {what} ({error})", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("database: {0}")]
    Db(DbError),
    /// The database server cannot be reached (or the connection was lost).
    #[error("{store}: the database is unreachable: {reason}")]
    Unavailable { store: String, reason: String },
    #[error(
        "{}: the store is missing but its master key exists: restore certroll.db from a backup (with its master.key)",
        .0.display()
    )]
    DatabaseMissing(PathBuf),
    #[error(
        "the store uses schema v{found}, newer than this certroll understands (v{known}); upgrade certroll"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("{}: permissions {mode:o} are too open; run 'chmod 600' on it", path.display())]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    #[error("{}: the master key file is corrupt (expected 32 bytes)", .0.display())]
    MasterKeyCorrupt(PathBuf),
    #[error(
        "{}: the master key is missing but the store holds sealed private keys; restore it from a backup",
        .0.display()
    )]
    MasterKeyMissing(PathBuf),
    #[error(
        "{}: this master key (id {found}) is not the one the store's private keys were sealed with (id {expected})",
        path.display()
    )]
    MasterKeyMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("a stored private key could not be decrypted (wrong master key or damaged row)")]
    KeyUnsealFailed,
    #[error("the system random number generator failed")]
    Random,
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("{0}: nothing is assigned there")]
    NoSuchSlot(String),
    #[error("no roll job {0}")]
    NoSuchJob(i64),
    #[error("no certificate request {0}")]
    NoSuchRequest(i64),
    /// The operation is refused for the reason given.
    #[error("{0}")]
    Refused(String),
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// What a database error means for the store in `dir`, and what to do,
    /// naming the file: a read-only directory or database, a full disk, a
    /// database locked past the busy timeout, a damaged file. `None` for
    /// other errors, whose own message says it.
    pub fn explain(&self, dir: &Path) -> Option<String> {
        let StoreError::Db(DbError::Sqlite(e)) = self else {
            return None;
        };
        let db = dir.join("certroll.db");
        let (db, d) = (db.display(), dir.display());
        let writable = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
                // SAFETY: a valid NUL-terminated path; access reads it only.
                .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
        };
        Some(match e.sqlite_error_code()? {
            rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen if !writable(dir) => {
                format!(
                    "{d}: the data directory is not writable by this user, and SQLite needs to create certroll.db-wal and certroll.db-shm there: make it writable (chmod u+w), or run as its owner (sudo -u certroll certroll ...)"
                )
            }
            rusqlite::ErrorCode::ReadOnly => format!(
                "{db}: the database is read-only for this user: run as its owner (sudo -u certroll certroll ...), or make it writable (chmod 600 and chown)"
            ),
            rusqlite::ErrorCode::DiskFull => format!(
                "{db}: the disk is full (the filesystem of {d}): free some space and try again; nothing was changed"
            ),
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => format!(
                "{db}: the database is locked by another process (for longer than the 10 s certroll waits): try again, or find the holder with 'fuser {db}'; nothing was changed"
            ),
            rusqlite::ErrorCode::CannotOpen => format!(
                "{db}: cannot open the database: check that {d} and the file are readable and writable by this user"
            ),
            rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt => format!(
                "{db}: the file is not a certroll store or is damaged ({e}): restore it from a backup, with its master.key"
            ),
            rusqlite::ErrorCode::SystemIoFailure => {
                format!("{db}: an I/O error ({e}): check the disk and the filesystem of {d}")
            }
            _ => return None,
        })
    }

    /// Whether trying again later may succeed: the database was locked past
    /// the busy timeout, or an I/O error (disk full, ...).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(e @ DbError::Postgres(_)) => e.is_busy(),
            StoreError::Unavailable { .. } => true,
            StoreError::Db(DbError::Sqlite(e)) => matches!(
                e.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::CannotOpen
                )
            ),
            StoreError::Io { .. } => true,
            _ => false,
        }
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        StoreError::Db(e)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(DbError::Sqlite(e))
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        StoreError::Db(DbError::Postgres(e))
    }
}

/// Finding a certificate by thumbprint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("no certificate with thumbprint {0} in the store")]
    NotFound(String),
    #[error("thumbprint prefix {prefix} is ambiguous: it matches {candidates}")]
    Ambiguous { prefix: String, candidates: String },
    #[error("'{0}' is not a thumbprint: give its 40 hex digits, or a unique prefix of at least 8")]
    Invalid(String),
}

/// Who does a change, and when.
#[derive(Clone, Debug)]
pub struct OpCtx {
    pub now: DateTime<Utc>,
    pub actor: String,
}

/// Which database holds the store.
#[derive(Clone, Debug)]
pub enum Database {
    /// `certroll.db` in the data directory (the embedded default).
    Sqlite,
    /// A PostgreSQL database that engines and agents on many machines
    /// share.
    Postgres(Box<PostgresTarget>),
}

/// Where a store lives: its database, the data directory (SQLite's file,
/// and the master key by default), and the master key that seals private
/// keys.
#[derive(Clone, Debug)]
pub struct Location {
    pub data_dir: PathBuf,
    pub database: Database,
    /// The master key file; by default `master.key` in the data directory.
    pub master_key_file: Option<PathBuf>,
}

impl Location {
    /// The embedded default: SQLite in `dir`.
    pub fn sqlite(dir: &Path) -> Location {
        Location {
            data_dir: dir.to_path_buf(),
            database: Database::Sqlite,
            master_key_file: None,
        }
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| keyring::master_key_path(&self.data_dir))
    }

    /// The database, for messages: the SQLite file, or the PostgreSQL
    /// URL without its password.
    pub fn describe(&self) -> String {
        match &self.database {
            Database::Sqlite => self.data_dir.join("certroll.db").display().to_string(),
            Database::Postgres(t) => t.describe().to_string(),
        }
    }
}

pub struct Store {
    conn: Conn,
    dir: PathBuf,
    /// The master key file.
    master_path: PathBuf,
    /// Opened read-only on a data directory that holds no store yet: an
    /// empty store in memory, so that nothing is created on disk.
    absent: bool,
    /// The write marker at the last complete checkpoint.
    checkpointed_at: Option<(u64, i64)>,
    master: Option<MasterKey>,
    /// Parsed certificates by row id. A row's DER and chain never change,
    /// so parsing once is enough (whether it has a key is read each time).
    cert_cache: std::collections::HashMap<i64, StoredCert>,
}

/// A missing or zero-byte database beside an existing master key is a lost
/// store, never silently recreated.
fn refuse_lost_database(dir: &Path) -> Result<(), StoreError> {
    let db_path = dir.join("certroll.db");
    let missing = std::fs::metadata(&db_path).map_or(true, |m| m.len() == 0);
    if missing && keyring::master_key_path(dir).exists() {
        return Err(StoreError::DatabaseMissing(db_path));
    }
    Ok(())
}

/// Keeps the `-wal` and `-shm` files when the last writer closes, so a
/// user who may only read the database can still open it (SQLite reads a
/// WAL database read-only only when those files exist).
fn persist_wal(conn: &Connection) {
    let mut on: std::ffi::c_int = 1;
    // SAFETY: the handle is valid for the connection's life; the file
    // control reads one int from the pointer we pass.
    unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::ffi::c_int).cast(),
        );
    }
}

/// Fixed-width RFC 3339 UTC, so text order is time order.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("bad time '{s}'")))
}

impl Store {
    /// Opens (creating on first use) the store in `dir`: the directory with
    /// mode 0700, the database with mode 0600, then pragmas and migrations.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |what| {
            move |error| StoreError::Io {
                path: dir.to_path_buf(),
                what,
                error,
            }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create the data directory"))?;
        let db_path = dir.join("certroll.db");
        refuse_lost_database(dir)?;
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&db_path)
        {
            Ok(f) => {
                keyring::adopt_dir_owner(&f, dir)
                    .map_err(io("give the database its directory's owner"))?;
                keyring::sync_dir(dir)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Group-readable is the documented layout for monitoring
                // users; readable by everyone is not.
                if let Ok(meta) = std::fs::metadata(&db_path)
                    && meta.permissions().mode() & 0o007 != 0
                {
                    tracing::warn!(
                        path = %db_path.display(),
                        mode = format!("{:o}", meta.permissions().mode() & 0o777),
                        "the database is readable by every user; run 'chmod 600' (or 640 for a monitoring group) on it"
                    );
                }
            }
            Err(e) => {
                return Err(StoreError::Io {
                    path: db_path,
                    what: "create the database",
                    error: e,
                });
            }
        }
        let mut conn = Connection::open(&db_path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "cannot switch to WAL (journal mode {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Savepoint journals in memory, not in temporary files.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Every statement of the roll path stays prepared.
        conn.set_prepared_statement_cache_capacity(256);
        schema::migrate(&mut conn)?;
        persist_wal(&conn);
        Ok(Store::with(conn, dir, false))
    }

    fn with(conn: Connection, dir: &Path, absent: bool) -> Store {
        Store::with_conn(Conn::Sqlite(conn), dir, absent)
    }

    fn with_conn(conn: Conn, dir: &Path, absent: bool) -> Store {
        Store {
            conn,
            dir: dir.to_path_buf(),
            master_path: keyring::master_key_path(dir),
            absent,
            checkpointed_at: None,
            master: None,
            cert_cache: std::collections::HashMap::new(),
        }
    }

    /// Opens the store in `dir` for reading only (get, certs, check,
    /// status, ...): nothing is created, neither the directory, nor the
    /// database, nor a master key. A directory without a store yields an
    /// empty store in memory ([`Store::is_absent`]); a store whose schema
    /// is older than this build is opened for writing once, to upgrade it.
    /// Works for a user who may only read the database (WAL mode needs its
    /// `-wal` and `-shm` files, which writers keep: see `persist_wal`).
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        refuse_lost_database(dir)?;
        let db_path = dir.join("certroll.db");
        let present = std::fs::metadata(&db_path).is_ok_and(|m| m.len() > 0);
        if !present {
            let mut conn = Connection::open_in_memory()?;
            schema::migrate(&mut conn)?;
            return Ok(Store::with(conn, dir, true));
        }
        let conn = Connection::open_with_flags(
            &db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Io {
            path: db_path.clone(),
            what: "open the database for reading",
            error: std::io::Error::other(e.to_string()),
        })?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(256);
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > schema::CURRENT_VERSION {
            return Err(StoreError::NewerSchema {
                found: version,
                known: schema::CURRENT_VERSION,
            });
        }
        if version < schema::CURRENT_VERSION {
            drop(conn);
            return Store::open(dir);
        }
        Ok(Store::with(conn, dir, false))
    }

    /// Opens (creating on first use) the store at `loc`: SQLite as
    /// [`Store::open`]; PostgreSQL by connecting (never on a tokio worker:
    /// the client blocks), creating or migrating its schema under an
    /// advisory lock, and measuring the clock skew between this host and
    /// the database.
    pub fn open_at(loc: &Location) -> Result<Store, StoreError> {
        let mut store = match &loc.database {
            Database::Sqlite => Store::open(&loc.data_dir)?,
            Database::Postgres(target) => {
                let mut conn = Conn::Postgres(Box::new(db::postgres::PgConn::connect(target)?));
                pg_schema::migrate(&mut conn)?;
                Store::with_conn(conn, &loc.data_dir, false)
            }
        };
        store.master_path = loc.master_key_path();
        Ok(store)
    }

    /// Opens the store at `loc` for reading only, as
    /// [`Store::open_read_only`]; on PostgreSQL a database where certroll
    /// never ran reads as an empty store and nothing is created.
    pub fn open_read_only_at(loc: &Location) -> Result<Store, StoreError> {
        let mut store = match &loc.database {
            Database::Sqlite => Store::open_read_only(&loc.data_dir)?,
            Database::Postgres(target) => {
                let mut conn = Conn::Postgres(Box::new(db::postgres::PgConn::connect(target)?));
                match pg_schema::current(&conn)? {
                    None => {
                        let mut mem = Connection::open_in_memory()?;
                        schema::migrate(&mut mem)?;
                        Store::with(mem, &loc.data_dir, true)
                    }
                    Some(v) if v > pg_schema::CURRENT_VERSION => {
                        return Err(StoreError::NewerSchema {
                            found: v,
                            known: pg_schema::CURRENT_VERSION,
                        });
                    }
                    Some(_) => {
                        pg_schema::migrate(&mut conn)?;
                        Store::with_conn(conn, &loc.data_dir, false)
                    }
                }
            }
        };
        store.master_path = loc.master_key_path();
        Ok(store)
    }

    /// The database's clock minus this host's: the database's time read
    /// between two readings of the host's, less their midpoint (zero on
    /// SQLite, whose processes share one host's clock). Leases are judged
    /// by the database's clock, instants by the engine's, which the service
    /// corrects by this skew (and warns past a second).
    pub fn clock_skew(&self) -> Result<chrono::Duration, StoreError> {
        if self.conn.backend() == Backend::Sqlite {
            return Ok(chrono::Duration::zero());
        }
        let before = Utc::now();
        let db_now = self
            .conn
            .row("SELECT certroll_ts(clock_timestamp())", &[], |r| r.text(0))?
            .ok_or_else(|| StoreError::Corrupt("the database has no clock".into()))?;
        let after = Utc::now();
        Ok(parse_ts(&db_now)? - (before + (after - before) / 2))
    }

    /// Which database the store runs on.
    pub fn backend(&self) -> Backend {
        self.conn.backend()
    }

    /// Whether this is the empty stand-in of [`Store::open_read_only`] for
    /// a data directory without a store.
    pub fn is_absent(&self) -> bool {
        self.absent
    }

    /// How long a statement waits for another process's lock before
    /// failing as busy (10 s by default).
    pub fn set_busy_timeout(&mut self, timeout: Duration) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => c.busy_timeout(timeout)?,
            Conn::Postgres(c) => c.batch(&format!(
                "SET lock_timeout = '{}ms'",
                timeout.as_millis().max(1)
            ))?,
        }
        Ok(())
    }

    /// Turns SQLite's automatic WAL checkpoints (which run inside whichever
    /// commit crosses the threshold, delaying it) off for this connection;
    /// the engine checkpoints in its quiet moments instead.
    pub fn disable_auto_checkpoint(&mut self) -> Result<(), StoreError> {
        if let Some(c) = self.conn.sqlite() {
            c.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        Ok(())
    }

    /// Readiness: the database answers a read and its write lock can be
    /// taken within the busy timeout (what every roll needs).
    pub fn probe(&mut self) -> Result<(), StoreError> {
        self.conn
            .row("SELECT count(*) FROM meta", &[], |_| Ok(()))?;
        let tx = self.conn.begin()?;
        tx.rollback()?;
        Ok(())
    }

    /// Size of the write-ahead log, in bytes (SQLite's; 0 on PostgreSQL).
    pub fn wal_bytes(&self) -> u64 {
        if self.conn.sqlite().is_none() {
            return 0;
        }
        std::fs::metadata(self.dir.join("certroll.db-wal")).map_or(0, |m| m.len())
    }

    /// What changed the database since: this connection's row changes and
    /// the commits of the others.
    fn write_marker(&self) -> Result<(u64, i64), StoreError> {
        let Some(c) = self.conn.sqlite() else {
            return Ok((0, 0));
        };
        let version: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok((c.total_changes(), version))
    }

    /// Whether a checkpoint has anything to copy: the log holds frames
    /// written since the last complete checkpoint. (The log file keeps its
    /// size once checkpointed, since writers keep it for readers, so its
    /// size says nothing.)
    pub fn needs_checkpoint(&self) -> bool {
        self.wal_bytes() > 0
            && self
                .write_marker()
                .map_or(true, |m| Some(m) != self.checkpointed_at)
    }

    /// Copies the write-ahead log into the database without waiting for
    /// readers or writers (SQLite's PASSIVE checkpoint).
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        let Some(c) = self.conn.sqlite() else {
            return Ok(());
        };
        let (log, copied): (i64, i64) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })?;
        self.checkpointed_at = if log == copied {
            Some(self.write_marker()?)
        } else {
            None
        };
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?),
            Conn::Postgres(_) => Ok(self
                .meta("schema_version")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .row("SELECT value FROM meta WHERE key = ?1", vals![key], |r| {
                r.text(0)
            })
    }

    /// The master key, loaded or (with `create`, when the store has never
    /// sealed a key) created.
    fn master_key(&mut self, create: bool) -> Result<&MasterKey, StoreError> {
        if self.master.is_none() {
            let path = self.master_path.clone();
            let expected = self.meta("master_key_id")?;
            let key = if path.exists() {
                MasterKey::load(&path)?
            } else if create && expected.is_none() {
                MasterKey::create(&path)?
            } else {
                return Err(StoreError::MasterKeyMissing(path));
            };
            match expected {
                Some(exp) if exp != key.id => {
                    return Err(StoreError::MasterKeyMismatch {
                        path,
                        found: key.id.clone(),
                        expected: exp,
                    });
                }
                Some(_) => {}
                None => {
                    self.conn.exec(
                        "INSERT INTO meta (key, value) VALUES ('master_key_id', ?1)
                         ON CONFLICT (key) DO NOTHING",
                        vals![&key.id],
                    )?;
                }
            }
            self.master = Some(key);
        }
        Ok(self.master.as_ref().expect("set above"))
    }
}

/// One slot's planned or applied change.
#[derive(Clone, Debug)]
pub struct SlotChange<P> {
    pub slot: SlotKey,
    pub plan: P,
}

impl Store {
    /// The SQLite connection underneath, for tests of SQLite's own plans.
    #[cfg(test)]
    fn lite(&self) -> &Connection {
        self.conn.sqlite().expect("an SQLite store")
    }

    #[cfg(test)]
    fn lite_mut(&mut self) -> &mut Connection {
        self.conn.sqlite_mut().expect("an SQLite store")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::TimeZone;

    use super::*;
    use crate::cert::bundle::{self, Input};
    use crate::cert::slot::{AssignPlan, RemovePlan};
    use crate::cert::{Role, Scope, UsageType};

    fn entry(pfx: &[u8]) -> bundle::Entry {
        let parsed = bundle::parse(&Input {
            data: pfx,
            key_file: None,
            password: Some("Passw0rd!"),
        })
        .unwrap();
        parsed.entries.into_iter().next().unwrap()
    }

    fn new_cert(e: &bundle::Entry) -> NewCert<'_> {
        NewCert {
            cert: &e.cert,
            chain: &e.chain,
            key: e.key.as_ref(),
            friendly_name: e.friendly_name.as_deref(),
            source_file: Some("test.pfx"),
            request: None,
        }
    }

    fn ctx() -> OpCtx {
        OpCtx {
            now: Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
            actor: "test".into(),
        }
    }

    /// The distinct statements `f` runs on the store.
    fn traced(store: &mut Store, f: impl FnOnce(&mut Store)) -> Vec<String> {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = seen.clone();
        store
            .lite_mut()
            .trace_v2(
                rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
                Some(move |ev: rusqlite::trace::TraceEvent<'_>| {
                    if let rusqlite::trace::TraceEvent::Stmt(stmt, _) = ev {
                        sink.lock().unwrap().push(stmt.sql().into_owned());
                    }
                }),
            )
            .unwrap();
        f(store);
        store
            .lite_mut()
            .trace_v2(
                rusqlite::trace::TraceEventCodes::empty(),
                None::<fn(rusqlite::trace::TraceEvent<'_>)>,
            )
            .unwrap();
        let mut out = seen.lock().unwrap().clone();
        out.sort();
        out.dedup();
        out
    }

    /// Every statement the store runs during a full scenario.
    fn traced_scenario(store: &mut Store) -> Vec<String> {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = seen.clone();
        store
            .lite_mut()
            .trace_v2(
                rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
                Some(move |ev: rusqlite::trace::TraceEvent<'_>| {
                    if let rusqlite::trace::TraceEvent::Stmt(stmt, _) = ev {
                        sink.lock().unwrap().push(stmt.sql().into_owned());
                    }
                }),
            )
            .unwrap();

        let a = entry(include_bytes!(
            "../../tests/data/fixtures/oauth1-openssl3.pfx"
        ));
        let b = entry(include_bytes!(
            "../../tests/data/fixtures/oauth2-windows.pfx"
        ));
        let oauth = UsageType::from_canonical("OAuthTokenIssuer");
        let global = SlotKey::new(Scope::Global, oauth.clone());
        let pool = SlotKey::new(Scope::Pool("fe01.contoso.com".into()), oauth.clone());
        let c = ctx();
        store
            .assign(
                Some(&new_cert(&a)),
                &a.cert.thumbprint,
                std::slice::from_ref(&global),
                &c,
            )
            .unwrap();
        store.import(&new_cert(&b), &c).unwrap();
        store
            .plan_assign(&b.cert.thumbprint, &[global.clone(), pool.clone()])
            .unwrap();
        let report = store
            .assign(
                None,
                &b.cert.thumbprint,
                &[global.clone(), pool.clone()],
                &c,
            )
            .unwrap();
        assert!(matches!(report.changes[0].plan, AssignPlan::Change(_)));
        // A pending certificate (the roll queue fills these later).
        store
            .lite()
            .execute(
                "UPDATE slots SET pending_cert = (SELECT id FROM certificates WHERE thumbprint = ?1),
                        effective_at = '2027-01-01T00:00:00.000Z' WHERE scope_key = 'global'",
                [&a.cert.thumbprint],
            )
            .unwrap();
        store
            .plan_remove(std::slice::from_ref(&global), Role::Pending)
            .unwrap();
        let removed = store
            .remove(std::slice::from_ref(&global), Role::Pending, &c)
            .unwrap();
        assert!(matches!(&removed[0].plan, RemovePlan::Change(t) if t.cancels_pending()));
        store
            .remove(std::slice::from_ref(&global), Role::Previous, &c)
            .unwrap();
        store.find_cert(&a.cert.thumbprint[..10]).unwrap();
        store.find_cert(&a.cert.thumbprint).unwrap();
        store.lookup_exact(&b.cert.thumbprint).unwrap();
        let all = store.certs(None).unwrap();
        store.certs(Some(c.now)).unwrap();
        for cert in &all {
            store.assignments(cert.id).unwrap();
        }
        store.slots(&[], None).unwrap();
        store.slots(std::slice::from_ref(&oauth), None).unwrap();
        store.slots(&[], Some(&Scope::Global)).unwrap();
        store
            .slots(std::slice::from_ref(&oauth), Some(&Scope::Global))
            .unwrap();
        for filter in [
            HistoryFilter::default(),
            HistoryFilter {
                types: vec![oauth.clone()],
                scope: None,
                limit: Some(5),
            },
            HistoryFilter {
                types: vec![],
                scope: Some(Scope::Global),
                limit: None,
            },
            HistoryFilter {
                types: vec![oauth.clone()],
                scope: Some(Scope::Global),
                limit: None,
            },
        ] {
            store.history(&filter).unwrap();
        }
        store.private_key(&a.cert.thumbprint).unwrap().unwrap();
        // A certificate request: made, looked up by its key, cancelled.
        let key = crate::cert::keygen::generate(crate::cert::keygen::KeySpec::EcP256).unwrap();
        let fp = key.public_fingerprint().unwrap();
        let sans = vec!["contoso.com".to_string()];
        let id = store
            .create_request(
                &NewRequest {
                    usage_type: "OAuthTokenIssuer",
                    scope: "global",
                    subject: "CN=contoso.com",
                    sans: &sans,
                    key_algorithm: "EC P-256",
                    friendly_name: None,
                    template: None,
                    key: &key,
                    csr: "-----BEGIN CERTIFICATE REQUEST-----",
                    validity_days: Some(730),
                },
                &c,
            )
            .unwrap();
        assert!(store.pending_request_for(&fp).unwrap().is_some());
        assert_eq!(store.pending_request_count().unwrap(), 1);
        assert_eq!(store.requests(Some("pending")).unwrap().len(), 1);
        store.cancel_request(id, &c).unwrap();
        assert_eq!(store.closed_request_for(&fp).unwrap().unwrap().id, id);
        // An imported leaf's chain, completed from the store.
        store.complete_chain(&a.cert, &[]).unwrap();
        let held = a.cert.public_key.fingerprint().unwrap();
        assert_eq!(
            store.key_holder_for(&held).unwrap().as_deref(),
            Some(a.cert.thumbprint.as_str())
        );
        store
            .lite_mut()
            .trace_v2(
                rusqlite::trace::TraceEventCodes::empty(),
                None::<fn(rusqlite::trace::TraceEvent<'_>)>,
            )
            .unwrap();
        let mut out = seen.lock().unwrap().clone();
        out.sort();
        out.dedup();
        out
    }

    /// "Indexes for every query you run": a statement that looks rows up by
    /// a parameter must not scan a whole table. Only listings without any
    /// parameter ("every slot", "the whole trail") may.
    #[test]
    fn every_parameterised_query_uses_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let statements = traced_scenario(&mut store);
        assert!(
            statements.len() > 15,
            "the scenario ran too few statements: {statements:?}"
        );
        let mut offenders = Vec::new();
        for sql in &statements {
            let upper = sql.trim_start().to_ascii_uppercase();
            if !(upper.starts_with("SELECT")
                || upper.starts_with("UPDATE")
                || upper.starts_with("DELETE")
                || upper.starts_with("INSERT"))
            {
                continue;
            }
            let mut stmt = store
                .lite()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for step in plan {
                let full_scan = step.starts_with("SCAN ") && !step.contains("USING");
                if full_scan && sql.contains('?') {
                    offenders.push(format!(
                        "{step}  <=  {}",
                        sql.split_whitespace().collect::<Vec<_>>().join(" ")
                    ));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "full table scans:\n{}",
            offenders.join("\n")
        );
    }

    /// The engine asks when to wake at every turn: over many scheduled
    /// jobs that must read a few index entries, not every scheduled job
    /// (SQLite's planner chose jobs_by_state: 40 ms a wake over 100,000).
    #[test]
    fn the_next_wake_reads_a_few_rows_however_many_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let (_, b, slots) = oauth_pools(&mut store, 2000);
        let c = ctx();
        store
            .schedule(
                Some(&new_cert(&b)),
                &b.cert.thumbprint,
                &slots,
                c.now + chrono::Duration::days(1),
                false,
                &c,
            )
            .unwrap();
        let statements = traced(&mut store, |s| {
            let next = s.next_wake().unwrap();
            assert!(next.due.is_some());
        });
        assert_eq!(statements.len(), 2, "{statements:?}");
        for sql in statements {
            let mut stmt = store.lite().prepare(&sql).unwrap();
            let mut rows = stmt.query([]).unwrap();
            while rows.next().unwrap().is_some() {}
            drop(rows);
            let steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
            assert!(
                steps < 200,
                "{steps} steps over 2,000 scheduled jobs: {sql}"
            );
        }
    }

    /// With the log kept for readers, its size says nothing: a checkpoint
    /// is needed only after a write (this connection's or another's).
    #[test]
    fn a_checkpoint_is_needed_only_after_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.disable_auto_checkpoint().unwrap();
        let a = entry(include_bytes!(
            "../../tests/data/fixtures/oauth1-openssl3.pfx"
        ));
        store.import(&new_cert(&a), &ctx()).unwrap();
        assert!(store.needs_checkpoint());
        store.checkpoint().unwrap();
        assert!(store.wal_bytes() > 0, "the log is kept");
        assert!(!store.needs_checkpoint());
        // Another process writes.
        let mut other = Store::open(dir.path()).unwrap();
        let b = entry(include_bytes!(
            "../../tests/data/fixtures/oauth2-windows.pfx"
        ));
        other.import(&new_cert(&b), &ctx()).unwrap();
        assert!(store.needs_checkpoint());
        store.checkpoint().unwrap();
        assert!(!store.needs_checkpoint());
    }

    /// A full disk and a lock held past the busy timeout are explained
    /// naming the database and what to do.
    #[test]
    fn database_errors_are_explained_with_the_file_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let a = entry(include_bytes!(
            "../../tests/data/fixtures/oauth1-openssl3.pfx"
        ));
        // No room for one more page: SQLite's "database or disk is full".
        let pages: i64 = store
            .lite()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .lite()
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let err = store.import(&new_cert(&a), &ctx()).unwrap_err();
        let db = dir.path().join("certroll.db");
        let text = err.explain(dir.path()).unwrap();
        assert!(
            text.starts_with(&format!("{}: the disk is full", db.display())),
            "{text}"
        );

        let mut store = Store::open(dir.path()).unwrap();
        store.set_busy_timeout(Duration::from_millis(10)).unwrap();
        let holder = Connection::open(&db).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let err = store.import(&new_cert(&a), &ctx()).unwrap_err();
        let text = err.explain(dir.path()).unwrap();
        assert!(
            text.contains("the database is locked by another process"),
            "{text}"
        );
        assert!(text.contains(&format!("fuser {}", db.display())), "{text}");
        assert!(StoreError::NoSuchJob(1).explain(dir.path()).is_none());
    }

    /// Executes claimed jobs as owner "me" at `now`, every roll allowed.
    fn execute_as_me(store: &mut Store, jobs: &[Claimed], now: DateTime<Utc>) {
        let check = |_: &SlotKey, _: &StoredCert, _| Ok(());
        let clock = || now;
        let opts = ExecOptions {
            owner: "me",
            actor: "me",
            late_after: chrono::Duration::seconds(60),
            max_attempts: 10,
            check: &check,
            clock: &clock,
            at_instant: false,
        };
        store.execute(jobs, &opts).unwrap();
    }

    /// The two fixture certificates, and `n` pool slots of OAuthTokenIssuer
    /// with the first one current.
    fn oauth_pools(
        store: &mut Store,
        n: usize,
    ) -> (
        crate::cert::bundle::Entry,
        crate::cert::bundle::Entry,
        Vec<SlotKey>,
    ) {
        let a = entry(include_bytes!(
            "../../tests/data/fixtures/oauth1-openssl3.pfx"
        ));
        let b = entry(include_bytes!(
            "../../tests/data/fixtures/oauth2-windows.pfx"
        ));
        let slots: Vec<SlotKey> = (0..n)
            .map(|i| {
                SlotKey::new(
                    Scope::Pool(format!("p{i}.contoso.com")),
                    UsageType::from_canonical("OAuthTokenIssuer"),
                )
            })
            .collect();
        store
            .assign(Some(&new_cert(&a)), &a.cert.thumbprint, &slots, &ctx())
            .unwrap();
        (a, b, slots)
    }

    /// A statement whose plan depends on its bound values is expired when
    /// rusqlite's statement cache clears its bindings, and prepared again at
    /// every use. No statement of the roll queue's path may be like that.
    #[test]
    fn cached_statements_are_not_re_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let (_, b, slots) = oauth_pools(&mut store, 5);
        let c = ctx();
        let statements = traced(&mut store, |store| {
            store
                .schedule(
                    Some(&new_cert(&b)),
                    &b.cert.thumbprint,
                    &slots,
                    c.now,
                    false,
                    &c,
                )
                .unwrap();
            store.next_wake().unwrap();
            store.data_version().unwrap();
            let lease = chrono::Duration::seconds(30);
            let claimed = store
                .claim("me", c.now, Some(c.now), lease, 3, &JobFilter::default())
                .unwrap();
            execute_as_me(store, &claimed, c.now);
            let more = store
                .claim("me", c.now, None, lease, 1, &JobFilter::default())
                .unwrap();
            store.release("me", &[more[0].id], c.now, "test").unwrap();
            store.recover_expired(c.now).unwrap();
            store.recover_dead(c.now, &|_| true).unwrap();
        });
        assert!(statements.len() >= 10, "{statements:?}");
        let mut offenders = Vec::new();
        store.lite().execute_batch("BEGIN").unwrap();
        for sql in &statements {
            let upper = sql.trim_start().to_ascii_uppercase();
            if !["SELECT", "UPDATE", "INSERT", "DELETE"]
                .iter()
                .any(|k| upper.starts_with(k))
            {
                continue;
            }
            for _ in 0..3 {
                let mut stmt = store.lite().prepare_cached(sql).unwrap();
                let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
                let mut rows = stmt.query(rusqlite::params_from_iter(nulls)).unwrap();
                while let Ok(Some(_)) = rows.next() {}
            }
            let stmt = store.lite().prepare_cached(sql).unwrap();
            if stmt.get_status(rusqlite::StatementStatus::RePrepare) > 1 {
                offenders.push(sql.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        store.lite().execute_batch("ROLLBACK").unwrap();
        assert!(
            offenders.is_empty(),
            "re-prepared at every use:\n{}",
            offenders.join("\n")
        );
    }

    /// A roll promoted at its staging deadline writes `roll.forced` in its
    /// own transaction: with the roll when it happens, not at all when it
    /// does not (here: its lease was taken over before it ran).
    #[test]
    fn a_forced_roll_alerts_in_its_own_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let (_, b, slots) = oauth_pools(&mut store, 2);
        let c = ctx();
        store
            .schedule(
                Some(&new_cert(&b)),
                &b.cert.thumbprint,
                &slots,
                c.now,
                false,
                &c,
            )
            .unwrap();
        let lease = chrono::Duration::seconds(30);
        let claimed: Vec<Claimed> = store
            .claim("me", c.now, Some(c.now), lease, 2, &JobFilter::default())
            .unwrap()
            .into_iter()
            .map(|j| Claimed {
                forced: Some((
                    format!("job {} forced", j.id),
                    serde_json::json!({"job_id": j.id}),
                )),
                ..j
            })
            .collect();
        assert_eq!(claimed.len(), 2);
        store
            .lite()
            .execute(
                "UPDATE jobs SET lease_owner = 'someone else' WHERE id = ?1",
                [claimed[1].id],
            )
            .unwrap();
        execute_as_me(&mut store, &claimed, c.now);
        let forced: Vec<String> = store
            .lite()
            .prepare(
                "SELECT payload ->> '$.message' FROM outbox WHERE kind = 'roll.forced' ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(forced, [format!("job {} forced", claimed[0].id)]);
    }

    /// Jobs run together write many rows to a statement; each still gets
    /// its own outcome, rows and events, in order: a roll, a roll the
    /// policy refuses, and one whose lease another engine took over, all
    /// late, in one batch.
    #[test]
    fn a_batch_of_mixed_outcomes_writes_each_job_s_own_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let (_, b, slots) = oauth_pools(&mut store, 3);
        let c = ctx();
        store
            .schedule(
                Some(&new_cert(&b)),
                &b.cert.thumbprint,
                &slots,
                c.now,
                false,
                &c,
            )
            .unwrap();
        let lease = chrono::Duration::hours(1);
        let claimed = store
            .claim("me", c.now, Some(c.now), lease, 10, &JobFilter::default())
            .unwrap();
        assert_eq!(claimed.len(), 3);
        store
            .lite()
            .execute(
                "UPDATE jobs SET lease_owner = 'someone else' WHERE id = ?1",
                [claimed[2].id],
            )
            .unwrap();
        let refused = claimed[1].slot.clone();
        let check = move |s: &SlotKey, _: &StoredCert, _| {
            if *s == refused {
                Err("refused by the test".to_string())
            } else {
                Ok(())
            }
        };
        let late = c.now + chrono::Duration::minutes(2);
        let clock = || late;
        let opts = ExecOptions {
            owner: "me",
            actor: "me",
            late_after: chrono::Duration::seconds(60),
            max_attempts: 10,
            check: &check,
            clock: &clock,
            at_instant: false,
        };
        let results = store.execute(&claimed, &opts).unwrap();
        assert!(matches!(
            results[0].outcome,
            RollOutcome::Succeeded { late: true, .. }
        ));
        assert!(
            matches!(&results[1].outcome, RollOutcome::Failed { reason, .. } if reason == "refused by the test")
        );
        assert!(matches!(results[2].outcome, RollOutcome::LeaseLost));
        let kinds: Vec<String> = store
            .outbox_kinds()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("roll.") && k != "roll.scheduled")
            .collect();
        assert_eq!(
            kinds,
            ["roll.succeeded", "roll.late", "roll.failed", "roll.late"]
        );
        let trail: Vec<(String, Option<String>)> = store
            .history(&HistoryFilter::default())
            .unwrap()
            .into_iter()
            .filter(|e| e.action.starts_with("roll"))
            .map(|e| (e.action, e.slot.map(|s| s.to_string())))
            .collect();
        assert_eq!(
            trail,
            [
                ("roll".to_string(), Some(slots[0].to_string())),
                ("roll-failed".to_string(), Some(slots[1].to_string())),
            ]
        );
        let states: Vec<&str> = claimed
            .iter()
            .map(|j| store.job(j.id).unwrap().unwrap().state.as_str())
            .collect();
        assert_eq!(states, ["succeeded", "failed", "running"]);
        let current = |k: &SlotKey| store.slot_state(k).unwrap().unwrap();
        assert_eq!(
            current(&slots[0]).current.as_deref(),
            Some(b.cert.thumbprint.as_str())
        );
        assert!(current(&slots[0]).pending.is_none());
        for k in &slots[1..] {
            assert_eq!(
                current(k).pending.map(|p| p.thumbprint),
                Some(b.cert.thumbprint.clone())
            );
        }
    }

    #[test]
    fn assign_import_and_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let statements = traced_scenario(&mut store);
        assert!(!statements.is_empty());
        let slots = store.slots(&[], None).unwrap();
        assert_eq!(slots.len(), 2);
        let global = slots.iter().find(|s| s.key.scope == Scope::Global).unwrap();
        assert!(global.previous.is_none());
        assert!(global.pending.is_none());
        let kinds: Vec<String> = store
            .outbox_kinds()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            kinds,
            [
                "certificate.assigned",
                "certificate.assigned",
                "certificate.assigned",
                "certificate.removed",
                "certificate.removed",
                "request.created",
                "request.cancelled"
            ]
        );
    }

    #[test]
    fn reopening_is_idempotent_and_keeps_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }
}
