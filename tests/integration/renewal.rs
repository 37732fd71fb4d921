//! Rollover policies: the renewal duty makes each next certificate once at
//! its threshold and schedules its roll at its promotion date; the command
//! line shows and forces it; serve runs it.

use std::sync::Arc;

use certroll::cert::{Scope, SlotKey, UsageType};
use certroll::clock::{Clock, ManualClock};
use certroll::config::Config;
use certroll::ops::renew::{self, Outcome};
use certroll::schedule::engine::Engine;
use certroll::store::{JobFilter, JobState};
use chrono::{DateTime, Duration, SubsecRound, Utc};

use crate::util::*;

const POLICY: &str = "sip_domain = \"contoso.com\"
[renewal.OAuthTokenIssuer]
method = \"self-signed\"
validity_days = 60
key = \"ec-p256\"
";

fn oauth_global() -> SlotKey {
    SlotKey::new(Scope::Global, UsageType::from_canonical("OAuthTokenIssuer"))
}

/// The slot's current certificate (thumbprint, not_before, not_after).
fn current(store: &certroll::store::Store) -> (String, DateTime<Utc>, DateTime<Utc>) {
    let v = store
        .slots(&[oauth_global().usage_type], Some(&Scope::Global))
        .unwrap()
        .remove(0);
    let c = v.current.unwrap().info;
    (c.thumbprint, c.not_before, c.not_after)
}

#[test]
fn four_hundred_days_of_a_self_signed_policy_renew_and_roll_each_certificate_once() {
    let env = Env::with_config(&format!("{POLICY}retire_previous_after_hours = 48\n"));
    env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--self-signed",
        "--days",
        "60",
        "--key",
        "ec-p256",
        "--assign",
    ]);
    let config = Arc::new(Config::load(Some(&env.config)).unwrap());
    let start = Utc::now().trunc_subsecs(0);
    let clock = Arc::new(ManualClock::new(start));
    let mut store = store(&env);
    let mut engine = Engine::new(crate::util::store(&env), config.clone(), clock.clone()).unwrap();

    // Each current certificate, when its successor was made, and the
    // successor's roll instant.
    let mut renewals: Vec<(String, DateTime<Utc>, DateTime<Utc>, String)> = Vec::new();
    let mut rolled = 0;
    let mut retired: Vec<(String, DateTime<Utc>)> = Vec::new();
    let end = start + Duration::days(400);
    while clock.now() < end {
        let now = clock.now();
        let before = current(&store);
        let report = renew::pass(&mut store, &config, now, "test").unwrap();
        // Twice at the same instant: nothing more.
        assert!(
            renew::pass(&mut store, &config, now, "test")
                .unwrap()
                .outcomes
                .is_empty()
        );
        for (slot, outcome) in &report.outcomes {
            assert_eq!(slot, &oauth_global());
            match outcome {
                Outcome::Generated {
                    thumbprint,
                    effective_at,
                    ..
                } => renewals.push((before.0.clone(), now, *effective_at, thumbprint.clone())),
                Outcome::Retired { thumbprint } => retired.push((thumbprint.clone(), now)),
                other => panic!("unexpected {other:?}"),
            }
        }
        let (pass, _) = engine.run_once(&JobFilter::default(), false).unwrap();
        rolled += pass.succeeded;
        assert_eq!(pass.failed, 0);
        // The clock goes to the next thing that falls due: a renewal, a
        // roll, or a day later.
        let due = store.next_wake().unwrap().due;
        let next = [report.next, due, Some(now + Duration::days(1))]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
            .unwrap();
        clock.set(next);
    }

    // 60-day certificates renewed 20 days before expiry: every 40 days or so.
    assert!(renewals.len() >= 9, "{} renewals", renewals.len());
    let mut seen = std::collections::HashSet::new();
    for (i, (old, made_at, at, new)) in renewals.iter().enumerate() {
        assert!(seen.insert(old.clone()), "{old} renewed twice");
        let info = store.find_cert(old).unwrap().info;
        assert_eq!(*made_at, info.not_after - Duration::days(20), "renewal {i}");
        assert_eq!(*at, info.not_after - Duration::days(5), "renewal {i}");
        let made = store.find_cert(new).unwrap();
        assert!(made.has_private_key);
        assert_eq!(
            made.info.not_after - made.info.not_before,
            Duration::days(60) + Duration::hours(1)
        );
    }
    assert_eq!(rolled, renewals.len());
    // Each previous one retired 48 h after the roll that made it previous.
    assert!(retired.len() + 1 >= renewals.len(), "{retired:?}");
    for (old, at) in &retired {
        let (_, _, rolled_at, _) = renewals
            .iter()
            .find(|r| &r.0 == old)
            .expect("a renewed one");
        assert_eq!(*at, *rolled_at + Duration::hours(48), "{old}");
    }
    assert_eq!(actions_count(&env, "retire"), retired.len());
    // Each roll at its instant, each once.
    let jobs = store
        .jobs(Some(JobState::Succeeded), &JobFilter::default(), None)
        .unwrap();
    assert_eq!(jobs.len(), renewals.len());
    for j in &jobs {
        assert_eq!(
            j.lateness_us.unwrap_or(0).abs() / 1000,
            0,
            "job {} late",
            j.id
        );
    }
    // The audit trail: one renew row per renewal, each with its schedule.
    let actions = history_actions(&env);
    assert_eq!(
        actions.iter().filter(|a| *a == "renew").count(),
        renewals.len()
    );
    assert_eq!(
        env.count("certificates") as usize,
        renewals.len() + 1,
        "one certificate per renewal, none made twice"
    );
}

/// A self-signed OAuthTokenIssuer current at global, expiring in `days`.
fn current_for_days(env: &Env, days: u32) {
    env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--self-signed",
        "--days",
        &days.to_string(),
        "--key",
        "ec-p256",
        "--assign",
        "--force",
    ]);
}

fn outbox(env: &Env, kind: &str) -> i64 {
    sql_i64(
        env,
        &format!("SELECT count(*) FROM outbox WHERE kind = '{kind}'"),
    )
}

#[test]
fn what_if_shows_the_dates_now_renews_once_and_a_pass_does_nothing_more() {
    let env = Env::with_config(POLICY);
    // Nothing under a policy yet.
    let r = env.ok(&["renew", "--what-if"]);
    assert!(
        r.stdout.contains("no slot is under a rollover policy"),
        "{}",
        r.stdout
    );
    current_for_days(&env, 60);
    let (cur, _, not_after) = current(&store(&env));

    let plan = env.ok(&["renew", "--what-if", "--json"]).json();
    let p = &plan[0];
    assert_eq!(p["state"], "waiting", "{plan}");
    assert_eq!(p["current"], cur.as_str());
    let day = |v: &serde_json::Value| DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(day(&p["generate_at"]), not_after - Duration::days(20));
    assert_eq!(day(&p["promote_at"]), not_after - Duration::days(5));
    assert_eq!(day(&p["critical_at"]), not_after - Duration::days(2));
    // Named like the current one, a new key of the policy's kind.
    assert_eq!(p["names"], serde_json::json!(["contoso.com"]), "{plan}");
    assert_eq!(p["key"], "EC P-256");
    let text = env.ok(&["renew", "--what-if"]).stdout;
    assert!(
        text.contains("waiting: makes the next (self-signed) at"),
        "{text}"
    );
    assert!(
        text.contains("    next: CN=contoso.com, names contoso.com"),
        "{text}"
    );
    // get, certs --json and timeline show the same dates.
    let view = env.get_json();
    assert_eq!(view[0]["renewal"]["promote_at"], p["promote_at"], "{view}");
    let text = env.ok(&["get"]).stdout;
    assert!(
        text.contains("  renewal   waiting: makes the next"),
        "{text}"
    );
    let certs = env.ok(&["certs", "--json"]).json();
    assert_eq!(
        certs[0]["renewals"][0]["generate_at"], p["generate_at"],
        "{certs}"
    );
    let text = env
        .ok(&["timeline", "--days", "90", "--color", "never"])
        .stdout;
    assert!(text.contains("self-signed: next made"), "{text}");
    assert_eq!(env.run(&["check"]).code, 0);
    // Not due: a pass makes nothing.
    assert!(env.ok(&["renew"]).stdout.contains("nothing is due"));
    assert_eq!(env.count("certificates"), 1);

    // --now makes it at once, promoted at the policy's date.
    let out = env.ok(&["renew", "--now", "--json"]).json();
    assert_eq!(out[0]["outcome"], "generated", "{out}");
    assert_eq!(day(&out[0]["effective_at"]), not_after - Duration::days(5));
    let view = env.get_json();
    assert_eq!(
        view[0]["pending"]["thumbprint"], out[0]["thumbprint"],
        "{view}"
    );
    assert_eq!(outbox(&env, "renewal.generated"), 1);
    assert_eq!(outbox(&env, "roll.scheduled"), 1);
    // Once: a second --now is refused (a roll is pending), a pass does nothing.
    let again = env.run(&["renew", "--now"]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("is already pending"),
        "{}",
        again.stderr
    );
    assert!(env.ok(&["renew"]).stdout.contains("nothing is due"));
    assert_eq!(env.count("certificates"), 2);
    let text = env.ok(&["renew", "--what-if"]).stdout;
    assert!(text.contains("pending: "), "{text}");
    // The audit trail names the renewal.
    let history = env.ok(&["history"]).stdout;
    assert!(
        history.contains(&format!("self-signed: renews {cur}")),
        "{history}"
    );

    // The operator cancels the renewal's roll: withdrawn, not made again
    // behind their back; --now makes another.
    let job = out[0]["job_id"].as_i64().unwrap().to_string();
    env.ok(&["jobs", "cancel", &job]);
    assert!(env.ok(&["renew"]).stdout.contains("nothing is due"));
    assert_eq!(env.count("certificates"), 2);
    let plan = env.ok(&["renew", "--what-if", "--json"]).json();
    assert_eq!(plan[0]["state"], "withdrawn", "{plan}");
    let again = env.ok(&["renew", "--now", "--json"]).json();
    assert_eq!(again[0]["outcome"], "generated", "{again}");
    assert_eq!(env.count("certificates"), 3);
}

#[test]
fn a_failed_renewal_is_recorded_retried_later_and_an_overdue_one_alerted_once() {
    // require_staged with no server staging the slot: every attempt fails.
    let env = Env::with_config(&format!(
        "{POLICY}require_staged = true\nretry_minutes = 30\n"
    ));
    // 4 days left: past the promotion date (5 days before expiry).
    current_for_days(&env, 4);
    let r = env.run(&["renew"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("renewal failed: require_staged"),
        "{}",
        r.stdout
    );
    assert_eq!(env.count("certificates"), 1, "nothing half made");
    assert_eq!(env.count("jobs"), 0);
    assert_eq!(outbox(&env, "renewal.failed"), 1);
    assert_eq!(outbox(&env, "renewal.overdue"), 1);
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind = 'renewal.overdue' AND severity = 'critical'"
        ),
        1
    );
    let plan = env.ok(&["renew", "--what-if", "--json"]).json();
    assert_eq!(plan[0]["state"], "failed", "{plan}");
    assert_eq!(plan[0]["attempts"], 1);
    assert!(
        plan[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("require_staged")
    );
    let next = DateTime::parse_from_rfc3339(plan[0]["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next.with_timezone(&Utc) - Utc::now();
    assert!(
        wait > Duration::minutes(29) && wait <= Duration::minutes(30),
        "{wait}"
    );
    // Backing off: the next pass neither tries nor alerts again.
    assert_eq!(env.run(&["renew"]).code, 0);
    assert_eq!(outbox(&env, "renewal.failed"), 1);
    assert_eq!(outbox(&env, "renewal.overdue"), 1);
    // --now tries at once, and fails the same way, counted.
    assert_eq!(env.run(&["renew", "--now"]).code, 1);
    let plan = env.ok(&["renew", "--what-if", "--json"]).json();
    assert_eq!(plan[0]["attempts"], 2, "{plan}");
    let history = history_actions(&env);
    assert_eq!(history.iter().filter(|a| *a == "renew-failed").count(), 2);
    // check names both: the failure and the overdue promotion.
    let r = env.run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("renewal failed 2 time(s), the last: require_staged"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("renewal overdue"), "{}", r.stdout);
}

#[test]
fn a_request_policy_asks_the_ca_once_and_schedules_its_answer() {
    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n[renewal.OAuthTokenIssuer]\nmethod = \"request\"\ngenerate_before_days = 90\n",
    );
    let pki = crate::request::Pki::new(env.dir.path());
    pki.import_cas(&env);
    current_for_days(&env, 60);
    let (cur, _, not_after) = current(&store(&env));
    let r = env.ok(&["renew"]);
    assert!(
        r.stdout.contains("request 1 made for the CA"),
        "{}",
        r.stdout
    );
    assert_eq!(outbox(&env, "request.created"), 1);
    assert_eq!(outbox(&env, "renewal.requested"), 1);
    // Not twice while it waits.
    assert!(env.ok(&["renew"]).stdout.contains("nothing is due"));
    assert_eq!(env.run(&["renew", "--now"]).code, 1);
    assert_eq!(sql_i64(&env, "SELECT count(*) FROM requests"), 1);
    let plan = env.ok(&["renew", "--what-if", "--json"]).json();
    assert_eq!(plan[0]["state"], "requested", "{plan}");
    assert_eq!(plan[0]["request_id"], 1);

    // The CA answers; its answer imported (with the request's key) is
    // scheduled by the next pass, at the policy's promotion date.
    let csr = env.path("renewal.csr");
    let pem = env.ok(&["requests", "show", "1", "--csr"]).stdout;
    std::fs::write(&csr, pem).unwrap();
    let answer = pki.sign(&csr, "renewed");
    env.ok(&["import", "--path", answer.to_str().unwrap()]);
    let plan = env.ok(&["renew", "--what-if", "--json"]).json();
    assert_eq!(plan[0]["state"], "answered", "{plan}");
    let out = env.ok(&["renew", "--json"]).json();
    assert_eq!(out[0]["outcome"], "scheduled", "{out}");
    let view = env.get_json();
    let pending = &view[0]["pending"];
    assert_eq!(pending["thumbprint"], out[0]["thumbprint"], "{view}");
    assert_eq!(
        DateTime::parse_from_rfc3339(pending["effective_at"].as_str().unwrap()).unwrap(),
        not_after - Duration::days(5)
    );
    assert_eq!(view[0]["current"]["thumbprint"], cur.as_str());
    assert!(env.ok(&["renew"]).stdout.contains("nothing is due"));
    assert_eq!(outbox(&env, "renewal.generated"), 1);
}

#[test]
fn serve_renews_a_certificate_when_it_falls_due() {
    let port = crate::peers::free_port();
    let env = Env::with_config(&format!("{POLICY}[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    // 10 days left: due (20 days before expiry) as serve starts.
    current_for_days(&env, 10);
    let (cur, _, not_after) = current(&store(&env));
    let serve = env.serve();
    wait_until(30, "serve's renewal", || {
        outbox(&env, "renewal.generated") == 1
    });
    let view = env.get_json();
    let pending = &view[0]["pending"];
    assert_eq!(
        DateTime::parse_from_rfc3339(pending["effective_at"].as_str().unwrap()).unwrap(),
        not_after - Duration::days(5),
        "{view}"
    );
    assert_eq!(view[0]["current"]["thumbprint"], cur.as_str());
    let (code, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("certroll_renewals_total{outcome=\"generated\"} 1"),
        "{metrics}"
    );
    let promote = (not_after - Duration::days(5)).timestamp();
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "certroll_renewal_promote_timestamp_seconds{type=\"OAuthTokenIssuer\",scope=\"global\",method=\"self-signed\"}"
        ) && l.ends_with(&format!(" {promote}.0"))),
        "{metrics}"
    );
    assert_eq!(serve.stop(), 0);
    let history = env.ok(&["history", "--json"]).json();
    let renew = history
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["action"] == "renew")
        .expect("a renew row");
    assert_eq!(renew["actor"], "serve:renewal");
    assert_eq!(env.count("certificates"), 2);
}

fn actions_count(env: &Env, action: &str) -> usize {
    history_actions(env).iter().filter(|a| *a == action).count()
}

#[test]
fn the_previous_one_is_retired_after_its_overlap_once_every_server_has_the_current_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let env = Env::with_config(&format!(
        "{POLICY}retire_previous_after_hours = 1\n\
         [[server]]\nname = \"fe01.contoso.com\"\n\
         [[target]]\nname = \"files\"\nscope = \"global\"\ntypes = [\"OAuthTokenIssuer\"]\n\
         [[target.file]]\nkind = \"jwks\"\npath = \"{d}/jwks.json\"\n"
    ));
    env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"]);
    env.import("oauth2.pfx", &["--type", "OAuthTokenIssuer"]);
    let (t1, t2) = (thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem"));
    // Two hours on (this process's clock), with fe01 not yet deployed: kept.
    let later = |args: &[&str]| {
        Run::from(
            env.command(args)
                .env("CERTROLL_CLOCK_OFFSET_MS", "7200000")
                .output()
                .unwrap(),
        )
    };
    let r = later(&["renew"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.get_json()[0]["previous"]["thumbprint"], t1.as_str());
    // Not before its overlap either, deployed or not.
    env.ok(&["agent", "--server", "fe01.contoso.com", "--once"]);
    env.ok(&["renew"]);
    assert_eq!(env.get_json()[0]["previous"]["thumbprint"], t1.as_str());
    // fe01 has the current one and the overlap has passed: retired, once.
    let r = later(&["renew"]);
    assert!(
        r.stdout
            .contains(&format!("previous certificate {t1} retired")),
        "{}",
        r.stdout
    );
    let view = env.get_json();
    assert!(view[0]["previous"].is_null(), "{view}");
    assert_eq!(view[0]["current"]["thumbprint"], t2.as_str());
    assert_eq!(outbox(&env, "certificate.retired"), 1);
    assert_eq!(actions_count(&env, "retire"), 1);
    // The JWKS follows: the retired key leaves it.
    env.ok(&["agent", "--server", "fe01.contoso.com", "--once"]);
    let jwks = std::fs::read_to_string(tmp.path().join("jwks.json")).unwrap();
    assert!(jwks.contains(&t2) && !jwks.contains(&t1), "{jwks}");
}

/// Runs certroll with the crash point `at` set; asserts it crashed there.
fn crash_at(env: &Env, at: &str, args: &[&str]) {
    let out = env
        .command(args)
        .env("CERTROLL_CRASH_AT", at)
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{args:?} did not crash at {at}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_crash_at_each_step_of_a_renewal_leaves_one_certificate_and_one_roll() {
    for point in ["renewal.made", "renewal.before-commit", "renewal.committed"] {
        let env = Env::with_config(POLICY);
        // 4 days left: due, and promoted 10 minutes after it is made.
        current_for_days(&env, 4);
        crash_at(&env, point, &["renew"]);
        let committed = point == "renewal.committed";
        assert_eq!(
            env.count("certificates"),
            if committed { 2 } else { 1 },
            "{point}"
        );
        assert_eq!(env.count("jobs"), i64::from(committed), "{point}");
        // Restarted: the duty runs again.
        env.ok(&["renew"]);
        env.ok(&["renew"]);
        assert_eq!(env.count("certificates"), 2, "{point}: one new certificate");
        assert_eq!(env.count("jobs"), 1, "{point}: one roll");
        assert_eq!(outbox(&env, "renewal.generated"), 1, "{point}");
        assert_eq!(actions_count(&env, "renew"), 1, "{point}");

        // The roll itself, crashed before and after its commit.
        let pending = env.get_json()[0]["pending"]["thumbprint"].clone();
        if point == "renewal.made" {
            crash_at(
                &env,
                "roll.before-commit",
                &["roll", "--now", "--type", "OAuthTokenIssuer"],
            );
            assert_eq!(
                env.get_json()[0]["pending"]["thumbprint"],
                pending,
                "unchanged"
            );
        } else {
            crash_at(
                &env,
                "roll.committed",
                &["roll", "--now", "--type", "OAuthTokenIssuer"],
            );
            assert_eq!(
                env.get_json()[0]["current"]["thumbprint"],
                pending,
                "rolled"
            );
        }
        // Restarted: the lease of a crashed run is recovered (its holder is
        // gone) and the roll happens exactly once.
        let _ = env.run(&["roll", "--now", "--type", "OAuthTokenIssuer"]);
        assert_eq!(
            env.get_json()[0]["current"]["thumbprint"],
            pending,
            "{point}"
        );
        assert_eq!(
            sql_i64(&env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'"),
            1,
            "{point}"
        );
        assert_eq!(outbox(&env, "roll.succeeded"), 1, "{point}");
        // And the renewal makes nothing more for the new current one yet.
        env.ok(&["renew"]);
        assert_eq!(env.count("certificates"), 2, "{point}");
    }
}

#[test]
fn serve_killed_before_a_renewal_commits_makes_it_once_when_restarted() {
    let env = Env::with_config(POLICY);
    current_for_days(&env, 10);
    crash_at(&env, "renewal.before-commit", &["serve"]);
    assert_eq!(env.count("certificates"), 1, "nothing half made");
    let serve = env.serve();
    wait_until(30, "the renewal after the restart", || {
        outbox(&env, "renewal.generated") == 1
    });
    assert_eq!(serve.stop(), 0);
    assert_eq!(env.count("certificates"), 2);
    assert_eq!(env.count("jobs"), 1);
}

#[test]
fn two_engines_on_postgres_renew_a_slot_once() {
    let policy = POLICY.trim_start_matches("sip_domain = \"contoso.com\"\n");
    let (env, _db) = Env::postgres(policy);
    current_for_days(&env, 10);
    let a = env.serve();
    let b = env.serve();
    wait_until(30, "the renewal", || outbox(&env, "renewal.generated") >= 1);
    // Both engines run the duty's loop; one leads it.
    wait_until(10, "both renewal loops", || {
        a.log().contains("renewal duty started") && b.log().contains("renewal duty started")
    });
    let leaders = [&a, &b]
        .iter()
        .filter(|s| s.log().contains("leading the renewal duty"))
        .count();
    assert_eq!(leaders, 1, "{}\n{}", a.log(), b.log());
    assert_eq!(a.stop(), 0);
    assert_eq!(b.stop(), 0);
    assert_eq!(outbox(&env, "renewal.generated"), 1);
    assert_eq!(sql_i64(&env, "SELECT count(*) FROM certificates"), 2);
    assert_eq!(sql_i64(&env, "SELECT count(*) FROM jobs"), 1);
}
