//! `certroll serve`: the background service. It runs the engine (rolls,
//! duties) and, when channels are configured, the notifier (alerts), each
//! on its own thread with its own store connection, and owns shutdown: on
//! SIGINT or SIGTERM the engine finishes the roll in progress, the
//! notifier the sends in progress, and the process exits 0; if either
//! stops on its own (the store became unusable) the process exits with its
//! error.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow};
use tracing::info;

use crate::clock::Clock;
use crate::config::Config;
use crate::notify::notifier::Notifier;
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
    let engine = Engine::new(store, config.clone(), clock.clone())?;
    let owner = engine.owner().to_string();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<&'static str>(2);

    let (engine_tx, engine_rx) = mpsc::channel::<Msg>();
    let done = done_tx.clone();
    let engine_thread = std::thread::Builder::new()
        .name("certroll-engine".into())
        .spawn(move || {
            let result = engine.run(engine_rx);
            let _ = done.blocking_send("engine");
            result
        })
        .context("cannot start the engine thread")?;

    let mut notifier_parts = None;
    if config.notify.channel_names().next().is_some() {
        // The notifier owns a tokio runtime of its own: it is built, run and
        // dropped on its thread, never inside this async context.
        let (tx, rx) = mpsc::channel::<Msg>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let done = done_tx.clone();
        let (cfg, dir) = (config.clone(), data_dir.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("certroll-notify".into())
            .spawn(move || {
                let built = Store::open(&dir)
                    .map_err(|e| e.to_string())
                    .and_then(|store| Notifier::new(store, &cfg, clock));
                let notifier = match built {
                    Ok(n) => {
                        let _ = ready_tx.send(Ok(()));
                        n
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(Default::default());
                    }
                };
                let result = notifier.run(rx);
                let _ = done.blocking_send("notifier");
                result
            })
            .context("cannot start the notifier thread")?;
        let ready = tokio::task::spawn_blocking(move || ready_rx.recv())
            .await
            .context("the notifier thread could not be joined")?;
        let failure = match ready {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("the notifier stopped while starting".to_string()),
        };
        if let Some(e) = failure {
            let _ = engine_tx.send(Msg::Shutdown);
            let _ = join(engine_thread, "engine").await;
            return Err(anyhow!(e));
        }
        notifier_parts = Some((tx, thread));
    }
    drop(done_tx);
    info!(
        owner = %owner,
        data_dir = %data_dir.display(),
        config = %config.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into()),
        timezone = %config.timezone,
        channels = config.notify.channel_names().collect::<Vec<_>>().join(","),
        "certroll serve: ready"
    );
    let ended = tokio::select! {
        _ = shutdown => None,
        which = done_rx.recv() => which,
    };
    if ended.is_none() {
        info!("shutdown requested: finishing the work in progress");
    }
    let _ = engine_tx.send(Msg::Shutdown);
    if let Some((tx, _)) = &notifier_parts {
        let _ = tx.send(Msg::Shutdown);
    }
    let summary = join(engine_thread, "engine").await?;
    if let Some((_, thread)) = notifier_parts {
        join(thread, "notifier").await?;
    }
    if let Some(which) = ended {
        return Err(anyhow!("the {which} stopped unexpectedly"));
    }
    info!(
        succeeded = summary.succeeded,
        failed = summary.failed,
        retried = summary.retried,
        "certroll serve: stopped"
    );
    Ok(())
}

async fn join<T: Send + 'static>(
    thread: std::thread::JoinHandle<Result<T, crate::store::StoreError>>,
    what: &str,
) -> Result<T> {
    match tokio::task::spawn_blocking(move || thread.join())
        .await
        .with_context(|| format!("the {what} thread could not be joined"))?
    {
        Ok(r) => Ok(r?),
        Err(_) => Err(anyhow!("the {what} thread panicked")),
    }
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
