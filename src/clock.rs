//! Time enters certroll through one [`Clock`]: the real one in production,
//! a driven one in tests. Domain code never reads the clock itself; it is
//! handed `now`.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Another clock shifted by a fixed offset: a host's clock corrected to
/// the database's (see `service::pool_clock`).
pub struct Skewed {
    inner: std::sync::Arc<dyn Clock>,
    offset: chrono::Duration,
}

impl Skewed {
    pub fn new(inner: std::sync::Arc<dyn Clock>, offset: chrono::Duration) -> Self {
        Skewed { inner, offset }
    }
}

impl Clock for Skewed {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now() + self.offset
    }
}

/// The environment variable that shifts this process's view of the wall
/// clock by a number of milliseconds (positive: ahead): a host whose clock
/// is off, for tests and drills, without changing the system's clock.
pub const OFFSET_ENV: &str = "CERTROLL_CLOCK_OFFSET_MS";

/// The system's clock, shifted by `CERTROLL_CLOCK_OFFSET_MS` when set.
pub fn system() -> std::sync::Arc<dyn Clock> {
    let offset = std::env::var(OFFSET_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|ms| *ms != 0);
    match offset {
        Some(ms) => std::sync::Arc::new(Skewed::new(
            std::sync::Arc::new(SystemClock),
            chrono::Duration::milliseconds(ms),
        )),
        None => std::sync::Arc::new(SystemClock),
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}
