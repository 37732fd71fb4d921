//! Metrics and health for `serve`'s HTTP listener.
//!
//! Two sources, as Prometheus exporters usually have them:
//! - [`Registry`]: what this process observed since it started (rolls by
//!   outcome, their lateness, expiry scans, whether each loop runs). The
//!   engine records into it; counters start at zero with the process, as
//!   Prometheus expects (`rate()` handles restarts; several `serve`
//!   processes on one store are summed).
//! - [`Snapshot`]: the shared state read from the store at scrape time
//!   (every slot's certificates, the queue, the outbox, deployments).
//!
//! [`render`] turns both into the Prometheus text exposition format
//! (version 0.0.4): `certroll_` prefix, base units (`_seconds`,
//! `_timestamp_seconds`), `_total` for counters. It does no I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::cert::expiry::{CertFacts, SlotFacts};
use crate::deploy::status::StatusRow;
use crate::store::JobState;

/// Upper bounds of the roll lateness histogram, in seconds: a roll is
/// normally committed within a millisecond of its instant; seconds to
/// hours mean the service was down or the store busy.
pub const LATENESS_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
    86400.0,
];

/// What this process observed.
#[derive(Debug, Default)]
pub struct Registry {
    rolls_succeeded: AtomicU64,
    rolls_failed: AtomicU64,
    rolls_late: AtomicU64,
    http_refused: AtomicU64,
    readiness_probes: AtomicU64,
    lateness: Mutex<Histogram>,
    expiry_scan_at: Mutex<Option<DateTime<Utc>>>,
    loops: Mutex<BTreeMap<&'static str, bool>>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative); the last is +Inf.
    counts: [u64; LATENESS_BUCKETS.len() + 1],
    sum: f64,
}

impl Registry {
    /// A roll this process committed (`late`: past `late_after_seconds`).
    pub fn roll_succeeded(&self, lateness_seconds: f64, late: bool) {
        self.rolls_succeeded.fetch_add(1, Ordering::Relaxed);
        if late {
            self.rolls_late.fetch_add(1, Ordering::Relaxed);
        }
        // `roll --now` runs early: its negative lateness counts as on time.
        let v = lateness_seconds.max(0.0);
        let i = LATENESS_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(LATENESS_BUCKETS.len());
        let mut h = self.lateness.lock().expect("metrics lock");
        h.counts[i] += 1;
        h.sum += v;
    }

    /// A connection closed at once: `[http] max_connections` were open.
    pub fn count_http_refused(&self) {
        self.http_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// /readyz probed the store (at most once a second).
    pub fn count_readiness_probe(&self) {
        self.readiness_probes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn roll_failed(&self) {
        self.rolls_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn expiry_scanned(&self, at: DateTime<Utc>) {
        *self.expiry_scan_at.lock().expect("metrics lock") = Some(at);
    }

    /// Marks a loop (engine, notifier, deployer, http) as running or not.
    pub fn set_loop(&self, name: &'static str, running: bool) {
        self.loops
            .lock()
            .expect("metrics lock")
            .insert(name, running);
    }

    /// The loops that were started and have stopped.
    pub fn stopped_loops(&self) -> Vec<&'static str> {
        self.loops
            .lock()
            .expect("metrics lock")
            .iter()
            .filter(|(_, running)| !**running)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// Marks a loop running for as long as it lives (also when its thread
/// unwinds).
pub struct LoopGuard<'a> {
    registry: &'a Registry,
    name: &'static str,
}

impl<'a> LoopGuard<'a> {
    pub fn new(registry: &'a Registry, name: &'static str) -> LoopGuard<'a> {
        registry.set_loop(name, true);
        LoopGuard { registry, name }
    }
}

impl Drop for LoopGuard<'_> {
    fn drop(&mut self) {
        self.registry.set_loop(self.name, false);
    }
}

/// The store's state at scrape time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub slots: Vec<SlotFacts>,
    pub jobs: Vec<(JobState, i64)>,
    /// (channel, state, count)
    pub deliveries: Vec<(String, String, i64)>,
    /// Events committed but not yet routed to their channels (None: no
    /// channel is configured, so nothing routes them and none is reported).
    pub unrouted: Option<i64>,
    /// At most this many slots get series of their own (`[http]
    /// metrics_max_slots`): those whose certificate in service expires
    /// first. Aggregates cover every slot.
    pub max_slots: usize,
    pub deployments: Vec<StatusRow>,
}

/// Writes one metric family at a time, with HELP and TYPE once.
struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The exposition: the registry's counters and the snapshot's gauges.
/// A slot's certificates with their role names.
fn roles(s: &SlotFacts) -> impl Iterator<Item = (&'static str, &CertFacts)> {
    [
        s.current.as_ref().map(|c| ("current", c)),
        s.previous.as_ref().map(|(c, _)| ("previous", c)),
        s.pending.as_ref().map(|(c, _)| ("pending", c)),
    ]
    .into_iter()
    .flatten()
}

pub fn render(registry: &Registry, snap: &Snapshot) -> String {
    let mut w = Writer { out: String::new() };

    w.family(
        "certroll_build_info",
        "gauge",
        "The running certroll's version (always 1).",
    );
    w.sample(
        "certroll_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );

    // Aggregates over every slot: how many per type, and the earliest
    // expiry per type and role (what an expiry alert needs).
    let mut per_type: BTreeMap<&str, i64> = BTreeMap::new();
    let mut earliest: BTreeMap<(&str, &str), DateTime<Utc>> = BTreeMap::new();
    for s in &snap.slots {
        let t = s.slot.usage_type.as_str();
        *per_type.entry(t).or_default() += 1;
        for (role, c) in roles(s) {
            let e = earliest.entry((t, role)).or_insert(c.not_after);
            *e = (*e).min(c.not_after);
        }
    }
    w.family(
        "certroll_slots",
        "gauge",
        "Slots holding a certificate, by type.",
    );
    for (t, n) in &per_type {
        w.sample("certroll_slots", &[("type", t)], *n as f64);
    }
    w.family(
        "certroll_certificate_not_after_min_timestamp_seconds",
        "gauge",
        "The earliest notAfter of the certificates in a role across every slot of a type, as a Unix time.",
    );
    for ((t, role), at) in &earliest {
        w.sample(
            "certroll_certificate_not_after_min_timestamp_seconds",
            &[("type", t), ("role", role)],
            unix(*at),
        );
    }

    // Series of their own for the slots whose certificate in service
    // (current, else pending, else previous) expires first.
    let in_service = |s: &SlotFacts| {
        s.current
            .as_ref()
            .or(s.pending.as_ref().map(|(c, _)| c))
            .or(s.previous.as_ref().map(|(c, _)| c))
            .map(|c| c.not_after)
    };
    let mut chosen: Vec<usize> = (0..snap.slots.len()).collect();
    let omitted = chosen.len().saturating_sub(snap.max_slots);
    if omitted > 0 {
        chosen.sort_by_key(|&i| (in_service(&snap.slots[i]), i));
        chosen.truncate(snap.max_slots);
        chosen.sort_unstable();
    }
    let chosen: Vec<&SlotFacts> = chosen.iter().map(|&i| &snap.slots[i]).collect();
    w.family(
        "certroll_metrics_slots_omitted",
        "gauge",
        "Slots without series of their own in this scrape ([http] metrics_max_slots).",
    );
    w.sample("certroll_metrics_slots_omitted", &[], omitted as f64);

    // Certificates of those slots, by role.
    let certs: Vec<(&SlotFacts, &str, &CertFacts)> = chosen
        .iter()
        .copied()
        .flat_map(|s| roles(s).map(move |(role, c)| (s, role, c)))
        .collect();
    for (name, help, pick) in [
        (
            "certroll_certificate_not_after_timestamp_seconds",
            "When the certificate in a slot's role expires (notAfter), as a Unix time.",
            (|c: &CertFacts| c.not_after) as fn(&CertFacts) -> DateTime<Utc>,
        ),
        (
            "certroll_certificate_not_before_timestamp_seconds",
            "When the certificate in a slot's role becomes valid (notBefore), as a Unix time.",
            |c: &CertFacts| c.not_before,
        ),
    ] {
        w.family(name, "gauge", help);
        for (s, role, c) in &certs {
            let scope = s.slot.scope.to_string();
            w.sample(
                name,
                &[
                    ("type", s.slot.usage_type.as_str()),
                    ("scope", &scope),
                    ("role", role),
                    ("thumbprint", &c.thumbprint),
                    ("subject", &c.label),
                ],
                unix(pick(c)),
            );
        }
    }
    w.family(
        "certroll_roll_next_timestamp_seconds",
        "gauge",
        "When the slot's pending certificate is scheduled to become current, as a Unix time.",
    );
    for s in &chosen {
        if let Some((c, at)) = &s.pending {
            let scope = s.slot.scope.to_string();
            w.sample(
                "certroll_roll_next_timestamp_seconds",
                &[
                    ("type", s.slot.usage_type.as_str()),
                    ("scope", &scope),
                    ("thumbprint", &c.thumbprint),
                ],
                unix(*at),
            );
        }
    }

    // The queue.
    w.family(
        "certroll_jobs",
        "gauge",
        "Roll jobs in the store, by state.",
    );
    for (state, n) in &snap.jobs {
        w.sample("certroll_jobs", &[("state", state.as_str())], *n as f64);
    }
    w.family(
        "certroll_rolls_total",
        "counter",
        "Rolls this process ran, by outcome (succeeded: promoted; failed: could not succeed, slot unchanged).",
    );
    w.sample(
        "certroll_rolls_total",
        &[("outcome", "succeeded")],
        registry.rolls_succeeded.load(Ordering::Relaxed) as f64,
    );
    w.sample(
        "certroll_rolls_total",
        &[("outcome", "failed")],
        registry.rolls_failed.load(Ordering::Relaxed) as f64,
    );
    w.family(
        "certroll_rolls_late_total",
        "counter",
        "Rolls this process committed later than late_after_seconds after their instant.",
    );
    w.sample(
        "certroll_rolls_late_total",
        &[],
        registry.rolls_late.load(Ordering::Relaxed) as f64,
    );
    w.family(
        "certroll_http_connections_refused_total",
        "counter",
        "HTTP connections closed at once because [http] max_connections were open.",
    );
    w.sample(
        "certroll_http_connections_refused_total",
        &[],
        registry.http_refused.load(Ordering::Relaxed) as f64,
    );
    w.family(
        "certroll_readiness_probes_total",
        "counter",
        "Store probes /readyz made (at most one a second, however often it is asked).",
    );
    w.sample(
        "certroll_readiness_probes_total",
        &[],
        registry.readiness_probes.load(Ordering::Relaxed) as f64,
    );
    let h = registry.lateness.lock().expect("metrics lock").clone();
    w.family(
        "certroll_roll_lateness_seconds",
        "histogram",
        "How long after its effective instant each roll this process ran was committed.",
    );
    let mut cumulative = 0;
    for (i, bound) in LATENESS_BUCKETS.iter().enumerate() {
        cumulative += h.counts[i];
        w.sample(
            "certroll_roll_lateness_seconds_bucket",
            &[("le", &number(*bound))],
            cumulative as f64,
        );
    }
    cumulative += h.counts[LATENESS_BUCKETS.len()];
    w.sample(
        "certroll_roll_lateness_seconds_bucket",
        &[("le", "+Inf")],
        cumulative as f64,
    );
    w.sample("certroll_roll_lateness_seconds_sum", &[], h.sum);
    w.sample(
        "certroll_roll_lateness_seconds_count",
        &[],
        cumulative as f64,
    );

    // The outbox, per channel.
    let mut per_channel: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (channel, state, n) in &snap.deliveries {
        let e = per_channel.entry(channel).or_default();
        match state.as_str() {
            "pending" | "sending" => e.0 += n,
            "dead" => e.1 += n,
            _ => {}
        }
    }
    w.family(
        "certroll_outbox_depth",
        "gauge",
        "Notifications waiting to be delivered (pending or being sent), by channel.",
    );
    for (channel, (depth, _)) in &per_channel {
        w.sample(
            "certroll_outbox_depth",
            &[("channel", channel)],
            *depth as f64,
        );
    }
    if let Some(unrouted) = snap.unrouted {
        w.family(
            "certroll_outbox_unrouted",
            "gauge",
            "Events committed but not yet routed to their channels (the depth per channel counts them once routed).",
        );
        w.sample("certroll_outbox_unrouted", &[], unrouted as f64);
    }
    w.family(
        "certroll_outbox_dead",
        "gauge",
        "Notifications given up after their attempts or age (certroll notifications retry --dead), by channel.",
    );
    for (channel, (_, dead)) in &per_channel {
        w.sample(
            "certroll_outbox_dead",
            &[("channel", channel)],
            *dead as f64,
        );
    }

    // Deployment, per server.
    w.family(
        "certroll_deployment_up_to_date",
        "gauge",
        "1 when the server has the certificate it should have for the type, target and role, else 0.",
    );
    for r in &snap.deployments {
        w.sample(
            "certroll_deployment_up_to_date",
            &deploy_labels(r),
            if r.up_to_date { 1.0 } else { 0.0 },
        );
    }
    w.family(
        "certroll_deployment_failures",
        "gauge",
        "Consecutive failed deployment attempts (0 after a success).",
    );
    for r in &snap.deployments {
        let failures = r
            .state
            .as_ref()
            .filter(|s| s.state == "failed")
            .map_or(0, |s| s.attempts);
        w.sample(
            "certroll_deployment_failures",
            &deploy_labels(r),
            failures as f64,
        );
    }
    w.family(
        "certroll_deployment_last_success_timestamp_seconds",
        "gauge",
        "When the unit was last deployed successfully, as a Unix time.",
    );
    for r in &snap.deployments {
        if let Some(at) = r.state.as_ref().and_then(|s| s.deployed_at) {
            w.sample(
                "certroll_deployment_last_success_timestamp_seconds",
                &deploy_labels(r),
                unix(at),
            );
        }
    }

    // This process.
    w.family(
        "certroll_expiry_scan_last_timestamp_seconds",
        "gauge",
        "When this process last ran the expiry watch, as a Unix time.",
    );
    if let Some(at) = *registry.expiry_scan_at.lock().expect("metrics lock") {
        w.sample("certroll_expiry_scan_last_timestamp_seconds", &[], unix(at));
    }
    w.family(
        "certroll_loop_running",
        "gauge",
        "1 while the service's loop runs (engine, notifier, deployer), 0 once it stopped.",
    );
    for (name, running) in registry.loops.lock().expect("metrics lock").iter() {
        w.sample(
            "certroll_loop_running",
            &[("loop", name)],
            if *running { 1.0 } else { 0.0 },
        );
    }
    w.out
}

fn deploy_labels(r: &StatusRow) -> [(&str, &str); 4] {
    [
        ("server", r.unit.server.name.as_str()),
        ("type", r.unit.usage_type.as_str()),
        ("target", r.unit.target.name.as_str()),
        ("role", r.unit.role.as_str()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{Scope, SlotKey, UsageType};
    use chrono::TimeZone;

    fn cert(id: i64, nb: i64, na: i64) -> CertFacts {
        CertFacts {
            id,
            thumbprint: format!("{id:040X}"),
            label: format!("cert \"{id}\""),
            not_before: Utc.timestamp_opt(nb, 0).unwrap(),
            not_after: Utc.timestamp_opt(na, 0).unwrap(),
        }
    }

    #[test]
    fn renders_the_families_with_escaped_labels_and_cumulative_buckets() {
        let r = Registry::default();
        r.roll_succeeded(0.0004, false);
        r.roll_succeeded(0.002, false);
        r.roll_succeeded(7200.0, true);
        r.roll_succeeded(-3.0, false);
        r.roll_failed();
        r.set_loop("engine", true);
        let snap = Snapshot {
            slots: vec![SlotFacts {
                slot: SlotKey::new(Scope::Global, UsageType::from_canonical("OAuthTokenIssuer")),
                current: Some(cert(1, 1_000, 2_000)),
                previous: None,
                pending: Some((
                    cert(2, 1_500, 3_000),
                    Utc.timestamp_opt(1_800, 500_000_000).unwrap(),
                )),
                failed_roll: None,
            }],
            jobs: vec![(JobState::Scheduled, 1)],
            deliveries: vec![
                ("ops".into(), "pending".into(), 2),
                ("ops".into(), "sending".into(), 1),
                ("ops".into(), "dead".into(), 4),
                ("ops".into(), "delivered".into(), 9),
            ],
            unrouted: Some(5),
            max_slots: 10,
            deployments: vec![],
        };
        let text = render(&r, &snap);
        for line in [
            "certroll_certificate_not_after_timestamp_seconds{type=\"OAuthTokenIssuer\",scope=\"global\",role=\"current\",thumbprint=\"0000000000000000000000000000000000000001\",subject=\"cert \\\"1\\\"\"} 2000",
            "certroll_roll_next_timestamp_seconds{type=\"OAuthTokenIssuer\",scope=\"global\",thumbprint=\"0000000000000000000000000000000000000002\"} 1800.5",
            "certroll_rolls_total{outcome=\"succeeded\"} 4",
            "certroll_rolls_total{outcome=\"failed\"} 1",
            "certroll_rolls_late_total 1",
            "certroll_roll_lateness_seconds_bucket{le=\"0.0005\"} 2",
            "certroll_roll_lateness_seconds_bucket{le=\"0.0025\"} 3",
            "certroll_roll_lateness_seconds_bucket{le=\"3600\"} 3",
            "certroll_roll_lateness_seconds_bucket{le=\"86400\"} 4",
            "certroll_roll_lateness_seconds_bucket{le=\"+Inf\"} 4",
            "certroll_roll_lateness_seconds_count 4",
            "certroll_outbox_depth{channel=\"ops\"} 3",
            "certroll_outbox_dead{channel=\"ops\"} 4",
            "certroll_outbox_unrouted 5",
            "certroll_jobs{state=\"scheduled\"} 1",
            "certroll_loop_running{loop=\"engine\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        let sum = text
            .lines()
            .find_map(|l| l.strip_prefix("certroll_roll_lateness_seconds_sum "))
            .unwrap();
        assert!(
            (sum.parse::<f64>().unwrap() - 7200.0024).abs() < 1e-9,
            "{sum}"
        );
        // Every sample's family was declared before it.
        let mut declared = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                assert!(
                    declared.insert(rest.split(' ').next().unwrap().to_string()),
                    "{l} twice"
                );
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| declared.contains(*b)))
                    .unwrap_or(name);
                assert!(declared.contains(base), "{l}");
            }
        }
    }

    /// Past `max_slots`, the slots whose certificate in service expires
    /// first keep their series; the aggregates still see every slot.
    #[test]
    fn past_the_limit_the_soonest_expiring_slots_keep_their_series() {
        let oauth = UsageType::from_canonical("OAuthTokenIssuer");
        let slot = |pool: &str, current: CertFacts, previous: Option<CertFacts>| SlotFacts {
            slot: SlotKey::new(Scope::Pool(pool.into()), oauth.clone()),
            current: Some(current),
            previous: previous.map(|c| (c, Utc.timestamp_opt(0, 0).unwrap())),
            pending: None,
            failed_roll: None,
        };
        let snap = Snapshot {
            slots: vec![
                // An old previous certificate does not make a slot urgent.
                slot("a.x.y", cert(1, 0, 9_000), Some(cert(4, 0, 100))),
                slot("b.x.y", cert(2, 0, 3_000), None),
                slot("c.x.y", cert(3, 0, 5_000), None),
            ],
            jobs: vec![],
            deliveries: vec![],
            unrouted: None,
            max_slots: 1,
            deployments: vec![],
        };
        let text = render(&Registry::default(), &snap);
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("certroll_certificate_not_after_timestamp_seconds{"))
            .collect();
        assert_eq!(series.len(), 1, "{text}");
        assert!(series[0].contains("scope=\"pool:b.x.y\""), "{text}");
        for line in [
            "certroll_metrics_slots_omitted 2",
            "certroll_slots{type=\"OAuthTokenIssuer\"} 3",
            "certroll_certificate_not_after_min_timestamp_seconds{type=\"OAuthTokenIssuer\",role=\"current\"} 3000",
            "certroll_certificate_not_after_min_timestamp_seconds{type=\"OAuthTokenIssuer\",role=\"previous\"} 100",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        // Under the limit, nothing is left out.
        let all = render(
            &Registry::default(),
            &Snapshot {
                max_slots: 3,
                ..snap
            },
        );
        assert!(all.lines().any(|l| l == "certroll_metrics_slots_omitted 0"));
    }

    #[test]
    fn without_channels_no_unrouted_gauge_is_reported() {
        let snap = Snapshot {
            slots: vec![],
            jobs: vec![],
            deliveries: vec![],
            unrouted: None,
            max_slots: 10,
            deployments: vec![],
        };
        let text = render(&Registry::default(), &snap);
        assert!(!text.contains("certroll_outbox_unrouted"), "{text}");
    }

    #[test]
    fn a_loop_guard_marks_its_loop_stopped_when_dropped() {
        let r = Registry::default();
        {
            let _g = LoopGuard::new(&r, "deployer");
            assert!(r.stopped_loops().is_empty());
        }
        assert_eq!(r.stopped_loops(), ["deployer"]);
    }
}
