//! The miss and revalidation steps: fetch from the site's pool (bounded by
//! its `max_fills`), apply a 304 or serve stale on error, and start the
//! fill that streams the body to clients while storing it. Separate from
//! the pipeline so background refreshes can own them without borrowing the
//! proxy.

use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use http::{Method, Response, StatusCode};
use http_body_util::BodyStream;
use hyper::body::Incoming;

use super::{Ctx, Reply, forward, origin_error, respond};
use crate::body;
use crate::cache::{Cache, CacheRequest, CachedObject, Outcome};
use crate::metrics::CacheResult;

/// The fetch-and-store steps, separated so background refreshes can own
/// them without borrowing the proxy.
pub(super) struct Fetcher {
    pub(super) cache: Arc<Cache>,
}

impl Fetcher {
    pub(super) async fn fetch_and_store(
        &self,
        creq: &CacheRequest,
        ctx: &Ctx,
        stale: Option<&Arc<CachedObject>>,
        guard: Option<crate::cache::LeaderGuard>,
        detail: &str,
    ) -> Reply {
        let Some(permit) = ctx.pool.try_fill() else {
            drop(guard);
            return self.pass_when_busy(creq, ctx).await;
        };
        let req = forward::cache_fill(&creq.parts, stale.map(|o| o.as_ref()));
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
                return (origin_error(&e, detail), CacheResult::Synth);
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
            let req = forward::cache_fill(&creq.parts, None);
            return match ctx.pool.send(req, true).await {
                Ok(r) => {
                    self.store_and_respond(creq, ctx, r, None, detail, permit)
                        .await
                }
                Err(e) => (origin_error(&e, detail), CacheResult::Synth),
            };
        }
        self.store_and_respond(
            creq,
            ctx,
            Response::from_parts(rparts, rbody),
            guard,
            detail,
            permit,
        )
        .await
    }

    /// A miss while the pool's `max_fills` are running: the request goes to
    /// the origin as the client sent it (its `Range` and conditionals
    /// included, so a one-byte range costs one byte) and nothing is stored.
    async fn pass_when_busy(&self, creq: &CacheRequest, ctx: &Ctx) -> Reply {
        let req = forward::pass(creq.parts.clone(), body::empty());
        match ctx.pool.send(req, true).await {
            Ok(resp) => {
                let (mut rparts, rbody) = resp.into_parts();
                crate::cache::strip_hop_by_hop(&mut rparts.headers);
                rparts.headers.append(
                    "cache-status",
                    respond::cache_status("fwd=uri-miss; detail=fills-busy"),
                );
                (
                    Response::from_parts(rparts, body::from_origin(rbody)),
                    CacheResult::Pass,
                )
            }
            Err(e) => (origin_error(&e, "fwd=uri-miss"), CacheResult::Synth),
        }
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
        permit: tokio::sync::OwnedSemaphorePermit,
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
                    // Held for the download only: `max_fills` bounds what is
                    // being fetched, and a fill still writing its metadata to
                    // disk would otherwise turn the next requests (say, the
                    // revalidation right after) into fills-busy passes.
                    let permit = permit;
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
                    drop(permit);
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
                    body::from_origin(rbody)
                };
                (Response::from_parts(rparts, body), CacheResult::Miss)
            }
        }
    }
}
