//! Deployment: the certificates each server should have, written as files
//! to its targets, with reload commands, per-server state, staging ahead of
//! a roll, and the replication status.

pub mod config;
pub mod deployer;
pub mod files;
pub mod plan;
pub mod status;
