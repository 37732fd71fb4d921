//! The store on PostgreSQL: the same commands, the same answers as on
//! SQLite, with engines and agents sharing one database.

use crate::pg::*;
use crate::util::*;

#[test]
fn import_set_get_and_history_work_on_postgres() {
    let (env, db) = Env::postgres("");
    let pfx = fixture("oauth1-openssl3.pfx");
    let r = env.run(&[
        "import",
        "--type",
        "OAuthTokenIssuer",
        "--path",
        pfx.to_str().unwrap(),
        "--password-file",
        password_file().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let get = env.run(&["get", "--json"]);
    assert_eq!(get.code, 0, "{}", get.stderr);
    let slots = get.json();
    assert_eq!(slots.as_array().unwrap().len(), 1, "{slots}");
    assert_eq!(db.i64("SELECT count(*) FROM certificates"), 1);
    assert_eq!(db.i64("SELECT count(*) FROM audit_log"), 2);
    // Nothing of the store went to the data directory but the master key.
    assert!(!env.data.join("certroll.db").exists());
    assert!(env.data.join("master.key").exists());
    let h = env.run(&["history"]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    assert!(h.stdout.contains("OAuthTokenIssuer"), "{}", h.stdout);
}

fn succeeded(env: &Env) -> i64 {
    sql_i64(env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'")
}

/// The audit trail, the outbox and the slots agree: `n` rolls, one per
/// slot, never two, each slot rolled from oauth1 to oauth2.
#[track_caller]
fn each_rolled_once(env: &Env, n: i64) {
    assert_eq!(
        sql_i64(env, "SELECT count(*) FROM jobs WHERE state <> 'succeeded'"),
        0
    );
    assert_eq!(
        sql_i64(env, "SELECT count(*) FROM audit_log WHERE action = 'roll'"),
        n
    );
    assert_eq!(
        sql_i64(
            env,
            "SELECT count(DISTINCT scope_key) FROM audit_log WHERE action = 'roll'"
        ),
        n
    );
    assert_eq!(
        sql_i64(
            env,
            "SELECT count(*) FROM outbox WHERE kind = 'roll.succeeded'"
        ),
        n
    );
    assert_eq!(
        sql_i64(
            env,
            "SELECT count(*) FROM outbox WHERE kind = 'roll.failed'"
        ),
        0
    );
    assert_eq!(
        sql_i64(
            env,
            "SELECT count(*) FROM slots WHERE current_cert = 2 AND previous_cert = 1 AND pending_cert IS NULL"
        ),
        n
    );
}

#[test]
fn three_engines_and_a_roll_loop_run_1000_jobs_exactly_once_on_postgres() {
    let _one_at_a_time = heavy();
    let (env, _db) = Env::postgres("");
    let due = chrono::Utc::now() + chrono::Duration::seconds(4);
    many_scheduled(&env, 1000, due);
    let serves = [env.serve(), env.serve(), env.serve()];
    let mut cli_rolls = 0;
    while succeeded(&env) < 1000 {
        let r = env.run(&["roll", "--now", "--type", "OAuthTokenIssuer", "--json"]);
        assert!(matches!(r.code, 0 | 3), "{}", r.stderr);
        cli_rolls += r.json()["succeeded"].as_u64().unwrap();
        assert!(
            chrono::Utc::now() < due + chrono::Duration::seconds(60),
            "not done in time"
        );
    }
    let mut by_engine = Vec::new();
    for s in serves {
        let log = s.log();
        by_engine.push(log.matches("rolled").count());
        assert_eq!(s.stop(), 0, "{log}");
    }
    each_rolled_once(&env, 1000);
    eprintln!("roll --now did {cli_rolls}; the engines logged {by_engine:?}");
}

#[test]
fn kill_9_of_an_engine_on_postgres_leaves_its_jobs_to_the_others_after_its_lease() {
    let _one_at_a_time = heavy();
    let (env, _db) = Env::postgres("[serve]\nbatch_size = 1\npreclaim_ms = 0\nlease_seconds = 3\n");
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    many_scheduled(&env, 1000, due);
    let (a, b) = (env.serve(), env.serve());
    wait_until(60, "the burst to start", || succeeded(&env) >= 50);
    a.kill9();
    assert!(succeeded(&env) < 1000, "the burst finished before the kill");
    // Every slot is consistent even now: rolled or not, never between.
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM slots WHERE NOT (
                (current_cert = 2 AND previous_cert = 1 AND pending_cert IS NULL) OR
                (current_cert = 1 AND previous_cert IS NULL AND pending_cert = 2))"
        ),
        0
    );
    wait_until(90, "the survivor to finish the burst", || {
        succeeded(&env) == 1000
    });
    assert_eq!(b.stop(), 0);
    each_rolled_once(&env, 1000);
}

#[test]
fn postgres_restarted_during_a_burst_loses_and_doubles_nothing() {
    let _one_at_a_time = heavy();
    // A cluster of its own: the others' tests go on meanwhile.
    let cluster = Cluster::private();
    let (env, _db) = Env::postgres_in(
        Db::new_in(&cluster),
        "[serve]\nbatch_size = 1\npreclaim_ms = 0\nlease_seconds = 5\n",
    );
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    many_scheduled(&env, 1000, due);
    let (a, b) = (env.serve(), env.serve());
    wait_until(60, "the burst to start", || succeeded(&env) >= 50);
    cluster.stop_immediate();
    // Meanwhile a command line says in one line that the database is
    // unreachable, and exits 1.
    let r = env.run(&["get"]);
    r.assert_one_line_error(1, &["the database is unreachable", "127.0.0.1"]);
    assert!(!r.stderr.contains(crate::pg::PASSWORD), "{}", r.stderr);
    cluster.start_again();
    wait_until(120, "the engines to finish the burst", || {
        succeeded(&env) == 1000
    });
    let (la, lb) = (a.log(), b.log());
    assert_eq!(a.stop(), 0, "{la}");
    assert_eq!(b.stop(), 0, "{lb}");
    each_rolled_once(&env, 1000);
    assert!(
        la.contains("unreachable") || lb.contains("unreachable"),
        "no engine noticed the restart:\n{la}"
    );
}

#[test]
fn the_duties_run_on_one_engine_and_move_to_another_when_it_is_killed() {
    let (env, _db) = Env::postgres("[serve]\nlease_seconds = 3\n");
    let a = env.serve();
    wait_until(10, "the first engine to lead", || {
        a.log().contains("leading the duties")
    });
    let b = env.serve();
    let scans = |log: &str| log.matches("expiry scan done").count();
    assert_eq!(scans(&a.log()), 1, "{}", a.log());
    let holder = |env: &Env| {
        store(env)
            .leader("duties")
            .unwrap()
            .map(|(h, _)| h)
            .unwrap_or_default()
    };
    let first = holder(&env);
    assert!(a.log().contains(&first), "{first} is not the first engine");
    a.kill9();
    // The row expires by the database's clock; the survivor takes it and
    // runs the expiry watch once, at once.
    wait_until(15, "the second engine to take the lead", || {
        b.log().contains("leading the duties")
    });
    wait_until(5, "its expiry scan", || scans(&b.log()) == 1);
    let second = holder(&env);
    assert_ne!(first, second);
    assert!(b.log().contains(&second));
    assert_eq!(scans(&b.log()), 1, "{}", b.log());
    assert_eq!(b.stop(), 0);
    // Stopping gives the lead up at once.
    assert_eq!(holder(&env), "");
}

/// The outputs an operator compares before and after moving the store.
fn views(env: &Env) -> Vec<String> {
    [
        vec!["get", "--json"],
        vec!["certs", "--json"],
        vec!["history", "--json"],
        vec!["jobs", "list", "--json"],
        vec!["requests", "list", "--json"],
        vec!["get"],
        vec!["history"],
    ]
    .iter()
    .map(|args| {
        let r = env.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r.stdout
    })
    .collect()
}

#[test]
fn store_copy_moves_an_sqlite_store_into_postgres_unchanged() {
    let env = Env::any_scope();
    env.import_test_cas();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let r = env.import(
        "oauth2-windows.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--scope",
            "site:Redmond",
            "--effective-date",
            "2030-01-01T00:00:00Z",
            "--roll",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let csr = env.path("x.csr");
    env.ok(&[
        "request",
        "--type",
        "Default",
        "--subject-cn",
        "fe01.contoso.com",
        "--output",
        csr.to_str().unwrap(),
    ]);
    let before = views(&env);

    let db = Db::new();
    let pw = env.path("db-password");
    std::fs::write(&pw, format!("{}\n", crate::pg::PASSWORD)).unwrap();
    let copy = env.run(&[
        "store",
        "copy",
        "--to",
        &db.url,
        "--password-file",
        pw.to_str().unwrap(),
        "--sslmode",
        "disable",
    ]);
    assert_eq!(copy.code, 0, "{}", copy.stderr);
    assert!(copy.stdout.contains("the counts match"), "{}", copy.stdout);
    assert!(!copy.stdout.contains(crate::pg::PASSWORD));

    // The same installation, now on PostgreSQL.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{config}\n{}", db.store_toml(&pw))).unwrap();
    assert_eq!(views(&env), before);
    // The copied store goes on: a new row continues after the copied ids,
    // and the sealed keys open with the same master key.
    let out = env.path("out.pfx");
    env.ok(&[
        "export",
        "--thumbprint",
        &thumbprint_of(&fixture("oauth1.crt.pem")),
        "--path",
        out.to_str().unwrap(),
        "--password-file",
        password_file().to_str().unwrap(),
    ]);
    env.ok(&["jobs", "cancel", "1"]);

    // A second copy into the same database is refused, and changes nothing.
    std::fs::write(&env.config, &config).unwrap();
    let again = env.run(&[
        "store",
        "copy",
        "--to",
        &db.url,
        "--password-file",
        pw.to_str().unwrap(),
        "--sslmode",
        "disable",
    ]);
    again.assert_one_line_error(1, &["not empty"]);
}

/// Two servers of one pool on two "machines" (each its own data
/// directory, configuration and files), one shared PostgreSQL store.
fn pool_machine(db: &Db, root: &std::path::Path, name: &str) -> Env {
    let mut env = Env::with_config("");
    env.pg_db = Some(db.clone());
    let pw = env.path("db-password");
    std::fs::write(&pw, format!("{}\n", crate::pg::PASSWORD)).unwrap();
    let d = root.display();
    let config = format!(
        r#"sip_domain = "contoso.com"
[serve]
lease_seconds = 3
[deploy]
retry_base_seconds = 1
retry_max_seconds = 1
serve_deploys = false
[[server]]
name = "fe01.contoso.com"
pool = "pool01.contoso.com"
[[server]]
name = "fe02.contoso.com"
pool = "pool01.contoso.com"
[[target]]
name = "files"
scope = "global"
types = ["OAuthTokenIssuer"]
reload = "echo \"$CERTROLL_SERVER {name} $CERTROLL_ROLE $CERTROLL_NEW_THUMBPRINT\" >> {d}/reloads.log"
[[target.file]]
kind = "cert"
path = "{d}/srv/{{server}}/cert.pem"
{}"#,
        db.store_toml(&pw)
    );
    std::fs::write(&env.config, config).unwrap();
    env
}

#[test]
fn two_agents_on_two_machines_deploy_a_roll_at_its_instant_while_an_engine_dies() {
    let _one_at_a_time = heavy();
    let db = Db::new();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (m1, m2) = (pool_machine(&db, root, "m1"), pool_machine(&db, root, "m2"));
    assert_eq!(
        m1.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    // The second machine gets the pool's master key, as the README says.
    std::fs::create_dir_all(&m2.data).unwrap();
    std::fs::copy(m1.data.join("master.key"), m2.data.join("master.key")).unwrap();
    std::fs::set_permissions(
        m2.data.join("master.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    let (a1, a2) = (m1.agent("fe01.contoso.com"), m2.agent("fe02.contoso.com"));
    let (e1, e2) = (m1.serve(), m2.serve());
    let cert = |s: &str| std::fs::read_to_string(root.join("srv").join(s).join("cert.pem")).ok();
    let oauth1 = std::fs::read_to_string(fixture("oauth1.crt.pem")).unwrap();
    wait_until(20, "both servers to get the current certificate", || {
        cert("fe01.contoso.com").as_deref() == Some(oauth1.as_str())
            && cert("fe02.contoso.com").as_deref() == Some(oauth1.as_str())
    });

    let r = m2.import(
        "oauth2-windows.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+4s",
            "--roll",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let due = chrono::Utc::now() + chrono::Duration::seconds(4);
    e1.kill9();
    let oauth2 = std::fs::read_to_string(fixture("oauth2.crt.pem")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(cert("fe01.contoso.com").as_deref() == Some(oauth2.as_str())
        && cert("fe02.contoso.com").as_deref() == Some(oauth2.as_str()))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "both servers did not get the rolled certificate; jobs: {}\nengine 2:\n{}\nagent 1:\n{}\nagent 2:\n{}",
            m1.run(&["jobs", "list"]).stdout,
            e2.log(),
            a1.log(),
            a2.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Not before the instant (a second of slack for the clocks' grain).
    assert!(chrono::Utc::now() >= due - chrono::Duration::seconds(1));
    each_rolled_once(&m1, 1);
    // Each agent deployed only its own server, and ran its reloads there.
    let reloads = std::fs::read_to_string(root.join("reloads.log")).unwrap();
    assert!(
        reloads
            .lines()
            .all(|l| l.starts_with("fe01.contoso.com m1") || l.starts_with("fe02.contoso.com m2")),
        "{reloads}"
    );
    wait_until(20, "status to show both servers up to date", || {
        m1.run(&["status"]).code == 0 && m2.run(&["status"]).code == 0
    });
    let status = m1.run(&["status", "--json"]).json();
    assert_eq!(status["up_to_date"], true, "{status}");
    assert_eq!(status["rows"].as_array().map(Vec::len), Some(2), "{status}");
    for p in [a1, a2, e2] {
        let log = p.log();
        assert_eq!(p.stop(), 0, "{log}");
    }
}

#[test]
fn another_process_s_change_is_noticed_through_listen_notify() {
    let (env, _db) = Env::postgres("");
    let watcher = store(&env);
    let before = watcher.data_version().unwrap();
    // Its own changes are not news.
    let mut own = store(&env);
    assert_eq!(watcher.data_version().unwrap(), before);
    let e = entry("oauth1-openssl3.pfx");
    own.assign(
        Some(&new_cert(&e)),
        &e.cert.thumbprint,
        &[certroll::cert::SlotKey::new(
            certroll::cert::Scope::Global,
            certroll::cert::UsageType::from_canonical("OAuthTokenIssuer"),
        )],
        &test_ctx(),
    )
    .unwrap();
    wait_until(5, "the watcher to notice the change", || {
        watcher.data_version().unwrap() != before
    });
}

#[test]
fn engines_whose_clocks_are_30_s_off_neither_steal_nor_double_a_roll() {
    let _one_at_a_time = heavy();
    let (env, _db) = Env::postgres("[serve]\nlease_seconds = 10\n");
    let due = chrono::Utc::now() + chrono::Duration::seconds(5);
    many_scheduled(&env, 300, due);
    // One host 30 s ahead, one 30 s behind (CERTROLL_CLOCK_OFFSET_MS moves
    // the process's view of the clock, as a wrong host clock would).
    let spawn = |offset: &str| {
        use std::io::BufRead;
        let mut child = env
            .command(&["serve", "-vv"])
            .env("CERTROLL_CLOCK_OFFSET_MS", offset)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        (child, log)
    };
    let (mut ahead, ahead_log) = spawn("30000");
    let (mut behind, behind_log) = spawn("-30000");
    wait_until(20, "both engines to start", || {
        ahead_log.lock().unwrap().contains("engine started")
            && behind_log.lock().unwrap().contains("engine started")
    });
    // Nothing rolls early by the real clock, although one engine thinks
    // the instant passed 25 s ago.
    while chrono::Utc::now() < due - chrono::Duration::milliseconds(300) {
        assert_eq!(succeeded(&env), 0, "a roll ran before its instant");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    wait_until(30, "every roll", || succeeded(&env) == 300);
    // Rolled at the instant, not 30 s late: the engines ran by the
    // database's clock.
    assert!(chrono::Utc::now() < due + chrono::Duration::seconds(15));
    for (c, log) in [(&mut ahead, &ahead_log), (&mut behind, &behind_log)] {
        let text = log.lock().unwrap().clone();
        assert!(
            text.contains("differs from the database's by more than a second"),
            "{text}"
        );
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        assert!(c.wait().unwrap().success(), "{text}");
    }
    each_rolled_once(&env, 300);
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM jobs WHERE last_error LIKE '%expired%'"
        ),
        0,
        "a lease was taken away from a live engine"
    );
}

#[test]
fn the_quick_benchmark_runs_on_postgres_beside_sqlite() {
    let _one_at_a_time = heavy();
    let (env, db) = Env::postgres("");
    let pw = env.path("db-password");
    let r = env.run(&[
        "bench",
        "--quick",
        "--store",
        &db.url,
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for needle in [
        "rolls due at one instant, 1 engine(s) on PostgreSQL",
        "rolls due at one instant, 3 engine(s) on PostgreSQL",
        "distinct instants over",
        "all committed",
    ] {
        assert!(r.stdout.contains(needle), "{needle}:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains(crate::pg::PASSWORD));
    // The scratch databases are gone.
    assert_eq!(
        db.i64("SELECT count(*) FROM pg_database WHERE datname LIKE 'certroll_bench_%'"),
        0
    );
}

#[test]
fn rolls_and_deliveries_survive_a_postgres_restart_and_readyz_says_so() {
    let _one_at_a_time = heavy();
    use crate::peers::{Receiver, free_port};
    let cluster = Cluster::private();
    let hook = Receiver::start(b"hook-secret", vec![200]);
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "hook-secret\n").unwrap();
    let port = free_port();
    let (env, _db) = Env::postgres_in(
        Db::new_in(&cluster),
        &format!(
            "[serve]\nbatch_size = 1\npreclaim_ms = 0\nlease_seconds = 5\n\
             [notify]\nretry_base_seconds = 1\nretry_max_seconds = 2\nlease_seconds = 5\n\
             [[notify.webhook]]\nname = \"hooks\"\nurl = \"{}\"\nsecret_file = \"{}\"\nevents = [\"roll.succeeded\"]\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n",
            hook.url(),
            secret.path().display()
        ),
    );
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    many_scheduled(&env, 300, due);
    let serve = env.serve();
    wait_until(60, "rolls and deliveries under way", || {
        hook.got.lock().unwrap().len() >= 20
    });
    assert_eq!(
        http_get(port, "/readyz").map(|r| r.0).ok(),
        Some(200),
        "{}",
        serve.log()
    );
    cluster.stop_immediate();
    let mut body = String::new();
    wait_until(10, "/readyz to say not ready", || {
        let (status, b) = http_get(port, "/readyz").unwrap();
        body = b;
        status == 503
    });
    assert!(
        body.contains("store:") && body.contains("unreachable"),
        "{body}"
    );
    cluster.start_again();
    wait_until(30, "ready again", || {
        http_get(port, "/readyz").unwrap().0 == 200
    });
    wait_until(120, "every roll", || succeeded(&env) == 300);
    wait_until(60, "every event delivered", || {
        sql_i64(
            &env,
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        ) == 300
    });
    let log = serve.log();
    assert_eq!(serve.stop(), 0, "{log}");
    each_rolled_once(&env, 300);
    // Each event reached the hook; those sent just as the database went
    // away (at most a batch of the notifier, 64) may come twice, with the
    // same event id (receivers deduplicate on it).
    let got = hook.got.lock().unwrap().clone();
    let ids: std::collections::HashSet<String> = got
        .iter()
        .map(|r| r.header("X-Certroll-Event-Id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 300);
    assert!(got.len() <= 300 + 64, "{} sends for 300 events", got.len());
}
