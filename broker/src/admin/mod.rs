//! The REST admin API, `/metrics` and the live toggles, on one dedicated thread.
//!
//! axum on a current-thread tokio runtime owned by the `strikemq-admin` thread. The
//! admin plane reads the same state as the data plane (storage, the broker's metrics,
//! the data plane's gauges) through the same `&self` methods the request handlers use;
//! storage takes its locks only to copy offsets or clone an `Arc` and never across
//! file I/O, so nothing here can stall a Kafka request. Blocking storage calls (topic
//! creation, peek, produce) block only this thread.
//!
//! Every error is `{"error": "..."}` with its status: 400 names the bad field or
//! parameter, 404 unknown route/topic/partition/group, 405 wrong method, 409 a
//! structural configuration change or an existing topic, 413 a body over the limit,
//! 403 a foreign `Host` (DNS rebinding) or a state-changing request a browser sent for
//! another origin, 415 a browser's POST/PUT body that is not `application/json`.
//! Bodies from non-browser clients are JSON whatever their declared type (`curl -d`).
//!
//! `GET /` serves the web console (console/): static files compiled into the binary,
//! under a strict Content-Security-Policy, calling only this JSON API.

mod config_api;
mod console;
mod groups;
mod info;
mod messages;
mod openapi;
mod prometheus;
#[cfg(test)]
mod tests;
mod topics;

// The request-body parsers and validators the handlers use, public for the fuzz target
// `admin_json` (broker/fuzz).
pub use config_api::{validate_change, Change};
pub use messages::{encode_produce_body, NewMessage, ProduceBody};
pub use topics::{validate_new_topic, NewTopic, ValidNewTopic};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::broker::Broker;
use crate::net::NetStats;

/// How long shutdown waits for in-flight admin requests (concurrently with the data
/// plane's drain, within the one second a SIGTERM may take).
pub const SHUTDOWN_WAIT_MS: u64 = 250;
/// How long browsers may cache a CORS preflight answer.
const CORS_MAX_AGE_SECONDS: &str = "600";
/// Fetch metadata request headers (sent by every current browser).
const SEC_FETCH_SITE: &str = "sec-fetch-site";
const SEC_FETCH_MODE: &str = "sec-fetch-mode";

/// What the admin handlers read.
pub struct AdminContext {
    pub broker: Arc<Broker>,
    /// Gauges of the running data plane (empty in unit tests).
    pub net: NetStats,
    /// The Kafka listener's bound address and the address Metadata advertises.
    pub kafka_addr: SocketAddr,
    pub advertised: String,
    /// The admin listener's bound address (filled in by [`AdminServer::start`]).
    pub admin_addr: SocketAddr,
    /// The background flusher, woken when the flush policy changes.
    pub flusher: Option<std::thread::Thread>,
}

type Ctx = Arc<AdminContext>;

/// An error answer: `{"error": message}` with `status`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    /// A failure of the broker itself (storage I/O): logged, reported as 500.
    fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        tracing::warn!(error = %message, "admin request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body: parsed as JSON whatever its declared type, except that a
/// request from a browser (it carries `Origin` or `Sec-Fetch-*`) must declare
/// `application/json` (415); honours the body limit (413), and names the offending
/// field on a parse error (400). `curl -d` sends `application/x-www-form-urlencoded`
/// and no origin, and is served; cross-site browser requests never get here
/// ([`origin_guard`]).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        if from_browser(req.headers()) && !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json (a browser request must declare its JSON body)",
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "request body is larger than admin_max_body_bytes")
            } else {
                ApiError::new(
                    status,
                    format!("cannot read the request body: {}", r.body_text()),
                )
            }
        })?;
        let value = parse_json_body(&body)?;
        Ok(JsonBody(value))
    }
}

/// Parses an admin API request body into `T` as every POST/PUT handler does: 400
/// naming the offending field, trailing bytes refused. Public so the fuzz target
/// `admin_json` runs the very parse the handlers use.
pub fn parse_json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        // "." is the whole body; "?" a syntax error before any field was read.
        let field = if path == "." || path == "?" {
            "body".to_string()
        } else {
            path
        };
        ApiError::bad_request(format!("{field}: {}", e.inner()))
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    Ok(value)
}

/// Whether a browser sent the request: browsers add `Origin` to every request that can
/// change state and the `Sec-Fetch-*` metadata to every request; command-line clients
/// and Kafka tooling send neither.
fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers.contains_key(SEC_FETCH_SITE)
        || headers.contains_key(SEC_FETCH_MODE)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// A single path parameter, with a JSON error when it does not decode.
fn path_param(param: Result<Path<String>, PathRejection>, name: &str) -> ApiResult<String> {
    param
        .map(|Path(p)| p)
        .map_err(|e| ApiError::bad_request(format!("path parameter {name}: {}", e.body_text())))
}

/// Every route: path and its methods. The OpenAPI document is tested against this list.
fn routes() -> Vec<(&'static str, MethodRouter<Ctx>)> {
    let mut all = console::routes();
    all.extend([
        ("/healthz", get(info::healthz)),
        ("/metrics", get(prometheus::metrics)),
        ("/v1/openapi.json", get(openapi::document)),
        ("/v1/broker", get(info::broker)),
        (
            "/v1/config",
            get(config_api::get_config).put(config_api::put_config),
        ),
        ("/v1/topics", get(topics::list).post(topics::create)),
        (
            "/v1/topics/{name}",
            get(topics::describe).delete(topics::delete),
        ),
        (
            "/v1/topics/{name}/messages",
            get(messages::peek).post(messages::produce),
        ),
        ("/v1/groups", get(groups::list)),
        (
            "/v1/groups/{id}",
            get(groups::describe).delete(groups::delete),
        ),
    ]);
    all
}

/// The admin application: routes, JSON 404/405, body limit and (when configured) CORS.
pub fn router(ctx: Ctx) -> Router {
    let body_limit_bytes = ctx.broker.effective.config.admin_max_body_bytes;
    let mut router = Router::new();
    for (path, methods) in routes() {
        router = router.route(path, methods);
    }
    router
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(middleware::from_fn_with_state(ctx.clone(), cors))
        .layer(middleware::from_fn_with_state(ctx.clone(), origin_guard))
        .layer(middleware::from_fn_with_state(ctx.clone(), host_guard))
        .with_state(ctx)
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// Answers 403 to a request whose `Host` header names a host the API does not serve,
/// before anything else runs: DNS rebinding makes a web page same-origin with
/// `127.0.0.1:8080`, so neither the content-type rule nor CORS stops it, but the
/// browser still sends the page's own domain as `Host`.
async fn host_guard(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let cfg = &ctx.broker.effective.config;
    // HTTP/1.0 clients may omit Host; browsers always send it.
    let host = req.headers().get(header::HOST).map(|h| h.to_str());
    match host {
        None => next.run(req).await,
        Some(Ok(host))
            if host_allowed(
                host,
                cfg.advertised_host.as_deref(),
                &cfg.admin_allowed_hosts,
            ) =>
        {
            next.run(req).await
        }
        Some(host) => {
            let shown = host.unwrap_or("(not ASCII)");
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {shown:?} is not served here (DNS rebinding protection); \
                     use an IP address or localhost, or add the name to admin_allowed_hosts"
                ),
            )
            .into_response()
        }
    }
}

/// Answers 403 to a state-changing request (any method but GET, HEAD, OPTIONS) that a
/// browser sent on behalf of another site, before any handler runs: its `Origin` is
/// neither the admin listener's own (`http://` + the `Host` it was sent to, as the
/// console's own requests carry) nor `admin_cors_origin`, or its `Sec-Fetch-Site` is
/// `cross-site` (unless it comes from `admin_cors_origin`, which the operator chose).
/// A page on another port of 127.0.0.1 is "same-site" but a different origin, so both
/// checks are needed. Requests without these headers (curl, scripts) pass.
async fn origin_guard(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let cors_origin = ctx.broker.effective.config.admin_cors_origin.as_deref();
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("(not ASCII)"));
    let from_cors_origin = origin.is_some_and(|o| cors_origin == Some(o));
    let refusal = match origin {
        Some(o) if !from_cors_origin && !same_origin(o, headers, ctx.admin_addr) => Some(format!(
            "Origin {o:?} may not change this broker (cross-site request protection): only the console's own origin or admin_cors_origin may"
        )),
        _ => {
            let site = headers.get(SEC_FETCH_SITE).and_then(|v| v.to_str().ok());
            (site == Some("cross-site") && !from_cors_origin).then(|| {
                "Sec-Fetch-Site: cross-site requests may not change this broker (cross-site request protection); set admin_cors_origin to allow one origin"
                    .to_string()
            })
        }
    };
    match refusal {
        Some(message) => ApiError::new(StatusCode::FORBIDDEN, message).into_response(),
        None => next.run(req).await,
    }
}

/// Whether `origin` is the admin listener's own: `http://` and the `Host` the request
/// was sent to (already checked by [`host_guard`]), or the bound address.
fn same_origin(origin: &str, headers: &HeaderMap, admin_addr: SocketAddr) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) || authority == admin_addr.to_string()
}

/// Whether a `Host` header value (`name[:port]`, `[v6][:port]`) is one the admin API
/// answers to: an IP literal (cannot be rebound), `localhost` or `*.localhost` (always
/// loopback, RFC 6761), the advertised host, or a configured name (`*` = any).
fn host_allowed(host: &str, advertised: Option<&str>, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || advertised.is_some_and(|a| a.eq_ignore_ascii_case(&name))
        || allowed
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('.').eq_ignore_ascii_case(&name))
}

/// CORS is off unless `admin_cors_origin` is set: then that one origin may call the
/// API from a browser, and preflight requests are answered here.
async fn cors(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let Some(origin) = ctx.broker.effective.config.admin_cors_origin.as_deref() else {
        return next.run(req).await;
    };
    let Ok(origin) = HeaderValue::from_str(origin) else {
        return next.run(req).await;
    };
    let mut response = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(CORS_MAX_AGE_SECONDS),
        );
        r
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// Wakes the server's graceful shutdown from another thread (tokio's `sync` feature
/// is not needed for one flag and one waker).
#[derive(Default)]
struct ShutdownSignal {
    stopped: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ShutdownSignal {
    fn trigger(&self) {
        self.stopped.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    async fn wait(self: Arc<Self>) {
        std::future::poll_fn(|cx| {
            if self.stopped.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            // A trigger between the first check and storing the waker is seen here.
            if self.stopped.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// The running admin server.
pub struct AdminServer {
    local_addr: SocketAddr,
    stop: Arc<ShutdownSignal>,
    done: mpsc::Receiver<()>,
}

impl AdminServer {
    /// Serves the admin API on an already bound listener, on its own thread.
    pub fn start(
        listener: std::net::TcpListener,
        mut ctx: AdminContext,
    ) -> std::io::Result<AdminServer> {
        let local_addr = listener.local_addr()?;
        ctx.admin_addr = local_addr;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stop = Arc::new(ShutdownSignal::default());
        let (done_tx, done) = mpsc::channel();
        let signal = stop.clone();
        std::thread::Builder::new()
            .name("strikemq-admin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "admin listener unusable");
                            return;
                        }
                    };
                    let app = router(Arc::new(ctx));
                    if let Err(e) = axum::serve(listener, app)
                        .with_graceful_shutdown(signal.wait())
                        .await
                    {
                        tracing::error!(error = %e, "admin server stopped with an error");
                    }
                });
                let _ = done_tx.send(());
            })?;
        Ok(AdminServer {
            local_addr,
            stop,
            done,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and waits (bounded) for in-flight requests to finish.
    pub fn shutdown(self) {
        self.stop.trigger();
        if self
            .done
            .recv_timeout(Duration::from_millis(SHUTDOWN_WAIT_MS))
            .is_err()
        {
            tracing::warn!("admin server did not stop within {SHUTDOWN_WAIT_MS} ms");
        }
    }
}
