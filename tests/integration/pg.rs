//! A private PostgreSQL cluster for the test run, started by the tests
//! themselves: `initdb` and `pg_ctl` from Debian's
//! `/usr/lib/postgresql/VERSION/bin`, run as the `postgres` user (through
//! `runuser`) when the tests run as root, on a free loopback port with its
//! socket in a temporary directory. Each test gets a database of its own,
//! reached over TCP with a password (SCRAM), as a real deployment would.
//! The cluster stops when the test process exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::util::Env;

/// The role certroll connects as, and its password.
pub const ROLE: &str = "certroll";
pub const PASSWORD: &str = "pg-Secret-7";

pub struct Cluster {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub data: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static STOP: OnceLock<(PathBuf, PathBuf, bool)> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

extern "C" fn stop_at_exit() {
    if let Some((bin, data, as_postgres)) = STOP.get() {
        let _ = pg_command(bin, "pg_ctl", *as_postgres)
            .args([
                "-D",
                &data.display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        if let Some(root) = data.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with initdb.
fn find_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/VERSION/bin/initdb): install the postgresql package (tests/run installs every test peer)"
        )
    })
}

fn pg_command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
    let exe = bin.join(tool);
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[track_caller]
fn run_ok(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// The test run's cluster, started on first use.
    pub fn get() -> &'static Cluster {
        CLUSTER.get_or_init(|| Cluster::start("shared"))
    }

    /// A cluster of the test's own, for a test that stops and starts
    /// PostgreSQL (the shared one serves the other tests meanwhile);
    /// stopped when dropped.
    pub fn private() -> Private {
        Private(Cluster::start(&format!(
            "private{}",
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        )))
    }

    fn start(name: &str) -> Cluster {
        let bin = find_bin();
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let root = std::env::temp_dir().join(format!("certroll-pg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        if as_postgres {
            run_ok(
                {
                    let mut c = Command::new("chown");
                    c.args(["postgres:postgres"]).arg(&root);
                    c
                },
                "chown the cluster directory",
            );
        }
        let data = root.join("data");
        let socket = root.clone();
        let pwfile = root.join("pw");
        std::fs::write(&pwfile, "superpw\n").unwrap();
        if as_postgres {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pwfile)
                .status();
        }
        let mut init = pg_command(&bin, "initdb", as_postgres);
        init.arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        run_ok(init, "initdb");
        let port = free_port();
        if name == "shared" {
            let _ = STOP.set((bin.clone(), data.clone(), as_postgres));
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(stop_at_exit) };
        }
        let mut ctl = pg_command(&bin, "pg_ctl", as_postgres);
        ctl.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("log"))
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
                socket.display()
            ))
            .arg("start");
        run_ok(ctl, "pg_ctl start");
        let cluster = Cluster {
            bin,
            root,
            data,
            socket,
            port,
            as_postgres,
        };
        cluster.admin(&format!(
            "CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}' CREATEDB"
        ));
        cluster
    }

    /// Runs SQL as the superuser, over the socket.
    pub fn admin(&self, sql: &str) {
        self.admin_on("postgres", sql);
    }

    pub fn admin_on(&self, db: &str, sql: &str) {
        let mut c = self.client(db);
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A superuser client on `db`.
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.socket)
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"))
    }

    /// A new, empty database owned by certroll's role; its name.
    ///
    pub fn new_db(&self) -> String {
        let n = NEXT_DB.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        self.admin(&format!("CREATE DATABASE {name} OWNER {ROLE}"));
        name
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{db}", self.port)
    }

    fn ctl(&self, args: &[&str]) {
        let mut c = pg_command(&self.bin, "pg_ctl", self.as_postgres);
        c.arg("-D").arg(&self.data).args(args);
        run_ok(c, &format!("pg_ctl {}", args.join(" ")));
    }

    /// Stops the server at once (a crash: `-m immediate`).
    pub fn stop_immediate(&self) {
        self.ctl(&["-m", "immediate", "-w", "stop"]);
    }

    /// Starts it again on the same port.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.socket.display()
        );
        let log = self.root.join("log").display().to_string();
        self.ctl(&["-l", &log, "-w", "-o", &opts, "start"]);
    }
}

/// A cluster of one test's own (see [`Cluster::private`]).
pub struct Private(pub Cluster);

impl std::ops::Deref for Private {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.0
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let mut c = pg_command(&self.bin, "pg_ctl", self.as_postgres);
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = c.output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Held by the scenarios that run several engines over hundreds of rolls:
/// one at a time, so that on a 2-core machine they do not starve each
/// other (nor the other tests, which go on in parallel).
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// One test's PostgreSQL database.
#[derive(Clone, Debug)]
pub struct Db {
    pub name: String,
    pub url: String,
    socket: PathBuf,
    port: u16,
}

impl Db {
    pub fn new() -> Db {
        Db::new_in(Cluster::get())
    }

    pub fn new_in(c: &Cluster) -> Db {
        let name = c.new_db();
        let url = c.url(&name);
        Db {
            name,
            url,
            socket: c.socket.clone(),
            port: c.port,
        }
    }

    /// The `[store]` table that points certroll at this database, with its
    /// password in `password_file`.
    pub fn store_toml(&self, password_file: &Path) -> String {
        format!(
            "[store]\nurl = \"{}\"\npassword_file = \"{}\"\nsslmode = \"disable\"\n",
            self.url,
            password_file.display()
        )
    }

    /// A superuser client on this database.
    pub fn client(&self) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.socket)
            .port(self.port)
            .user("postgres")
            .dbname(&self.name)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"))
    }

    /// One integer from a query, as the superuser.
    pub fn i64(&self, sql: &str) -> i64 {
        let mut c = self.client();
        c.query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }
}

impl Env {
    /// A test installation whose store is a fresh PostgreSQL database of
    /// the test run's cluster; `extra` is the rest of its configuration.
    pub fn postgres(extra: &str) -> (Env, Db) {
        Env::postgres_in(Db::new(), extra)
    }

    /// As [`Env::postgres`], on the database `db`.
    pub fn postgres_in(db: Db, extra: &str) -> (Env, Db) {
        let mut env = Env::with_config("");
        env.pg_db = Some(db.clone());
        let pw = env.path("db-password");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        std::fs::write(
            &env.config,
            format!(
                "sip_domain = \"contoso.com\"\n{extra}\n{}",
                db.store_toml(&pw)
            ),
        )
        .unwrap();
        (env, db)
    }

    /// The store of this installation as its configuration says (SQLite
    /// or PostgreSQL), through the library.
    pub fn location(&self) -> certroll::store::Location {
        let config = certroll::config::Config::load(Some(&self.config)).expect("config");
        config.store.location(&self.data).expect("store location")
    }
}
