//! Integration tests: the real `certroll` binary against fixtures made by
//! OpenSSL (tests/data/gen-fixtures.sh), one module per capability.

mod acme;
mod alerts;
mod api;
mod bad_input;
mod chain;
mod commands;
mod concurrency;
mod conformance;
mod deploy;
mod engine;
mod export;
mod import;
mod keys_at_rest;
mod migrations;
mod monitoring;
mod ops;
mod peers;
mod pg;
mod pg_store;
mod policy;
mod prometheus;
mod renewal;
mod request;
mod rollback;
mod rolls;
mod util;
mod walkthrough;
