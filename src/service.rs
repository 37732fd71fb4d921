//! `certroll serve`: the background service. It runs the engine (rolls,
//! duties) and, when channels are configured, the notifier (alerts), when
//! servers are, the deployer, each on its own thread with its own store
//! connection, and the optional HTTP listener; it tells systemd when it is
//! ready and when it stops (sd_notify), and owns shutdown: on
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
use crate::deploy::deployer::Deployer;
use crate::metrics::{LoopGuard, Registry};
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
    let registry = Arc::new(Registry::default());
    let engine = Engine::new(store, config.clone(), clock.clone())?.with_metrics(registry.clone());
    let owner = engine.owner().to_string();
    // Each loop says when it ends. Unbounded: a loop that ends during
    // shutdown, when nobody reads any more, must never block on it.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();

    let (engine_tx, engine_rx) = mpsc::channel::<Msg>();
    let done = done_tx.clone();
    let reg = registry.clone();
    registry.set_loop("engine", true);
    let engine_thread = std::thread::Builder::new()
        .name("certroll-engine".into())
        .spawn(move || {
            let _running = LoopGuard::new(&reg, "engine");
            let result = engine.run(engine_rx);
            let _ = done.send("engine");
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
        let (cfg, dir, clock) = (config.clone(), data_dir.to_path_buf(), clock.clone());
        let reg = registry.clone();
        registry.set_loop("notifier", true);
        let thread = std::thread::Builder::new()
            .name("certroll-notify".into())
            .spawn(move || {
                let _running = LoopGuard::new(&reg, "notifier");
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
                let _ = done.send("notifier");
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
    let mut deployer_parts = None;
    if !config.servers.is_empty() && !config.targets.is_empty() {
        let deployer = Deployer::new(Store::open(data_dir)?, config.clone(), clock.clone(), None);
        let (tx, rx) = mpsc::channel::<Msg>();
        let done = done_tx.clone();
        let reg = registry.clone();
        registry.set_loop("deployer", true);
        let thread = std::thread::Builder::new()
            .name("certroll-deploy".into())
            .spawn(move || {
                let _running = LoopGuard::new(&reg, "deployer");
                let result = deployer.run(rx);
                let _ = done.send("deployer");
                result
            })
            .context("cannot start the deployer thread")?;
        deployer_parts = Some((tx, thread));
    }
    let (stop_http, mut http_stop) = tokio::sync::watch::channel(false);
    let mut http_task = None;
    if let Some(addr) = &config.http.listen {
        let addr: std::net::SocketAddr = addr.parse().context("[http] listen")?;
        let (cfg, dir) = (config.clone(), data_dir.to_path_buf());
        let stop = async move {
            let _ = http_stop.wait_for(|s| *s).await;
        };
        // Bound now: a taken port stops serve at start.
        let listener = match crate::http::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                let _ = engine_tx.send(Msg::Shutdown);
                let _ = join(engine_thread, "engine").await;
                return Err(e);
            }
        };
        let task = tokio::spawn(crate::http::serve(
            listener,
            cfg,
            dir,
            registry.clone(),
            clock.clone(),
            stop,
        ));
        http_task = Some(task);
    }
    drop(done_tx);
    info!(
        owner = %owner,
        data_dir = %data_dir.display(),
        config = %config.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into()),
        timezone = %config.timezone,
        channels = config.notify.channel_names().collect::<Vec<_>>().join(","),
        servers = config.servers.len(),
        "certroll serve: ready"
    );
    crate::sdnotify::notify("READY=1\nSTATUS=certroll serve: ready");
    let ended = tokio::select! {
        _ = shutdown => None,
        which = done_rx.recv() => which,
    };
    if ended.is_none() {
        info!("shutdown requested: finishing the work in progress");
    }
    crate::sdnotify::notify("STOPPING=1\nSTATUS=certroll serve: stopping");
    let _ = stop_http.send(true);
    if let Some(task) = http_task {
        // In-flight requests finish; a client that stalls does not hold
        // the shutdown for more than a few seconds.
        match tokio::time::timeout(std::time::Duration::from_secs(5), task).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP listener"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP listener task"),
            Ok(Ok(Ok(()))) => {}
            Err(_) => tracing::warn!("HTTP listener: requests still open after 5 s, dropped"),
        }
    }
    let _ = engine_tx.send(Msg::Shutdown);
    if let Some((tx, _)) = &notifier_parts {
        let _ = tx.send(Msg::Shutdown);
    }
    if let Some((tx, _)) = &deployer_parts {
        let _ = tx.send(Msg::Shutdown);
    }
    let summary = join(engine_thread, "engine").await?;
    if let Some((_, thread)) = notifier_parts {
        join(thread, "notifier").await?;
    }
    if let Some((_, thread)) = deployer_parts {
        join(thread, "deployer").await?;
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

/// `certroll agent --server NAME`: only the deployer, for one server,
/// until `shutdown`.
pub async fn run_agent(
    config: Arc<Config>,
    data_dir: &Path,
    clock: Arc<dyn Clock>,
    server: String,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let deployer = Deployer::new(Store::open(data_dir)?, config, clock, Some(server.clone()));
    let (tx, rx) = mpsc::channel::<Msg>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("certroll-deploy".into())
        .spawn(move || {
            let result = deployer.run(rx);
            let _ = done_tx.send(());
            result
        })
        .context("cannot start the deployer thread")?;
    info!(server = %server, data_dir = %data_dir.display(), "certroll agent: ready");
    let ended = tokio::select! {
        _ = shutdown => false,
        _ = done_rx => true,
    };
    let _ = tx.send(Msg::Shutdown);
    join(thread, "deployer").await?;
    if ended {
        return Err(anyhow!("the deployer stopped unexpectedly"));
    }
    info!(server = %server, "certroll agent: stopped");
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
