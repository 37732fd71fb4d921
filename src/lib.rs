//! certroll: a certificate rollover and expiry job engine.
//!
//! For every usage type (OAuthTokenIssuer, Default, WebServicesInternal, ...)
//! and scope (global, site, pool, server) certroll keeps a **current** and a
//! **previous** certificate, and at most one **pending** one, and changes
//! them only by atomic, audited operations that enforce each type's policy.
//!
//! # Layout
//!
//! Dependencies point one way: `cert` ← `store` ← `schedule` ← `notify`,
//! `deploy` ← `ops` ← `service`, `http`, `cli`. The store knows no deployment type
//! (what a slot holds is the domain's `SlotCerts`), and the engine learns
//! who stages a slot through the `Stagers` the service passes in.
//!
//! - [`cert`]: the pure domain. Parsing certificates and keys (PKCS#12,
//!   PEM, DER), thumbprints, policy checks and slot transitions. No I/O;
//!   `now` is a parameter.
//! - [`store`]: SQLite in the data directory: pragmas, versioned
//!   migrations, one transaction per state change with its audit and outbox
//!   rows, private keys sealed under the master key. No rusqlite type leaks
//!   out of it.
//! - [`config`]: the TOML configuration (`config/certroll.toml` documents
//!   every key) and the data directory.
//! - [`clock`]: the one way time enters (real, or driven in tests).
//! - [`schedule`]: effective dates, retry policy, cron duties, and the
//!   engine that runs due roll jobs (the only place that sleeps).
//! - [`ops`]: the rules every front end applies, written once (policy
//!   findings, lead times, rollback checks), and the renewal duty of the
//!   rollover policies (`ops::renew`, run by `serve` and `certroll renew`).
//! - [`notify`]: alert channels (email, webhooks) and the notifier that
//!   delivers the outbox.
//! - [`deploy`]: servers and targets, the per-server resolution of each
//!   type's certificate, atomic file writes, reload commands and the
//!   deployer loop (`serve` and `certroll agent`).
//! - [`http`]: `serve`'s optional HTTP listener: JWKS documents, health,
//!   readiness and [`metrics`] (Prometheus text, rendered without I/O).
//! - [`service`]: `certroll serve`: the engine, notifier and deployer on
//!   their threads, signals, shutdown.
//! - [`cli`]: clap definitions, one file per command, output formatting and
//!   exit codes.
//! - [`bench`]: `certroll bench`, the roll queue measured on this machine.
//! - [`sdnotify`]: READY=1 / STOPPING=1 for systemd's `Type=notify`.
//! - [`logging`]: tracing to stderr, text or JSON, `-v`/`-q`/`RUST_LOG`.

pub mod api;
pub mod auth;
pub mod bench;
pub mod cert;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod failpoint;
pub mod http;
pub mod input;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod ops;
pub mod schedule;
pub mod sdnotify;
pub mod service;
pub mod store;
pub mod text;
