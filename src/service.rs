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
use crate::store::{Location, Store};

/// Reads the configuration again (SIGHUP): from the file the service
/// started with.
pub type Reload = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// The loops of one configuration: the engine, and the notifier and
/// deployer when configured, each on its thread.
struct Loops {
    engine: (
        mpsc::Sender<Msg>,
        Thread<crate::schedule::engine::PassSummary>,
    ),
    notifier: Option<(mpsc::Sender<Msg>, Thread<()>)>,
    deployer: Option<(mpsc::Sender<Msg>, Thread<()>)>,
    renewer: Option<(mpsc::Sender<Msg>, Thread<()>)>,
    /// Each loop says here when it ends.
    done: tokio::sync::mpsc::UnboundedReceiver<&'static str>,
    owner: String,
}

type Thread<T> = std::thread::JoinHandle<Result<T, crate::store::StoreError>>;

/// Opens the store off the async threads: the PostgreSQL client blocks
/// (and must never run on a tokio worker).
async fn open_store(loc: &Location) -> Result<Store> {
    let loc = loc.clone();
    Ok(tokio::task::spawn_blocking(move || Store::open_at(&loc))
        .await
        .context("the store could not be opened")??)
}

/// The clock the loops run by: this host's, corrected by the skew between
/// it and a PostgreSQL store's clock, so that every engine of a pool fires
/// a roll at the same instant whatever its host's clock says (leases are
/// judged by the database's clock itself).
async fn pool_clock(
    loc: &Location,
    clock: Arc<dyn Clock>,
    registry: Option<&Registry>,
) -> Result<Arc<dyn Clock>> {
    if matches!(loc.database, crate::store::Database::Sqlite) {
        return Ok(clock);
    }
    let l = loc.clone();
    let store_skew = tokio::task::spawn_blocking(move || Store::open_at(&l)?.clock_skew())
        .await
        .context("the store could not be opened")??;
    // The store measured against the system's clock; this process may run
    // by another (CERTROLL_CLOCK_OFFSET_MS).
    let skew = store_skew + (chrono::Utc::now() - clock.now());
    if skew.num_milliseconds().abs() > 1000 {
        tracing::warn!(
            skew_ms = skew.num_milliseconds(),
            store = %loc.describe(),
            "this host's clock differs from the database's by more than a second: certroll runs by the database's clock, but fix the host's (NTP)"
        );
    } else {
        info!(
            skew_ms = skew.num_milliseconds(),
            "clock skew to the database"
        );
    }
    if let Some(r) = registry {
        r.set_clock_skew(skew);
    }
    Ok(Arc::new(crate::clock::Skewed::new(clock, skew)))
}

impl Loops {
    async fn start(
        config: &Arc<Config>,
        loc: &Location,
        clock: &Arc<dyn Clock>,
        registry: &Arc<Registry>,
    ) -> Result<Loops> {
        let store = open_store(loc).await?;
        let engine = Engine::new(store, config.clone(), clock.clone())?
            .with_metrics(registry.clone())
            .with_stagers(crate::deploy::deployer::stagers(config.clone()));
        let owner = engine.owner().to_string();
        // Each loop says when it ends. Unbounded: a loop that ends during
        // shutdown, when nobody reads any more, must never block on it.
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();

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
        let mut loops = Loops {
            engine: (engine_tx, engine_thread),
            notifier: None,
            deployer: None,
            renewer: None,
            done: done_rx,
            owner,
        };

        if config.notify.channel_names().next().is_some() {
            // The notifier owns a tokio runtime of its own: it is built, run
            // and dropped on its thread, never inside this async context.
            let (tx, rx) = mpsc::channel::<Msg>();
            let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
            let done = done_tx.clone();
            let (cfg, loc, clock) = (config.clone(), loc.clone(), clock.clone());
            let reg = registry.clone();
            registry.set_loop("notifier", true);
            let thread = std::thread::Builder::new()
                .name("certroll-notify".into())
                .spawn(move || {
                    let _running = LoopGuard::new(&reg, "notifier");
                    let built = Store::open_at(&loc)
                        .map_err(|e| e.to_string())
                        .and_then(|store| Notifier::new(store, &cfg, clock));
                    let notifier = match built {
                        Ok(n) => {
                            let _ = ready_tx.send(Ok(()));
                            n
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let result = notifier.run(rx).map(|_| ());
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
                let _ = loops.stop().await;
                return Err(anyhow!(e));
            }
            loops.notifier = Some((tx, thread));
        }
        if config.deploy.serve_deploys && !config.servers.is_empty() && !config.targets.is_empty() {
            let deployer =
                Deployer::new(open_store(loc).await?, config.clone(), clock.clone(), None);
            let (tx, rx) = mpsc::channel::<Msg>();
            let done = done_tx.clone();
            let reg = registry.clone();
            registry.set_loop("deployer", true);
            let thread = std::thread::Builder::new()
                .name("certroll-deploy".into())
                .spawn(move || {
                    let _running = LoopGuard::new(&reg, "deployer");
                    let result = deployer.run(rx).map(|_| ());
                    let _ = done.send("deployer");
                    result
                })
                .context("cannot start the deployer thread")?;
            loops.deployer = Some((tx, thread));
        }
        if !config.renewal.is_empty() {
            let renewer = crate::ops::renewer::Renewer::new(
                open_store(loc).await?,
                config.clone(),
                clock.clone(),
            )
            .with_metrics(registry.clone());
            let (tx, rx) = mpsc::channel::<Msg>();
            let done = done_tx.clone();
            let reg = registry.clone();
            registry.set_loop("renewer", true);
            let thread = std::thread::Builder::new()
                .name("certroll-renew".into())
                .spawn(move || {
                    let _running = LoopGuard::new(&reg, "renewer");
                    let result = renewer.run(rx);
                    let _ = done.send("renewer");
                    result
                })
                .context("cannot start the renewal thread")?;
            loops.renewer = Some((tx, thread));
        }
        Ok(loops)
    }

    /// Asks every loop to stop after the work in progress (a roll, a send,
    /// a deployment) and waits for each: nothing claimed is left behind.
    async fn stop(self) -> Result<crate::schedule::engine::PassSummary> {
        let _ = self.engine.0.send(Msg::Shutdown);
        if let Some((tx, _)) = &self.notifier {
            let _ = tx.send(Msg::Shutdown);
        }
        if let Some((tx, _)) = &self.deployer {
            let _ = tx.send(Msg::Shutdown);
        }
        if let Some((tx, _)) = &self.renewer {
            let _ = tx.send(Msg::Shutdown);
        }
        let summary = join(self.engine.1, "engine").await?;
        if let Some((_, thread)) = self.notifier {
            join(thread, "notifier").await?;
        }
        if let Some((_, thread)) = self.deployer {
            join(thread, "deployer").await?;
        }
        if let Some((_, thread)) = self.renewer {
            join(thread, "renewer").await?;
        }
        Ok(summary)
    }
}

/// The optional HTTP listener, which outlives a reload unless its address
/// changes.
struct Http {
    addr: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Http {
    async fn start(
        config: &Arc<Config>,
        configs: &tokio::sync::watch::Receiver<Arc<Config>>,
        loc: &Location,
        clock: &Arc<dyn Clock>,
        registry: &Arc<Registry>,
    ) -> Result<Option<Http>> {
        let Some(addr) = &config.http.listen else {
            return Ok(None);
        };
        let parsed: std::net::SocketAddr = addr.parse().context("[http] listen")?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let until = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        // Bound now: a taken port stops serve at start.
        let listener = crate::http::bind(parsed).await?;
        let store = crate::http::open_store(loc.clone(), config.http.api).await?;
        let task = tokio::spawn(crate::http::serve(
            listener,
            configs.clone(),
            store,
            registry.clone(),
            clock.clone(),
            until,
        ));
        Ok(Some(Http {
            addr: addr.clone(),
            stop,
            task,
        }))
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        // In-flight requests finish; a client that stalls does not hold
        // the shutdown for more than a few seconds.
        match tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP listener"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP listener task"),
            Ok(Ok(Ok(()))) => {}
            Err(_) => tracing::warn!("HTTP listener: requests still open after 5 s, dropped"),
        }
    }
}

/// What ended a wait of the supervisor.
enum Event {
    Shutdown,
    Ended(&'static str),
    Reload,
}

/// Runs the service until `shutdown` completes (or a loop fails). SIGHUP
/// reads the configuration again through `reload`: when it is valid the
/// loops finish their work in progress and start again with it (nothing
/// claimed is lost: jobs and deliveries are in the store); when it is not,
/// the error is logged and the old configuration kept.
pub async fn run(
    config: Arc<Config>,
    loc: &Location,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    reload: Reload,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let registry = Arc::new(Registry::default());
    let clock = pool_clock(loc, clock, Some(&registry)).await?;
    // Registered first: SIGHUP's default action would end the process.
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut config = config;
    let (configs_tx, configs) = tokio::sync::watch::channel(config.clone());
    let mut loops = Loops::start(&config, loc, &clock, &registry).await?;
    let mut http = match Http::start(&config, &configs, loc, &clock, &registry).await {
        Ok(h) => h,
        Err(e) => {
            let _ = loops.stop().await;
            return Err(e);
        }
    };
    info!(
        owner = %loops.owner,
        data_dir = %loc.data_dir.display(),
        store = %loc.describe(),
        config = %describe_source(&config),
        timezone = %config.timezone,
        channels = config.notify.channel_names().collect::<Vec<_>>().join(","),
        servers = config.servers.len(),
        "certroll serve: ready"
    );
    crate::sdnotify::notify("READY=1\nSTATUS=certroll serve: ready");
    tokio::pin!(shutdown);
    let mut total = crate::schedule::engine::PassSummary::default();
    let ended = loop {
        let event = tokio::select! {
            _ = &mut shutdown => Event::Shutdown,
            which = loops.done.recv() => Event::Ended(which.unwrap_or("engine")),
            _ = hup.recv() => Event::Reload,
        };
        match event {
            Event::Shutdown => {
                info!("shutdown requested: finishing the work in progress");
                break None;
            }
            Event::Ended(which) => break Some(which),
            Event::Reload => {
                info!("SIGHUP received: reading the configuration again");
                let new = match reload() {
                    Ok(c) => Arc::new(c),
                    Err(e) => {
                        tracing::error!(error = %e, "the new configuration is invalid: keeping the one in use");
                        crate::sdnotify::notify(
                            "STATUS=certroll serve: configuration invalid, the old one kept",
                        );
                        continue;
                    }
                };
                crate::sdnotify::notify("RELOADING=1\nSTATUS=certroll serve: reloading");
                total.add(&loops.stop().await?);
                let listen_changed = new.http.listen != config.http.listen;
                config = new;
                let _ = configs_tx.send(config.clone());
                loops = Loops::start(&config, loc, &clock, &registry).await?;
                if listen_changed {
                    if let Some(h) = http.take() {
                        h.stop().await;
                    }
                    http = Http::start(&config, &configs, loc, &clock, &registry).await?;
                }
                info!(
                    config = %describe_source(&config),
                    channels = config.notify.channel_names().collect::<Vec<_>>().join(","),
                    servers = config.servers.len(),
                    http = %http.as_ref().map_or("off".to_string(), |h| h.addr.clone()),
                    "configuration reloaded"
                );
                crate::sdnotify::notify(
                    "READY=1\nSTATUS=certroll serve: ready (configuration reloaded)",
                );
            }
        }
    };
    crate::sdnotify::notify("STOPPING=1\nSTATUS=certroll serve: stopping");
    if let Some(h) = http {
        h.stop().await;
    }
    total.add(&loops.stop().await?);
    if let Some(which) = ended {
        return Err(anyhow!("the {which} stopped unexpectedly"));
    }
    info!(
        succeeded = total.succeeded,
        failed = total.failed,
        retried = total.retried,
        "certroll serve: stopped"
    );
    Ok(())
}

fn describe_source(config: &Config) -> String {
    config
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into())
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
/// until `shutdown`. SIGHUP reads the configuration again, as `serve` does.
pub async fn run_agent(
    config: Arc<Config>,
    loc: &Location,
    clock: Arc<dyn Clock>,
    server: String,
    shutdown: impl Future<Output = ()>,
    reload: Reload,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let clock = pool_clock(loc, clock, None).await?;
    let start = |store: Store, config: Arc<Config>| -> Result<_> {
        let deployer = Deployer::new(store, config, clock.clone(), Some(server.clone()));
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
        Ok((tx, thread, done_rx))
    };
    let (mut tx, mut thread, mut done_rx) = start(open_store(loc).await?, config)?;
    info!(server = %server, data_dir = %loc.data_dir.display(), store = %loc.describe(), "certroll agent: ready");
    tokio::pin!(shutdown);
    let ended = loop {
        tokio::select! {
            _ = &mut shutdown => break false,
            _ = &mut done_rx => break true,
            _ = hup.recv() => {
                info!("SIGHUP received: reading the configuration again");
                let new = match reload() {
                    Ok(c) if c.servers.iter().any(|s| s.name.eq_ignore_ascii_case(&server)) => c,
                    Ok(_) => {
                        tracing::error!(server = %server, "the new configuration no longer declares this server: keeping the one in use");
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the new configuration is invalid: keeping the one in use");
                        continue;
                    }
                };
                let _ = tx.send(Msg::Shutdown);
                join(thread, "deployer").await?;
                (tx, thread, done_rx) = start(open_store(loc).await?, Arc::new(new))?;
                info!(server = %server, "configuration reloaded");
            }
        }
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
