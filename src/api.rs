//! The HTTP API under `/api/v1/`, on `serve`'s listener when `[http] api`
//! is on. Every request is authenticated (an API token as `Authorization:
//! Bearer`, or a login session's cookie); a viewer reads, an operator also
//! writes, and a write from a session must carry its CSRF token in
//! `X-CSRF-Token`. Writes go through the same operations as the command
//! line (`crate::ops`), in one transaction with their audit row, which
//! names the account (`api:NAME`). A private key never leaves over HTTP.
//! Errors are JSON `{"error": "..."}` with the command line's one-line
//! message. `/api/v1/openapi.json` describes it all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::{self, Role};
use crate::cert::{Scope, UsageType};
use crate::config::Config;
use crate::ops::set::{OpError, SetChange, SetRequest};
use crate::store::{HistoryFilter, JobFilter, JobState, OpCtx, Principal, Store, StoreError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "certroll_session";
/// How long a login lasts.
pub const SESSION_HOURS: i64 = 8;
/// Failed logins allowed per account name (and in all) within a minute.
const LOGIN_FAILURES_PER_NAME: u32 = 5;
const LOGIN_FAILURES_TOTAL: u32 = 30;
/// The most rows one listing returns.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;
/// The furthest a listing pages.
pub const MAX_OFFSET: usize = 100_000_000;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Mutex<Store>>,
    pub configs: tokio::sync::watch::Receiver<Arc<Config>>,
    pub clock: Arc<dyn crate::clock::Clock>,
    limiter: Arc<Mutex<Limiter>>,
}

impl ApiState {
    pub fn new(
        store: Arc<Mutex<Store>>,
        configs: tokio::sync::watch::Receiver<Arc<Config>>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        ApiState {
            store,
            configs,
            clock,
            limiter: Arc::default(),
        }
    }

    fn store(&self) -> Result<std::sync::MutexGuard<'_, Store>, ApiError> {
        self.store
            .lock()
            .map_err(|_| ApiError::internal("store lock poisoned"))
    }
}

/// Failed logins in the current minute, per account name and in all.
#[derive(Default)]
struct Limiter {
    window: Option<DateTime<Utc>>,
    per_name: HashMap<String, u32>,
    total: u32,
}

impl Limiter {
    fn roll(&mut self, now: DateTime<Utc>) {
        if self.window.is_none_or(|w| now - w >= Duration::minutes(1)) {
            self.window = Some(now);
            self.per_name.clear();
            self.total = 0;
        }
    }

    /// Seconds until another attempt for `name` may be made, if it may not
    /// now.
    fn blocked(&mut self, name: &str, now: DateTime<Utc>) -> Option<i64> {
        self.roll(now);
        let over = self.per_name.get(name).copied().unwrap_or(0) >= LOGIN_FAILURES_PER_NAME
            || self.total >= LOGIN_FAILURES_TOTAL;
        over.then(|| {
            let w = self.window.unwrap_or(now);
            (w + Duration::minutes(1) - now).num_seconds().max(1)
        })
    }

    fn failed(&mut self, name: &str, now: DateTime<Utc>) {
        self.roll(now);
        // Bounded: names beyond the cap count in the total only.
        if self.per_name.len() < 10_000 || self.per_name.contains_key(name) {
            *self.per_name.entry(name.to_string()).or_default() += 1;
        }
        self.total += 1;
    }
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    findings: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            findings: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn internal(message: impl ToString) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use crate::store::LookupError;
        let status = match &e {
            StoreError::Lookup(LookupError::NotFound(_))
            | StoreError::NoSuchJob(_)
            | StoreError::NoSuchRequest(_)
            | StoreError::NoSuchSlot(_) => StatusCode::NOT_FOUND,
            StoreError::Lookup(_) => StatusCode::BAD_REQUEST,
            StoreError::Refused(_) => StatusCode::CONFLICT,
            StoreError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid(m) => ApiError::bad(m),
            OpError::Policy(m) => ApiError::new(StatusCode::CONFLICT, m),
            OpError::Refused(r) => ApiError {
                status: StatusCode::CONFLICT,
                message: r.to_string(),
                findings: Some(json!(
                    r.shown
                        .iter()
                        .map(crate::json::finding_json)
                        .collect::<Vec<_>>()
                )),
            },
            OpError::Store(e) => e.into(),
            OpError::Config(e) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.findings {
            body["findings"] = f;
        }
        let mut resp = ok(self.status, body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"certroll\""),
            );
        }
        resp
    }
}

fn ok(status: StatusCode, v: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        v.to_string(),
    )
        .into_response()
}

/// Query parameters, refused as a JSON error naming the parameter.
struct Query<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad(format!("the query: {}", e.body_text())))
    }
}

/// A path parameter, refused as a JSON error.
struct Path<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad(format!("the path: {}", e.body_text())))
    }
}

/// A request body (at most axum's 2 MiB), refused as a JSON error.
struct Body(Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| ApiError::new(e.status(), format!("the request body: {}", e.body_text())))
    }
}

/// What a request needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
    /// A session's own end: its CSRF token, whatever the role.
    Logout,
}

/// Who calls, and how.
struct Caller {
    principal: Principal,
    /// The session's id and CSRF token, when it came with a session cookie.
    session: Option<(String, String)>,
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme's
/// name is case-insensitive, RFC 9110 11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who presents these headers: a bearer token, else a session cookie.
fn authenticate(
    store: &Store,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Caller, ApiError> {
    let unauthorised = |why: &str| ApiError::new(StatusCode::UNAUTHORIZED, why);
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let token =
            v.to_str().ok().and_then(bearer).ok_or_else(|| {
                unauthorised("authentication needed: Authorization: Bearer TOKEN")
            })?;
        return match store.token_principal(token, now)? {
            Some(principal) => Ok(Caller {
                principal,
                session: None,
            }),
            None => Err(unauthorised("the API token is unknown, revoked or expired")),
        };
    }
    if let Some(id) = cookie(headers, SESSION_COOKIE) {
        return match store.session(id, now)? {
            Some(s) => Ok(Caller {
                principal: s.principal,
                session: Some((id.to_string(), s.csrf_token)),
            }),
            None => Err(unauthorised("the session has ended: log in again")),
        };
    }
    Err(unauthorised(
        "authentication needed: an API token (Authorization: Bearer TOKEN) or a login session",
    ))
}

/// Checks the caller may do what `need` says: a role, and for a write
/// from a session its CSRF token.
fn authorise(caller: &Caller, need: Need, headers: &HeaderMap) -> Result<(), ApiError> {
    if need == Need::Write || need == Need::Logout {
        if need == Need::Write && caller.principal.role < Role::Operator {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "account {} is a {}: changes need the operator or admin role",
                    caller.principal.user, caller.principal.role
                ),
            ));
        }
        if let Some((_, csrf)) = &caller.session {
            let given = headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !auth::constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a missing or wrong CSRF token (X-CSRF-Token): reload the page",
                ));
            }
        }
    }
    Ok(())
}

type Handler = dyn FnOnce(&mut Store, &Config, &OpCtx, &Caller) -> Result<(StatusCode, Value), ApiError>
    + Send;

/// Authenticates and authorises the request, then runs `f` on the store
/// off the async threads (the PostgreSQL client blocks). Denials are
/// logged, without secrets.
async fn call(
    st: ApiState,
    headers: HeaderMap,
    what: &'static str,
    need: Need,
    f: Box<Handler>,
) -> Response {
    let r = tokio::task::spawn_blocking(move || {
        let now = st.clock.now();
        let config = st.configs.borrow().clone();
        let mut store = st.store()?;
        let caller = authenticate(&store, &headers, now)
            .and_then(|c| authorise(&c, need, &headers).map(|()| c))
            .inspect_err(|e| {
                tracing::warn!(request = what, status = e.status.as_u16(), reason = %e.message, "API request denied");
            })?;
        let ctx = OpCtx {
            now,
            actor: actor(&caller.principal.user),
        };
        f(&mut store, &config, &ctx, &caller)
    })
    .await;
    match r {
        Ok(Ok((status, v))) => ok(status, v),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Who the audit trail says made a change through the API.
fn actor(user: &str) -> String {
    format!("api:{user}")
}

/// A JSON body, with the one-line reason when it is not the expected one.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("the request body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

impl Page {
    fn bounds(&self) -> Result<(usize, usize), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad(format!("limit: from 1 to {MAX_LIMIT}")));
        }
        let offset = self.offset.unwrap_or(0);
        if offset > MAX_OFFSET {
            return Err(ApiError::bad(format!("offset: at most {MAX_OFFSET}")));
        }
        Ok((limit, offset))
    }
}

/// A page the store cut: `items` of `total`, from `offset`.
fn paged<T>(total: i64, offset: usize, items: &[T], f: impl Fn(&T) -> Value) -> Value {
    json!({
        "total": total,
        "offset": offset,
        "items": items.iter().map(f).collect::<Vec<_>>(),
    })
}

/// A page cut from everything read (listings the store does not page yet).
fn page<T>(items: Vec<T>, page: &Page, f: impl Fn(&T) -> Value) -> Result<Value, ApiError> {
    let (limit, offset) = page.bounds()?;
    let taken: Vec<&T> = items.iter().skip(offset).take(limit).collect();
    Ok(paged(items.len() as i64, offset, &taken, |t| f(t)))
}

fn types(config: &Config, t: Option<&str>) -> Result<Vec<UsageType>, ApiError> {
    match t {
        None | Some("") => Ok(Vec::new()),
        Some(t) => config
            .types
            .parse_list(t)
            .map_err(|e| ApiError::bad(e.to_string())),
    }
}

fn scope(s: Option<&str>) -> Result<Option<Scope>, ApiError> {
    s.filter(|s| !s.is_empty())
        .map(Scope::parse)
        .transpose()
        .map_err(|e| ApiError::bad(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotsQuery {
    #[serde(rename = "type")]
    usage_type: Option<String>,
    scope: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn slots(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<SlotsQuery>,
) -> Response {
    call(
        st,
        headers,
        "slots",
        Need::Read,
        Box::new(move |store, config, _, _| {
            let types = types(config, q.usage_type.as_deref())?;
            let scope = scope(q.scope.as_deref())?;
            let (limit, offset) = Page {
                limit: q.limit,
                offset: q.offset,
            }
            .bounds()?;
            let (total, views) = store.slots_page(&types, scope.as_ref(), limit, offset)?;
            Ok((
                StatusCode::OK,
                paged(total, offset, &views, crate::json::slot_json),
            ))
        }),
    )
    .await
}

async fn certificates(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<Page>,
) -> Response {
    call(
        st,
        headers,
        "certificates",
        Need::Read,
        Box::new(move |store, _, _, _| {
            let (limit, offset) = q.bounds()?;
            let (total, certs) = store.certs_page(limit, offset)?;
            Ok((
                StatusCode::OK,
                paged(total, offset, &certs, crate::json::cert_json),
            ))
        }),
    )
    .await
}

async fn certificate(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(thumbprint): Path<String>,
) -> Response {
    call(
        st,
        headers,
        "certificate",
        Need::Read,
        Box::new(move |store, _, _, _| {
            let c = store.find_cert(&thumbprint)?;
            Ok((StatusCode::OK, crate::json::cert_json(&c)))
        }),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    state: Option<String>,
    #[serde(rename = "type")]
    usage_type: Option<String>,
    scope: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn jobs(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<JobsQuery>,
) -> Response {
    call(
        st,
        headers,
        "jobs",
        Need::Read,
        Box::new(move |store, config, _, _| {
            let state = q
                .state
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    JobState::parse(s).ok_or_else(|| {
                        ApiError::bad(format!(
                            "state: '{s}' is none of scheduled, running, succeeded, failed, cancelled"
                        ))
                    })
                })
                .transpose()?;
            let filter = JobFilter {
                types: types(config, q.usage_type.as_deref())?,
                scope: scope(q.scope.as_deref())?,
            };
            let jobs = store.jobs(state, &filter, None)?;
            let p = Page {
                limit: q.limit,
                offset: q.offset,
            };
            Ok((StatusCode::OK, page(jobs, &p, crate::json::job_json)?))
        }),
    )
    .await
}

/// One job, read or changed by `f`, answered as the job object.
async fn job_call(
    st: ApiState,
    headers: HeaderMap,
    what: &'static str,
    need: Need,
    id: i64,
    f: fn(&mut Store, i64, &OpCtx) -> Result<crate::store::Job, StoreError>,
) -> Response {
    call(
        st,
        headers,
        what,
        need,
        Box::new(move |store, _, ctx, _| {
            Ok((StatusCode::OK, crate::json::job_json(&f(store, id, ctx)?)))
        }),
    )
    .await
}

async fn job(State(st): State<ApiState>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    job_call(st, headers, "job", Need::Read, id, |store, id, _| {
        store.job(id)?.ok_or(StoreError::NoSuchJob(id))
    })
    .await
}

async fn cancel_job(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    job_call(
        st,
        headers,
        "cancel job",
        Need::Write,
        id,
        |store, id, ctx| store.cancel_job(id, ctx),
    )
    .await
}

async fn retry_job(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    job_call(
        st,
        headers,
        "retry job",
        Need::Write,
        id,
        |store, id, ctx| store.retry_job(id, ctx),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    #[serde(rename = "type")]
    usage_type: Option<String>,
    scope: Option<String>,
    limit: Option<usize>,
}

async fn history(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    call(
        st,
        headers,
        "history",
        Need::Read,
        Box::new(move |store, config, _, _| {
            let (limit, _) = Page {
                limit: q.limit,
                offset: None,
            }
            .bounds()?;
            let rows = store.history(&HistoryFilter {
                types: types(config, q.usage_type.as_deref())?,
                scope: scope(q.scope.as_deref())?,
                limit: Some(limit),
            })?;
            Ok((StatusCode::OK, json!({ "items": rows })))
        }),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    state: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn requests(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<RequestsQuery>,
) -> Response {
    call(
        st,
        headers,
        "requests",
        Need::Read,
        Box::new(move |store, _, _, _| {
            let state = q.state.as_deref().filter(|s| !s.is_empty());
            if let Some(s) = state
                && !["pending", "completed", "cancelled"].contains(&s)
            {
                return Err(ApiError::bad(format!(
                    "state: '{s}' is none of pending, completed, cancelled"
                )));
            }
            let rows = store.requests(state)?;
            let p = Page {
                limit: q.limit,
                offset: q.offset,
            };
            Ok((StatusCode::OK, page(rows, &p, crate::json::request_json)?))
        }),
    )
    .await
}

/// The body of assign and schedule: the command line's `set` flags.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    /// One type, or several comma-separated.
    #[serde(rename = "type")]
    usage_type: String,
    #[serde(default)]
    scope: Option<String>,
    thumbprint: String,
    /// `schedule` only: WHEN, as the command line's --effective-date.
    #[serde(default)]
    effective_date: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    require_staged: bool,
    #[serde(default)]
    what_if: bool,
}

fn set_request(
    config: &Config,
    b: SetBody,
    now: DateTime<Utc>,
    roll: bool,
) -> Result<SetRequest, ApiError> {
    let types = types(config, Some(&b.usage_type))?;
    if types.is_empty() {
        return Err(ApiError::bad("type: give one or more usage types"));
    }
    let scope = scope(b.scope.as_deref())?.unwrap_or(Scope::Global);
    let at = match (roll, &b.effective_date) {
        (false, None) => None,
        (false, Some(_)) => {
            return Err(ApiError::bad(
                "effective_date: an assignment takes effect now; schedule a roll with POST /api/v1/schedule",
            ));
        }
        (true, None) => return Err(ApiError::bad("effective_date: needed to schedule a roll")),
        (true, Some(when)) => {
            let tz = match &b.timezone {
                Some(name) => crate::schedule::when::parse_zone(name)
                    .map_err(|e| ApiError::bad(format!("timezone: {e}")))?,
                None => config.timezone,
            };
            Some(
                crate::schedule::when::parse_when(when, tz, now)
                    .map_err(|e| ApiError::bad(format!("effective_date: {e}")))?,
            )
        }
    };
    if b.require_staged && !roll {
        return Err(ApiError::bad("require_staged: only for a scheduled roll"));
    }
    Ok(SetRequest {
        types,
        scope,
        thumbprint: b.thumbprint,
        at,
        force: b.force,
        require_staged: b.require_staged,
        what_if: b.what_if,
    })
}

fn set_json(out: &crate::ops::set::SetOutcome, what_if: bool) -> Value {
    let mut v = match &out.change {
        SetChange::Assigned(changes) => crate::json::assign_json(changes, what_if, &out.cert),
        SetChange::Scheduled {
            at,
            changes,
            job_ids,
        } => crate::json::schedule_json(
            changes,
            job_ids,
            *at,
            what_if,
            Some(crate::json::cert_json(&out.cert)),
        ),
    };
    v["warnings"] = json!(
        out.notes
            .iter()
            .cloned()
            .chain(out.warnings.iter().map(|f| f.to_string()))
            .collect::<Vec<_>>()
    );
    v
}

async fn set(st: ApiState, headers: HeaderMap, bytes: Bytes, roll: bool) -> Response {
    call(
        st,
        headers,
        if roll { "schedule" } else { "assign" },
        Need::Write,
        Box::new(move |store, config, ctx, _| {
            let req = set_request(config, body(&bytes)?, ctx.now, roll)?;
            let out = crate::ops::set::set(config, store, &req, ctx)?;
            // Created: a roll job was made.
            let status = match &out.change {
                SetChange::Scheduled { job_ids, .. } if !job_ids.is_empty() => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            Ok((status, set_json(&out, req.what_if)))
        }),
    )
    .await
}

async fn assign(State(st): State<ApiState>, headers: HeaderMap, Body(bytes): Body) -> Response {
    set(st, headers, bytes, false).await
}

async fn schedule(State(st): State<ApiState>, headers: HeaderMap, Body(bytes): Body) -> Response {
    set(st, headers, bytes, true).await
}

async fn whoami(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    call(
        st,
        headers,
        "session",
        Need::Read,
        Box::new(move |_, _, _, caller| {
            Ok((
                StatusCode::OK,
                json!({
                    "user": caller.principal.user,
                    "role": caller.principal.role,
                    "csrf_token": caller.session.as_ref().map(|(_, c)| c),
                }),
            ))
        }),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

/// The Set-Cookie of a session (or, with `None`, of its end).
pub fn session_cookie(id: Option<&str>) -> HeaderValue {
    let v = match id {
        Some(id) => format!(
            "{SESSION_COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
            SESSION_HOURS * 3600
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
    };
    HeaderValue::from_str(&v).expect("a cookie of base64url and ASCII")
}

/// A new session: its id (for the cookie) and CSRF token.
pub struct Login {
    pub id: zeroize::Zeroizing<String>,
    pub csrf_token: String,
    pub principal: Principal,
    pub expires_at: DateTime<Utc>,
}

/// Checks a name and password under the rate limit and opens a session.
/// The one message for an unknown name and a wrong password.
pub fn login(st: &ApiState, name: &str, password: &str) -> Result<Login, ApiError> {
    let now = st.clock.now();
    let limited = st
        .limiter
        .lock()
        .map_err(|_| ApiError::internal("limiter poisoned"))?
        .blocked(name, now);
    if let Some(secs) = limited {
        tracing::warn!(account = %crate::text::escape(name), "login refused: too many failed attempts");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins: try again in {secs} s"),
        ));
    }
    let found = st.store()?.user_password(name)?;
    let verified = match &found {
        Some((_, Some(hash))) => {
            auth::verify_password(password, hash).map_err(ApiError::internal)?
        }
        _ => {
            // As costly as a real check, so that timing does not tell
            // which names exist.
            let _ = auth::verify_password(password, dummy_hash());
            false
        }
    };
    let Some((role, _)) = found.filter(|_| verified) else {
        if let Ok(mut l) = st.limiter.lock() {
            l.failed(name, now);
        }
        tracing::warn!(account = %crate::text::escape(name), "login failed: wrong account name or password");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong account name or password",
        ));
    };
    let id = auth::new_secret().map_err(ApiError::internal)?;
    let csrf = auth::new_secret().map_err(ApiError::internal)?;
    let expires_at = now + Duration::hours(SESSION_HOURS);
    let ctx = OpCtx {
        now,
        actor: actor(name),
    };
    st.store()?
        .open_session(name, &id, &csrf, expires_at, &ctx)?;
    tracing::info!(account = name, "login");
    Ok(Login {
        id,
        csrf_token: csrf.to_string(),
        principal: Principal {
            user: name.to_string(),
            role,
        },
        expires_at,
    })
}

/// A valid hash of a random password, for the time of a failed lookup.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        auth::new_secret()
            .ok()
            .and_then(|pw| auth::hash_password(&pw).ok())
            .unwrap_or_default()
    })
}

async fn login_api(State(st): State<ApiState>, Body(bytes): Body) -> Response {
    let r = tokio::task::spawn_blocking(move || {
        let b: LoginBody = body(&bytes)?;
        login(&st, &b.name, &b.password)
    })
    .await;
    match r {
        Ok(Ok(l)) => {
            let mut resp = ok(
                StatusCode::OK,
                json!({
                    "user": l.principal.user,
                    "role": l.principal.role,
                    "csrf_token": l.csrf_token,
                    "expires_at": crate::json::time(l.expires_at),
                }),
            );
            resp.headers_mut()
                .insert(header::SET_COOKIE, session_cookie(Some(&l.id)));
            resp
        }
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

async fn logout(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    let mut resp = call(
        st,
        headers,
        "logout",
        Need::Logout,
        Box::new(move |store, _, ctx, caller| {
            let Some((id, _)) = &caller.session else {
                return Err(ApiError::bad("logout ends a login session; an API token is revoked with 'certroll user token revoke'"));
            };
            store.close_session(id, ctx)?;
            Ok((StatusCode::OK, json!({"logged_out": caller.principal.user})))
        }),
    )
    .await;
    if resp.status() == StatusCode::OK {
        resp.headers_mut()
            .insert(header::SET_COOKIE, session_cookie(None));
    }
    resp
}

async fn openapi() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        crate::openapi::document().to_string(),
    )
        .into_response()
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such API endpoint: see /api/v1/openapi.json",
    )
    .into_response()
}

/// The routes of `/api/v1/`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/login", post(login_api))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/session", get(whoami))
        .route("/api/v1/slots", get(slots))
        .route("/api/v1/certificates", get(certificates))
        .route("/api/v1/certificates/{thumbprint}", get(certificate))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{id}/retry", post(retry_job))
        .route("/api/v1/history", get(history))
        .route("/api/v1/requests", get(requests))
        .route("/api/v1/assign", post(assign))
        .route("/api/v1/schedule", post(schedule))
        .route("/api/v1/{*rest}", get(not_found).post(not_found))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_schemes_are_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; certroll_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn failed_logins_are_limited_per_name_and_in_all_for_a_minute() {
        let t = Utc::now();
        let mut l = Limiter::default();
        for _ in 0..LOGIN_FAILURES_PER_NAME {
            assert_eq!(l.blocked("a", t), None);
            l.failed("a", t);
        }
        assert!(l.blocked("a", t).is_some());
        assert_eq!(l.blocked("b", t), None);
        assert_eq!(l.blocked("a", t + Duration::seconds(61)), None);
        for i in 0..LOGIN_FAILURES_TOTAL {
            l.failed(&format!("n{i}"), t + Duration::seconds(61));
        }
        assert!(l.blocked("fresh", t + Duration::seconds(62)).is_some());
    }
}
