//! Metrics and health for `serve`'s HTTP listener, exposed through
//! `prometheus-client` (the Prometheus project's Rust client).
//!
//! Two sources, as Prometheus exporters usually have them:
//! - [`Registry`]: what this process observed since it started (rolls by
//!   outcome, their lateness, expiry scans, whether each loop runs), kept in
//!   the client's counters and histogram. The engine records into it;
//!   counters start at zero with the process, as Prometheus expects
//!   (`rate()` handles restarts; several `serve` processes on one store are
//!   summed).
//! - [`Snapshot`]: the shared state read from the store at scrape time
//!   (every slot's certificates, the queue, the outbox, deployments), which
//!   a collector turns into gauges.
//!
//! [`render`] writes both in the Prometheus text exposition format
//! (version 0.0.4): `certroll_` prefix, base units (`_seconds`,
//! `_timestamp_seconds`), `_total` for counters. It does no I/O.

use std::collections::BTreeMap;
use std::fmt::Error as FmtError;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;

use crate::cert::expiry::{CertFacts, SlotFacts};
use crate::deploy::status::StatusRow;
use crate::store::JobState;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the roll lateness histogram, in seconds: a roll is
/// normally committed within a millisecond of its instant; seconds to
/// hours mean the service was down or the store busy.
pub const LATENESS_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
    86400.0,
];

type Labels = Vec<(&'static str, &'static str)>;

/// What this process observed.
#[derive(Debug)]
pub struct Registry {
    rolls: Family<Labels, Counter>,
    rolls_late: Counter,
    renewals: Family<Labels, Counter>,
    http_refused: Counter,
    readiness_probes: Counter,
    clock_skew: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    lateness: Histogram,
    expiry_scan_at: Mutex<Option<DateTime<Utc>>>,
    loops: Mutex<BTreeMap<&'static str, bool>>,
}

impl Default for Registry {
    fn default() -> Self {
        // Both outcomes from the start: a rate over no rolls is 0, not absent.
        let rolls = Family::<Labels, Counter>::default();
        for outcome in ["succeeded", "failed"] {
            let _ = rolls.get_or_create(&vec![("outcome", outcome)]);
        }
        let renewals = Family::<Labels, Counter>::default();
        for outcome in ["generated", "requested", "scheduled", "failed", "retired"] {
            let _ = renewals.get_or_create(&vec![("outcome", outcome)]);
        }
        Registry {
            rolls,
            rolls_late: Counter::default(),
            renewals,
            http_refused: Counter::default(),
            readiness_probes: Counter::default(),
            clock_skew: Default::default(),
            lateness: Histogram::new(LATENESS_BUCKETS),
            expiry_scan_at: Mutex::default(),
            loops: Mutex::default(),
        }
    }
}

impl Registry {
    /// A roll this process committed (`late`: past `late_after_seconds`).
    pub fn roll_succeeded(&self, lateness_seconds: f64, late: bool) {
        self.rolls
            .get_or_create(&vec![("outcome", "succeeded")])
            .inc();
        if late {
            self.rolls_late.inc();
        }
        // `roll --now` runs early: its negative lateness counts as on time.
        self.lateness.observe(lateness_seconds.max(0.0));
    }

    /// A step of the renewal duty (`generated`, `requested`, `scheduled`,
    /// `failed`).
    pub fn count_renewal(&self, outcome: &'static str) {
        self.renewals
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    pub fn roll_failed(&self) {
        self.rolls.get_or_create(&vec![("outcome", "failed")]).inc();
    }

    /// A connection closed at once: `[http] max_connections` were open.
    pub fn count_http_refused(&self) {
        self.http_refused.inc();
    }

    /// /readyz probed the store (at most once a second).
    pub fn count_readiness_probe(&self) {
        self.readiness_probes.inc();
    }

    /// The database's clock minus this host's, measured when connecting
    /// to a PostgreSQL store.
    pub fn set_clock_skew(&self, skew: chrono::Duration) {
        self.clock_skew
            .set(skew.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
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
    /// Slots under a rollover policy.
    pub renewals: Vec<RenewalFacts>,
}

/// A slot's renewal under its rollover policy, for its gauges.
#[derive(Clone, Debug)]
pub struct RenewalFacts {
    pub slot: crate::cert::SlotKey,
    pub method: &'static str,
    /// When the next certificate is (or was to be) made.
    pub generate_at: DateTime<Utc>,
    /// When it becomes (or was to become) current.
    pub promote_at: DateTime<Utc>,
    /// Failed attempts in a row for the current certificate.
    pub failures: u32,
    /// The promotion date came with nothing pending.
    pub overdue: bool,
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn renewal_labels<'a>(r: &'a RenewalFacts, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("type", r.slot.usage_type.as_str()),
        ("scope", scope),
        ("method", r.method),
    ]
}

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

/// One gauge family: HELP and TYPE once, then each sample.
fn gauge<'a, V: prometheus_client::encoding::EncodeGaugeValue + Clone + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, V)>,
) -> Result<(), FmtError> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The store's state at scrape time, as gauges; and what this process
/// tracks outside the client's metric types (its loops, its last scan).
#[derive(Debug)]
struct StoreCollector {
    snap: Snapshot,
    registry: Arc<Registry>,
}

impl StoreCollector {
    fn encode_all(&self, mut e: DescriptorEncoder<'_>) -> Result<(), FmtError> {
        let snap = &self.snap;
        // Aggregates over every slot: how many per type, and the earliest
        // expiry per type and role (what an expiry alert needs).
        let mut per_type: BTreeMap<&str, i64> = BTreeMap::new();
        let mut earliest: BTreeMap<(&str, &str), DateTime<Utc>> = BTreeMap::new();
        for s in &snap.slots {
            let t = s.slot.usage_type.as_str();
            *per_type.entry(t).or_default() += 1;
            for (role, c) in roles(s) {
                let at = earliest.entry((t, role)).or_insert(c.not_after);
                *at = (*at).min(c.not_after);
            }
        }
        gauge(
            &mut e,
            "certroll_slots",
            "Slots holding a certificate, by type.",
            per_type.iter().map(|(t, n)| (vec![("type", *t)], *n)),
        )?;
        gauge(
            &mut e,
            "certroll_certificate_not_after_min_timestamp_seconds",
            "The earliest notAfter of the certificates in a role across every slot of a type, as a Unix time.",
            earliest
                .iter()
                .map(|((t, role), at)| (vec![("type", *t), ("role", *role)], unix(*at))),
        )?;

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
        let chosen: Vec<(&SlotFacts, String)> = chosen
            .iter()
            .map(|&i| (&snap.slots[i], snap.slots[i].slot.scope.to_string()))
            .collect();
        gauge(
            &mut e,
            "certroll_metrics_slots_omitted",
            "Slots without series of their own in this scrape ([http] metrics_max_slots).",
            [(vec![], omitted as i64)],
        )?;
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
            gauge(
                &mut e,
                name,
                help,
                chosen.iter().flat_map(|(s, scope)| {
                    roles(s).map(move |(role, c)| {
                        (
                            vec![
                                ("type", s.slot.usage_type.as_str()),
                                ("scope", scope.as_str()),
                                ("role", role),
                                ("thumbprint", c.thumbprint.as_str()),
                                ("subject", c.label.as_str()),
                            ],
                            unix(pick(c)),
                        )
                    })
                }),
            )?;
        }
        // Renewals: the first max_slots by promotion date.
        let mut renewals: Vec<(&RenewalFacts, String)> = snap
            .renewals
            .iter()
            .map(|r| (r, r.slot.scope.to_string()))
            .collect();
        renewals.sort_by_key(|(r, _)| r.promote_at);
        renewals.truncate(snap.max_slots);
        let labels = renewal_labels;
        gauge(
            &mut e,
            "certroll_renewal_generate_timestamp_seconds",
            "When a slot's rollover policy makes its next certificate (or was to), as a Unix time.",
            renewals
                .iter()
                .map(|(r, sc)| (labels(r, sc), unix(r.generate_at))),
        )?;
        gauge(
            &mut e,
            "certroll_renewal_promote_timestamp_seconds",
            "When a slot's rollover policy promotes its next certificate (or was to), as a Unix time.",
            renewals
                .iter()
                .map(|(r, sc)| (labels(r, sc), unix(r.promote_at))),
        )?;
        gauge(
            &mut e,
            "certroll_renewal_failures",
            "Failed renewal attempts in a row for a slot's current certificate.",
            renewals
                .iter()
                .map(|(r, sc)| (labels(r, sc), i64::from(r.failures))),
        )?;
        gauge(
            &mut e,
            "certroll_renewal_overdue",
            "1 when a slot's promotion date came with nothing pending.",
            renewals
                .iter()
                .map(|(r, sc)| (labels(r, sc), i64::from(r.overdue))),
        )?;
        gauge(
            &mut e,
            "certroll_roll_next_timestamp_seconds",
            "When the slot's pending certificate is scheduled to become current, as a Unix time.",
            chosen.iter().filter_map(|(s, scope)| {
                s.pending.as_ref().map(|(c, at)| {
                    (
                        vec![
                            ("type", s.slot.usage_type.as_str()),
                            ("scope", scope.as_str()),
                            ("thumbprint", c.thumbprint.as_str()),
                        ],
                        unix(*at),
                    )
                })
            }),
        )?;

        // The queue.
        gauge(
            &mut e,
            "certroll_jobs",
            "Roll jobs in the store, by state.",
            snap.jobs
                .iter()
                .map(|(state, n)| (vec![("state", state.as_str())], *n)),
        )?;

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
        gauge(
            &mut e,
            "certroll_outbox_depth",
            "Notifications waiting to be delivered (pending or being sent), by channel.",
            per_channel
                .iter()
                .map(|(c, (depth, _))| (vec![("channel", *c)], *depth)),
        )?;
        if let Some(unrouted) = snap.unrouted {
            gauge(
                &mut e,
                "certroll_outbox_unrouted",
                "Events committed but not yet routed to their channels (the depth per channel counts them once routed).",
                [(vec![], unrouted)],
            )?;
        }
        gauge(
            &mut e,
            "certroll_outbox_dead",
            "Notifications given up after their attempts or age (certroll notifications retry --dead), by channel.",
            per_channel
                .iter()
                .map(|(c, (_, dead))| (vec![("channel", *c)], *dead)),
        )?;

        // Deployment, per server.
        gauge(
            &mut e,
            "certroll_deployment_up_to_date",
            "1 when the server has the certificate it should have for the type, target and role, else 0.",
            snap.deployments
                .iter()
                .map(|r| (deploy_labels(r), i64::from(r.up_to_date))),
        )?;
        gauge(
            &mut e,
            "certroll_deployment_failures",
            "Consecutive failed deployment attempts (0 after a success).",
            snap.deployments.iter().map(|r| {
                let failures = r
                    .state
                    .as_ref()
                    .filter(|s| s.state == "failed")
                    .map_or(0, |s| i64::from(s.attempts));
                (deploy_labels(r), failures)
            }),
        )?;
        gauge(
            &mut e,
            "certroll_deployment_last_success_timestamp_seconds",
            "When the server last got the type's certificate for the target and role, as a Unix time.",
            snap.deployments.iter().filter_map(|r| {
                r.state
                    .as_ref()
                    .and_then(|s| s.deployed_at)
                    .map(|at| (deploy_labels(r), unix(at)))
            }),
        )?;

        // This process.
        let scan = *self.registry.expiry_scan_at.lock().expect("metrics lock");
        gauge(
            &mut e,
            "certroll_expiry_scan_last_timestamp_seconds",
            "When this process last ran the expiry watch, as a Unix time.",
            scan.map(|at| (vec![], unix(at))),
        )?;
        let loops = self.registry.loops.lock().expect("metrics lock").clone();
        gauge(
            &mut e,
            "certroll_loop_running",
            "1 while the service's loop runs (engine, notifier, deployer), 0 once it stopped.",
            loops
                .iter()
                .map(|(name, running)| (vec![("loop", *name)], i64::from(*running))),
        )
    }
}

impl Collector for StoreCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), FmtError> {
        self.encode_all(encoder)
    }
}

/// The exposition: the registry's counters and histogram, then the
/// snapshot's gauges, in the Prometheus text format.
pub fn render(registry: &Arc<Registry>, snap: Snapshot) -> String {
    let mut reg = prometheus_client::registry::Registry::default();
    reg.register(
        "certroll_build",
        "The running certroll's version (always 1)",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    reg.register(
        "certroll_rolls",
        "Rolls this process ran, by outcome (succeeded: promoted; failed: could not succeed, slot unchanged)",
        registry.rolls.clone(),
    );
    reg.register(
        "certroll_rolls_late",
        "Rolls this process committed later than late_after_seconds after their instant",
        registry.rolls_late.clone(),
    );
    reg.register(
        "certroll_renewals",
        "Steps of the renewal duty this process took, by outcome (generated: a certificate made and its roll scheduled; requested: a request made for the CA; scheduled: the CA's answer scheduled; failed: an attempt failed, retried later)",
        registry.renewals.clone(),
    );
    reg.register(
        "certroll_http_connections_refused",
        "HTTP connections closed at once because [http] max_connections were open",
        registry.http_refused.clone(),
    );
    reg.register(
        "certroll_readiness_probes",
        "Store probes /readyz made (at most one a second, however often it is asked)",
        registry.readiness_probes.clone(),
    );
    reg.register(
        "certroll_store_clock_skew_seconds",
        "The shared store's (PostgreSQL's) clock minus this host's, measured when connecting; leases run by the database's clock, instants by this host's corrected by it (0 on SQLite)",
        registry.clock_skew.clone(),
    );
    reg.register(
        "certroll_roll_lateness_seconds",
        "How long after its effective instant each roll this process ran was committed",
        registry.lateness.clone(),
    );
    reg.register_collector(Box::new(StoreCollector {
        snap,
        registry: registry.clone(),
    }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &reg)
        .expect("writing to a String cannot fail");
    out
}

fn deploy_labels(r: &StatusRow) -> Vec<(&str, &str)> {
    vec![
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
        let r = Arc::new(Registry::default());
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
            renewals: vec![],
        };
        let text = render(&r, snap);
        for line in [
            "certroll_certificate_not_after_timestamp_seconds{type=\"OAuthTokenIssuer\",scope=\"global\",role=\"current\",thumbprint=\"0000000000000000000000000000000000000001\",subject=\"cert \\\"1\\\"\"} 2000.0",
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
        let snap = || Snapshot {
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
            renewals: vec![],
        };
        let text = render(&Arc::default(), snap());
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("certroll_certificate_not_after_timestamp_seconds{"))
            .collect();
        assert_eq!(series.len(), 1, "{text}");
        assert!(series[0].contains("scope=\"pool:b.x.y\""), "{text}");
        for line in [
            "certroll_metrics_slots_omitted 2",
            "certroll_slots{type=\"OAuthTokenIssuer\"} 3",
            "certroll_certificate_not_after_min_timestamp_seconds{type=\"OAuthTokenIssuer\",role=\"current\"} 3000.0",
            "certroll_certificate_not_after_min_timestamp_seconds{type=\"OAuthTokenIssuer\",role=\"previous\"} 100.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        // Under the limit, nothing is left out.
        let all = render(
            &Arc::default(),
            Snapshot {
                max_slots: 3,
                ..snap()
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
            renewals: vec![],
        };
        let text = render(&Arc::default(), snap);
        assert!(!text.contains("certroll_outbox_unrouted"), "{text}");
    }

    #[test]
    fn a_loop_guard_marks_its_loop_stopped_when_dropped() {
        let r = Arc::new(Registry::default());
        {
            let _g = LoopGuard::new(&r, "deployer");
            assert!(r.stopped_loops().is_empty());
        }
        assert_eq!(r.stopped_loops(), ["deployer"]);
    }
}
