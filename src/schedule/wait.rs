//! How the service's loops sleep: until a deadline, a message, or (each
//! poll interval) a commit by another process, seen through SQLite's
//! `data_version` (one pragma, no table read).

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tracing::{debug, warn};

use crate::clock::Clock;
use crate::store::Store;

/// Messages to a running loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// Look at the queue again now.
    Wake,
    /// Finish the work in progress and stop.
    Shutdown,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The deadline passed, a `Wake` came, or another process committed.
    Work,
    Shutdown,
}

/// Sleeps until `wake` (or indefinitely with `None`), returning early on a
/// message or when `store`'s `data_version` moves away from `*version`.
pub fn wait(
    store: &Store,
    rx: &Receiver<Msg>,
    clock: &dyn Clock,
    wake: Option<DateTime<Utc>>,
    poll: StdDuration,
    version: &mut i64,
) -> Woke {
    let poll = Duration::from_std(poll).unwrap_or(Duration::seconds(1));
    loop {
        let now = clock.now();
        if wake.is_some_and(|w| w <= now) {
            return Woke::Work;
        }
        let deadline = wake.map_or(now + poll, |w| w.min(now + poll));
        match rx.recv_timeout((deadline - now).to_std().unwrap_or_default()) {
            Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => return Woke::Shutdown,
            Ok(Msg::Wake) => return Woke::Work,
            Err(RecvTimeoutError::Timeout) => match store.data_version() {
                Ok(v) if v != *version => {
                    debug!("another process changed the store");
                    *version = v;
                    return Woke::Work;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "cannot read the store's version");
                    return Woke::Work;
                }
            },
        }
    }
}

/// After the `failures`-th transient store error in a row (busy past the
/// timeout, disk full...): logs it, and returns when the loop should try
/// again, backing off by `policy` with jitter.
pub fn after_store_error(
    policy: &super::retry::RetryPolicy,
    failures: u32,
    error: &crate::store::StoreError,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let delay = policy.delay(failures, super::retry::random_jitter());
    warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "store unavailable, retrying");
    now + Duration::from_std(delay).unwrap_or(Duration::seconds(1))
}
