//! Issue 4: alerts by email and webhook, delivered through outages, the
//! expiry watch, `check` and `notify test`, against real peers on loopback.

use chrono::{Duration, TimeZone, Utc};

use crate::peers::*;
use crate::util::*;

const SECRET: &[u8] = b"hook-secret";

fn email_channel(port: u16, extra: &str) -> String {
    format!(
        "[[notify.email]]\nname = \"ops-mail\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"certroll@contoso.com\"\nto = [\"pki@contoso.com\", \"oncall@contoso.com\"]\n{extra}\n"
    )
}

fn webhook_channel(url: &str, secret_file: &std::path::Path, extra: &str) -> String {
    format!(
        "[[notify.webhook]]\nname = \"hooks\"\nurl = \"{url}\"\nsecret_file = \"{}\"\n{extra}\n",
        secret_file.display()
    )
}

fn fast_retries() -> &'static str {
    "[notify]\nretry_base_seconds = 1\nretry_max_seconds = 2\n"
}

/// oauth1 current; oauth2 scheduled +1s (a roll.succeeded event soon).
fn schedule_roll(env: &Env) {
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
            "+1s",
            "--roll",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_roll_under_serve_is_mailed_with_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), free_port(), None);
    let env = Env::with_config(&format!(
        "sip_domain = \"contoso.com\"\n{}",
        email_channel(smtp.port, "events = [\"roll.*\"]")
    ));
    schedule_roll(&env);
    let serve = env.serve();
    wait_until(20, "the roll mail", || {
        smtp.messages()
            .iter()
            .any(|m| m["event"] == "roll.succeeded")
    });
    assert_eq!(serve.stop(), 0);

    let msgs = smtp.messages();
    let roll = msgs
        .iter()
        .find(|m| m["event"] == "roll.succeeded")
        .unwrap();
    let (t1, t2) = (thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem"));
    assert_eq!(
        roll["subject"],
        format!("[certroll] OAuthTokenIssuer@global rolled to {}…", &t2[..8])
    );
    assert_eq!(roll["to"], "pki@contoso.com, oncall@contoso.com");
    let body = roll["body"].as_str().unwrap();
    for needle in [
        &t2,
        &t1,
        "CN=contoso.com",
        "CN=oauth1.contoso.com",
        "valid 2025-06-01",
        "Effective:",
        "Actual:",
        "Lateness:",
        "RSA 3072",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }
    assert!(!roll["event_id"].as_str().unwrap().is_empty());
    // The filter kept certificate.assigned out; the scheduled roll came too.
    assert!(
        msgs.iter()
            .all(|m| m["event"].as_str().unwrap().starts_with("roll.")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m["event"] == "roll.scheduled"));
    let list = env.ok(&["notifications", "list", "--json"]).json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "delivered"),
        "{list}"
    );
}

#[test]
fn starttls_is_required_and_verified_against_the_configured_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(tmp.path());
    let smtp = Smtp::start(tmp.path(), free_port(), Some((&cert, &key)));
    let channel = format!(
        "[[notify.email]]\nname = \"tls-mail\"\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\n\
         from = \"certroll@contoso.com\"\nto = [\"pki@contoso.com\"]\nca_file = \"{}\"\ntimeout_seconds = 10\n",
        smtp.port,
        ca.display()
    );
    let env = Env::with_config(&channel);
    let r = env.ok(&["notify", "test"]);
    assert!(
        r.stdout.contains("tls-mail (email): delivered"),
        "{}",
        r.stdout
    );
    wait_until(10, "the test mail", || !smtp.messages().is_empty());
    assert_eq!(smtp.messages()[0]["subject"], "[certroll] test message");

    // Without the CA, the server's certificate is not trusted: no mail.
    let env = Env::with_config(&channel.replace(&format!("ca_file = \"{}\"\n", ca.display()), ""));
    let r = env.run(&["notify", "test"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("tls-mail (email):"), "{}", r.stderr);
    assert_eq!(smtp.messages().len(), 1);

    // Plain SMTP to a host that is not loopback is refused in the config.
    let env = Env::with_config(
        "[[notify.email]]\nname = \"x\"\nhost = \"smtp.contoso.com\"\ntls = \"none\"\nfrom = \"a@contoso.com\"\nto = [\"b@contoso.com\"]\n",
    );
    env.run(&["get"])
        .assert_one_line_error(2, &["tls = \"none\" is only allowed to a loopback host"]);
}

#[test]
fn a_webhook_answering_500_twice_gets_the_event_once_with_three_attempts() {
    let env = Env::new();
    let secret = env.path("hook.secret");
    std::fs::write(&secret, "hook-secret\n").unwrap();
    let hook = Receiver::start(SECRET, vec![500, 500, 200]);
    std::fs::write(
        &env.config,
        format!(
            "sip_domain = \"contoso.com\"\n{}{}",
            fast_retries(),
            webhook_channel(&hook.url(), &secret, "events = [\"roll.succeeded\"]")
        ),
    )
    .unwrap();
    schedule_roll(&env);
    let serve = env.serve();
    wait_until(30, "the webhook to succeed", || {
        hook.requests().iter().any(|r| r.status == 200)
    });
    // Let a possible duplicate show up before stopping: wait for the state.
    wait_until(10, "the delivery to be recorded", || {
        env.ok(&["notifications", "list", "--json"]).json()[0]["state"] == "delivered"
    });
    assert_eq!(serve.stop(), 0);

    let got = hook.requests();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|r| r.signature_ok), "bad HMAC: {got:?}");
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.header("X-Certroll-Event-Id").unwrap())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the event id must be stable: {ids:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&got[2].body).unwrap();
    assert_eq!(body["schema"], "certroll.event.v1");
    assert_eq!(body["kind"], "roll.succeeded");
    assert_eq!(body["event_id"], ids[0]);
    assert_eq!(body["slot"]["type"], "OAuthTokenIssuer");
    assert_eq!(
        body["certificates"]["new"]["thumbprint"],
        thumbprint("oauth2.crt.pem")
    );
    assert_eq!(
        body["certificates"]["old"]["thumbprint"],
        thumbprint("oauth1.crt.pem")
    );
    assert!(body["job"]["lateness_ms"].is_number());

    let d = &env.ok(&["notifications", "list", "--json"]).json()[0];
    assert_eq!(d["attempts"], 3);
    let outcomes: Vec<&str> = d["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"]);
    assert!(
        d["attempt_log"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );
}

#[test]
fn a_webhook_answering_400_goes_dead_at_once_and_can_be_retried() {
    let env = Env::new();
    let secret = env.path("hook.secret");
    std::fs::write(&secret, "hook-secret\n").unwrap();
    let hook = Receiver::start(SECRET, vec![400, 200]);
    std::fs::write(
        &env.config,
        format!(
            "sip_domain = \"contoso.com\"\n{}{}",
            fast_retries(),
            webhook_channel(&hook.url(), &secret, "events = [\"roll.succeeded\"]")
        ),
    )
    .unwrap();
    schedule_roll(&env);
    let serve = env.serve();
    wait_until(20, "the delivery to die", || {
        env.ok(&["notifications", "list", "--state", "dead", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    let d = &env.ok(&["notifications", "list", "--json"]).json()[0];
    assert_eq!(d["attempts"], 1);
    assert!(
        d["last_error"].as_str().unwrap().contains("HTTP 400"),
        "{d}"
    );
    // The roll itself is not affected by the failed delivery.
    assert_eq!(
        env.get_json()[0]["current"]["thumbprint"],
        thumbprint("oauth2.crt.pem")
    );
    // check warns about the dead delivery.
    let r = env.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.starts_with("CERTROLL WARNING") && r.stdout.contains("1 dead notification"),
        "{}",
        r.stdout
    );

    let r = env.ok(&["notifications", "retry", "--dead"]);
    assert!(
        r.stdout.starts_with("1 delivery queued again"),
        "{}",
        r.stdout
    );
    wait_until(20, "the retried delivery", || {
        env.ok(&["notifications", "list", "--json"]).json()[0]["state"] == "delivered"
    });
    assert_eq!(serve.stop(), 0);
    assert_eq!(hook.requests().len(), 2);
}

#[test]
fn alerts_wait_out_a_mail_server_outage_and_arrive_once() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = Env::with_config(&format!(
        "sip_domain = \"contoso.com\"\n{}{}",
        fast_retries(),
        email_channel(port, "events = [\"roll.succeeded\"]\ntimeout_seconds = 5")
    ));
    let due = Utc::now() + Duration::seconds(1);
    many_scheduled(&env, 5, due);
    // The mail server is down while the rolls happen.
    let serve = env.serve();
    wait_until(20, "the rolls", || {
        sql_i64(&env, "SELECT count(*) FROM jobs WHERE state = 'succeeded'") == 5
    });
    wait_until(20, "failed delivery attempts", || {
        sql_i64(
            &env,
            "SELECT count(*) FROM delivery_attempts WHERE outcome = 'retry'",
        ) >= 5
    });
    let smtp = Smtp::start(tmp.path(), port, None);
    wait_until(30, "every alert after the outage", || {
        smtp.messages().len() >= 5
    });
    wait_until(10, "the deliveries to be recorded", || {
        sql_i64(
            &env,
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        ) == 5
    });
    assert_eq!(serve.stop(), 0);
    let msgs = smtp.messages();
    let mut ids: Vec<&str> = msgs
        .iter()
        .map(|m| m["event_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each alert once: {msgs:?}");
    assert_eq!(msgs.len(), 5, "no alert twice");
    smtp.stop();
}

#[test]
fn two_serves_deliver_each_event_once_per_channel() {
    let env = Env::new();
    let secret = env.path("hook.secret");
    std::fs::write(&secret, "hook-secret\n").unwrap();
    let hook = Receiver::start(SECRET, vec![200]);
    std::fs::write(
        &env.config,
        format!(
            "sip_domain = \"contoso.com\"\n{}",
            webhook_channel(&hook.url(), &secret, "events = [\"roll.succeeded\"]")
        ),
    )
    .unwrap();
    let (a, b) = (env.serve(), env.serve());
    many_scheduled(&env, 60, Utc::now() + Duration::seconds(1));
    wait_until(30, "60 deliveries", || {
        sql_i64(
            &env,
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        ) == 60
    });
    assert_eq!(a.stop(), 0);
    assert_eq!(b.stop(), 0);
    let got = hook.requests();
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.header("X-Certroll-Event-Id").unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    assert_eq!(got.len(), 60, "an event was delivered twice");
}

#[test]
fn notify_test_reports_each_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(tmp.path(), free_port(), None);
    let hook = Receiver::start(SECRET, vec![200]);
    let env = Env::new();
    let secret = env.path("hook.secret");
    std::fs::write(&secret, "hook-secret\n").unwrap();
    std::fs::write(
        &env.config,
        format!(
            "{}{}",
            email_channel(smtp.port, ""),
            webhook_channel(&hook.url(), &secret, "format = \"slack\"")
        ),
    )
    .unwrap();
    let r = env.ok(&["notify", "test", "--json"]);
    let v = r.json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] == "delivered"),
        "{v}"
    );
    let slack: serde_json::Value = serde_json::from_str(&hook.requests()[0].body).unwrap();
    assert!(slack["text"].as_str().unwrap().contains("test message"));
    let r = env.ok(&["notify", "test", "--channel", "hooks"]);
    assert_eq!(r.stdout.lines().count(), 1);
    assert_eq!(env.run(&["notify", "test", "--channel", "nope"]).code, 2);

    // A channel that cannot be reached fails the test (exit 1).
    let env = Env::with_config(&email_channel(free_port(), "timeout_seconds = 3"));
    let r = env.run(&["notify", "test"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("error: ops-mail (email): "),
        "{}",
        r.stderr
    );
}

#[test]
fn the_expiry_watch_alerts_each_threshold_once_over_70_days_and_stops_after_replacement() {
    use certroll::cert::{Scope, SlotKey, UsageType};
    use certroll::config::Config;
    use certroll::schedule::engine::expiry_scan;

    let env = Env::new();
    let config = Config::parse("", std::path::Path::new("test.toml")).unwrap();
    let a = entry("oauth1-openssl3.pfx"); // expires 2045-06-01T00:00:00Z
    let global = SlotKey::new(Scope::Global, UsageType::from_canonical("OAuthTokenIssuer"));
    let pool = SlotKey::new(
        Scope::Pool("fe01.contoso.com".into()),
        UsageType::from_canonical("OAuthTokenIssuer"),
    );
    store(&env)
        .assign(
            Some(&new_cert(&a)),
            &a.cert.thumbprint,
            &[global.clone(), pool.clone()],
            &test_ctx(),
        )
        .unwrap();
    let start = Utc.with_ymd_and_hms(2045, 3, 23, 8, 0, 0).unwrap(); // 70 days before expiry
    let f = entry("future.pfx");
    let mut seen: Vec<(i64, String, String)> = Vec::new();
    for day in 0..=75 {
        let now = start + Duration::days(day);
        // A new store each day: what was sent is remembered across restarts.
        let mut s = store(&env);
        if day == 50 {
            // The pool's certificate is replaced: it stops alerting there.
            s.assign(
                Some(&new_cert(&f)),
                &f.cert.thumbprint,
                std::slice::from_ref(&pool),
                &test_ctx(),
            )
            .unwrap();
        }
        for alert in expiry_scan(&mut s, &config, now).unwrap() {
            seen.push((day, alert.slot.to_string(), alert.key.alert.clone()));
        }
    }
    let at = |slot: &str| -> Vec<(i64, &str)> {
        seen.iter()
            .filter(|(_, s, _)| s == slot)
            .map(|(d, _, a)| (*d, a.as_str()))
            .collect()
    };
    assert_eq!(
        at("OAuthTokenIssuer@global"),
        [
            (10, "current:60"),
            (40, "current:30"),
            (56, "current:14"),
            (63, "current:7"),
            (67, "current:3"),
            (69, "current:1"),
            (70, "current:expired")
        ]
    );
    assert_eq!(
        at("OAuthTokenIssuer@pool:fe01.contoso.com"),
        [(10, "current:60"), (40, "current:30")]
    );
    // Each alert is an outbox event, once.
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind LIKE 'expiry.%'"
        ),
        9
    );
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind = 'expiry.no_successor'"
        ),
        8
    );
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind = 'expiry.expired'"
        ),
        1
    );
}

#[test]
fn check_exit_codes_follow_the_monitoring_plugin_convention() {
    // OK: far from expiry.
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let r = env.run(&["check"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .starts_with("CERTROLL OK - 1 slot(s): 0 critical, 0 warning, 1 ok"),
        "{}",
        r.stdout
    );

    // WARNING: 20 days left, nothing pending.
    let env = Env::new();
    let pem = short_lived_pem(env.dir.path(), "w", 20);
    env.ok(&[
        "import",
        "--path",
        pem.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--force",
    ]);
    let r = env.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let first = r.stdout.lines().next().unwrap();
    assert!(first.starts_with("CERTROLL WARNING - 1 slot(s): 0 critical, 1 warning, 0 ok - OAuthTokenIssuer@global: current certificate"), "{first}");
    assert!(first.contains("nothing is pending"), "{first}");
    // A successor scheduled in time makes it OK.
    env.import(
        "oauth2.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+5d",
            "--roll",
        ],
    );
    assert_eq!(env.run(&["check"]).code, 0);

    // CRITICAL: 3 days left.
    let env = Env::new();
    let pem = short_lived_pem(env.dir.path(), "c", 3);
    env.ok(&[
        "import",
        "--path",
        pem.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--force",
    ]);
    let r = env.run(&["check", "--json"]);
    assert_eq!(r.code, 2);
    let v = r.json();
    assert_eq!(v["status"], "CRITICAL");
    assert_eq!(v["slots"][0]["status"], "CRITICAL");
    assert!(v["slots"][0]["days_left"].as_i64().unwrap() <= 3);

    // UNKNOWN: the configuration cannot be read.
    let mut cmd = env.command(&["check"]);
    cmd.env("CERTROLL_CONFIG", "/nonexistent/certroll.toml");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("CERTROLL UNKNOWN - "));
}

#[test]
fn a_webhook_over_https_trusts_its_configured_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(tmp.path());
    let (port, got) = start_tls_receiver(&cert, &key);
    let channel = format!(
        "[[notify.webhook]]\nname = \"tls-hook\"\nurl = \"https://localhost:{port}/hook\"\nca_file = \"{}\"\ntimeout_seconds = 5\n",
        ca.display()
    );
    let env = Env::with_config(&channel);
    let r = env.ok(&["notify", "test"]);
    assert!(
        r.stdout
            .contains("tls-hook (webhook): delivered (HTTP 200)"),
        "{}",
        r.stdout
    );
    assert_eq!(got.lock().unwrap().len(), 1);
    let body: serde_json::Value = serde_json::from_str(&got.lock().unwrap()[0].body).unwrap();
    assert_eq!(body["kind"], "notify.test");

    // The same server is not trusted without the CA.
    let env = Env::with_config(&channel.replace(&format!("ca_file = \"{}\"\n", ca.display()), ""));
    let r = env.run(&["notify", "test"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("tls-hook (webhook):") && r.stderr.to_lowercase().contains("certificate"),
        "{}",
        r.stderr
    );
    assert_eq!(got.lock().unwrap().len(), 1);
}

/// Issue 11, item 13: SIGHUP reads the configuration again. An invalid one
/// is logged and the old one kept; a valid one takes over (here: a new
/// webhook channel) without losing the roll that was waiting or its event.
#[test]
fn sighup_reloads_the_configuration_and_keeps_the_old_one_when_invalid() {
    let env = Env::new();
    let secret = env.path("hook.secret");
    std::fs::write(&secret, "hook-secret\n").unwrap();
    let hook = Receiver::start(SECRET, vec![200]);
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
            "+6s",
            "--roll",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let serve = env.serve();
    let hup = || {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(serve.pid(), libc::SIGHUP) };
    };

    std::fs::write(&env.config, "sip_domain = \n").unwrap();
    hup();
    wait_until(10, "the refusal in the log", || {
        serve
            .log()
            .contains("the new configuration is invalid: keeping the one in use")
    });
    assert!(serve.log().contains("certroll.toml"), "{}", serve.log());

    std::fs::write(
        &env.config,
        format!(
            "sip_domain = \"contoso.com\"\n{}{}",
            fast_retries(),
            webhook_channel(&hook.url(), &secret, "events = [\"roll.*\"]")
        ),
    )
    .unwrap();
    hup();
    wait_until(10, "the reload", || {
        serve.log().contains("configuration reloaded")
    });
    wait_until(30, "roll.succeeded at the new channel", || {
        hook.requests()
            .iter()
            .any(|r| r.header("X-Certroll-Event") == Some("roll.succeeded"))
    });
    assert_eq!(serve.stop(), 0);
    let jobs = env.ok(&["jobs", "list", "--json"]).json();
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["state"], "succeeded");
    assert_eq!(
        env.get_json()[0]["current"]["thumbprint"],
        thumbprint("oauth2.crt.pem")
    );
    // The event written before the channel existed arrived too, once each.
    let kinds: Vec<String> = hook
        .requests()
        .iter()
        .filter_map(|r| r.header("X-Certroll-Event").map(str::to_string))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "roll.succeeded").count(),
        1,
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "roll.scheduled"), "{kinds:?}");
}
