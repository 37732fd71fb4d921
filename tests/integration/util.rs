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

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
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
}

impl Env {
    /// SIP domain contoso.com, the fixtures' domain.
    pub fn new() -> Env {
        Env::with_config("sip_domain = \"contoso.com\"\n")
    }

    pub fn with_config(text: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let config = dir.path().join("certroll.toml");
        std::fs::write(&config, text).expect("write config");
        Env { dir, data, config }
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
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(fixture(crt_pem))
        .output()
        .expect("openssl");
    let s = String::from_utf8(out.stdout).unwrap();
    s.trim().rsplit('=').next().unwrap().replace(':', "")
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
