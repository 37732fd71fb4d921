//! Test helpers: a temporary installation (config + data directory) per
//! test, the real binary run against it, and a snapshot of the whole store
//! to prove that a refused operation changed nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

pub const PASSWORD: &str = "Passw0rd!";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fixtures")
        .join(name)
}

pub fn password_file() -> PathBuf {
    fixture("password.txt")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_certroll"))
}

/// A policy table that lets OAuthTokenIssuer be assigned at any scope.
pub const ANY_SCOPE: &str =
    "[policy.OAuthTokenIssuer]\nscopes = [\"global\", \"site\", \"pool\", \"server\"]\n";

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The run failed with `code` and exactly one stderr line containing
    /// every one of `needles`.
    #[track_caller]
    pub fn assert_one_line_error(&self, code: i32, needles: &[&str]) {
        assert_eq!(self.code, code, "exit code; stderr: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "one stderr line expected, got:\n{}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        for n in needles {
            assert!(lines[0].contains(n), "{:?} not in {:?}", n, lines[0]);
        }
        // A reason printed twice ("x: reason: reason") means an error both
        // shows its source and declares it as its source.
        if let Some((head, tail)) = lines[0].rsplit_once(": ") {
            assert!(!head.contains(tail), "the reason repeats in {:?}", lines[0]);
        }
    }
}

/// One test's installation.
pub struct Env {
    pub dir: TempDir,
    pub data: PathBuf,
    pub config: PathBuf,
    /// The PostgreSQL database of the test's store (`Env::postgres`);
    /// `None`: SQLite in `data`.
    pub pg_db: Option<crate::pg::Db>,
}

impl Env {
    /// SIP domain contoso.com, the fixtures' domain.
    pub fn new() -> Env {
        Env::with_config("sip_domain = \"contoso.com\"\n")
    }

    /// The default set-up, with OAuthTokenIssuer allowed at every kind of
    /// scope (its policy allows only global by default).
    pub fn any_scope() -> Env {
        Env::with_config(&format!("sip_domain = \"contoso.com\"\n{ANY_SCOPE}"))
    }

    pub fn with_config(text: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let config = dir.path().join("certroll.toml");
        std::fs::write(&config, text).expect("write config");
        let mut env = Env {
            dir,
            data,
            config,
            pg_db: None,
        };
        // CERTROLL_TEST_PG=1 runs every test on PostgreSQL (tests that open
        // certroll.db themselves then fail: a way to find statements that
        // only SQLite runs, not part of the suite).
        if std::env::var_os("CERTROLL_TEST_PG").is_some() && !text.contains("[store]") {
            let db = crate::pg::Db::new();
            let pw = env.path("db-password");
            std::fs::write(&pw, format!("{}\n", crate::pg::PASSWORD)).unwrap();
            std::fs::write(&env.config, format!("{text}\n{}", db.store_toml(&pw))).unwrap();
            env.pg_db = Some(db);
        }
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_remove("RUST_LOG")
            .env_remove("CERTROLL_PASSWORD")
            .env("CERTROLL_CONFIG", &self.config)
            .env("CERTROLL_DATA_DIR", &self.data)
            .env("USER", "tester")
            // Text times are shown in the system zone when none is configured.
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run certroll"))
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn certroll");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().expect("wait"))
    }

    /// Runs and asserts success.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "certroll {args:?} failed:\n{}{}",
            r.stdout, r.stderr
        );
        r
    }

    /// Imports a fixture PFX with the fixtures' password.
    #[track_caller]
    pub fn import(&self, pfx: &str, extra: &[&str]) -> Run {
        let path = fixture(pfx);
        let pw = password_file();
        let mut args = vec![
            "import",
            "--path",
            path.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Imports the test PKI's root and issuing CA (the issuers of the
    /// fixtures' leaves), as an operator imports a CA's certificates before
    /// a leaf that comes without its chain.
    pub fn import_test_cas(&self) {
        for ca in ["root.crt.pem", "int.crt.pem"] {
            let path = fixture(ca);
            self.ok(&["import", "--path", path.to_str().unwrap()]);
        }
    }

    /// Imports a fixture certificate with a separate fixture key file.
    pub fn import_with_key(&self, crt: &str, key: &str, extra: &[&str]) -> Run {
        let (crt, key) = (fixture(crt), fixture(key));
        let mut args = vec![
            "import",
            "--path",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub fn get_json(&self) -> Value {
        self.ok(&["get", "--json"]).json()
    }

    /// Every row of every table, in a stable order: equal snapshots mean an
    /// unchanged store.
    pub fn snapshot(&self) -> String {
        let db = self.data.join("certroll.db");
        if !db.exists() {
            return "<no database>".into();
        }
        let conn = rusqlite::Connection::open(&db).expect("open db");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut out = String::new();
        let mut rows_seen = 0;
        for t in tables {
            out.push_str(&format!("== {t}\n"));
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {t} ORDER BY 1"))
                .unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                out.push_str(&cells.join("|"));
                out.push('\n');
                rows_seen += 1;
            }
        }
        // A database created on first use but still empty is the same state
        // as none at all.
        if rows_seen == 0 {
            return "<no database>".into();
        }
        out
    }

    /// Count of rows in a table.
    pub fn count(&self, table: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.data.join("certroll.db")).expect("open db");
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
}

/// The thumbprint of a fixture certificate, as certroll computes it.
pub fn thumbprint(crt_pem: &str) -> String {
    thumbprint_of(&fixture(crt_pem))
}

/// The SHA-1 thumbprint of any PEM certificate file, as openssl computes it.
pub fn thumbprint_of(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(pem)
        .output()
        .expect("openssl");
    let s = String::from_utf8(out.stdout).unwrap();
    s.trim().rsplit('=').next().unwrap().replace(':', "")
}

/// The audit log's actions, oldest first.
pub fn history_actions(env: &Env) -> Vec<String> {
    env.ok(&["history", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap().to_string())
        .collect()
}

/// Runs openssl in `dir`, asserting success.
#[track_caller]
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate for contoso.com signed by the fixtures' key of `key`,
/// valid from yesterday for `days` days, written as `name.pem` (cert and
/// key) in `dir`.
pub fn short_lived_pem(dir: &Path, name: &str, days: u32) -> PathBuf {
    let key = fixture("oauth1.key.pem");
    let cert = dir.join(format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/CN=contoso.com",
            "-addext",
            "subjectAltName=DNS:contoso.com",
            "-days",
            &days.to_string(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    let pem = dir.join(format!("{name}.pem"));
    let mut both = std::fs::read(&cert).unwrap();
    both.extend(std::fs::read(&key).unwrap());
    std::fs::write(&pem, both).unwrap();
    pem
}

/// Polls `cond` until it holds or `secs` pass; panics with `what` on timeout.
#[track_caller]
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Fails the test, saying what to install, when `cmd` is not on PATH
/// (`tests/run` installs every peer; a test never skips silently).
pub fn require_tool(cmd: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{cmd} is not installed: install {package} (tests/run installs every test peer)"
    );
}

/// Waits until the wall clock passes `t`.
pub fn wait_past(t: chrono::DateTime<chrono::Utc>) {
    let secs = (t - chrono::Utc::now()).num_seconds().max(0) as u64 + 10;
    wait_until(secs, "the instant to pass", || chrono::Utc::now() > t);
}

/// A running `certroll serve`; killed if still running when dropped.
pub struct Serve {
    pub child: std::process::Child,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Env {
    /// Starts `certroll serve -vv` and waits until it says it is ready.
    pub fn serve(&self) -> Serve {
        self.serve_with(&["-vv"])
    }

    /// Starts `certroll serve` with `args` and waits until it is ready.
    pub fn serve_with(&self, args: &[&str]) -> Serve {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        self.spawn_until(&all, "engine started")
    }

    /// Starts `certroll agent --server NAME -vv` and waits until it is
    /// ready.
    pub fn agent(&self, server: &str) -> Serve {
        self.spawn_until(
            &["agent", "--server", server, "-vv"],
            "certroll agent: ready",
        )
    }

    /// Starts certroll with `all` and waits until its log says `ready`.
    pub fn spawn_until(&self, all: &[&str], ready: &str) -> Serve {
        self.spawn_until_env(all, ready, &[])
    }

    /// As `spawn_until`, with these environment variables set.
    pub fn spawn_until_env(&self, all: &[&str], ready: &str, envs: &[(&str, &str)]) -> Serve {
        use std::io::BufRead;
        let mut child = self
            .command(all)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let serve = Serve {
            child,
            log,
            reader: Some(reader),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !serve.log().contains(ready) {
            assert!(
                std::time::Instant::now() < deadline,
                "{all:?} was not ready within 20 s:\n{}",
                serve.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        serve
    }
}

impl Serve {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then waits; returns the exit code.
    pub fn stop(mut self) -> i32 {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let code = self.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        code
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        self.wait();
    }

    fn wait(&mut self) -> i32 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Opens the test's store through the library (fast set-up of many slots).
pub fn store(env: &Env) -> certroll::store::Store {
    certroll::store::Store::open_at(&env.location()).expect("open store")
}

/// A fixture PFX parsed into an importable entry.
pub fn entry(pfx: &str) -> certroll::cert::bundle::Entry {
    let data = std::fs::read(fixture(pfx)).unwrap();
    certroll::cert::bundle::parse(&certroll::cert::bundle::Input {
        data: &data,
        key_file: None,
        password: Some(PASSWORD),
    })
    .unwrap()
    .entries
    .remove(0)
}

pub fn new_cert(e: &certroll::cert::bundle::Entry) -> certroll::store::NewCert<'_> {
    certroll::store::NewCert {
        cert: &e.cert,
        chain: &e.chain,
        key: e.key.as_ref(),
        friendly_name: e.friendly_name.as_deref(),
        source_file: None,
        request: None,
    }
}

pub fn test_ctx() -> certroll::store::OpCtx {
    certroll::store::OpCtx {
        now: chrono::Utc::now(),
        actor: "test".into(),
    }
}

/// `n` OAuthTokenIssuer slots (pool:pNNNN.contoso.com) with oauth1 current
/// and oauth2 scheduled at `at`. Returns the slots.
pub fn many_scheduled(
    env: &Env,
    n: usize,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<certroll::cert::SlotKey> {
    use certroll::cert::{Scope, SlotKey, UsageType};
    let (a, b) = (entry("oauth1-openssl3.pfx"), entry("oauth2-windows.pfx"));
    let slots: Vec<SlotKey> = (0..n)
        .map(|i| {
            SlotKey::new(
                Scope::Pool(format!("p{i:05}.contoso.com")),
                UsageType::from_canonical("OAuthTokenIssuer"),
            )
        })
        .collect();
    let mut s = store(env);
    let ctx = test_ctx();
    s.assign(Some(&new_cert(&a)), &a.cert.thumbprint, &slots, &ctx)
        .unwrap();
    s.schedule(
        Some(&new_cert(&b)),
        &b.cert.thumbprint,
        &slots,
        at,
        false,
        &ctx,
    )
    .unwrap();
    slots
}

/// Runs a query returning one integer against the test's database.
pub fn sql_i64(env: &Env, sql: &str) -> i64 {
    if let Some(db) = &env.pg_db {
        return db.i64(sql);
    }
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).expect("open db");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A self-signed contoso.com certificate (with the oauth1 fixture key)
/// valid from an hour ago until `not_after`, as `short-NNN.pem` (cert and
/// key) in `dir`. `openssl ca` is the one OpenSSL 3.0 tool that takes an
/// exact end date.
pub fn cert_valid_until(dir: &Path, not_after: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let work = dir.join(format!("ca-{}", not_after.timestamp_millis()));
    std::fs::create_dir_all(work.join("newcerts")).unwrap();
    std::fs::write(work.join("index.txt"), "").unwrap();
    std::fs::write(work.join("serial"), "1000\n").unwrap();
    std::fs::write(
        work.join("ca.cnf"),
        "[ ca ]\ndefault_ca = c\n[ c ]\ndir = .\ndatabase = index.txt\nnew_certs_dir = newcerts\nserial = serial\n\
         default_md = sha256\npolicy = p\nunique_subject = no\n[ p ]\ncommonName = optional\n\
         [ ext ]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:contoso.com\n",
    )
    .unwrap();
    let key = fixture("oauth1.key.pem");
    let key = key.to_str().unwrap();
    openssl(
        &work,
        &[
            "req",
            "-new",
            "-key",
            key,
            "-subj",
            "/CN=contoso.com",
            "-out",
            "req.csr",
        ],
    );
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y%m%d%H%M%SZ").to_string();
    openssl(
        &work,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            key,
            "-in",
            "req.csr",
            "-out",
            "cert.pem",
            "-startdate",
            &fmt(chrono::Utc::now() - chrono::Duration::hours(1)),
            "-enddate",
            &fmt(not_after),
            "-extensions",
            "ext",
            "-notext",
        ],
    );
    let pem = work.join("bundle.pem");
    let mut both = std::fs::read(work.join("cert.pem")).unwrap();
    both.extend(std::fs::read(fixture("oauth1.key.pem")).unwrap());
    std::fs::write(&pem, both).unwrap();
    pem
}

/// A plain HTTP/1.1 GET on loopback: (status, body). The body is checked
/// against Content-Length, so a truncated answer is an error, not a body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, &[], None).map(|(status, _, body)| (status, body))
}

/// One HTTP/1.1 request on loopback with these headers and body: (status,
/// the head's header lines, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, Vec<String>, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    if raw.is_empty() {
        // Closed before answering (a listener shutting down drops the
        // connections it has not accepted yet): no answer, not a broken one.
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed without an answer",
        ));
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad =
        |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{m}: {text:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let length: Option<usize> = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    });
    if let Some(n) = length
        && n != body.len()
    {
        return Err(bad(&format!(
            "body of {} bytes, Content-Length {n}",
            body.len()
        )));
    }
    let lines = head.lines().skip(1).map(str::to_string).collect();
    Ok((status, lines, body.to_string()))
}

/// A new certificate for the oauth1 fixture's key (a renewal with the same
/// key), valid for 400 days, as a PEM file without the key.
pub fn renewed_oauth1(dir: &Path) -> PathBuf {
    let bundle = cert_valid_until(dir, chrono::Utc::now() + chrono::Duration::days(400));
    bundle.parent().unwrap().join("cert.pem")
}
