//! One conformance suite for both backends: each scenario is written once
//! against the store's API and runs on SQLite (`::sqlite`) and on a
//! database of the test run's private PostgreSQL cluster (`::postgres`).
//! Assign, schedule, claim, roll, cancel, retry, release, recovery, the
//! outbox's fan-out and deliveries, deployments and the audit trail.

use chrono::{DateTime, Duration, TimeZone, Utc};

use certroll::cert::bundle::{self, Entry, Input};
use certroll::cert::slot::SlotState;
use certroll::cert::{Role, Scope, SlotKey, UsageType};
use certroll::store::{
    DeliveryLimits, DeliveryOutcome, DeployState, ExecOptions, HistoryFilter, JobFilter, JobState,
    NewCert, OpCtx, RollOutcome, Store, StoredCert,
};

use super::util::Env;

/// `name::sqlite` and `name::postgres`, each running `scenario` on a fresh
/// store of its backend.
macro_rules! on_both {
    ($name:ident, $scenario:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                let env = Env::new();
                run(&env, $scenario);
            }

            #[test]
            fn postgres() {
                let (env, _db) = Env::postgres("");
                run(&env, $scenario);
            }
        }
    };
}

fn run(env: &Env, scenario: impl FnOnce(&mut Store, &Fixtures)) {
    let mut store = Store::open_at(&env.location()).expect("open the store");
    scenario(&mut store, &Fixtures::load());
}

struct Fixtures {
    a: Entry,
    b: Entry,
}

impl Fixtures {
    fn load() -> Fixtures {
        let entry = |name: &str| {
            let data = std::fs::read(super::util::fixture(name)).unwrap();
            bundle::parse(&Input {
                data: &data,
                key_file: None,
                password: Some("Passw0rd!"),
            })
            .unwrap()
            .entries
            .remove(0)
        };
        Fixtures {
            a: entry("oauth1-openssl3.pfx"),
            b: entry("oauth2-windows.pfx"),
        }
    }
}

fn new_cert(e: &Entry) -> NewCert<'_> {
    NewCert {
        cert: &e.cert,
        chain: &e.chain,
        key: e.key.as_ref(),
        friendly_name: e.friendly_name.as_deref(),
        source_file: Some("conformance.pfx"),
        request: None,
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn at(now: DateTime<Utc>) -> OpCtx {
    OpCtx {
        now,
        actor: "conformance".into(),
    }
}

fn pools(n: usize) -> Vec<SlotKey> {
    (0..n)
        .map(|i| {
            SlotKey::new(
                Scope::Pool(format!("p{i}.contoso.com")),
                UsageType::from_canonical("OAuthTokenIssuer"),
            )
        })
        .collect()
}

/// `n` pools holding `a`, with `b` scheduled for all of them at t0.
fn scheduled(store: &mut Store, f: &Fixtures, n: usize) -> Vec<SlotKey> {
    let slots = pools(n);
    let c = at(t0() - Duration::hours(1));
    store
        .assign(Some(&new_cert(&f.a)), &f.a.cert.thumbprint, &slots, &c)
        .unwrap();
    store
        .schedule(
            Some(&new_cert(&f.b)),
            &f.b.cert.thumbprint,
            &slots,
            t0(),
            false,
            &c,
        )
        .unwrap();
    slots
}

fn state(store: &Store, slot: &SlotKey) -> SlotState {
    store.slot_state(slot).unwrap().expect("the slot exists")
}

fn kinds(store: &Store) -> Vec<String> {
    store
        .outbox_kinds()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Calls `f` until it returns something, for at most 10 s.
fn until_some<T>(mut f: impl FnMut() -> Vec<T>) -> Vec<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v = f();
        if !v.is_empty() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "nothing after 10 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn execute(
    store: &mut Store,
    owner: &str,
    jobs: &[certroll::store::Claimed],
    now: DateTime<Utc>,
    max_attempts: u32,
    refuse: Option<&SlotKey>,
) -> Vec<RollOutcome> {
    let check = |s: &SlotKey, _: &StoredCert, _| match refuse {
        Some(r) if r == s => Err("refused by the test".to_string()),
        _ => Ok(()),
    };
    let clock = || now;
    let opts = ExecOptions {
        owner,
        actor: owner,
        late_after: Duration::seconds(60),
        max_attempts,
        check: &check,
        clock: &clock,
        at_instant: false,
    };
    store
        .execute(jobs, &opts)
        .unwrap()
        .into_iter()
        .map(|r| r.outcome)
        .collect()
}

on_both!(assign_remove_and_the_audit_trail, |store, f| {
    let slots = pools(2);
    let c = at(t0());
    store
        .assign(Some(&new_cert(&f.a)), &f.a.cert.thumbprint, &slots, &c)
        .unwrap();
    store
        .assign(Some(&new_cert(&f.b)), &f.b.cert.thumbprint, &slots[..1], &c)
        .unwrap();
    let first = state(store, &slots[0]);
    assert_eq!(first.current.as_deref(), Some(f.b.cert.thumbprint.as_str()));
    assert_eq!(
        first.previous.as_deref(),
        Some(f.a.cert.thumbprint.as_str())
    );
    store.remove(&slots[..1], Role::Previous, &c).unwrap();
    assert_eq!(state(store, &slots[0]).previous, None);
    assert_eq!(
        state(store, &slots[1]).current.as_deref(),
        Some(f.a.cert.thumbprint.as_str())
    );
    let trail: Vec<(String, Option<String>, Option<String>)> = store
        .history(&HistoryFilter::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.slot.is_some())
        .map(|e| (e.action, e.slot.map(|s| s.to_string()), e.after.current))
        .collect();
    let (a, b) = (
        Some(f.a.cert.thumbprint.clone()),
        Some(f.b.cert.thumbprint.clone()),
    );
    let (s0, s1) = (Some(slots[0].to_string()), Some(slots[1].to_string()));
    assert_eq!(
        trail,
        [
            ("assign".into(), s0.clone(), a.clone()),
            ("assign".into(), s1, a),
            ("assign".into(), s0.clone(), b.clone()),
            ("remove-previous".into(), s0, b),
        ]
    );
    assert_eq!(
        kinds(store),
        [
            "certificate.assigned",
            "certificate.assigned",
            "certificate.assigned",
            "certificate.removed"
        ]
    );
});

on_both!(
    a_batch_rolls_refuses_and_loses_leases_each_once,
    |store, f| {
        let slots = scheduled(store, f, 4);
        let lease = Duration::minutes(10);
        let mine = store
            .claim("me", t0(), Some(t0()), lease, 3, &JobFilter::default())
            .unwrap();
        let theirs = store
            .claim("other", t0(), Some(t0()), lease, 3, &JobFilter::default())
            .unwrap();
        assert_eq!((mine.len(), theirs.len()), (3, 1), "each job claimed once");
        // One batch: two rolls, one refused by the policy, one whose lease
        // another engine holds; two minutes late.
        let batch: Vec<_> = mine.iter().chain(&theirs).cloned().collect();
        let late = t0() + Duration::minutes(2);
        let outcomes = execute(store, "me", &batch, late, 10, Some(&mine[1].slot));
        assert!(matches!(
            outcomes[0],
            RollOutcome::Succeeded { late: true, .. }
        ));
        assert!(
            matches!(&outcomes[1], RollOutcome::Failed { reason, .. } if reason == "refused by the test")
        );
        assert!(matches!(outcomes[2], RollOutcome::Succeeded { .. }));
        assert!(matches!(outcomes[3], RollOutcome::LeaseLost));
        // Run again, nothing changes: each job ran once.
        let again = execute(store, "me", &batch, late, 10, None);
        assert!(again.iter().all(|o| matches!(o, RollOutcome::LeaseLost)));
        let b = Some(f.b.cert.thumbprint.as_str());
        for job in [&mine[0], &mine[2]] {
            let s = state(store, &job.slot);
            assert_eq!(s.current.as_deref(), b);
            assert_eq!(s.previous.as_deref(), Some(f.a.cert.thumbprint.as_str()));
            assert!(s.pending.is_none());
            assert_eq!(
                store.job(job.id).unwrap().unwrap().state,
                JobState::Succeeded
            );
        }
        assert_eq!(
            store.job(mine[1].id).unwrap().unwrap().state,
            JobState::Failed
        );
        assert_eq!(
            store.job(theirs[0].id).unwrap().unwrap().state,
            JobState::Running
        );
        for job in [&mine[1], &theirs[0]] {
            let s = state(store, &job.slot);
            assert_eq!(s.current.as_deref(), Some(f.a.cert.thumbprint.as_str()));
            assert_eq!(s.pending.map(|p| p.thumbprint).as_deref(), b);
        }
        let rolls: Vec<String> = kinds(store)
            .into_iter()
            .filter(|k| k.starts_with("roll.") && k != "roll.scheduled")
            .collect();
        assert_eq!(
            rolls,
            [
                "roll.succeeded",
                "roll.late",
                "roll.failed",
                "roll.late",
                "roll.succeeded",
                "roll.late"
            ]
        );
        let trail: Vec<String> = store
            .history(&HistoryFilter::default())
            .unwrap()
            .into_iter()
            .filter(|e| e.action.starts_with("roll"))
            .map(|e| format!("{} {}", e.action, e.slot.unwrap()))
            .collect();
        assert_eq!(
            trail,
            [
                format!("roll {}", mine[0].slot),
                format!("roll-failed {}", mine[1].slot),
                format!("roll {}", mine[2].slot),
            ]
        );
        let _ = slots;
    }
);

on_both!(cancel_release_recovery_and_retry, |store, f| {
    let slots = scheduled(store, f, 3);
    let ids: Vec<i64> = store
        .jobs(None, &JobFilter::default(), None)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids.len(), 3);
    let c = at(t0() - Duration::minutes(30));
    let cancelled = store.cancel_job(ids[0], &c).unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let s = state(store, &cancelled.slot);
    assert!(s.pending.is_none());
    assert_eq!(s.current.as_deref(), Some(f.a.cert.thumbprint.as_str()));
    assert!(store.cancel_job(ids[0], &c).is_err(), "cancelled twice");

    // A lease of a second, from the real clock (on PostgreSQL leases run
    // by the database's).
    let lease = Duration::seconds(1);
    let claimed = store
        .claim(
            "me",
            Utc::now(),
            Some(t0()),
            lease,
            10,
            &JobFilter::default(),
        )
        .unwrap();
    assert_eq!(claimed.len(), 2, "the cancelled job is not claimed");
    // One given back for later; the other's holder dies and its lease ends.
    store
        .release("me", &[claimed[0].id], t0() + Duration::minutes(5), "busy")
        .unwrap();
    let back = store.job(claimed[0].id).unwrap().unwrap();
    assert_eq!(back.state, JobState::Scheduled);
    assert_eq!(back.last_error.as_deref(), Some("busy"));
    assert!(
        store
            .claim("me", t0(), Some(t0()), lease, 10, &JobFilter::default())
            .unwrap()
            .is_empty(),
        "not before its new time"
    );
    let recovered = until_some(|| store.recover_expired(Utc::now()).unwrap());
    assert_eq!(recovered, [(claimed[1].id, "me".to_string())]);
    assert_eq!(
        store.job(claimed[1].id).unwrap().unwrap().state,
        JobState::Scheduled
    );

    // Claimed more often than allowed: fails for good, then is retried.
    // (Recovered at the real clock's now, they run from then on.)
    let now = Utc::now() + Duration::seconds(1);
    let again = store
        .claim(
            "me",
            now,
            Some(now),
            Duration::hours(1),
            10,
            &JobFilter::default(),
        )
        .unwrap();
    assert_eq!(again.len(), 2);
    let outcomes = execute(store, "me", &again, now, 0, None);
    assert!(outcomes.iter().all(
        |o| matches!(o, RollOutcome::Failed { reason, .. } if reason.starts_with("gave up after"))
    ));
    let retried = store.retry_job(again[0].id, &at(now)).unwrap();
    assert_eq!(retried.state, JobState::Scheduled);
    let last = store
        .claim(
            "me",
            now,
            Some(now + Duration::seconds(1)),
            Duration::hours(1),
            10,
            &JobFilter::default(),
        )
        .unwrap();
    assert_eq!(last.len(), 1);
    let outcomes = execute(store, "me", &last, now, 10, None);
    assert!(matches!(outcomes[0], RollOutcome::Succeeded { .. }));
    assert_eq!(
        state(store, &last[0].slot).current.as_deref(),
        Some(f.b.cert.thumbprint.as_str())
    );
    let counts = store.job_counts().unwrap();
    let count = |s: JobState| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    assert_eq!(
        (
            count(JobState::Cancelled),
            count(JobState::Failed),
            count(JobState::Succeeded)
        ),
        (1, 1, 1)
    );
    let _ = slots;
});

on_both!(
    the_outbox_fans_out_and_each_delivery_is_claimed_once,
    |store, f| {
        let slots = pools(3);
        let c = at(Utc::now());
        store
            .assign(Some(&new_cert(&f.a)), &f.a.cert.thumbprint, &slots, &c)
            .unwrap();
        let route = |_: &certroll::store::OutboxEvent| vec!["hook".to_string(), "mail".to_string()];
        let fan = store
            .fan_out(c.now, Duration::days(1), 100, &route)
            .unwrap();
        assert_eq!((fan.events, fan.deliveries), (3, 6));
        assert_eq!(
            store
                .fan_out(c.now, Duration::days(1), 100, &route)
                .unwrap()
                .events,
            0,
            "an event is routed once"
        );
        let lease = Duration::seconds(1);
        let first = store.claim_deliveries("n1", c.now, lease, 4).unwrap();
        let second = store.claim_deliveries("n2", c.now, lease, 10).unwrap();
        assert_eq!((first.len(), second.len()), (4, 2));
        let mut ids: Vec<i64> = first.iter().chain(&second).map(|d| d.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6, "no delivery claimed twice");
        let limits = DeliveryLimits {
            max_attempts: 5,
            max_age: Duration::days(1),
        };
        let results: Vec<_> = first
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let outcome = match i {
                    0 | 1 => DeliveryOutcome::Delivered {
                        detail: "202".into(),
                    },
                    2 => DeliveryOutcome::Retry {
                        error: "timeout".into(),
                        at: c.now + Duration::minutes(1),
                    },
                    _ => DeliveryOutcome::Dead {
                        error: "410 Gone".into(),
                    },
                };
                (d.clone(), outcome, 5)
            })
            .collect();
        store
            .record_deliveries("n1", c.now, limits, &results)
            .unwrap();
        let state_of = |s: &Store, st: &str| s.deliveries(Some(st), None, None).unwrap().len();
        assert_eq!(state_of(store, "delivered"), 2);
        assert_eq!(state_of(store, "pending"), 1);
        assert_eq!(state_of(store, "dead"), 1);
        assert_eq!(state_of(store, "sending"), 2, "n2's are still leased");
        // n2 dies: its deliveries come back when their lease of a second ends.
        let back = until_some(|| {
            let n = store.recover_expired_deliveries(Utc::now()).unwrap();
            if n > 0 { vec![n] } else { vec![] }
        });
        assert_eq!(back, [2]);
        assert_eq!(state_of(store, "sending"), 0);
        let attempts = store.delivery_attempts(first[3].id).unwrap();
        assert_eq!(attempts.len(), 1);
    }
);

on_both!(deployment_states_are_recorded_and_read_back, |store, f| {
    let slots = pools(1);
    let c = at(t0());
    store
        .assign(Some(&new_cert(&f.a)), &f.a.cert.thumbprint, &slots, &c)
        .unwrap();
    let mut st = DeployState {
        server: "fe01.contoso.com".into(),
        usage_type: "OAuthTokenIssuer".into(),
        target: "files".into(),
        role: "current".into(),
        wanted: Some(f.a.cert.thumbprint.clone()),
        deployed: None,
        state: "failed".into(),
        attempts: 1,
        last_attempt_at: Some(t0()),
        next_attempt_at: Some(t0() + Duration::seconds(30)),
        last_error: Some("permission denied".into()),
        deployed_at: None,
        out_of_date_since: Some(t0()),
        lagging_alerted: false,
    };
    store.record_deployment(&st, None, &c).unwrap();
    st.deployed = st.wanted.clone();
    st.state = "ok".into();
    st.attempts = 0;
    st.last_error = None;
    st.next_attempt_at = None;
    st.deployed_at = Some(t0() + Duration::seconds(31));
    st.out_of_date_since = None;
    store.record_deployment(&st, None, &c).unwrap();
    let other = DeployState {
        server: "fe02.contoso.com".into(),
        ..st.clone()
    };
    store.record_deployment(&other, None, &c).unwrap();
    let mine = store.deployment_states(Some("fe01.contoso.com")).unwrap();
    assert_eq!(mine.len(), 1, "one row per server, type, target and role");
    assert_eq!(mine[0].state, "ok");
    assert_eq!(mine[0].deployed, st.wanted);
    assert_eq!(mine[0].deployed_at, st.deployed_at);
    assert_eq!(store.deployment_states(None).unwrap().len(), 2);
});

on_both!(the_expiry_watch_pages_resume_and_alert_once, |store, f| {
    // a expires 2045-06-01: 59 days left, the 60-day alert is due.
    let now = Utc.with_ymd_and_hms(2045, 4, 3, 8, 0, 0).unwrap();
    let slots = pools(7);
    store
        .assign(
            Some(&new_cert(&f.a)),
            &f.a.cert.thumbprint,
            &slots,
            &at(t0()),
        )
        .unwrap();
    let config = certroll::config::Config::parse("", std::path::Path::new("t.toml")).unwrap();
    let rules = |slot: &SlotKey| config.expiry_rules(slot);
    let decide = |facts: &[certroll::cert::expiry::SlotFacts], sent: &_| {
        certroll::cert::expiry::scan(facts, &rules, now, sent)
    };
    let page = |store: &mut Store, after: i64| {
        let (alerts, next) = store.expiry_scan_from(&at(now), after, 3, &decide).unwrap();
        let names: Vec<String> = alerts
            .iter()
            .map(|a| format!("{} {}", a.slot, a.key.alert))
            .collect();
        (names, next)
    };
    // The first page, then the watch stops (a roll came, the engine
    // stopped...) and goes on from where it was.
    let (first, next) = page(store, 0);
    assert_eq!(first.len(), 3, "{first:?}");
    let mut after = next.expect("more pages");
    let mut rest = Vec::new();
    let mut pages = 1;
    loop {
        let (alerts, next) = page(store, after);
        rest.extend(alerts);
        pages += 1;
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    // 3 + 3 + 1 slots, and an empty page that ends the watch.
    assert_eq!(pages, 4);
    let mut all: Vec<String> = first.into_iter().chain(rest).collect();
    all.sort();
    let mut want: Vec<String> = slots.iter().map(|s| format!("{s} current:60")).collect();
    want.sort();
    assert_eq!(all, want, "each slot alerted once");
    assert_eq!(
        kinds(store)
            .iter()
            .filter(|k| *k == "expiry.no_successor")
            .count(),
        7,
        "one event per alert: {:?}",
        kinds(store)
    );
    // The next watch remembers what was sent.
    let (again, next) = page(store, 0);
    assert!(again.is_empty(), "{again:?}");
    assert!(next.is_some());
});

/// As [`on_both!`], for a scenario run through the command line.
macro_rules! on_both_cli {
    ($name:ident, $scenario:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                ($scenario)(&Env::new());
            }

            #[test]
            fn postgres() {
                let (env, _db) = Env::postgres("");
                ($scenario)(&env);
            }
        }
    };
}

on_both_cli!(a_request_waits_is_listed_and_cancelled, |env: &Env| {
    let csr = env.path("oauth.csr");
    env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--subject-cn",
        "oauth.contoso.com",
        "--key",
        "ec-p256",
        "--output",
        csr.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&csr)
            .unwrap()
            .contains("BEGIN CERTIFICATE REQUEST")
    );
    let pending = env
        .ok(&["requests", "list", "--state", "pending", "--json"])
        .json();
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let id = pending[0]["id"].to_string();
    assert_eq!(
        env.ok(&["requests", "show", &id, "--csr"]).stdout,
        std::fs::read_to_string(&csr).unwrap()
    );
    env.ok(&["requests", "cancel", &id]);
    let all = env.ok(&["requests", "list", "--json"]).json();
    assert_eq!(all[0]["state"], "cancelled");
    let run = env.run(&["requests", "cancel", &id]);
    assert_ne!(run.code, 0, "cancelled twice: {}", run.stderr);
    let kinds = env.ok(&["history", "--json"]).json();
    let actions: Vec<&str> = kinds
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"request") && actions.contains(&"request-cancelled"),
        "{actions:?}"
    );
});

on_both!(renewal_steps_rollback_retire_and_acme_state, |store, f| {
    let slot = pools(1).remove(0);
    let (a, b) = (&f.a.cert.thumbprint, &f.b.cert.thumbprint);
    let c = at(t0());
    store
        .assign(Some(&new_cert(&f.a)), a, std::slice::from_ref(&slot), &c)
        .unwrap();
    // Failures count up, each with its next attempt; a slot whose current
    // certificate is another is refused.
    let next = |n: u32| t0() + Duration::minutes(10 * i64::from(n));
    assert_eq!(store.renewal_failed(&slot, a, "boom", next, &c).unwrap(), 1);
    assert_eq!(
        store
            .renewal_failed(&slot, a, "boom again", next, &c)
            .unwrap(),
        2
    );
    assert!(matches!(
        store.renewal_failed(&slot, b, "x", next, &c),
        Err(certroll::store::StoreError::Refused(_))
    ));
    let rec = store.renewal_records().unwrap()[&slot].clone();
    assert_eq!(
        (rec.attempts, rec.last_error.as_deref()),
        (2, Some("boom again"))
    );
    assert_eq!(rec.next_attempt_at, Some(t0() + Duration::minutes(20)));
    assert_eq!(&rec.for_thumbprint, a);
    // The overdue alert once.
    let data = serde_json::json!({});
    assert!(
        store
            .renewal_overdue(&slot, a, "late", data.clone(), &c)
            .unwrap()
    );
    assert!(!store.renewal_overdue(&slot, a, "late", data, &c).unwrap());
    // A request for the CA, once.
    let key = f.a.key.as_ref().unwrap();
    let req = certroll::store::NewRequest {
        usage_type: "OAuthTokenIssuer",
        scope: &slot.scope.to_string(),
        subject: "CN=p0.contoso.com",
        sans: &["p0.contoso.com".to_string()],
        key_algorithm: "RSA 2048",
        friendly_name: None,
        template: None,
        key,
        csr: "-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n",
        validity_days: Some(365),
    };
    let id = store.renew_with_request(&slot, a, &req, &c).unwrap();
    assert!(matches!(
        store.renew_with_request(&slot, a, &req, &c),
        Err(certroll::store::StoreError::Refused(_))
    ));
    let rec = store.renewal_records().unwrap()[&slot].clone();
    assert_eq!(
        (rec.request_id, rec.request_open, rec.attempts),
        (Some(id), true, 0)
    );
    // The next certificate made and scheduled, with its record.
    let renewed = store
        .renew_with_cert(
            &slot,
            a,
            Some(&new_cert(&f.b)),
            b,
            t0() + Duration::days(1),
            false,
            "self-signed",
            &c,
        )
        .unwrap();
    assert!(renewed.job_id.is_some());
    let s = state(store, &slot);
    assert_eq!(s.pending.as_ref().map(|p| &p.thumbprint), Some(b));
    assert_eq!(
        store.renewal_records().unwrap()[&slot].made.as_ref(),
        Some(b)
    );
    // Not twice: a roll is pending.
    assert!(
        store
            .renew_with_cert(
                &slot,
                a,
                None,
                b,
                t0() + Duration::days(2),
                false,
                "self-signed",
                &c
            )
            .is_err()
    );
    for kind in [
        "renewal.failed",
        "renewal.overdue",
        "renewal.requested",
        "renewal.generated",
    ] {
        assert!(kinds(store).iter().any(|k| k == kind), "{kind}");
    }
    // b current, a previous; rolled back; the rollback scheduled back.
    store
        .assign(
            None,
            b,
            std::slice::from_ref(&slot),
            &at(t0() + Duration::hours(1)),
        )
        .unwrap();
    let c2 = at(t0() + Duration::hours(2));
    let report = store.rollback(&slot, (b, a), false, &c2).unwrap();
    assert!(
        report
            .describe()
            .starts_with("rollback of the assignment of"),
        "{}",
        report.describe()
    );
    let s = state(store, &slot);
    assert_eq!(
        (s.current.as_ref(), s.previous.as_ref()),
        (Some(a), Some(b))
    );
    assert!(
        store.rollback(&slot, (b, a), false, &c2).is_err(),
        "changed meanwhile"
    );
    let (report, sched) = store
        .schedule_rollback(&slot, (a, b), t0() + Duration::days(3), false, &c2)
        .unwrap();
    assert!(report.describe().starts_with("rollback of the rollback of"));
    let job = sched.job_ids[0];
    assert_eq!(
        state(store, &slot).pending.map(|p| p.thumbprint).as_ref(),
        Some(b)
    );
    store.cancel_job(job, &c2).unwrap();
    // The previous one retired.
    store
        .retire_previous(&slot, (a, b), "retired after 1 h", &c2)
        .unwrap();
    assert_eq!(state(store, &slot).previous, None);
    assert!(store.retire_previous(&slot, (a, b), "again", &c2).is_err());
    let actions: Vec<String> = store
        .history(&HistoryFilter::default())
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in ["renew-failed", "renew", "rollback", "retire"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    // ACME: the first account kept wins; answers expire and go.
    let url = "https://acme.contoso.com/dir";
    assert!(store.acme_account(url).unwrap().is_none());
    assert!(store.save_acme_account(url, b"{\"id\":1}", &c).unwrap());
    assert!(!store.save_acme_account(url, b"{\"id\":2}", &c).unwrap());
    assert_eq!(
        &store.acme_account(url).unwrap().unwrap()[..],
        b"{\"id\":1}"
    );
    store
        .put_acme_challenge("tok-1", "tok-1.ka", t0(), t0() + Duration::hours(1))
        .unwrap();
    assert_eq!(
        store.acme_challenge("tok-1", t0()).unwrap().as_deref(),
        Some("tok-1.ka")
    );
    assert_eq!(
        store
            .acme_challenge("tok-1", t0() + Duration::hours(2))
            .unwrap(),
        None
    );
    store.remove_acme_challenge("tok-1").unwrap();
    assert_eq!(store.acme_challenge("tok-1", t0()).unwrap(), None);
});

on_both!(accounts_tokens_and_sessions, |store, _f| {
    use certroll::auth::{self, Role as AccountRole};
    let ctx = at(t0());
    assert_eq!(store.user_count().unwrap(), 0);
    let hash = auth::hash_password("correct horse battery").unwrap();
    store
        .add_user("alice", AccountRole::Admin, Some(&hash), &ctx)
        .unwrap();
    store
        .add_user("bob", AccountRole::Viewer, None, &ctx)
        .unwrap();
    let taken = store.add_user("alice", AccountRole::Viewer, None, &ctx);
    assert!(taken.unwrap_err().to_string().contains("exists already"));
    let (role, stored) = store.user_password("alice").unwrap().unwrap();
    assert_eq!(role, AccountRole::Admin);
    assert!(auth::verify_password("correct horse battery", &stored.unwrap()).unwrap());

    // A token acts as its account until it expires or is revoked; only its
    // hash is stored.
    let token = auth::new_token().unwrap();
    store
        .add_token("bob", &token, "ci", Some(t0() + Duration::days(1)), &ctx)
        .unwrap();
    let who = store.token_principal(&token.token, t0()).unwrap().unwrap();
    assert_eq!((who.user.as_str(), who.role), ("bob", AccountRole::Viewer));
    assert!(
        store
            .token_principal(&token.token, t0() + Duration::days(2))
            .unwrap()
            .is_none()
    );
    let forged = format!("certroll_{}_{}", token.id, "x".repeat(43));
    assert!(store.token_principal(&forged, t0()).unwrap().is_none());
    assert_eq!(store.tokens(Some("bob")).unwrap().len(), 1);

    // Sessions end at their expiry, at logout, and with a new password.
    let later = t0() + Duration::hours(8);
    store
        .open_session("alice", "session-one", "csrf-one", later, &ctx)
        .unwrap();
    let s = store.session("session-one", t0()).unwrap().unwrap();
    assert_eq!(
        (s.principal.user.as_str(), s.csrf_token.as_str()),
        ("alice", "csrf-one")
    );
    assert!(store.session("session-one", later).unwrap().is_none());
    store.close_session("session-one", &ctx).unwrap();
    assert!(store.session("session-one", t0()).unwrap().is_none());
    store
        .open_session("alice", "session-two", "csrf-two", later, &ctx)
        .unwrap();
    let new_hash = auth::hash_password("another long password").unwrap();
    store
        .update_user("alice", Some(AccountRole::Operator), Some(&new_hash), &ctx)
        .unwrap();
    assert!(store.session("session-two", t0()).unwrap().is_none());

    store.revoke_token(&token.id, &ctx).unwrap();
    assert!(store.token_principal(&token.token, t0()).unwrap().is_none());
    store.remove_user("bob", &ctx).unwrap();
    assert_eq!(store.user_count().unwrap(), 1);
    let actions: Vec<String> = store
        .history(&HistoryFilter::default())
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "user-added",
            "user-added",
            "token-added",
            "login",
            "logout",
            "login",
            "user-changed",
            "token-revoked",
            "user-removed"
        ]
    );
});

on_both!(slots_and_certificates_page_in_the_store, |store, f| {
    let slots = scheduled(store, f, 5);
    let (total, page) = store.slots_page(&[], None, 2, 1).unwrap();
    assert_eq!(total, 5);
    let all = store.slots(&[], None).unwrap();
    let keys =
        |v: &[certroll::store::SlotView]| v.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&page), keys(&all[1..3]));
    let (total, page) = store.slots_page(&[], Some(&slots[4].scope), 10, 0).unwrap();
    assert_eq!((total, keys(&page)), (1, vec![slots[4].clone()]));
    assert_eq!(store.slots_page(&[], None, 10, 5).unwrap().1.len(), 0);
    let (total, certs) = store.certs_page(1, 1).unwrap();
    let every = store.certs(None).unwrap();
    assert_eq!((total, certs[0].id), (2, every[1].id));
});
