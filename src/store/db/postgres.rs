//! Statements on PostgreSQL, through the synchronous `postgres` client
//! (which runs its own small runtime: it must never be called on a tokio
//! worker). The store's `?N` placeholders become `$N`; statements are
//! prepared once per connection and kept. A connection lost outside a
//! transaction is opened again on next use (with its LISTEN), so every
//! loop survives a restart or fail-over of the database; one lost inside a
//! transaction fails that transaction, which is then not applied.
//!
//! Wake-ups: every change to the tables the loops watch raises a
//! `NOTIFY certroll` (statement triggers, see the schema) and bumps the
//! `certroll_changes` sequence. [`PgConn::change_counter`] counts the
//! notifications received, or with `listen = false` (poolers in
//! transaction mode drop LISTEN) reads the sequence.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::{Row, Value};
use crate::store::{DbError, StoreError};

/// How the connection is encrypted (libpq's `sslmode`, on rustls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP (or a Unix socket).
    Disable,
    /// TLS when the server offers it, without checking its certificate
    /// (libpq's default).
    #[default]
    Prefer,
    /// TLS always, without checking the server's certificate.
    Require,
    /// TLS always, the server's certificate checked against `ca_file` (or
    /// the Mozilla roots) and its name against the host.
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where a PostgreSQL store is, parsed from its URL: everything needed to
/// connect (again). Its `Display` shows no password.
#[derive(Clone)]
pub struct PostgresTarget {
    config: postgres::Config,
    display: String,
    sslmode: SslMode,
    ca_file: Option<PathBuf>,
    /// Wake-ups through LISTEN/NOTIFY (else the change sequence is polled).
    pub listen: bool,
}

impl fmt::Display for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresTarget({})", self.display)
    }
}

impl PostgresTarget {
    /// Parses `postgres://user@host:port/dbname` (or libpq's `key=value`
    /// form). `password` (from a file or the environment) overrides one in
    /// the URL. `sslmode` may also be given in the URL.
    pub fn parse(
        url: &str,
        password: Option<&str>,
        sslmode: Option<SslMode>,
        ca_file: Option<PathBuf>,
        listen: bool,
    ) -> Result<PostgresTarget, String> {
        let (url, url_sslmode) = take_sslmode(url)?;
        let mut config: postgres::Config = url.parse().map_err(|e| {
            // The parser's message may quote the URL, password included.
            let _ = e;
            "not a PostgreSQL URL (expected postgres://USER@HOST:PORT/DBNAME)".to_string()
        })?;
        if let Some(p) = password {
            config.password(p);
        }
        if config.get_user().is_none() {
            return Err("the PostgreSQL URL names no user (postgres://USER@HOST/DBNAME)".into());
        }
        if config.get_hosts().is_empty() {
            return Err("the PostgreSQL URL names no host".into());
        }
        let sslmode = sslmode.or(url_sslmode).unwrap_or_default();
        config.ssl_mode(match sslmode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => postgres::config::SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // A link that dies without a word (a cut cable, a lost host) is
        // noticed within seconds, not the kernel's two hours.
        config.keepalives_idle(Duration::from_secs(10));
        config.keepalives_interval(Duration::from_secs(3));
        config.keepalives_retries(3);
        config.tcp_user_timeout(Duration::from_secs(20));
        if config.get_application_name().is_none() {
            config.application_name("certroll");
        }
        let display = describe(&config);
        Ok(PostgresTarget {
            config,
            display,
            sslmode,
            ca_file,
            listen,
        })
    }

    /// The user, host, port and database, for messages (no password).
    pub fn describe(&self) -> &str {
        &self.display
    }

    /// The same server and user, database `dbname`.
    pub fn with_dbname(&self, dbname: &str) -> PostgresTarget {
        let mut t = self.clone();
        t.config.dbname(dbname);
        t.display = describe(&t.config);
        t
    }

    /// Creates the empty database `name` on this server (the user needs
    /// CREATEDB), dropping one left by an earlier run; for `certroll
    /// bench`'s scratch stores.
    pub fn create_scratch_database(&self, name: &str) -> Result<PostgresTarget, StoreError> {
        let conn = PgConn::connect(self)?;
        conn.batch(&format!("DROP DATABASE IF EXISTS {name}"))?;
        conn.batch(&format!("CREATE DATABASE {name}"))?;
        Ok(self.with_dbname(name))
    }

    /// The `[store]` section of a configuration that reaches this database
    /// (for a process this one starts), and the password to hand it
    /// through `CERTROLL_STORE_PASSWORD`: never in a file or an argument.
    pub fn store_section(&self) -> (String, Option<String>) {
        let mut toml = format!(
            "[store]\nurl = \"{}\"\nsslmode = \"{}\"\nlisten = {}\n",
            self.display,
            self.sslmode.as_str(),
            self.listen
        );
        if let Some(ca) = &self.ca_file {
            toml.push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
        }
        let password = self
            .config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        (toml, password)
    }

    /// Drops the scratch database `name`. The connections this user left
    /// to it are ended first; not with `WITH (FORCE)`, which fails (a user
    /// that is no superuser may not end it) when an autovacuum worker
    /// happens to be in the database, and which a plain DROP waits out.
    pub fn drop_scratch_database(&self, name: &str) -> Result<(), StoreError> {
        let conn = PgConn::connect(self)?;
        let mut tries = 0;
        loop {
            conn.exec(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = ?1 AND pid <> pg_backend_pid() AND usename = current_user",
                &[Value::Text(name)],
            )?;
            match conn.batch(&format!("DROP DATABASE IF EXISTS {name}")) {
                // A backend being ended may still be there for a moment.
                Err(e) if tries < 20 && e.to_string().contains("being accessed by other users") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                r => return r,
            }
        }
    }
}

/// `sslmode=verify-full` in the URL: the client library knows only the
/// modes up to `require`, so the store reads it itself.
fn take_sslmode(url: &str) -> Result<(String, Option<SslMode>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut mode = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", v)) => {
                mode = Some(SslMode::parse(v).ok_or_else(|| {
                    format!("sslmode '{v}' is not one of disable, prefer, require, verify-full")
                })?);
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, mode))
}

fn describe(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{}:{}/{}",
        c.get_user().unwrap_or_default(),
        host,
        port,
        c.get_dbname().unwrap_or(c.get_user().unwrap_or_default())
    )
}

/// A connection, its prepared statements, and its wake-up counter.
pub(crate) struct PgConn {
    client: RefCell<Option<postgres::Client>>,
    stmts: RefCell<HashMap<String, postgres::Statement>>,
    target: PostgresTarget,
    /// Notifications received (or the sequence read), see `change_counter`.
    changes: Cell<i64>,
    in_tx: Cell<bool>,
    /// This connection's server process: its own notifications are not
    /// news (SQLite's data_version, likewise, ignores its own commits).
    pid: Cell<i32>,
}

impl Drop for PgConn {
    /// The client's drop says goodbye to the server, blocking: on a thread
    /// that drives async tasks it would panic, so there it is handed to a
    /// thread of its own.
    fn drop(&mut self) {
        if let Some(client) = self.client.get_mut().take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("certroll-pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

/// At most this many prepared statements are kept per connection (the
/// store's statements are a few dozen; filters with IN lists vary).
const STATEMENT_CACHE: usize = 256;

impl PgConn {
    pub fn connect(target: &PostgresTarget) -> Result<PgConn, StoreError> {
        let conn = PgConn {
            client: RefCell::new(None),
            stmts: RefCell::new(HashMap::new()),
            target: target.clone(),
            changes: Cell::new(0),
            in_tx: Cell::new(false),
            pid: Cell::new(0),
        };
        conn.reconnect()?;
        Ok(conn)
    }

    pub fn target(&self) -> &PostgresTarget {
        &self.target
    }

    fn reconnect(&self) -> Result<(), StoreError> {
        self.stmts.borrow_mut().clear();
        *self.client.borrow_mut() = None;
        let tls_error = |e: String| StoreError::Unavailable {
            store: self.target.display.clone(),
            reason: e,
        };
        let mut client = match self.target.sslmode {
            SslMode::Disable => self.target.config.connect(postgres::NoTls),
            mode => {
                let tls = tls_config(mode, self.target.ca_file.as_deref()).map_err(tls_error)?;
                self.target
                    .config
                    .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            }
        }
        .map_err(|e| self.unavailable(&e))?;
        // A lock another engine holds is waited for as long as SQLite's
        // busy timeout, then the statement fails as busy.
        client
            .batch_execute("SET lock_timeout = '10s'; SET TIME ZONE 'UTC'")
            .map_err(|e| self.unavailable(&e))?;
        if self.target.listen {
            client
                .batch_execute("LISTEN certroll")
                .map_err(|e| self.unavailable(&e))?;
        }
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.unavailable(&e))?;
        self.pid.set(pid);
        *self.client.borrow_mut() = Some(client);
        // Whatever happened while disconnected went unnoticed.
        self.changes.set(self.changes.get() + 1);
        Ok(())
    }

    fn unavailable(&self, e: &postgres::Error) -> StoreError {
        StoreError::Unavailable {
            store: self.target.display.clone(),
            reason: error_text(e),
        }
    }

    /// Runs `f` on the client, connecting again first if the connection
    /// was lost while no transaction was open.
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let lost = self.client.borrow().as_ref().is_none_or(|c| c.is_closed());
        if lost {
            if self.in_tx.get() {
                // The transaction died with the connection: every statement
                // fails until its owner ends it (see `batch`), so none runs
                // outside it on a new connection.
                return Err(StoreError::Unavailable {
                    store: self.target.display.clone(),
                    reason: "the connection was lost during a transaction; nothing of it applied"
                        .into(),
                });
            }
            self.reconnect()?;
        }
        let mut guard = self.client.borrow_mut();
        let client = guard.as_mut().expect("connected above");
        f(client).map_err(|e| {
            if e.is_closed() || e.as_db_error().is_none() && e.code().is_none() {
                self.unavailable(&e)
            } else {
                StoreError::Db(DbError::Postgres(e))
            }
        })
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(s) = self.stmts.borrow().get(sql) {
            return Ok(s.clone());
        }
        let translated = placeholders(sql);
        let stmt = self.with_client(|c| c.prepare(&translated))?;
        let mut cache = self.stmts.borrow_mut();
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let lost = self.client.borrow().as_ref().is_none_or(|c| c.is_closed());
        if lost && self.in_tx.get() && sql == "ROLLBACK" {
            // Rolled back already, by the server, when the link went.
            self.in_tx.set(false);
            return Ok(());
        }
        let r = self.with_client(|c| c.batch_execute(sql));
        match sql {
            "COMMIT" | "ROLLBACK" => self.in_tx.set(false),
            _ => {}
        }
        r
    }

    pub fn begin(&self) -> Result<(), StoreError> {
        self.batch("BEGIN")?;
        self.in_tx.set(true);
        Ok(())
    }

    pub fn exec(&self, sql: &str, params: &[Value<'_>]) -> Result<usize, StoreError> {
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let n = self.with_client(|c| c.execute(&stmt, &refs))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub fn rows<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let stmt = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = self.with_client(|c| c.query(&stmt, &refs))?;
        rows.iter().map(|r| read(&Row::Postgres(r))).collect()
    }

    /// Changes whenever another connection committed a change the loops
    /// watch (and after a reconnect, when changes may have been missed).
    pub fn change_counter(&self) -> Result<i64, StoreError> {
        if self.target.listen {
            let n = self.with_client(|c| {
                let mut n = 0i64;
                let mut notes = c.notifications();
                // The non-blocking iterator never lets the client's runtime
                // read the socket, so it only sees notifications a query
                // happened to bring; a 1 ms wait lets it read them.
                let mut it = notes.timeout_iter(std::time::Duration::from_millis(1));
                while let Some(note) = postgres::fallible_iterator::FallibleIterator::next(&mut it)?
                {
                    if note.process_id() != self.pid.get() {
                        n += 1;
                    }
                }
                Ok(n)
            })?;
            self.changes.set(self.changes.get() + n);
            Ok(self.changes.get())
        } else {
            let v: i64 = self
                .rows("SELECT last_value FROM certroll_changes", &[], |r| r.int(0))?
                .into_iter()
                .next()
                .unwrap_or(0);
            Ok(v + self.changes.get())
        }
    }
}

/// `?N` placeholders as `$N`, outside quoted literals and identifiers.
pub(super) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    out.push(c);
                }
                '?' if chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
                _ => out.push(c),
            },
        }
    }
    out
}

/// The message of a client error, with the server's detail when it gave
/// one, never its connection parameters.
pub(crate) fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                let t = inner.to_string();
                if !s.contains(&t) {
                    s.push_str(": ");
                    s.push_str(&t);
                }
                src = inner.source();
            }
            s
        }
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to {ty}").into()),
            },
            Value::Text(t) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    t.to_sql(ty, out)
                }
                _ => Err(format!("text cannot be bound to {ty}").into()),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                _ => Err(format!("bytes cannot be bound to {ty}").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

pub(super) fn opt_int(r: &postgres::Row, i: usize) -> Result<Option<i64>, StoreError> {
    let ty = r.columns().get(i).map(|c| c.type_().clone());
    Ok(match ty {
        Some(Type::INT4) => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
        Some(Type::INT2) => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
        Some(Type::BOOL) => r.try_get::<_, Option<bool>>(i)?.map(i64::from),
        _ => r.try_get::<_, Option<i64>>(i)?,
    })
}

/// rustls on ring: `verify-full` checks the chain (against `ca_file`, else
/// the Mozilla roots) and the host name; `prefer` and `require` encrypt
/// without checking, as libpq does.
fn tls_config(
    mode: SslMode,
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    if mode != SslMode::VerifyFull {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem =
                crate::input::read(path, crate::input::MAX_TEXT_FILE).map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&pem);
            let blocks = crate::cert::pem::parse_blocks(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for b in blocks.into_iter().filter(|b| b.label == "CERTIFICATE") {
                roots
                    .add(rustls::pki_types::CertificateDer::from(b.der))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in the CA file", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `sslmode=require`: encrypted, the server's certificate not checked
/// (its handshake signature still is).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_literals() {
        assert_eq!(
            placeholders("SELECT ?1, '?2', \"a?3\" FROM t WHERE x = ?12 AND y = ?"),
            "SELECT $1, '?2', \"a?3\" FROM t WHERE x = $12 AND y = ?"
        );
    }

    #[test]
    fn the_target_shows_no_password_and_reads_sslmode() {
        let t = PostgresTarget::parse(
            "postgres://certroll:s3cret@db.example:5433/pool?sslmode=verify-full",
            None,
            None,
            None,
            true,
        )
        .unwrap();
        assert_eq!(t.to_string(), "postgres://certroll@db.example:5433/pool");
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        assert!(!format!("{t:?}").contains("s3cret"));
        let err =
            PostgresTarget::parse("postgres://u:pw@h/d?sslmode=allow", None, None, None, true)
                .unwrap_err();
        assert!(err.contains("sslmode 'allow'"), "{err}");
        let err =
            PostgresTarget::parse("postgres://h:99999/d", None, None, None, true).unwrap_err();
        assert!(!err.contains("99999") || err.contains("URL"), "{err}");
    }
}
