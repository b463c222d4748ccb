//! The request pipeline, one phase per function:
//!
//! accept (`handle`) → route (`route`) → pass or cache (`serve_cached`) →
//! lookup → hit / stale / miss → fetch with coalescing (`fetch`) → store →
//! respond (`respond::from_cache`) → log (`finish`).
//!
//! Errors say who is at fault: the client gets a 4xx with the reason, an
//! unreachable or failing origin gives 502/504, never a panic.

mod fetch;
mod forward;
mod path;
mod respond;
mod route;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, request};
use http_body_util::Limited;
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::cache::{Cache, CacheRequest, CachedObject, Freshness, Outcome, Role};
use crate::listen::ConnInfo;
use crate::metrics::{CacheResult, Metrics};
use crate::plugin::link::{Link, LinkFuture};
use crate::plugin::{self, PluginSlot, RequestFacts, Runtime};
use crate::upstream::{FetchError, Pool};
use fetch::Fetcher;
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
    honor_client_cache_control: bool,
    strip_targeted_cache_control: bool,
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
        let (mut parts, incoming) = req.into_parts();
        forward::drop_untrusted(&mut parts.headers);
        let refused = refuse_method(&parts.method).or_else(|| normalize_target(&mut parts));
        let routed = match refused {
            Some(resp) => Err(resp),
            None => self.route(&parts, conn).ok_or_else(|| unroutable(&parts)),
        };
        let (resp, result, host) = match routed {
            Ok(ctx) => {
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
            Err(resp) => (resp, CacheResult::Synth, String::new()),
        };
        let status = resp.status().as_u16();
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|_| method != Method::HEAD)
            .unwrap_or(0);
        self.metrics
            .count_request(status, result, started.elapsed());
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
            honor_client_cache_control: site.honor_client_cache_control,
            strip_targeted_cache_control: site.strip_targeted_cache_control,
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
        // The client's own `x-waypost-*` fields are gone (accept phase).
        let location = rt.locate(ctx.conn.peer.ip());
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

    /// Where the request goes after routing (and plugins): its fields
    /// become the origin's, then the cache serves GET/HEAD unless the
    /// request carries credentials; everything else passes.
    async fn dispatch(&self, mut parts: request::Parts, body: Body, ctx: Ctx) -> Reply {
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
        forward::to_origin(&mut parts.headers, &ctx.conn, &ctx.host);
        let credentials = parts.headers.contains_key(header::AUTHORIZATION);
        let strip_targeted = ctx.strip_targeted_cache_control;
        let mut reply = match parts.method {
            // A response to a request with credentials is that client's
            // (Varnish's built-in VCL passes them too): never looked up,
            // never stored.
            Method::GET | Method::HEAD if credentials => {
                self.pass(parts, body, ctx, "fwd=request; detail=credentials")
                    .await
            }
            Method::GET | Method::HEAD => self.serve_cached(parts, ctx).await,
            _ => self.pass(parts, body, ctx, "fwd=method").await,
        };
        if strip_targeted {
            for name in &self.cache.config().targeted_fields {
                reply.0.headers_mut().remove(name);
            }
        }
        reply
    }

    /// Pass phase: unsafe and unknown methods go to the origin untouched; a
    /// success invalidates what the cache holds for the URL.
    async fn pass(&self, parts: request::Parts, body: Body, ctx: Ctx, why: &str) -> Reply {
        let limit = self.max_body_bytes as usize;
        let body = body::boxed(Limited::new(body, limit));
        let path = forward::origin_form(&parts.uri);
        let unsafe_method = !matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        let req = forward::pass(parts, body);
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
                    .append("cache-status", respond::cache_status(why));
                (
                    Response::from_parts(rparts, body::from_origin(rbody)),
                    CacheResult::Pass,
                )
            }
            Err(e) => (origin_error(&e, why), CacheResult::Synth),
        }
    }

    /// Lookup phase for GET/HEAD. The request's fields are already the
    /// origin's ([`forward::to_origin`]: one spelling of the host for every
    /// protocol, normalized `Accept-Encoding`), so stored policies and
    /// variants match what the origin answered.
    async fn serve_cached(&self, mut parts: request::Parts, ctx: Ctx) -> Reply {
        let only_if_cached = crate::cache::only_if_cached(&parts.headers);
        if !ctx.honor_client_cache_control {
            parts.headers.remove(header::CACHE_CONTROL);
            parts.headers.remove(header::PRAGMA);
        }
        let path = forward::origin_form(&parts.uri);
        let mut creq = CacheRequest {
            primary: crate::cache::primary(&ctx.host, &path),
            scheme: if ctx.conn.tls {
                crate::cache::Scheme::Https
            } else {
                crate::cache::Scheme::Http
            },
            parts,
        };
        if creq.parts.uri.authority().is_some() {
            creq.parts.uri = path.parse().expect("a path and query is a valid URI");
        }
        let ctx = Arc::new(ctx);
        let now = SystemTime::now();
        let key = self.cache.lookup_key(&creq);
        let Some(obj) = self.cache.get(&key) else {
            if only_if_cached {
                return not_cached("fwd=uri-miss");
            }
            return self.fetch(creq, ctx, key, None, "fwd=uri-miss").await;
        };
        match obj.freshness(&creq.parts, now, &self.cache.config().targeted_fields) {
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
            Freshness::Stale if only_if_cached => not_cached("fwd=stale"),
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
        let scheme = if ctx.conn.tls {
            crate::cache::Scheme::Https
        } else {
            crate::cache::Scheme::Http
        };
        tokio::spawn(async move {
            let creq = CacheRequest {
                primary,
                scheme,
                parts,
            };
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
                        && obj.freshness(&creq.parts, now, &self.cache.config().targeted_fields)
                            != Freshness::Stale
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

/// 502 for an unreachable or broken origin, 504 for one that timed out,
/// 503 (with `Retry-After`) when every origin's connections are in use.
/// The body names neither the pool nor any origin address (strangers read
/// it); the log has both, under the request id the body carries.
pub(super) fn origin_error(e: &FetchError, detail: &str) -> Response<Body> {
    let (status, what) = match e {
        FetchError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "did not answer in time"),
        FetchError::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "could not be reached"),
        FetchError::Saturated { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "is at its connection limit; retry shortly",
        ),
    };
    let id = rand::random::<u64>();
    tracing::warn!(request_id = %format!("{id:016x}"), error = %e, "origin fetch failed");
    let mut resp = respond::synthetic(
        status,
        format!("the origin server {what}; request id {id:016x}"),
    );
    if matches!(e, FetchError::Saturated { .. }) {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    let status = format!("waypost; {detail}; detail=origin-unreachable");
    if let Ok(v) = HeaderValue::from_str(&status) {
        resp.headers_mut().insert("cache-status", v);
    }
    resp
}

/// RFC 9111 §5.2.1.7: `only-if-cached` and nothing usable is stored.
fn not_cached(detail: &str) -> Reply {
    let mut resp = respond::synthetic(
        StatusCode::GATEWAY_TIMEOUT,
        "only-if-cached: no usable stored response",
    );
    resp.headers_mut()
        .insert("cache-status", respond::cache_status(detail));
    (resp, CacheResult::Synth)
}

/// Methods the edge refuses before routing: TRACE would echo the request
/// (credentials included) and CONNECT would make the edge a tunnel, so
/// both are 405; a method no site can mean is 501 (RFC 9110 §9.1).
fn refuse_method(method: &Method) -> Option<Response<Body>> {
    const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";
    let status = match *method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS => return None,
        Method::TRACE | Method::CONNECT => StatusCode::METHOD_NOT_ALLOWED,
        _ => StatusCode::NOT_IMPLEMENTED,
    };
    let mut resp = respond::synthetic(status, format!("method {method} is not served here"));
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    Some(resp)
}

/// Replaces the request's path by its normalized form ([`path`]) before
/// routing, so sites, plugins, the cache key and the origin all see one
/// spelling; a path that could route differently at the origin is
/// refused with the 400 returned.
fn normalize_target(parts: &mut request::Parts) -> Option<Response<Body>> {
    let normalized = match path::normalize(parts.uri.path()) {
        Ok(std::borrow::Cow::Borrowed(_)) => return None,
        Ok(std::borrow::Cow::Owned(p)) => p,
        Err(e) => return Some(respond::synthetic(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let target = match parts.uri.query() {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized,
    };
    let invalid = || respond::synthetic(StatusCode::BAD_REQUEST, "the request target is not valid");
    let mut uri = http::uri::Parts::from(parts.uri.clone());
    let Ok(pq) = target.parse() else {
        return Some(invalid());
    };
    uri.path_and_query = Some(pq);
    match http::Uri::from_parts(uri) {
        Ok(u) => parts.uri = u,
        Err(_) => return Some(invalid()),
    }
    None
}
