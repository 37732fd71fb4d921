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

use std::net::SocketAddr;
use std::path::PathBuf;
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

#[derive(Clone)]
struct AppState {
    store: Arc<Mutex<Store>>,
    clock: Arc<dyn crate::clock::Clock>,
    /// The configuration in use: a reload (SIGHUP) replaces it.
    configs: tokio::sync::watch::Receiver<Arc<Config>>,
    registry: Arc<Registry>,
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
        Ok(json!({ "keys": keys }))
    })
    .await;
    match r {
        Ok(v) => json_response(v),
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
        let mut problems = Vec::new();
        match st.store.lock() {
            Ok(mut store) => {
                if let Err(e) = store.probe() {
                    problems.push(format!("store: {e}"));
                }
            }
            Err(_) => problems.push("store: lock poisoned".into()),
        }
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

fn snapshot(store: &Store, config: &Config) -> Result<Snapshot, StoreError> {
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
    })
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    let r = blocking(move || {
        let store = st
            .store
            .lock()
            .map_err(|_| "store lock poisoned".to_string())?;
        let snap = snapshot(&store, &st.config()).map_err(|e| e.to_string())?;
        Ok(metrics::render(&st.registry, &snap))
    })
    .await;
    match r {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(resp) => resp,
    }
}

/// Binds the listener (so a taken port fails at start).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("[http] listen {addr}: {e}"))
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    configs: tokio::sync::watch::Receiver<Arc<Config>>,
    data_dir: PathBuf,
    registry: Arc<Registry>,
    clock: Arc<dyn crate::clock::Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut store = Store::open(&data_dir)?;
    // A probe or scrape that waits longer for a lock says "not ready".
    store.set_busy_timeout(std::time::Duration::from_secs(1))?;
    let state = AppState {
        store: Arc::new(Mutex::new(store)),
        clock,
        configs,
        registry,
    };
    let app = Router::new()
        .route("/.well-known/jwks.json", get(well_known))
        .route("/jwks.json", get(one_slot))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    tracing::info!(addr = %listener.local_addr()?, "HTTP listener ready");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
