//! Following the origin's change feed (`GET /events`, long-poll), so a
//! deploy, a purge or a plugin version published at the origin reaches every
//! edge in every region within one round trip, without anyone calling each
//! edge's admin API.
//!
//! The feed is read through the configured pool, so it fails over between
//! origin regions like requests do. The position (the last applied event's
//! sequence number) is kept next to the disk cache, because the disk cache
//! survives restarts and must not keep serving what was purged while the edge
//! was down. The follower asks only for the event classes it uses (KV
//! events only when plugins read KV), each of which the origin keeps in a
//! window of its own. When the edge has missed content events (the origin
//! no longer keeps them, or the origin's feed restarted behind our
//! position) every stored object is soft-purged, lazily: revalidation is
//! cheap for what did not change, and nothing out of date is served as
//! fresh. Missed KV events only cost the plugins' KV read cache.

mod apply;
mod metrics;
mod position;

pub use self::metrics::FeedMetrics;

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;

use self::position::{Position, Saved};
use crate::cache::Cache;
use crate::plugin::Runtime;
use crate::upstream::Pool;
use waypost_api::feed::{EventClass, Page};

/// Longest long-poll; kept under the pool's response timeout, which would
/// otherwise mark a healthy origin down.
const MAX_WAIT: Duration = Duration::from_secs(25);
/// Backoff after a failed poll, doubling up to the maximum.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(10));
/// Largest feed page accepted.
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why one poll of the feed failed; the follower logs it and retries.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("no origin of pool `{pool}` answered: {source}")]
    Unreachable {
        pool: String,
        source: crate::upstream::FetchError,
    },
    #[error("origin answered {status} for {path}: {body}")]
    Status {
        status: StatusCode,
        path: String,
        body: String,
    },
    #[error("reading {path} from the origin: {reason}")]
    Body { path: String, reason: String },
}

/// What one poll returned.
enum Poll {
    Page(Page),
    /// The origin no longer keeps the events after our position.
    Gone,
}

/// The feed follower of one edge.
pub struct Follower {
    pool: Arc<Pool>,
    cache: Arc<Cache>,
    /// The plugin runtime, whose KV read cache the feed keeps coherent and
    /// where published plugin versions are installed.
    runtime: Option<Arc<Runtime>>,
    /// The plugins kept at their published versions (none when
    /// `feed.plugins` is off).
    installs: Vec<String>,
    position: Position,
    metrics: Arc<FeedMetrics>,
    /// `Authorization` for the origin's private reads (`[feed] token`).
    authorization: Option<http::HeaderValue>,
    /// The event classes this edge acts on (`classes=` of each poll).
    classes: Vec<EventClass>,
}

impl Follower {
    pub fn new(
        pool: Arc<Pool>,
        cache: Arc<Cache>,
        runtime: Option<Arc<Runtime>>,
        installs: Vec<String>,
        metrics: Arc<FeedMetrics>,
        token: Option<String>,
    ) -> Self {
        let position = Position::new(cache.config().disk.as_ref().map(|d| d.dir.as_path()));
        let mut classes = vec![EventClass::Content];
        if runtime.as_ref().is_some_and(|r| r.reads_kv()) {
            classes.push(EventClass::Kv);
        }
        Self {
            classes,
            pool,
            cache,
            runtime,
            installs,
            position,
            metrics,
            authorization: token.and_then(|t| {
                let mut v = http::HeaderValue::from_str(&format!("Bearer {t}")).ok()?;
                v.set_sensitive(true);
                Some(v)
            }),
        }
    }

    /// Follows the feed until `stop`.
    pub fn spawn(self, stop: CancellationToken) {
        tokio::spawn(async move {
            tokio::select! {
                () = self.run() => {}
                () = stop.cancelled() => {}
            }
        });
    }

    async fn run(self) {
        let mut after = match self.position.load() {
            Saved::At(seq) => seq,
            Saved::Nothing => {
                let now = self.current_seq().await;
                self.position.save(now);
                now
            }
            Saved::Unreadable => {
                let now = self.current_seq().await;
                self.resync(now).await;
                now
            }
        };
        self.metrics.position.set(after as i64);
        self.install_published_plugins().await;
        let mut backoff = BACKOFF.0;
        let mut failing = false;
        loop {
            match self.poll(after).await {
                Ok(Poll::Page(page)) if page.last_seq < after => {
                    tracing::warn!(
                        pool = self.pool.name(),
                        position = after,
                        origin_last_seq = page.last_seq,
                        "the origin's change feed is behind this edge's position (was the origin's data reset?); soft-purging the cache and following from the origin's position"
                    );
                    self.resync(page.last_seq).await;
                    after = page.last_seq;
                }
                Ok(Poll::Page(page)) => {
                    self.catch_up(&page.missed, after, page.last_seq).await;
                    for event in &page.events {
                        self.apply(&event.kind).await;
                        after = event.seq;
                    }
                    self.metrics.position.set(after as i64);
                    if !page.events.is_empty() {
                        self.position.save(after);
                    }
                }
                Ok(Poll::Gone) => {
                    let now = self.current_seq().await;
                    tracing::warn!(
                        pool = self.pool.name(),
                        position = after,
                        origin_last_seq = now,
                        "this edge missed change-feed events the origin no longer keeps; soft-purging the cache so every object is revalidated"
                    );
                    self.resync(now).await;
                    after = now;
                }
                Err(e) => {
                    self.metrics.errors.inc();
                    if !failing {
                        tracing::warn!(pool = self.pool.name(), error = %e, "change feed poll failed; purges and deploys reach this edge late until it recovers (retrying with backoff)");
                    }
                    failing = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    continue;
                }
            }
            if failing {
                tracing::info!(
                    pool = self.pool.name(),
                    position = after,
                    "change feed recovered"
                );
            }
            failing = false;
            backoff = BACKOFF.0;
            if self.wait().is_zero() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Everything stored is stale from now on; then `seq` is the position.
    /// If the stale mark cannot be saved the position is not saved either,
    /// so a restart resynchronises again instead of trusting the cache.
    async fn resync(&self, seq: u64) {
        self.metrics.resyncs.inc();
        self.metrics.position.set(seq as i64);
        match self.cache.soft_purge_all().await {
            Ok(stored) => {
                self.position.save(seq);
                tracing::info!(
                    stored,
                    position = seq,
                    "change feed resynchronised: every stored object is revalidated before it is served fresh"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, position = seq, "cannot save the cache's stale-before mark next to the disk cache; objects are revalidated until a restart, after which this edge resynchronises again (check the disk cache directory)");
            }
        }
    }

    /// Acts on the classes whose events after `after` the origin no longer
    /// keeps (the page holds the rest): content → the cache is revalidated;
    /// kv → the plugins' KV read cache is dropped.
    async fn catch_up(&self, missed: &[EventClass], after: u64, origin_last_seq: u64) {
        for class in missed {
            match class {
                EventClass::Content => {
                    tracing::warn!(
                        pool = self.pool.name(),
                        position = after,
                        origin_last_seq,
                        "this edge missed content events (deploys, purges) the origin no longer keeps; soft-purging the cache so every object is revalidated (raise the origin's feed.keep_events / keep_bytes if this repeats)"
                    );
                    self.resync(after).await;
                }
                EventClass::Kv => {
                    tracing::info!(
                        pool = self.pool.name(),
                        position = after,
                        "this edge missed KV events the origin no longer keeps; dropping the plugins' cached KV reads"
                    );
                    self.metrics.kv_resyncs.inc();
                    if let Some(runtime) = &self.runtime {
                        runtime.forget_all_kv();
                    }
                }
            }
        }
    }

    /// The origin's newest sequence number, retried until an origin answers:
    /// where a follower without a saved position starts.
    async fn current_seq(&self) -> u64 {
        let mut backoff = BACKOFF.0;
        loop {
            match self.get("/events?after=18446744073709551615&wait=0").await {
                Ok((StatusCode::OK, _, body)) => match serde_json::from_slice::<Page>(&body) {
                    Ok(page) => return page.last_seq,
                    Err(e) => {
                        tracing::warn!(error = %e, "the origin's /events answer is not a feed page; retrying")
                    }
                },
                Ok((StatusCode::UNAUTHORIZED, _, _)) => {
                    tracing::warn!(
                        "the origin refused /events: 401, the feed needs the origin's read token in `[feed] token`; retrying"
                    )
                }
                Ok((status, _, _)) => {
                    tracing::warn!(%status, "the origin refused /events; retrying")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: cannot reach the origin yet; retrying")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    fn wait(&self) -> Duration {
        Duration::from_secs((self.pool.response_timeout().as_secs() / 2).min(MAX_WAIT.as_secs()))
    }

    async fn poll(&self, after: u64) -> Result<Poll, FeedError> {
        let path = format!(
            "/events?after={after}&wait={}&classes={}",
            self.wait().as_secs(),
            EventClass::list(&self.classes)
        );
        match self.get(&path).await? {
            (StatusCode::OK, _, body) => {
                serde_json::from_slice(&body)
                    .map(Poll::Page)
                    .map_err(|e| FeedError::Body {
                        path,
                        reason: format!("not a feed page: {e}"),
                    })
            }
            (StatusCode::GONE, _, _) => Ok(Poll::Gone),
            (status, _, body) => Err(FeedError::Status {
                status,
                path,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            }),
        }
    }

    /// GETs `path` from the pool (failing over between its origins) and
    /// reads the whole body.
    async fn get(
        &self,
        path: &str,
    ) -> Result<(StatusCode, http::HeaderMap, bytes::Bytes), FeedError> {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(http::header::HOST, "feed")
            .body(crate::body::empty())
            .expect("static request parts are valid");
        if let Some(auth) = &self.authorization {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, auth.clone());
        }
        let resp = self
            .pool
            .send(req, true)
            .await
            .map_err(|source| FeedError::Unreachable {
                pool: self.pool.name().to_string(),
                source,
            })?;
        let (parts, body) = resp.into_parts();
        let body = http_body_util::Limited::new(body, MAX_PAGE_BYTES)
            .collect()
            .await
            .map_err(|e| FeedError::Body {
                path: path.to_string(),
                reason: e.to_string(),
            })?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}
