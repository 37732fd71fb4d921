//! The engine through the library: transient store failures are retried,
//! not fatal.

use std::sync::Arc;

use certroll::clock::SystemClock;
use certroll::config::Config;
use certroll::schedule::engine::{Engine, Msg};
use chrono::{Duration, Utc};

use crate::util::*;

#[test]
fn a_store_locked_past_the_busy_timeout_delays_the_roll_but_does_not_stop_the_engine() {
    let env = Env::new();
    let due = Utc::now() + Duration::seconds(1);
    many_scheduled(&env, 3, due);

    let mut store = store(&env);
    // Another process holds the write lock across the instant.
    let locker = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    locker
        .execute_batch("BEGIN IMMEDIATE; UPDATE meta SET value = value;")
        .unwrap();

    store
        .set_busy_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    let config = Arc::new(
        Config::parse(
            "sip_domain = \"contoso.com\"\n[serve]\nretry_base_ms = 100\nretry_max_seconds = 1\n",
            std::path::Path::new("test.toml"),
        )
        .unwrap(),
    );
    let engine = Engine::new(store, config, Arc::new(SystemClock)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || engine.run(rx));

    wait_past(due + Duration::milliseconds(800));
    assert_eq!(
        sql_i64(&env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'"),
        0
    );
    locker.execute_batch("COMMIT;").unwrap();

    wait_until(10, "the delayed rolls", || {
        sql_i64(&env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 3
    });
    tx.send(Msg::Shutdown).unwrap();
    let summary = thread.join().unwrap().expect("the engine survived");
    assert_eq!(summary.succeeded, 3);
}

#[test]
fn reading_commands_do_not_need_the_write_lock() {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let locker = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    locker
        .execute_batch("BEGIN IMMEDIATE; UPDATE meta SET value = value;")
        .unwrap();
    // With the writer busy, reads still answer (WAL readers never wait).
    for cmd in [&["get"][..], &["certs"], &["history"], &["jobs", "list"]] {
        env.ok(cmd);
    }
    locker.execute_batch("ROLLBACK;").unwrap();
}

/// The benchmark keeps working (its figures are read by people, not tests).
#[test]
fn the_quick_benchmark_runs() {
    let env = Env::new();
    let scratch = env.path("bench");
    let r = env.ok(&["bench", "--quick", "--scratch", scratch.to_str().unwrap()]);
    for needle in [
        "schedule 1000 rolls in one transaction",
        "1000 rolls due at one instant",
        "lateness p50",
        "rolls at distinct instants",
        "idle `certroll serve`",
        "events through the outbox to a local webhook",
        "GET /metrics over 1000 slots",
    ] {
        assert!(r.stdout.contains(needle), "{needle} missing:\n{}", r.stdout);
    }
}
