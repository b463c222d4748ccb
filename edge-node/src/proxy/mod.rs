//! The request pipeline, one phase per function:
//!
//! accept (`handle`) → route (`route`) → pass or cache (`serve_cached`) →
//! lookup → hit / stale / miss → fetch with coalescing (`fetch`) → store →
//! respond (`respond::from_cache`) → log (`finish`).
//!
//! Errors say who is at fault: the client gets a 4xx with the reason, an
//! unreachable or failing origin gives 502/504, never a panic.

mod forward;
mod range;
mod respond;
mod route;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, request};
use http_body_util::{BodyStream, Limited};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::cache::{Cache, CacheRequest, CachedObject, Freshness, Outcome, Role};
use crate::listen::ConnInfo;
use crate::metrics::{CacheResult, Metrics};
use crate::plugin::link::{Link, LinkFuture};
use crate::plugin::{self, PluginSlot, RequestFacts, Runtime};
use crate::upstream::{FetchError, Pool};
pub use route::{Router, Site};
use std::collections::HashMap;

pub struct Proxy {
    router: Router,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
    max_body_bytes: u64,
    plugins: Option<Arc<Runtime>>,
}

/// Per-request facts every phase may need.
#[derive(Clone)]
struct Ctx {
    conn: ConnInfo,
    host: String,
    pool: Arc<Pool>,
    plugins: Vec<Arc<PluginSlot>>,
    plugin_config: Arc<HashMap<String, String>>,
}

type Reply = (Response<Body>, CacheResult);

impl Proxy {
    pub fn new(
        router: Router,
        cache: Arc<Cache>,
        metrics: Arc<Metrics>,
        max_body_bytes: u64,
        plugins: Option<Arc<Runtime>>,
    ) -> Self {
        Self {
            router,
            cache,
            metrics,
            max_body_bytes,
            plugins,
        }
    }

    /// Accept phase: runs the pipeline and records the request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        // Only pay for the log's copy of the path when the log is on.
        let log = tracing::enabled!(target: "waypost::access", tracing::Level::INFO);
        let path = if log {
            req.uri().path().to_string()
        } else {
            String::new()
        };
        let peer = conn.peer;
        let (parts, incoming) = req.into_parts();
        let (resp, result, host) = match self.route(&parts, conn) {
            Some(ctx) => {
                let host = ctx.host.clone();
                let body = body::boxed(incoming);
                let (resp, result) = match &self.plugins {
                    Some(rt) if !ctx.plugins.is_empty() => {
                        let rt = rt.clone();
                        self.clone().run_plugins(rt, parts, body, ctx).await
                    }
                    _ => self.dispatch(parts, body, ctx).await,
                };
                (resp, result, host)
            }
            None => (unroutable(&parts), CacheResult::Synth, String::new()),
        };
        let status = resp.status().as_u16();
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|_| method != Method::HEAD)
            .unwrap_or(0);
        self.metrics.count_request(status, result);
        self.metrics.add_bytes_sent(bytes);
        if log {
            tracing::info!(
                target: "waypost::access",
                peer = %peer,
                method = %method,
                host = %host,
                path = %path,
                status,
                cache = ?result,
                bytes,
                duration_us = started.elapsed().as_micros() as u64,
            );
        }
        resp
    }

    /// Route phase: the site for the request's host and path.
    fn route(&self, parts: &request::Parts, conn: ConnInfo) -> Option<Ctx> {
        let host = route::request_host(parts)?;
        let site = self.router.route(&host, parts.uri.path())?;
        Some(Ctx {
            conn,
            host,
            pool: site.pool.clone(),
            plugins: site.plugins.clone(),
            plugin_config: site.plugin_config.clone(),
        })
    }

    /// Plugin phase: the site's chain answers; its `next` ends in
    /// `dispatch`, the cache path.
    async fn run_plugins(
        self: Arc<Self>,
        rt: Arc<Runtime>,
        mut parts: request::Parts,
        body: Body,
        ctx: Ctx,
    ) -> Reply {
        let location = rt.locate(ctx.conn.peer.ip());
        let spoofed: Vec<header::HeaderName> = parts
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-waypost-"))
            .cloned()
            .collect();
        for name in spoofed {
            parts.headers.remove(name);
        }
        let h = &mut parts.headers;
        h.insert(
            plugin::CLIENT_IP,
            HeaderValue::from_str(&ctx.conn.peer.ip().to_string())
                .expect("an IP is a valid header value"),
        );
        h.insert(plugin::REQUEST_ID, HeaderValue::from(rand::random::<u64>()));
        if let Some(country) = location
            .country
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            h.insert(plugin::GEO_COUNTRY, country);
        }
        let facts = RequestFacts {
            tls: ctx.conn.tls,
            client_host: HeaderValue::from_str(&ctx.host)
                .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
            location,
            site_config: ctx.plugin_config.clone(),
        };
        let slots = ctx.plugins.clone();
        let terminal = Arc::new(Terminal { proxy: self, ctx });
        let chain = rt.chain(&slots, &facts, terminal);
        (
            chain.call(Request::from_parts(parts, body)).await,
            CacheResult::Plugin,
        )
    }

    async fn dispatch(&self, parts: request::Parts, body: Body, ctx: Ctx) -> Reply {
        if let Some(declared) = crate::cache::content_length(&parts.headers)
            && declared > self.max_body_bytes
        {
            let msg = format!(
                "request body of {declared} bytes exceeds the limit of {} bytes",
                self.max_body_bytes
            );
            tracing::warn!(peer = %ctx.conn.peer, limit = "max_body_bytes", "{msg}");
            return (
                respond::synthetic(StatusCode::PAYLOAD_TOO_LARGE, msg),
                CacheResult::Synth,
            );
        }
        if matches!(parts.method, Method::GET | Method::HEAD) {
            self.serve_cached(parts, ctx).await
        } else {
            self.pass(parts, body, ctx).await
        }
    }

    /// Pass phase: unsafe and unknown methods go to the origin untouched; a
    /// success invalidates what the cache holds for the URL.
    async fn pass(&self, parts: request::Parts, body: Body, ctx: Ctx) -> Reply {
        let limit = self.max_body_bytes as usize;
        let body = body::boxed(Limited::new(body, limit));
        let path = forward::origin_form(&parts.uri);
        let unsafe_method = !matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        let req = forward::pass(parts, body, &ctx.conn, &ctx.host);
        match ctx.pool.send(req, false).await {
            Ok(resp) => {
                let (mut rparts, rbody) = resp.into_parts();
                if unsafe_method && (rparts.status.is_success() || rparts.status.is_redirection()) {
                    for key in forward::invalidated_keys(&ctx.host, &path, &rparts.headers) {
                        self.cache.invalidate_url(&key).await;
                    }
                }
                crate::cache::strip_hop_by_hop(&mut rparts.headers);
                rparts
                    .headers
                    .append("cache-status", respond::cache_status("fwd=method"));
                (
                    Response::from_parts(rparts, body::boxed(rbody)),
                    CacheResult::Pass,
                )
            }
            Err(e) => (origin_error(&e), CacheResult::Synth),
        }
    }

    /// Lookup phase for GET/HEAD.
    async fn serve_cached(&self, parts: request::Parts, ctx: Ctx) -> Reply {
        let path = forward::origin_form(&parts.uri);
        let mut creq = CacheRequest {
            primary: crate::cache::primary(&ctx.host, &path),
            parts,
        };
        // One spelling of the host for every protocol (HTTP/2 sends none), so
        // stored policies match later requests whatever their version.
        if creq
            .parts
            .headers
            .get(header::HOST)
            .is_none_or(|h| h.as_bytes() != ctx.host.as_bytes())
            && let Ok(host) = HeaderValue::from_str(&ctx.host)
        {
            creq.parts.headers.insert(header::HOST, host);
        }
        if creq.parts.uri.authority().is_some() {
            creq.parts.uri = path.parse().expect("a path and query is a valid URI");
        }
        let ctx = Arc::new(ctx);
        let now = SystemTime::now();
        let key = self.cache.lookup_key(&creq);
        let Some(obj) = self.cache.get(&key) else {
            return self.fetch(creq, ctx, key, None, "fwd=uri-miss").await;
        };
        match obj.freshness(&creq.parts, now) {
            Freshness::Fresh => (
                respond::from_cache(&obj, &creq.parts, "hit", now),
                CacheResult::Hit,
            ),
            Freshness::ServeStaleAndRefresh => {
                self.refresh_in_background(creq.parts.clone(), ctx, key, obj.clone());
                (
                    respond::from_cache(
                        &obj,
                        &creq.parts,
                        "hit; detail=stale-while-revalidate",
                        now,
                    ),
                    CacheResult::Stale,
                )
            }
            Freshness::Stale => self.fetch(creq, ctx, key, Some(obj), "fwd=stale").await,
        }
    }

    fn refresh_in_background(
        &self,
        parts: request::Parts,
        ctx: Arc<Ctx>,
        key: String,
        obj: Arc<CachedObject>,
    ) {
        let Some(guard) = self.cache.coalescer.try_lead(&key) else {
            return;
        };
        let this = Fetcher {
            cache: self.cache.clone(),
        };
        let primary = obj.meta.primary().to_string();
        tokio::spawn(async move {
            let creq = CacheRequest { primary, parts };
            let _ = this
                .fetch_and_store(&creq, &ctx, Some(&obj), Some(guard), "fwd=stale")
                .await;
        });
    }

    /// Miss / revalidation phase with coalescing: one leader fetches, the
    /// followers reuse what it stored.
    async fn fetch(
        &self,
        creq: CacheRequest,
        ctx: Arc<Ctx>,
        key: String,
        stale: Option<Arc<CachedObject>>,
        detail: &str,
    ) -> Reply {
        let fetcher = Fetcher {
            cache: self.cache.clone(),
        };
        match self.cache.coalescer.join(&key) {
            Role::Leader(guard) => {
                fetcher
                    .fetch_and_store(&creq, &ctx, stale.as_ref(), Some(guard), detail)
                    .await
            }
            Role::Follower(slot) => {
                if let Outcome::Stored(obj) = crate::cache::wait(slot).await {
                    let now = SystemTime::now();
                    if obj.meta.key == self.cache.lookup_key(&creq)
                        && obj.freshness(&creq.parts, now) != Freshness::Stale
                    {
                        return (
                            respond::from_cache(&obj, &creq.parts, "hit; detail=coalesced", now),
                            CacheResult::Hit,
                        );
                    }
                }
                fetcher
                    .fetch_and_store(&creq, &ctx, stale.as_ref(), None, detail)
                    .await
            }
        }
    }
}

/// The last link of every plugin chain: the cache path of the site.
struct Terminal {
    proxy: Arc<Proxy>,
    ctx: Ctx,
}

impl Link for Terminal {
    fn call(&self, req: Request<Body>) -> LinkFuture {
        let (proxy, ctx) = (self.proxy.clone(), self.ctx.clone());
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            proxy.dispatch(parts, body, ctx).await.0
        })
    }
}

/// The fetch-and-store steps, separated so background refreshes can own
/// them without borrowing the proxy.
struct Fetcher {
    cache: Arc<Cache>,
}

impl Fetcher {
    async fn fetch_and_store(
        &self,
        creq: &CacheRequest,
        ctx: &Ctx,
        stale: Option<&Arc<CachedObject>>,
        guard: Option<crate::cache::LeaderGuard>,
        detail: &str,
    ) -> Reply {
        let req = forward::cache_fill(&creq.parts, &ctx.conn, &ctx.host, stale.map(|o| o.as_ref()));
        let resp = match ctx.pool.send(req, true).await {
            Ok(r) => r,
            Err(e) => {
                drop(guard);
                let now = SystemTime::now();
                if let Some(obj) =
                    stale.filter(|o| o.usable_on_error(now, self.cache.config().grace))
                {
                    tracing::warn!(error = %e, key = %obj.meta.key, "origin failed; serving stale (stale-if-error)");
                    return (
                        respond::from_cache(
                            obj,
                            &creq.parts,
                            "fwd=stale; detail=stale-if-error",
                            now,
                        ),
                        CacheResult::Stale,
                    );
                }
                return (origin_error(&e), CacheResult::Synth);
            }
        };
        let now = SystemTime::now();
        let (rparts, rbody) = resp.into_parts();
        let status = rparts.status.as_u16();
        if let Some(old) = stale {
            if rparts.status == StatusCode::NOT_MODIFIED {
                if let Some(obj) = self.cache.refresh(old, creq, &rparts, now).await {
                    if let Some(g) = guard {
                        g.publish(Outcome::Stored(obj.clone()));
                    }
                    let detail = format!("{detail}; fwd-status=304");
                    return (
                        respond::from_cache(&obj, &creq.parts, &detail, now),
                        CacheResult::Revalidated,
                    );
                }
            } else if matches!(status, 500 | 502 | 503 | 504)
                && old.usable_on_error(now, self.cache.config().grace)
            {
                drop(guard);
                tracing::warn!(status, key = %old.meta.key, "origin answered with an error; serving stale (stale-if-error)");
                let detail = format!("{detail}; fwd-status={status}; detail=stale-if-error");
                return (
                    respond::from_cache(old, &creq.parts, &detail, now),
                    CacheResult::Stale,
                );
            }
        }
        if rparts.status == StatusCode::NOT_MODIFIED {
            // A 304 we cannot apply (the stored object changed or is gone):
            // fetch the full response without validators.
            drop(guard);
            let req = forward::cache_fill(&creq.parts, &ctx.conn, &ctx.host, None);
            return match ctx.pool.send(req, true).await {
                Ok(r) => self.store_and_respond(creq, ctx, r, None, detail).await,
                Err(e) => (origin_error(&e), CacheResult::Synth),
            };
        }
        self.store_and_respond(
            creq,
            ctx,
            Response::from_parts(rparts, rbody),
            guard,
            detail,
        )
        .await
    }

    /// Store phase: starts the fill (the body is copied by its own task, so a
    /// client that goes away does not cut the fill short) and answers from
    /// it; uncacheable responses stream straight through.
    async fn store_and_respond(
        &self,
        creq: &CacheRequest,
        ctx: &Ctx,
        resp: Response<Incoming>,
        guard: Option<crate::cache::LeaderGuard>,
        detail: &str,
    ) -> Reply {
        let now = SystemTime::now();
        let (mut rparts, rbody) = resp.into_parts();
        match self.cache.begin_store(creq, &rparts, now).await {
            Some((obj, mut writer)) => {
                if let Some(g) = guard {
                    g.publish(Outcome::Stored(obj.clone()));
                }
                let cache = self.cache.clone();
                let stored = obj.clone();
                let between_bytes = ctx.pool.between_bytes_timeout();
                let pool = ctx.pool.name().to_string();
                tokio::spawn(async move {
                    let mut frames = BodyStream::new(rbody);
                    let mut ok = true;
                    loop {
                        let Ok(next) = tokio::time::timeout(between_bytes, frames.next()).await
                        else {
                            tracing::warn!(key = %stored.meta.key, pool, received = writer.written(), timeout = ?between_bytes, "origin body stalled (between_bytes_timeout); response aborted, nothing cached");
                            ok = false;
                            break;
                        };
                        let Some(frame) = next else { break };
                        match frame {
                            Ok(f) => {
                                if let Ok(data) = f.into_data()
                                    && let Err(e) = writer.push(data).await
                                {
                                    tracing::error!(key = %stored.meta.key, error = %e, "cache: writing body failed; object dropped");
                                    ok = false;
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(key = %stored.meta.key, received = writer.written(), error = %e, "origin body failed mid-transfer; response aborted, nothing cached");
                                ok = false;
                                break;
                            }
                        }
                    }
                    cache.finish_store(&stored, writer, ok).await;
                });
                (
                    respond::from_cache(&obj, &creq.parts, &format!("{detail}; stored"), now),
                    CacheResult::Miss,
                )
            }
            None => {
                drop(guard);
                crate::cache::strip_hop_by_hop(&mut rparts.headers);
                rparts
                    .headers
                    .append("cache-status", respond::cache_status(detail));
                let body = if creq.parts.method == Method::HEAD {
                    body::empty()
                } else {
                    body::boxed(rbody)
                };
                (Response::from_parts(rparts, body), CacheResult::Miss)
            }
        }
    }
}

/// The client's fault: no usable Host (400) or no site for it (404).
fn unroutable(parts: &request::Parts) -> Response<Body> {
    match route::request_host(parts) {
        None => respond::synthetic(StatusCode::BAD_REQUEST, "missing or invalid Host header"),
        Some(host) => respond::synthetic(
            StatusCode::NOT_FOUND,
            format!(
                "no site is configured for host `{host}` and path `{}`",
                parts.uri.path()
            ),
        ),
    }
}

/// 502 for an unreachable or broken origin, 504 for one that timed out.
fn origin_error(e: &FetchError) -> Response<Body> {
    let status = match e {
        FetchError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        FetchError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
    };
    let mut resp = respond::synthetic(status, e.to_string());
    resp.headers_mut().insert(
        "cache-status",
        HeaderValue::from_static("waypost; fwd=uri-miss; detail=origin-unreachable"),
    );
    resp
}
