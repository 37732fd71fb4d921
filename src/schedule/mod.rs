//! Scheduled rolls: effective-date parsing, the retry policy, recurring
//! duties, and the engine that runs due roll jobs (the service loop, the
//! only place that sleeps).

pub mod cron;
pub mod engine;
pub mod retry;
pub mod wait;
pub mod when;
