//! The renewal duty of `serve`: on its own thread and store connection (a
//! key made or a CA asked never holds back a roll), on one engine of a
//! pool at a time (the `renewal` leader row, like the other duties). It
//! runs a pass of [`crate::ops::renew`] when one falls due (the next
//! threshold, retry or promotion date the last pass found), when the store
//! changed (a roll made a new certificate current: at most every 30 s), and
//! at least hourly.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use chrono::{DateTime, Duration, Utc};
use tracing::{debug, info, warn};

use super::renew::{self, Outcome};
use crate::clock::Clock;
use crate::config::Config;
use crate::schedule::engine::{EngineSettings, owner_id};
use crate::schedule::wait::{Msg, Woke};
use crate::store::{Store, StoreError};

/// The leader row of the renewal duty.
pub const RENEWAL_LEADER: &str = "renewal";

/// A pass runs at least this often, whatever the last one found.
const AT_LEAST: Duration = Duration::hours(1);

/// A change of the store starts a pass at most this often: a busy pool
/// commits many times a second, and a pass reads every slot under a policy,
/// while what a change brings (a new current certificate after a roll) is
/// due days later.
const AFTER_CHANGE: Duration = Duration::seconds(30);

/// The audit trail's actor of the duty's steps.
pub const ACTOR: &str = "serve:renewal";

pub struct Renewer {
    store: Store,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    settings: EngineSettings,
    owner: String,
    leading: bool,
    metrics: Option<Arc<crate::metrics::Registry>>,
}

impl Renewer {
    pub fn new(store: Store, config: Arc<Config>, clock: Arc<dyn Clock>) -> Renewer {
        Renewer {
            settings: EngineSettings::from(&config.serve),
            store,
            config,
            clock,
            owner: owner_id(),
            leading: false,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Registry>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs until `Msg::Shutdown`; errors are those it cannot go on after.
    pub fn run(mut self, rx: Receiver<Msg>) -> Result<(), StoreError> {
        info!(
            owner = %self.owner,
            policies = self.config.renewal.len(),
            "renewal duty started"
        );
        let mut version = self.store.data_version()?;
        // When the next pass is due (now: at start and on taking the lead).
        let mut next_pass: Option<DateTime<Utc>> = None;
        let mut last_pass: Option<DateTime<Utc>> = None;
        let mut failures = 0u32;
        loop {
            if matches!(
                rx.try_recv(),
                Ok(Msg::Shutdown) | Err(std::sync::mpsc::TryRecvError::Disconnected)
            ) {
                break;
            }
            let now = self.clock.now();
            let wake = match self.turn(now, &mut next_pass, &mut last_pass) {
                Ok(wake) => {
                    failures = 0;
                    wake
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    crate::schedule::wait::after_store_error(
                        &self.settings.retry,
                        failures,
                        &e,
                        now,
                    )
                }
                Err(e) => {
                    warn!(error = %e, "the store failed; the renewal duty stops");
                    return Err(e);
                }
            };
            let before = version;
            let woke = crate::schedule::wait::wait(
                &self.store,
                &rx,
                self.clock.as_ref(),
                Some(wake),
                self.settings.poll,
                &mut version,
            );
            if woke == Woke::Shutdown {
                break;
            }
            if version != before {
                // Another process changed the store: look again soon, but
                // not at every commit of a busy pool.
                let soon = last_pass.map_or(self.clock.now(), |l| l + AFTER_CHANGE);
                next_pass = Some(next_pass.map_or(soon, |n| n.min(soon)));
            }
        }
        if self.leading {
            let _ = self.store.concede(RENEWAL_LEADER, &self.owner);
        }
        info!("renewal duty stopping");
        Ok(())
    }

    /// Takes or keeps the lead, runs a pass when one is due; returns when
    /// to look again.
    fn turn(
        &mut self,
        now: DateTime<Utc>,
        next_pass: &mut Option<DateTime<Utc>>,
        last_pass: &mut Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let renew_lead = now + self.settings.lease / 3;
        let was = self.leading;
        self.leading = crate::schedule::engine::take_lead(
            &mut self.store,
            RENEWAL_LEADER,
            &self.owner,
            self.settings.lease,
            now,
        )?;
        if !self.leading {
            if was {
                warn!("no longer leading the renewal duty: another engine runs it");
            }
            return Ok(renew_lead);
        }
        if !was {
            info!(owner = %self.owner, "leading the renewal duty");
            *next_pass = None;
        }
        if next_pass.is_some_and(|n| n > now) {
            return Ok(renew_lead.min(next_pass.unwrap_or(renew_lead)));
        }
        let started = std::time::Instant::now();
        let report = renew::pass(&mut self.store, &self.config, now, ACTOR)?;
        *last_pass = Some(now);
        for (slot, outcome) in &report.outcomes {
            match outcome {
                Outcome::Generated {
                    thumbprint,
                    effective_at,
                    ..
                } => {
                    info!(%slot, %thumbprint, effective_at = %effective_at, "renewed: roll scheduled")
                }
                Outcome::Scheduled {
                    thumbprint,
                    effective_at,
                    ..
                } => {
                    info!(%slot, %thumbprint, effective_at = %effective_at, "the CA's answer is scheduled")
                }
                Outcome::Requested { request_id } => {
                    info!(%slot, request_id, "renewal request made for the CA")
                }
                Outcome::Failed {
                    error,
                    attempts,
                    next_attempt_at,
                } => {
                    warn!(%slot, attempts, next_attempt = %next_attempt_at, error = %error, "renewal failed")
                }
                Outcome::Retired { thumbprint } => {
                    info!(%slot, %thumbprint, "previous certificate retired after its overlap")
                }
                Outcome::Nothing => {}
            }
        }
        if let Some(m) = &self.metrics {
            for (_, o) in &report.outcomes {
                if let Some(name) = o.metric() {
                    m.count_renewal(name);
                }
            }
        }
        let next = report
            .next
            .map_or(now + AT_LEAST, |n| n.min(now + AT_LEAST));
        debug!(
            took_ms = started.elapsed().as_millis() as u64,
            next = %next,
            "renewal pass"
        );
        *next_pass = Some(next);
        Ok(next.min(renew_lead))
    }
}
