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
    let (env, _db) = Env::postgres("[serve]\nbatch_size = 1\npreclaim_ms = 0\nlease_seconds = 5\n");
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    many_scheduled(&env, 1000, due);
    let (a, b) = (env.serve(), env.serve());
    wait_until(60, "the burst to start", || succeeded(&env) >= 50);
    let cluster = Cluster::get();
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
