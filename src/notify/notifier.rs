//! The notifier: `serve`'s second loop, on its own thread with a small
//! tokio runtime for network I/O. Each turn it fans new outbox events out
//! to the channels whose filters take them, gives back deliveries whose
//! sender died, claims the due deliveries under a lease, sends them
//! concurrently (each bounded by its channel's timeout) and records every
//! attempt. A failed send is retried with capped exponential backoff and
//! jitter (or after the receiver's Retry-After), until it is dead. Nothing
//! here can change a roll: events are read, never written.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use tracing::{error, info, warn};

use super::channel::{self, Channel, SendResult};
use super::message::{self, Message};
use crate::clock::Clock;
use crate::config::Config;
use crate::schedule::retry::{RetryPolicy, random_jitter};
use crate::schedule::wait::{self, Msg, Woke};
use crate::store::{
    ClaimedDelivery, DeliveryLimits, DeliveryOutcome, OutboxEvent, Store, StoreError,
};

/// What the notifier did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
}

pub struct Notifier {
    store: Store,
    channels: Vec<Arc<Channel>>,
    clock: Arc<dyn Clock>,
    owner: String,
    runtime: tokio::runtime::Runtime,
    retry: RetryPolicy,
    limits: DeliveryLimits,
    lease: Duration,
    batch: usize,
    poll: StdDuration,
}

impl Notifier {
    /// Builds the channels (reading their secrets and CA files).
    pub fn new(store: Store, config: &Config, clock: Arc<dyn Clock>) -> Result<Notifier, String> {
        let n = &config.notify;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the notifier's runtime: {e}"))?;
        // Channels build their HTTP clients inside the runtime.
        let channels = {
            let _guard = runtime.enter();
            channel::channels(n)?
        };
        Ok(Notifier {
            store,
            channels,
            clock,
            owner: format!("{}:notify", crate::schedule::engine::owner_id()),
            runtime,
            retry: RetryPolicy {
                base: StdDuration::from_secs(n.retry_base_seconds.into()),
                max: StdDuration::from_secs(n.retry_max_seconds.into()),
                max_attempts: n.max_attempts,
            },
            limits: DeliveryLimits {
                max_attempts: n.max_attempts,
                max_age: Duration::hours(n.max_age_hours.into()),
            },
            lease: Duration::seconds(n.lease_seconds.into()),
            batch: n.batch_size as usize,
            poll: StdDuration::from_millis(config.serve.poll_interval_ms.into()),
        })
    }

    pub fn has_channels(&self) -> bool {
        !self.channels.is_empty()
    }

    /// The names of the channels that take `e`.
    fn route(channels: &[Arc<Channel>], e: &OutboxEvent) -> Vec<String> {
        channels
            .iter()
            .filter(|c| {
                c.filter.matches(
                    &e.kind,
                    e.severity,
                    e.usage_type.as_deref(),
                    e.scope.as_deref(),
                )
            })
            .map(|c| c.name.clone())
            .collect()
    }

    /// Runs until `Msg::Shutdown`.
    pub fn run(mut self, rx: Receiver<Msg>) -> Result<DeliverySummary, StoreError> {
        let mut total = DeliverySummary::default();
        let mut version = self.store.data_version()?;
        let mut failures = 0u32;
        info!(channels = self.channels.len(), owner = %self.owner, "notifier started");
        loop {
            let wake = match self.pass() {
                Ok(s) => {
                    failures = 0;
                    total.delivered += s.delivered;
                    total.retried += s.retried;
                    total.dead += s.dead;
                    self.store.next_delivery_wake(self.clock.now())?
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    Some(wait::after_store_error(
                        &self.retry,
                        failures,
                        &e,
                        self.clock.now(),
                    ))
                }
                Err(e) => {
                    error!(error = %e, "the store failed; the notifier stops");
                    return Err(e);
                }
            };
            if wait::wait(
                &self.store,
                &rx,
                self.clock.as_ref(),
                wake,
                self.poll,
                &mut version,
            ) == Woke::Shutdown
            {
                break;
            }
        }
        info!(
            delivered = total.delivered,
            retried = total.retried,
            dead = total.dead,
            "notifier stopped"
        );
        Ok(total)
    }

    /// Fans out, recovers, and sends everything due now, batch after batch.
    pub fn pass(&mut self) -> Result<DeliverySummary, StoreError> {
        let mut summary = DeliverySummary::default();
        let now = self.clock.now();
        let channels = self.channels.clone();
        loop {
            let f = self.store.fan_out(now, self.limits.max_age, 500, &|e| {
                Self::route(&channels, e)
            })?;
            if f.too_old > 0 {
                warn!(
                    events = f.too_old,
                    "events older than max_age_hours were not sent"
                );
            }
            if f.events < 500 {
                break;
            }
        }
        let recovered = self.store.recover_expired_deliveries(now)?;
        if recovered > 0 {
            warn!(
                deliveries = recovered,
                "recovered deliveries whose sender stopped"
            );
        }
        loop {
            let now = self.clock.now();
            let claimed = self
                .store
                .claim_deliveries(&self.owner, now, self.lease, self.batch)?;
            if claimed.is_empty() {
                return Ok(summary);
            }
            let results = self.send_all(claimed);
            let now = self.clock.now();
            let mut recorded = Vec::with_capacity(results.len());
            for (d, result, ms) in results {
                let outcome = match result {
                    SendResult::Delivered(detail) => {
                        summary.delivered += 1;
                        info!(event.id = %d.event.event_id, event.kind = %d.event.kind, channel = %d.channel,
                              attempt = d.attempts, took_ms = ms, "delivered");
                        DeliveryOutcome::Delivered { detail }
                    }
                    SendResult::Dead(err) => {
                        summary.dead += 1;
                        error!(event.id = %d.event.event_id, event.kind = %d.event.kind, channel = %d.channel,
                               attempt = d.attempts, error = %err, "delivery failed for good");
                        DeliveryOutcome::Dead { error: err }
                    }
                    SendResult::Retry { error, after } => {
                        summary.retried += 1;
                        let backoff = self.retry.delay(d.attempts, random_jitter());
                        let delay = after.map_or(backoff, |a| a.max(backoff));
                        warn!(event.id = %d.event.event_id, event.kind = %d.event.kind, channel = %d.channel,
                              attempt = d.attempts, retry_in_ms = delay.as_millis() as u64, error = %error,
                              "delivery failed, will retry");
                        DeliveryOutcome::Retry {
                            error,
                            at: now + Duration::from_std(delay).unwrap_or(Duration::seconds(60)),
                        }
                    }
                };
                recorded.push((d, outcome, ms));
            }
            self.store
                .record_deliveries(&self.owner, now, self.limits, &recorded)?;
        }
    }

    fn render(&self, e: &OutboxEvent) -> Message {
        let store = &self.store;
        let lookup = |t: &str| store.lookup_exact(t).ok().flatten().map(|c| c.info);
        message::render(e, &lookup)
    }

    /// Sends claimed deliveries concurrently; each result with its time in ms.
    fn send_all(&self, claimed: Vec<ClaimedDelivery>) -> Vec<(ClaimedDelivery, SendResult, u64)> {
        let by_name: HashMap<&str, Arc<Channel>> = self
            .channels
            .iter()
            .map(|c| (c.name.as_str(), c.clone()))
            .collect();
        let mut work = Vec::new();
        let mut out = Vec::new();
        for d in claimed {
            match by_name.get(d.channel.as_str()) {
                Some(c) => {
                    let m = self.render(&d.event);
                    work.push((d, c.clone(), m));
                }
                None => {
                    let why = format!("channel '{}' is no longer configured", d.channel);
                    out.push((d, SendResult::Dead(why), 0));
                }
            }
        }
        let sent: Vec<(usize, SendResult, u64)> = self.runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, (_, c, m)) in work.iter().enumerate() {
                let (c, m) = (c.clone(), m.clone());
                set.spawn(async move {
                    let t = Instant::now();
                    let r = c.send(&m).await;
                    (i, r, t.elapsed().as_millis() as u64)
                });
            }
            let mut results = Vec::new();
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(r) => results.push(r),
                    Err(e) => error!(error = %e, "a send task failed"),
                }
            }
            results
        });
        let mut by_index: HashMap<usize, (SendResult, u64)> =
            sent.into_iter().map(|(i, r, ms)| (i, (r, ms))).collect();
        for (i, (d, _, _)) in work.into_iter().enumerate() {
            let (r, ms) = by_index.remove(&i).unwrap_or((
                SendResult::Retry {
                    error: "the send task failed".into(),
                    after: None,
                },
                0,
            ));
            out.push((d, r, ms));
        }
        out
    }

    /// `certroll notify test`: a test message through each channel (or the
    /// one named), straight, not through the outbox.
    pub fn send_test(
        &self,
        only: Option<&str>,
        now: DateTime<Utc>,
    ) -> Vec<(String, &'static str, SendResult)> {
        let host = crate::schedule::engine::owner_id();
        let event = OutboxEvent {
            id: 0,
            event_id: format!("test-{}", uuid::Uuid::new_v4()),
            kind: "notify.test".into(),
            severity: crate::cert::types::EventSeverity::Info,
            scope: None,
            usage_type: None,
            payload: serde_json::json!({
                "message": format!("This is a test message from certroll on {}. If you read it, the channel works.",
                                   host.split(':').next().unwrap_or("?")),
                "actor": "cli:notify-test",
                "data": {},
            }),
            created_at: now,
        };
        let m = self.render(&event);
        self.runtime.block_on(async {
            let mut out = Vec::new();
            for c in self
                .channels
                .iter()
                .filter(|c| only.is_none_or(|n| n == c.name))
            {
                out.push((c.name.clone(), c.kind, c.send(&m).await));
            }
            out
        })
    }
}

impl Drop for Notifier {
    /// lettre's connection pool closes its connections on a tokio task when
    /// dropped: drop the channels inside this notifier's runtime.
    fn drop(&mut self) {
        let _guard = self.runtime.enter();
        self.channels.clear();
    }
}
