//! `certroll serve`: the background service. It wires the engine (its own
//! thread) to the process's signals, and owns shutdown: on SIGINT or
//! SIGTERM the engine finishes the roll in progress and the process exits
//! 0; if the engine stops on its own (the store became unusable) the
//! process exits with its error.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow};
use tracing::info;

use crate::clock::Clock;
use crate::config::Config;
use crate::schedule::engine::{Engine, Msg};
use crate::store::Store;

/// Runs the service until `shutdown` completes (or the engine fails).
pub async fn run(
    config: Arc<Config>,
    data_dir: &Path,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let store = Store::open(data_dir)?;
    let engine = Engine::new(store, config.clone(), clock)?;
    let owner = engine.owner().to_string();
    let (tx, rx) = mpsc::channel::<Msg>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("certroll-engine".into())
        .spawn(move || {
            let result = engine.run(rx);
            let _ = done_tx.send(());
            result
        })
        .context("cannot start the engine thread")?;
    info!(
        owner = %owner,
        data_dir = %data_dir.display(),
        config = %config.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into()),
        timezone = %config.timezone,
        "certroll serve: ready"
    );
    let engine_ended = tokio::select! {
        _ = shutdown => false,
        _ = done_rx => true,
    };
    if !engine_ended {
        info!("shutdown requested: finishing the roll in progress");
    }
    let _ = tx.send(Msg::Shutdown);
    let joined = tokio::task::spawn_blocking(move || thread.join())
        .await
        .context("the engine thread could not be joined")?;
    let summary = match joined {
        Ok(r) => r?,
        Err(_) => return Err(anyhow!("the engine thread panicked")),
    };
    if engine_ended {
        return Err(anyhow!("the engine stopped unexpectedly"));
    }
    info!(
        succeeded = summary.succeeded,
        failed = summary.failed,
        retried = summary.retried,
        "certroll serve: stopped"
    );
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
