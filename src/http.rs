//! `serve`'s HTTP listener, off unless `[http] listen` is set (loopback in
//! the example). It stops with the service.
//!
//! - `/.well-known/jwks.json` publishes the keys of the global slot of
//!   every type marked `publish_jwks` (current, pending, previous), so
//!   relying parties learn the next key before it signs and keep the old
//!   one through the overlap; `/jwks.json?type=T&scope=S` one slot's.
//! - `/healthz`: the process answers (200).
//! - `/readyz`: 200 when the store answers and grants its write lock within
//!   a second and every loop of the service runs; 503 with the reasons
//!   otherwise.
//! - `/metrics`: Prometheus text exposition (see [`crate::metrics`]).
//! - `/api/v1/`: with `[http] api = true`, the HTTP API (see [`crate::api`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cert::{Scope, SlotKey};
use crate::config::Config;
use crate::deploy::deployer::jwks_for_slot;
use crate::metrics::{self, Registry, Snapshot};
use crate::store::{Store, StoreError};

/// When the store was last probed, and the problems found.
type Probe = (std::time::Instant, Vec<String>);

#[derive(Clone)]
struct AppState {
    store: Arc<Mutex<Store>>,
    clock: Arc<dyn crate::clock::Clock>,
    /// The configuration in use: a reload (SIGHUP) replaces it.
    configs: tokio::sync::watch::Receiver<Arc<Config>>,
    registry: Arc<Registry>,
    /// The last readiness probe: /readyz probes the store at most once a
    /// second, so a flood of probes cannot hold the write lock a roll needs.
    last_probe: Arc<Mutex<Option<Probe>>>,
}

impl AppState {
    fn config(&self) -> Arc<Config> {
        self.configs.borrow().clone()
    }
}

#[derive(Deserialize)]
struct SlotQuery {
    #[serde(rename = "type")]
    usage_type: String,
    scope: Option<String>,
}

fn json_response(v: Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        v.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": message}).to_string(),
    )
        .into_response()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

async fn well_known(State(st): State<AppState>) -> Response {
    let r = blocking(move || {
        let store = st
            .store
            .lock()
            .map_err(|_| "store lock poisoned".to_string())?;
        let mut keys = Vec::new();
        for t in st.config().types.names() {
            let t = crate::cert::UsageType::from_canonical(t);
            if st.config().publishes_jwks(&t) {
                let doc = jwks_for_slot(&store, &SlotKey::new(Scope::Global, t), st.clock.now())
                    .map_err(|e| e.to_string())?;
                keys.extend(doc["keys"].as_array().cloned().unwrap_or_default());
            }
        }
        Ok(json!({ "keys": crate::deploy::plan::unique_keys(keys) }))
    })
    .await;
    match r {
        Ok(v) => json_response(v),
        Err(resp) => resp,
    }
}

/// An ACME http-01 answer published in the store (by whichever process
/// orders the certificate): the key authorisation as plain text.
async fn acme_challenge(
    State(st): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    // RFC 8555 8.3: a token is base64url, at least 128 bits.
    if token.is_empty()
        || token.len() > 256
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return error(StatusCode::NOT_FOUND, "no such challenge".into());
    }
    let r = blocking(move || {
        let store = st
            .store
            .lock()
            .map_err(|_| "store lock poisoned".to_string())?;
        store
            .acme_challenge(&token, st.clock.now())
            .map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(Some(answer)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], answer).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such challenge".into()),
        Err(resp) => resp,
    }
}

async fn one_slot(State(st): State<AppState>, Query(q): Query<SlotQuery>) -> Response {
    let t = match st.config().types.parse(&q.usage_type) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let scope = match Scope::parse(q.scope.as_deref().unwrap_or("global")) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if !st.config().publishes_jwks(&t) {
        return error(
            StatusCode::NOT_FOUND,
            format!("{t} keys are not published (publish_jwks)"),
        );
    }
    let r = blocking(move || {
        let store = st
            .store
            .lock()
            .map_err(|_| "store lock poisoned".to_string())?;
        jwks_for_slot(&store, &SlotKey::new(scope, t), st.clock.now()).map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(v) => json_response(v),
        Err(resp) => resp,
    }
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
        .into_response()
}

async fn readyz(State(st): State<AppState>) -> Response {
    let registry = st.registry.clone();
    let r = blocking(move || {
        let mut last = st
            .last_probe
            .lock()
            .map_err(|_| "probe lock poisoned".to_string())?;
        let fresh = last
            .as_ref()
            .filter(|(at, _)| at.elapsed() < std::time::Duration::from_secs(1));
        let mut problems = match fresh {
            Some((_, p)) => p.clone(),
            None => {
                let mut p = Vec::new();
                match st.store.lock() {
                    Ok(mut store) => {
                        if let Err(e) = store.probe() {
                            p.push(format!("store: {e}"));
                        }
                    }
                    Err(_) => p.push("store: lock poisoned".into()),
                }
                registry.count_readiness_probe();
                *last = Some((std::time::Instant::now(), p.clone()));
                p
            }
        };
        for name in registry.stopped_loops() {
            problems.push(format!("{name}: stopped"));
        }
        Ok(problems)
    })
    .await;
    match r {
        Ok(p) if p.is_empty() => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ready\n",
        )
            .into_response(),
        Ok(p) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("not ready: {}\n", p.join("; ")),
        )
            .into_response(),
        Err(resp) => resp,
    }
}

/// The slots under a rollover policy, for their gauges.
fn renewal_facts(
    store: &Store,
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::metrics::RenewalFacts>, StoreError> {
    Ok(crate::ops::renew::survey(store, config, now, &[], None)?
        .into_iter()
        .filter_map(|c| {
            let t = c.plan.timing?;
            let failures = c.record.as_ref().map_or(0, |r| r.attempts);
            Some(crate::metrics::RenewalFacts {
                method: c.policy.method.as_str(),
                generate_at: t.generate_at,
                promote_at: t.promote_at,
                failures,
                overdue: c.pending.is_none() && now >= t.promote_at,
                slot: c.slot,
            })
        })
        .collect())
}

fn snapshot(
    store: &Store,
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        slots: store.slot_facts()?,
        jobs: store.job_counts()?,
        max_slots: config.http.metrics_max_slots as usize,
        deliveries: store.delivery_counts()?,
        unrouted: if config.notify.channel_names().next().is_some() {
            Some(store.unrouted_events()?)
        } else {
            None
        },
        deployments: if config.servers.is_empty() {
            Vec::new()
        } else {
            crate::deploy::status::rows(store, config, None)?
        },
        renewals: renewal_facts(store, config, now)?,
    })
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    let r = blocking(move || {
        let store = st
            .store
            .lock()
            .map_err(|_| "store lock poisoned".to_string())?;
        let snap = snapshot(&store, &st.config(), st.clock.now()).map_err(|e| e.to_string())?;
        Ok(metrics::render(&st.registry, snap))
    })
    .await;
    match r {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(resp) => resp,
    }
}

/// Binds the listener (so a taken port fails at start).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("[http] listen {addr}: {e}"))
}

/// The listener's store. With `[http] api` on, refused while the store
/// has no account: there is no default credential.
pub async fn open_store(loc: crate::store::Location, api: bool) -> anyhow::Result<Store> {
    // Opened off the async threads (the PostgreSQL client blocks). A probe
    // or scrape that waits longer for a lock says "not ready".
    let store = tokio::task::spawn_blocking(move || {
        let mut store = Store::open_at(&loc)?;
        store.set_busy_timeout(std::time::Duration::from_secs(1))?;
        Ok::<_, crate::store::StoreError>(store)
    })
    .await??;
    if api && store.user_count()? == 0 {
        anyhow::bail!(
            "[http] api is on, but the store has no account, and there is no default one: add one with 'certroll user add NAME --role admin' (or set api = false)"
        );
    }
    Ok(store)
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    configs: tokio::sync::watch::Receiver<Arc<Config>>,
    store: Store,
    registry: Arc<Registry>,
    clock: Arc<dyn crate::clock::Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = configs.borrow().http.clone();
    let api_on = configs.borrow().http.api;
    let store = Arc::new(Mutex::new(store));
    let state = AppState {
        store: store.clone(),
        clock: clock.clone(),
        configs: configs.clone(),
        registry: registry.clone(),
        last_probe: Arc::default(),
    };
    let mut app = Router::new()
        .route("/.well-known/jwks.json", get(well_known))
        .route("/jwks.json", get(one_slot))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/.well-known/acme-challenge/{token}", get(acme_challenge))
        .with_state(state);
    if api_on {
        app = app.merge(crate::api::router(crate::api::ApiState::new(
            store, configs, clock,
        )));
    }
    tracing::info!(addr = %listener.local_addr()?, "HTTP listener ready");
    accept_loop(listener, app, &limits, &registry, shutdown).await;
    Ok(())
}

/// Completes once the flag is set (or its sender is gone).
async fn until_set(flag: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *flag.borrow_and_update() {
            return;
        }
        if flag.changed().await.is_err() {
            return;
        }
    }
}

/// Accepts connections until `shutdown`, each served on its own task under
/// the limits of `[http]`: at most `max_connections` at once (more are
/// closed at once), headers within `header_timeout_seconds` (hyper's timer,
/// also the idle time of a kept-alive connection), and the whole connection
/// within `connection_timeout_seconds`. At shutdown, requests in flight
/// finish (up to 5 s).
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &crate::config::HttpConfig,
    registry: &Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let max = limits.max_connections as usize;
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let header_timeout = std::time::Duration::from_secs(limits.header_timeout_seconds.into());
    let lifetime = std::time::Duration::from_secs(limits.connection_timeout_seconds.into());
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    let mut refused_warned: Option<std::time::Instant> = None;
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors, most likely: wait, not spin.
                    tracing::warn!(error = %e, "HTTP listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            registry.count_http_refused();
            if refused_warned.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(60)) {
                tracing::warn!(
                    max_connections = max,
                    "HTTP listener: connection refused, the limit of open connections is reached"
                );
                refused_warned = Some(std::time::Instant::now());
            }
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 * 1024);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let deadline = tokio::time::sleep(lifetime);
            tokio::pin!(deadline);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = &mut deadline => {}
                _ = until_set(&mut closing) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    let _ = closing_tx.send(true);
    // Every connection's permit back: each finished its request or gave up.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(6),
        slots.acquire_many(max as u32),
    )
    .await;
}
