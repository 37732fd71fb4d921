//! Issue 11, items 9 to 11: monitoring that never lies. Read-only commands
//! create nothing, `check` is UNKNOWN when it watches nothing, a lost
//! database is never silently recreated, a user who may only read the store
//! can run the checks, and `check` follows the monitoring-plugin
//! conventions.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

const READ_ONLY: &[&[&str]] = &[
    &["get"],
    &["get", "--json"],
    &["certs"],
    &["timeline"],
    &["history"],
    &["jobs", "list"],
    &["requests", "list"],
    &["notifications", "list"],
];

#[test]
fn read_only_commands_create_nothing_and_check_is_unknown_without_a_store() {
    let env =
        Env::with_config("sip_domain = \"contoso.com\"\n[[server]]\nname = \"fe01.contoso.com\"\n");
    for args in READ_ONLY.iter().chain(&[&["status"][..]]) {
        let r = env.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(!env.data.exists(), "{args:?} created the data directory");
    }
    assert_eq!(env.ok(&["get"]).stdout, "no certificate assigned\n");
    let r = env.run(&["check"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let db = env.data.join("certroll.db");
    assert_eq!(
        r.stdout,
        format!(
            "CERTROLL UNKNOWN - {}: no store: nothing is watched (import and assign a certificate first, or point --data-dir at the service's store)\n",
            db.display()
        )
    );
    assert!(!env.data.exists(), "check created the data directory");

    // A store that holds nothing assigned watches nothing either.
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    let r = env.run(&["check"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("certroll.db: no certificate assigned: nothing is watched"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_lost_database_beside_its_master_key_is_refused_by_every_command() {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let db = env.data.join("certroll.db");
    let needle =
        "the store is missing but its master key exists: restore certroll.db from a backup";
    for lose in ["truncate", "delete"] {
        if lose == "truncate" {
            std::fs::write(&db, b"").unwrap();
        } else {
            std::fs::remove_file(&db).unwrap();
        }
        for f in ["certroll.db-wal", "certroll.db-shm"] {
            let _ = std::fs::remove_file(env.data.join(f));
        }
        for args in READ_ONLY.iter().copied().chain([&["roll"][..]]) {
            env.run(args).assert_one_line_error(1, &[needle]);
        }
        env.import("oauth2-windows.pfx", &[])
            .assert_one_line_error(1, &[needle]);
        let r = env.run(&["check"]);
        assert_eq!(r.code, 3);
        assert!(r.stdout.contains(needle), "{}", r.stdout);
        assert_eq!(
            std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0),
            0,
            "{lose}: the store was recreated"
        );
    }
}

/// The documented layout: the data directory and the database group-readable
/// by a monitoring group, the master key 0600 to the service user. Meaningful
/// only as root (as on CI), which can act as two users.
#[test]
fn a_user_who_may_only_read_the_store_runs_the_checks() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    if std::fs::metadata(env.dir.path()).unwrap().uid() != 0 {
        eprintln!("skipped: only root can act as the service user and a monitoring user");
        return;
    }
    // The service user (nobody) owns the store; the monitor (daemon) is in
    // its group.
    let (nobody, daemon_gid) = (65534, 1);
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&env.data).unwrap();
    std::os::unix::fs::chown(&env.data, Some(nobody), Some(daemon_gid)).unwrap();
    std::fs::set_permissions(&env.data, std::fs::Permissions::from_mode(0o750)).unwrap();
    let as_user = |user: &str, args: &[&str]| {
        let out = std::process::Command::new("runuser")
            .args(["-u", user, "--"])
            .arg(bin())
            .args(args)
            .env("CERTROLL_CONFIG", &env.config)
            .env("CERTROLL_DATA_DIR", &env.data)
            .output()
            .unwrap();
        Run::from(out)
    };
    let pfx = fixture("oauth1-openssl3.pfx");
    let pw = password_file();
    let r = as_user(
        "nobody",
        &[
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
            "--type",
            "OAuthTokenIssuer",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The README's commands: group-readable database files.
    for entry in std::fs::read_dir(&env.data).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("certroll.db")
        {
            std::os::unix::fs::chown(&p, None, Some(daemon_gid)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
    }
    let before: Vec<_> = std::fs::read_dir(&env.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    // No service runs: the writer kept its -wal and -shm files.
    assert!(env.data.join("certroll.db-wal").exists());
    let r = as_user("daemon", &["check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("CERTROLL OK - 1 slot(s)"),
        "{}",
        r.stdout
    );
    for args in [&["get"][..], &["certs"], &["timeline"], &["history"]] {
        let r = as_user("daemon", args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    // A write is refused, and the master key stays the service user's.
    let r = as_user(
        "daemon",
        &[
            "remove",
            "--type",
            "OAuthTokenIssuer",
            "--current",
            "--force",
        ],
    );
    assert_ne!(r.code, 0);
    let key = std::fs::metadata(env.data.join("master.key")).unwrap();
    assert_eq!((key.uid(), key.mode() & 0o777), (nobody, 0o600));
    let after: Vec<_> = std::fs::read_dir(&env.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

fn two_slots() -> Env {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    // 400 days left on Default.
    let short = short_lived_pem(env.dir.path(), "short", 400);
    env.ok(&[
        "import",
        "--path",
        short.to_str().unwrap(),
        "--type",
        "Default",
        "--force",
    ]);
    env
}

#[test]
fn check_follows_the_monitoring_plugin_conventions() {
    let env = two_slots();
    assert_eq!(env.run(&["check"]).code, 0);
    // -w / -c override [check] warning_days and critical_days.
    let r = env.run(&["check", "-w", "500", "-c", "10"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .starts_with("CERTROLL WARNING - 2 slot(s): 0 critical, 1 warning"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("days_left_min=399;500:;10:;;"),
        "{}",
        r.stdout
    );
    assert_eq!(
        env.run(&["check", "--warning", "600", "--critical", "500"])
            .code,
        2
    );
    // One service per type or scope.
    assert_eq!(
        env.run(&["check", "-w", "500", "--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let r = env.run(&[
        "check", "-w", "500", "--type", "Default", "--scope", "site:*",
    ]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("no certificate assigned for Default at site:*"),
        "{}",
        r.stdout
    );
    assert_eq!(env.run(&["check", "-w", "500", "--scope", "g*"]).code, 1);
    // Usage errors are UNKNOWN, on one line.
    for args in [
        &["check", "--bogus"][..],
        &["check", "-w", "many"],
        &["--quiet", "check", "-t", "0"],
        &["check", "-w", "5", "-c", "9"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 3, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.starts_with("CERTROLL UNKNOWN - "),
            "{args:?}: {}",
            r.stdout
        );
        assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    }
}

/// `-t SECONDS` bounds the run: a store held exclusively by another
/// process makes the check wait, and it ends UNKNOWN at its deadline.
#[test]
fn check_ends_unknown_at_its_timeout() {
    let env = two_slots();
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE; UPDATE meta SET value = value;")
        .unwrap();
    let started = std::time::Instant::now();
    let r = env.run(&["check", "-t", "1"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "CERTROLL UNKNOWN - timed out after 1 s\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    conn.execute_batch("ROLLBACK").unwrap();
}
