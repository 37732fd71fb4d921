//! Crash points for the tests' kill -9 scenarios. With
//! `CERTROLL_CRASH_AT=NAME` in its environment the process aborts when it
//! reaches the point NAME: no unwinding, no destructors, no flush, as a
//! SIGKILL leaves it. Unset (always, outside tests), a point costs one
//! comparison.

use std::sync::OnceLock;

/// The environment variable naming the point to crash at.
pub const ENV: &str = "CERTROLL_CRASH_AT";

/// Aborts the process if `name` is the configured crash point.
pub fn crash_point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var(ENV).ok()).as_deref() == Some(name) {
        eprintln!("certroll: crash point {name} reached: aborting");
        std::process::abort();
    }
}
