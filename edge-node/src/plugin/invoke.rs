//! Running one request through one plugin version, whatever its world: a
//! fresh instance from the pre-instantiated component, a deadline in epoch
//! ticks, a memory cap, a bound on the response body. A trap, timeout or
//! limit fails this request alone with a 500/504 that names the plugin and
//! version. Only handing the request to the guest differs between
//! wasi:http 0.2 (`p2.rs`) and 0.3 (`p3.rs`); limits, outcome and error
//! mapping are this one path.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::Limited;
use tokio::sync::oneshot;
use wasmtime::{Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi_http::handler::ProxyPre;

use super::capabilities::EdgeCtx;
use super::engine::EPOCH_TICK;
use super::hooks::Hooks;
use super::host::HostState;
use super::loaded::LoadedPlugin;
use super::{p2, p3};
use crate::body::{self, Body};

/// How a plugin request ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Trap,
    Timeout,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Trap => "trap",
            Outcome::Timeout => "timeout",
        }
    }
}

/// Runs `req`; `permit` (the plugin's concurrency slot) is held until the
/// instance finishes, which may be after the response head, while the body
/// streams.
pub async fn run(
    plugin: Arc<LoadedPlugin>,
    req: Request<Body>,
    tls: bool,
    hooks: Hooks,
    edge: EdgeCtx,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> (Response<Body>, Outcome) {
    let config = &plugin.config;
    let limits = StoreLimitsBuilder::new()
        .memory_size(config.memory as usize)
        .instances(64)
        .tables(64)
        .memories(8)
        .trap_on_grow_failure(false)
        .build();
    let mut store = Store::new(plugin.engine(), HostState::new(hooks, edge, limits));
    store.limiter(|h| &mut h.limits);
    let ticks = (config.timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();

    let (head, receiver) = oneshot::channel();
    let started = match &plugin.pre {
        ProxyPre::P2(pre) => p2::start(pre, store, req, tls, head, permit),
        ProxyPre::P3(pre) => Ok(p3::start(pre, store, req, tls, head, permit)),
    };
    let task = match started {
        Ok(task) => task,
        Err(e) => {
            return (
                failure(
                    &plugin,
                    StatusCode::BAD_REQUEST,
                    "the site's handler could not take this request",
                    &format!("request not accepted: {e:#}"),
                ),
                Outcome::Trap,
            );
        }
    };
    // The epoch deadline traps only when guest code runs: a guest waiting
    // on a host call (its `next`, an origin, a body) would hold its slot
    // until that call returns. The response head is bound by the same
    // deadline in wall-clock time (plus two ticks, so a guest that is
    // running is stopped by its trap and reported the same way).
    let deadline = tokio::time::Instant::now() + config.timeout + 2 * EPOCH_TICK;
    let Ok(head) = tokio::time::timeout_at(deadline, receiver).await else {
        task.abort();
        let msg = format!(
            "plugin exceeded its {:?} deadline waiting for a host call",
            config.timeout
        );
        return (
            failure(&plugin, StatusCode::GATEWAY_TIMEOUT, DEADLINE, &msg),
            Outcome::Timeout,
        );
    };
    match head {
        Ok(Ok(resp)) => {
            // The deadline covers the body too: a client that stops reading
            // (a zero HTTP/2 window) would otherwise keep the instance, its
            // memory and the plugin's concurrency slot for as long as it
            // likes. Past the deadline the instance is dropped and the body
            // ends with an error.
            let name = config.name.clone();
            let timeout = config.timeout;
            let mut task = task;
            tokio::spawn(async move {
                if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                    task.abort();
                    tracing::warn!(plugin = %name, ?timeout, "plugin response body outlived its deadline; instance dropped, body cut");
                }
            });
            let limit = config.max_response_bytes as usize;
            (
                resp.map(|b| body::boxed(Limited::new(b, limit))),
                Outcome::Ok,
            )
        }
        Ok(Err(code)) => (
            failure(
                &plugin,
                StatusCode::BAD_GATEWAY,
                "the site's handler answered with an error",
                &format!("plugin answered with error {code}"),
            ),
            Outcome::Trap,
        ),
        Err(_) => {
            let err = match task.await {
                Ok(Ok(())) => {
                    wasmtime::format_err!("the plugin returned without setting a response")
                }
                Ok(Err(e)) => e,
                Err(join) => wasmtime::format_err!("plugin task failed: {join}"),
            };
            if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                let msg = format!("plugin exceeded its {:?} deadline", config.timeout);
                (
                    failure(&plugin, StatusCode::GATEWAY_TIMEOUT, DEADLINE, &msg),
                    Outcome::Timeout,
                )
            } else {
                (
                    failure(
                        &plugin,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the site's handler failed",
                        &format!("plugin failed: {err:#}"),
                    ),
                    Outcome::Trap,
                )
            }
        }
    }
}

/// What a client reads when a plugin ran out of time.
const DEADLINE: &str = "the site's handler did not answer before its deadline";

/// The response for a failed plugin request. Strangers read the body, so it
/// says only `public` (no trap message, backtrace, plugin name or host
/// detail) and a request id; the log has `detail`, the plugin and its
/// version under the same id.
pub fn failure(
    plugin: &LoadedPlugin,
    status: StatusCode,
    public: &str,
    detail: &str,
) -> Response<Body> {
    let id = format!("{:016x}", rand::random::<u64>());
    tracing::warn!(request_id = %id, plugin = %plugin.config.name, version = %plugin.version, status = status.as_u16(), "{detail}");
    let text = format!("{public}; request id {id}\n");
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body::full(text))
        .expect("static response parts are valid")
}

/// Answer for a request refused because the plugin's queue is full.
pub fn overloaded(plugin: &LoadedPlugin) -> Response<Body> {
    let mut resp = failure(
        plugin,
        StatusCode::SERVICE_UNAVAILABLE,
        "the site is busy; retry shortly",
        "too many requests are waiting for this plugin (max_concurrency and max_queue reached)",
    );
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    resp
}
