//! Issue 3: scheduled rolls as durable jobs, run by real `certroll serve`
//! processes (started, stopped, raced and killed), and by `certroll roll`.

use chrono::{DateTime, Duration, Utc};

use crate::util::*;

fn t1() -> String {
    thumbprint("oauth1.crt.pem")
}
fn t2() -> String {
    thumbprint("oauth2.crt.pem")
}

/// oauth1 current at global; oauth2 imported and scheduled `when`.
/// Returns the job's effective instant.
fn scheduled(env: &Env, when: &str) -> DateTime<Utc> {
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
            "--effective-date",
            when,
            "--roll",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["changes"][0]["outcome"], "scheduled");
    DateTime::parse_from_rfc3339(v["effective_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn current(env: &Env) -> serde_json::Value {
    env.get_json()[0]["current"]["thumbprint"].clone()
}

fn job(env: &Env, id: i64) -> serde_json::Value {
    env.ok(&["jobs", "show", &id.to_string(), "--json"]).json()
}

#[test]
fn a_roll_under_a_running_serve_happens_within_a_second_of_its_instant() {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let serve = env.serve();
    // Scheduled by another process while serve runs: serve must notice.
    let r = env.import(
        "oauth2-windows.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+2s",
            "--roll",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let due = DateTime::parse_from_rfc3339(r.json()["effective_at"].as_str().unwrap()).unwrap();
    let slot = &env.get_json()[0];
    assert_eq!(slot["current"]["thumbprint"], t1());
    assert_eq!(slot["pending"]["thumbprint"], t2());
    assert_eq!(slot["pending"]["effective_at"], r.json()["effective_at"]);

    wait_until(10, "the roll", || current(&env) == t2());
    let seen = Utc::now();
    assert!(
        seen - due.with_timezone(&Utc) < Duration::milliseconds(1500),
        "flip seen at {seen}, due {due}"
    );
    let slot = &env.get_json()[0];
    assert_eq!(slot["previous"]["thumbprint"], t1());
    assert!(slot["pending"].is_null());

    let j = job(&env, 1);
    assert_eq!(j["state"], "succeeded");
    assert_eq!(j["attempts"], 1);
    let late = j["lateness_ms"].as_f64().unwrap();
    assert!((0.0..1000.0).contains(&late), "lateness {late} ms");

    let history = env.ok(&["history", "--json"]).json();
    let roll = history
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["action"] == "roll")
        .expect("a roll row");
    assert_eq!(roll["before"]["current"], t1());
    assert_eq!(roll["after"]["current"], t2());
    assert_eq!(roll["after"]["previous"], t1());
    assert!(roll["actor"].as_str().unwrap().starts_with("serve:"));

    let log = serve.log();
    assert!(log.contains("rolled") && log.contains("job.id=1"), "{log}");
    assert_eq!(serve.stop(), 0);
    let kinds: Vec<String> = store(&env)
        .outbox_kinds()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(kinds.contains(&"roll.scheduled".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"roll.succeeded".to_string()), "{kinds:?}");
}

#[test]
fn a_roll_missed_while_serve_was_stopped_runs_at_the_next_start_with_its_lateness() {
    let env = Env::with_config("sip_domain = \"contoso.com\"\n[serve]\nlate_after_seconds = 1\n");
    let due = scheduled(&env, "+1s");
    wait_past(due + Duration::milliseconds(1500));
    assert_eq!(current(&env), t1());
    let serve = env.serve();
    wait_until(10, "the late roll", || current(&env) == t2());
    assert_eq!(serve.stop(), 0);
    let j = job(&env, 1);
    assert_eq!(j["state"], "succeeded");
    assert!(j["lateness_ms"].as_f64().unwrap() >= 1500.0, "{j}");
    let kinds: Vec<String> = store(&env)
        .outbox_kinds()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(kinds.contains(&"roll.late".to_string()), "{kinds:?}");
}

#[test]
fn two_serves_and_a_racing_roll_now_loop_run_every_job_exactly_once() {
    let env = Env::new();
    let due = Utc::now() + Duration::seconds(2);
    let slots = many_scheduled(&env, 200, due);
    let (a, b) = (env.serve(), env.serve());
    // Meanwhile, `roll --now` promotes whatever is still pending.
    let mut cli_rolls = 0;
    while sql_i64(&env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") < 200 {
        let r = env.run(&["roll", "--now", "--type", "OAuthTokenIssuer", "--json"]);
        assert!(matches!(r.code, 0 | 3), "{}", r.stderr);
        cli_rolls += r.json()["succeeded"].as_u64().unwrap();
        assert!(Utc::now() < due + Duration::seconds(30), "not done in time");
    }
    assert_eq!(a.stop(), 0);
    assert_eq!(b.stop(), 0);

    assert_eq!(
        sql_i64(&env, "SELECT count(*) FROM jobs WHERE state <> 'succeeded'"),
        0
    );
    // The audit log proves it: one roll per slot, never two.
    assert_eq!(
        sql_i64(&env, "SELECT count(*) FROM audit_log WHERE action = 'roll'"),
        200
    );
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(DISTINCT scope_key) FROM audit_log WHERE action = 'roll'"
        ),
        200
    );
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind = 'roll.succeeded'"
        ),
        200
    );
    for s in env.get_json().as_array().unwrap() {
        assert_eq!(s["current"]["thumbprint"], t2(), "{s}");
        assert_eq!(s["previous"]["thumbprint"], t1(), "{s}");
    }
    assert_eq!(slots.len(), 200);
    eprintln!("roll --now did {cli_rolls} of 200; the two serves the rest");
}

#[test]
fn kill_9_in_a_burst_of_1000_rolls_then_restart_finishes_each_exactly_once() {
    // One job per transaction, so the burst takes long enough to be cut.
    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n[serve]\nbatch_size = 1\npreclaim_ms = 0\nlease_seconds = 5\n",
    );
    let due = Utc::now() + Duration::seconds(1);
    many_scheduled(&env, 1000, due);
    let serve = env.serve();
    wait_until(30, "the burst to start", || {
        sql_i64(&env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") >= 20
    });
    serve.kill9();
    let done_at_kill = sql_i64(&env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'");
    assert!(
        done_at_kill < 1000,
        "the burst finished before the kill; nothing was tested"
    );

    // Every slot is consistent even now: rolled (new current, old previous)
    // or not yet (old current, new pending), never in between.
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    let half_done: i64 = conn
        .query_row(
            "SELECT count(*) FROM slots WHERE NOT (
                (current_cert = 2 AND previous_cert = 1 AND pending_cert IS NULL) OR
                (current_cert = 1 AND previous_cert IS NULL AND pending_cert = 2))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(half_done, 0);
    let rolled: i64 = conn
        .query_row(
            "SELECT count(*) FROM slots WHERE current_cert = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        rolled, done_at_kill,
        "a slot rolled without its job finishing, or the reverse"
    );
    drop(conn);

    let serve = env.serve();
    wait_until(60, "the rest of the burst", || {
        sql_i64(&env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 1000
    });
    assert_eq!(serve.stop(), 0);
    assert_eq!(
        sql_i64(&env, "SELECT count(*) FROM audit_log WHERE action = 'roll'"),
        1000
    );
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(DISTINCT scope_key) FROM audit_log WHERE action = 'roll'"
        ),
        1000
    );
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind = 'roll.succeeded'"
        ),
        1000
    );
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM slots WHERE current_cert = 2 AND previous_cert = 1 AND pending_cert IS NULL"
        ),
        1000
    );
}

#[test]
fn a_lease_of_a_vanished_holder_expires_and_the_job_is_recovered() {
    let env = Env::new();
    let due = scheduled(&env, "+1s");
    // A holder on another host claimed the job and vanished.
    let lease_end = Utc::now() + Duration::seconds(3);
    {
        let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
        conn.execute(
            "UPDATE jobs SET state = 'running', lease_owner = 'elsewhere.example:4242:dead', lease_expires_at = ?1, attempts = 1",
            [lease_end.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()],
        )
        .unwrap();
    }
    let serve = env.serve();
    wait_past(due);
    assert_eq!(
        current(&env),
        t1(),
        "rolled while another holder's lease was valid"
    );
    wait_until(10, "the recovered roll", || current(&env) == t2());
    assert!(Utc::now() >= lease_end);
    let log = serve.log();
    assert!(log.contains("recovered a job whose lease expired"), "{log}");
    assert_eq!(serve.stop(), 0);
    let j = job(&env, 1);
    assert_eq!(j["state"], "succeeded");
    assert_eq!(j["attempts"], 2);
}

#[test]
fn cancel_before_the_instant_changes_nothing() {
    let env = Env::new();
    let due = scheduled(&env, "+2s");
    let serve = env.serve();
    let before_slot = env.get_json()[0].clone();
    let r = env.ok(&["jobs", "cancel", "1"]);
    assert!(r.stdout.contains("job 1 cancelled"), "{}", r.stdout);
    wait_past(due + Duration::seconds(1));
    let slot = &env.get_json()[0];
    assert_eq!(slot["current"], before_slot["current"]);
    assert_eq!(slot["previous"], before_slot["previous"]);
    assert!(slot["pending"].is_null());
    assert_eq!(job(&env, 1)["state"], "cancelled");
    assert_eq!(serve.stop(), 0);
    let actions = history_actions(&env);
    assert_eq!(actions.last().unwrap(), "cancel");
    assert!(!actions.contains(&"roll".to_string()));
    // A cancelled job cannot be cancelled again, nor retried.
    env.run(&["jobs", "cancel", "1"])
        .assert_one_line_error(1, &["job 1 is cancelled"]);
    env.run(&["jobs", "retry", "1"])
        .assert_one_line_error(1, &["only a failed job"]);
}

#[test]
fn removing_the_pending_certificate_cancels_its_roll_and_leaves_the_slot() {
    let env = Env::new();
    let due = scheduled(&env, "+1s");
    env.ok(&["remove", "--type", "OAuthTokenIssuer", "--pending"]);
    let j = job(&env, 1);
    assert_eq!(j["state"], "cancelled");
    assert!(
        j["last_error"]
            .as_str()
            .unwrap()
            .contains("pending certificate removed"),
        "{j}"
    );
    wait_past(due);
    let r = env.run(&["roll", "--fail-if-idle"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert_eq!(current(&env), t1());
}

#[test]
fn a_job_whose_pending_certificate_vanished_fails_cleanly() {
    let env = Env::new();
    let due = scheduled(&env, "+1s");
    // The pending certificate disappears from the slot behind the job's back.
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    conn.execute(
        "UPDATE slots SET pending_cert = NULL, effective_at = NULL",
        [],
    )
    .unwrap();
    drop(conn);
    let before = env.get_json();
    wait_past(due);
    let r = env.run(&["roll"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the pending certificate was removed from the slot"),
        "{}",
        r.stderr
    );
    assert_eq!(env.get_json(), before, "the slot changed");
    let j = job(&env, 1);
    assert_eq!(j["state"], "failed");
    assert!(j["last_error"].as_str().unwrap().contains("removed"), "{j}");
    let kinds: Vec<String> = store(&env)
        .outbox_kinds()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(kinds.contains(&"roll.failed".to_string()), "{kinds:?}");
}

#[test]
fn a_roll_fails_cleanly_when_the_policy_is_violated_at_its_instant() {
    let env = Env::new();
    let due = scheduled(&env, "+1s");
    // The policy got stricter after the roll was scheduled.
    std::fs::write(
        &env.config,
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nmin_rsa_bits = 4096\n",
    )
    .unwrap();
    wait_past(due);
    let serve = env.serve();
    wait_until(10, "the job to fail", || job(&env, 1)["state"] == "failed");
    assert_eq!(serve.stop(), 0);
    let j = job(&env, 1);
    assert!(
        j["last_error"].as_str().unwrap().contains("key-strength"),
        "{j}"
    );
    assert_eq!(current(&env), t1());
    assert_eq!(
        env.get_json()[0]["pending"]["thumbprint"],
        t2(),
        "a failed roll leaves the slot unchanged"
    );

    // Fixed: the policy is back; the failed job can be retried.
    std::fs::write(&env.config, "sip_domain = \"contoso.com\"\n").unwrap();
    env.ok(&["jobs", "retry", "1"]);
    let r = env.run(&["roll"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(current(&env), t2());
}

#[test]
fn a_pending_certificate_that_expires_before_the_roll_runs_fails_it() {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    // A certificate that expires 4 s from now, scheduled for 2 s from now.
    let expires = Utc::now() + Duration::seconds(4);
    let pem = cert_valid_until(env.dir.path(), expires);
    let r = env.run(&[
        "import",
        "--path",
        pem.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--effective-date",
        "+2s",
        "--roll",
        "--force",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("validity-margin"), "{}", r.stderr);
    // serve was down until after it expired.
    wait_past(expires + Duration::seconds(1));
    let r = env.run(&["roll", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let reason = r.json()["jobs"][0]["detail"].as_str().unwrap().to_string();
    assert!(
        reason.contains("validity") && reason.contains("expired on"),
        "{reason}"
    );
    assert_eq!(current(&env), t1());
}

#[test]
fn serve_stops_cleanly_on_sigint_and_sigterm() {
    let env = Env::new();
    scheduled(&env, "+1h");
    let serve = env.serve();
    assert_eq!(serve.stop(), 0);
    let serve = env.serve();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(serve.pid(), libc::SIGINT) };
    wait_until(10, "serve to stop", || {
        serve.log().contains("certroll serve: stopped")
    });
    assert_eq!(job(&env, 1)["state"], "scheduled");
}

#[test]
fn roll_exit_codes_tell_rolled_nothing_due_and_failed_apart() {
    let env = Env::new();
    scheduled(&env, "+1h");
    // Nothing due: 0, so a timer that runs it shows no failure; 3 on request.
    let r = env.run(&["roll"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "nothing was due");
    assert_eq!(env.run(&["roll", "--fail-if-idle"]).code, 3);
    // --now needs a type, and promotes ahead of the date.
    assert_eq!(env.run(&["roll", "--now"]).code, 2);
    let r = env.run(&["roll", "--now", "--type", "Default", "--fail-if-idle"]);
    assert_eq!(r.code, 3, "another type's roll is untouched");
    let r = env.run(&["roll", "--now", "--type", "OAuthTokenIssuer"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("rolled to") && r.stdout.contains("early"),
        "{}",
        r.stdout
    );
    assert_eq!(current(&env), t2());
    let j = job(&env, 1);
    assert!(
        j["lateness_ms"].as_f64().unwrap() < -3_000_000.0,
        "ran about an hour early: {j}"
    );
    let r = env.run(&["roll", "--help"]);
    assert!(r.stdout.contains("3 nothing was due with"), "{}", r.stdout);
}

#[test]
fn an_existing_pending_roll_is_kept_unless_forced() {
    let env = Env::new();
    scheduled(&env, "+1h");
    env.import("ec1.pfx", &[]);
    let t3 = thumbprint("ec1.crt.pem");
    let before = env.snapshot();
    env.run(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &t3,
        "--effective-date",
        "+2h",
        "--roll",
    ])
    .assert_one_line_error(1, &["already has pending certificate", "--force"]);
    assert_eq!(env.snapshot(), before);

    let r = env.ok(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &t3,
        "--effective-date",
        "+2h",
        "--roll",
        "--force",
    ]);
    assert!(r.stdout.contains("replaces the roll to"), "{}", r.stdout);
    assert_eq!(job(&env, 1)["state"], "cancelled");
    assert_eq!(job(&env, 2)["state"], "scheduled");
    assert_eq!(env.get_json()[0]["pending"]["thumbprint"], t3);
    let actions = history_actions(&env);
    assert_eq!(&actions[actions.len() - 2..], ["cancel", "schedule"]);

    // The same certificate for the same instant again is a no-op.
    let r = env.run(&["jobs", "list", "--state", "scheduled", "--json"]);
    let due = r.json()[0]["due_at"].as_str().unwrap().to_string();
    let r = env.ok(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &t3,
        "--effective-date",
        &due,
        "--roll",
    ]);
    assert!(r.stdout.contains("already pending"), "{}", r.stdout);
}

#[test]
fn bad_effective_dates_are_refused_and_nothing_is_scheduled() {
    let env = Env::with_config("sip_domain = \"contoso.com\"\ntimezone = \"Europe/London\"\n");
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    assert_eq!(env.import("oauth2-windows.pfx", &[]).code, 0);
    let t = t2();
    let before = env.snapshot();
    for (args, needle) in [
        (
            vec!["--effective-date", "2027-03-28 01:30", "--roll"],
            "does not exist in Europe/London",
        ),
        (
            vec!["--effective-date", "2027-10-31 01:30", "--roll"],
            "happens twice in Europe/London",
        ),
        (
            vec![
                "--effective-date",
                "3/14/2027 2:30 AM",
                "--timezone",
                "America/New_York",
                "--roll",
            ],
            "does not exist in America/New_York",
        ),
        (
            vec!["--effective-date", "7/1/2015", "--roll"],
            "not in the future",
        ),
        (
            vec!["--effective-date", "tomorrow", "--roll"],
            "is not a date",
        ),
        (
            vec![
                "--effective-date",
                "+1d",
                "--timezone",
                "Mars/Base",
                "--roll",
            ],
            "unknown IANA time zone",
        ),
    ] {
        let mut full = vec!["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t];
        full.extend(args);
        env.run(&full).assert_one_line_error(2, &[needle]);
    }
    // --roll without a date, a date without --roll: usage errors.
    assert_eq!(
        env.run(&[
            "set",
            "--type",
            "OAuthTokenIssuer",
            "--thumbprint",
            &t,
            "--roll"
        ])
        .code,
        2
    );
    assert_eq!(
        env.run(&[
            "set",
            "--type",
            "OAuthTokenIssuer",
            "--thumbprint",
            &t,
            "--effective-date",
            "+1d"
        ])
        .code,
        2
    );
    assert_eq!(env.snapshot(), before);
    assert_eq!(env.ok(&["jobs", "list"]).stdout.trim(), "no roll jobs");
}

#[test]
fn scheduling_checks_validity_at_the_instant_and_the_lead_time() {
    let env = Env::any_scope();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    // future.pfx becomes valid in 2090: a roll before then is an error,
    // after it fine.
    assert_eq!(env.import("future.pfx", &[]).code, 0);
    let f = thumbprint("future.crt.pem");
    env.run(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &f,
        "--effective-date",
        "2089-12-31",
        "--roll",
    ])
    .assert_one_line_error(1, &["not valid before 2090-01-01"]);
    // In 2090 the current oauth1 (expires 2045) is long gone: lead-time warning.
    let r = env.run(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &f,
        "--effective-date",
        "2090-06-01",
        "--roll",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("lead-time") && r.stderr.contains("before the roll"),
        "{}",
        r.stderr
    );
    env.ok(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &f,
        "--effective-date",
        "2090-06-01",
        "--roll",
        "--force",
    ]);
    // Less than 24 h before oauth1 expires: warning.
    env.import("oauth2.pfx", &[]);
    let r = env.run(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--scope",
        "pool:fe01.contoso.com",
        "--thumbprint",
        &t1(),
    ]);
    assert_eq!(r.code, 0);
    let r = env.run(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--scope",
        "pool:fe01.contoso.com",
        "--thumbprint",
        &t2(),
        "--effective-date",
        "2045-05-31T12:00:00Z",
        "--roll",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("expires 12 h after the roll") && r.stderr.contains("at least 24 h"),
        "{}",
        r.stderr
    );
}

#[test]
fn jobs_list_and_show_follow_the_contract() {
    let env = Env::new();
    scheduled(&env, "+1h");
    let list = env.ok(&["jobs", "list", "--json"]).json();
    let j = &list[0];
    for key in [
        "id",
        "scope",
        "type",
        "thumbprint",
        "due_at",
        "state",
        "attempts",
        "started_at",
        "finished_at",
        "last_error",
    ] {
        assert!(j.get(key).is_some(), "job object lacks {key}: {j}");
    }
    assert_eq!(j["state"], "scheduled");
    assert_eq!(j["type"], "OAuthTokenIssuer");
    assert_eq!(j["thumbprint"], t2());
    assert_eq!(
        env.ok(&["jobs", "list", "--state", "failed", "--json"])
            .json(),
        serde_json::json!([])
    );
    assert_eq!(env.run(&["jobs", "list", "--state", "bogus"]).code, 2);
    let text = env.ok(&["jobs", "show", "1"]).stdout;
    assert!(
        text.contains("job 1: scheduled OAuthTokenIssuer@global"),
        "{text}"
    );
    env.run(&["jobs", "show", "99"])
        .assert_one_line_error(1, &["no roll job 99"]);
    let get = env.ok(&["get"]).stdout;
    assert!(
        get.contains("pending   ") && get.contains("effective "),
        "{get}"
    );
}

/// Issue 11, item 15: a roll another process has claimed ahead of its
/// instant can still be cancelled, by `jobs cancel` or `remove --pending`:
/// its holder then does nothing at the instant, and no roll.failed alert
/// goes out.
#[test]
fn a_claimed_roll_is_cancelled_without_failing_at_its_instant() {
    for how in ["jobs cancel", "remove --pending"] {
        // Claimed 5 s ahead (the most a lease of 60 s allows).
        let env = Env::with_config(
            "sip_domain = \"contoso.com\"\n[serve]\nlease_seconds = 60\npreclaim_ms = 5000\n",
        );
        let due = scheduled(&env, "+7s");
        let serve = env.serve();
        wait_until(10, "the job claimed ahead of its instant", || {
            job(&env, 1)["state"] == "running"
        });
        if how == "jobs cancel" {
            env.ok(&["jobs", "cancel", "1"]);
        } else {
            env.ok(&["remove", "--type", "OAuthTokenIssuer", "--pending"]);
        }
        assert_eq!(job(&env, 1)["state"], "cancelled", "{how}");
        wait_past(due + Duration::seconds(1));
        wait_until(5, "the holder to pass the instant", || {
            serve.log().contains("before the roll ran")
        });
        assert_eq!(serve.stop(), 0);
        assert_eq!(current(&env), t1(), "{how}");
        assert_eq!(job(&env, 1)["state"], "cancelled", "{how}");
        assert_eq!(
            sql_i64(
                &env,
                "SELECT count(*) FROM outbox WHERE kind = 'roll.failed'"
            ),
            0,
            "{how}: a cancelled roll alerted as failed"
        );
    }
    // A claim ahead of the instant is bounded well below the lease.
    let env = Env::with_config("[serve]\nlease_seconds = 30\npreclaim_ms = 20000\n");
    env.run(&["get"])
        .assert_one_line_error(2, &["preclaim_ms must be at most a tenth of lease_seconds"]);
}

/// A serve notices at once that a process of its own host holding a job
/// died, as the README says, instead of waiting for the lease to run out.
#[test]
fn a_dead_holder_on_this_host_is_noticed_at_once_by_a_running_serve() {
    let env = Env::new();
    let serve = env.serve();
    let log = serve.log();
    let owner = log
        .split("owner=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no owner in the log: {log}"))
        .to_string();
    let host = owner.rsplitn(3, ':').nth(2).unwrap().to_string();
    let due = scheduled(&env, "+3s");
    // A `certroll roll` of this host claimed it for 60 s, and was killed.
    let lease_end = Utc::now() + Duration::seconds(60);
    {
        let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute(
            "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_expires_at = ?2, attempts = 1",
            [
                format!("{host}:999999:killed"),
                lease_end.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ],
        )
        .unwrap();
    }
    wait_until(20, "the recovered roll", || current(&env) == t2());
    assert!(
        Utc::now() < lease_end - Duration::seconds(30),
        "waited for the lease"
    );
    assert!(Utc::now() >= due, "rolled before its instant");
    assert!(
        serve.log().contains("recovered a job whose holder is gone"),
        "{}",
        serve.log()
    );
    assert_eq!(serve.stop(), 0);
}

/// Issue 11, item 18: `roll --dry-run` tells which rolls would happen, or
/// fail and why, and changes nothing.
#[test]
fn a_dry_run_tells_what_would_roll_and_changes_nothing() {
    let env = Env::new();
    let due = scheduled(&env, "+1s");
    wait_past(due);
    let before = env.snapshot();
    let r = env.ok(&["roll", "--dry-run"]);
    assert!(
        r.stdout.contains(&format!(
            "dry run: OAuthTokenIssuer@global: would roll to {}…; previous {}…",
            &t2()[..8],
            &t1()[..8]
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.ends_with("dry run: nothing was changed\n"),
        "{}",
        r.stdout
    );
    let v = env.ok(&["roll", "--dry-run", "--json"]).json();
    assert_eq!(v["jobs"][0]["outcome"], "would-succeed");
    // A roll the policy would now refuse is said to fail, with the reason.
    std::fs::write(
        &env.config,
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nmin_rsa_bits = 4096\n",
    )
    .unwrap();
    let r = env.ok(&["roll", "--dry-run"]);
    assert!(
        r.stdout.contains("would fail") && r.stdout.contains("3072-bit RSA key"),
        "{}",
        r.stdout
    );
    assert_eq!(env.snapshot(), before, "a dry run changed the store");
    assert_eq!(job(&env, 1)["state"], "scheduled");
}

/// Issue 11, item 20: without a `timezone` key the system's zone (TZ) is
/// used, as cron does; a date typed is echoed in that zone and in UTC, and
/// get, jobs and timeline show times the same way. --help says M/D/YYYY is
/// month/day/year.
#[test]
fn dates_follow_the_system_zone_and_print_one_way_everywhere() {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let london = |args: &[&str]| {
        let out = env
            .command(args)
            .env("TZ", "Europe/London")
            .output()
            .unwrap();
        Run::from(out)
    };
    let pfx = fixture("oauth2-windows.pfx");
    let pw = password_file();
    let r = london(&[
        "import",
        "--path",
        pfx.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--effective-date",
        "4/1/2045 2:00 AM",
        "--roll",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown = "2045-04-01 02:00:00 BST";
    assert!(
        r.stdout.contains(&format!(
            "becomes current at {shown} (2045-04-01 01:00:00 UTC)"
        )),
        "{}",
        r.stdout
    );
    assert_eq!(job(&env, 1)["due_at"], "2045-04-01T01:00:00Z");
    for args in [
        &["get"][..],
        &["jobs", "list"],
        &["timeline", "--days", "36500"],
    ] {
        let r = london(args);
        assert!(r.stdout.contains(shown), "{args:?}:\n{}", r.stdout);
    }
    let help = env.ok(&["set", "--help"]).stdout;
    assert!(help.contains("month/day/year"), "{help}");
    assert!(help.contains("the system's zone"), "{help}");
}
