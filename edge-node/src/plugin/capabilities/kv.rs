//! `waypost:edge/kv`: key-value data served by the origin's KV API
//! (`/kv/{namespace}/{key}`), replicated across regions there. Reads go
//! through a short-lived cache at the edge so a hot key costs the origin
//! one request per TTL; writes go straight to the origin and update the
//! cache.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use waypost_api::kv::{Listing, key_path, listing_path};
use waypost_api::{KvKey, Namespace};

use super::EdgeCtx;
use super::waypost::edge::kv::{Error, Host};
use crate::upstream::Pool;

/// Largest value a plugin may store or read (the origin may be stricter).
const MAX_VALUE: usize = waypost_api::names::MAX_KV_VALUE;
/// Most keys one `list` call returns (the origin answers in pages of
/// 1,000; this bounds how many pages one plugin call may pull).
const MAX_LIST_KEYS: usize = 10_000;

/// Why a call to the origin's API got no answer to judge.
#[derive(Debug, thiserror::Error)]
pub enum OriginCallError {
    #[error("the request to the origin could not be built: {0}")]
    Request(#[from] http::Error),
    #[error("the origin was not reached: {0}")]
    Unreachable(#[from] crate::upstream::FetchError),
    #[error("reading the origin's response: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub struct KvClient {
    pool: Arc<Pool>,
    token: Option<String>,
    reads: moka::future::Cache<String, Option<Bytes>>,
}

impl KvClient {
    pub fn new(pool: Arc<Pool>, token: Option<String>, read_ttl: Duration) -> Self {
        let reads = moka::future::Cache::builder()
            .max_capacity(64 << 20)
            .weigher(|k: &String, v: &Option<Bytes>| {
                (k.len() + v.as_ref().map_or(0, Bytes::len)) as u32
            })
            .time_to_live(read_ttl)
            .build();
        Self { pool, token, reads }
    }

    /// Drops the cached read of `namespace`/`key`: the origin's change feed
    /// announced a write from elsewhere, so the next read fetches it
    /// instead of serving the old value until the read TTL ends.
    pub async fn forget(&self, namespace: &str, key: &str) {
        if let Ok((ns, key)) = names(namespace, key) {
            self.reads.invalidate(&key_path(&ns, &key)).await;
        }
    }

    /// Drops every cached read: after missed KV events any may be stale.
    pub fn forget_all(&self) {
        self.reads.invalidate_all();
    }

    /// Sends one request to the origin's API (KV, queues) with the token;
    /// the status and body, or why the origin was not reached.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), OriginCallError> {
        self.request_typed(method, path, body, "application/json", limit)
            .await
            .map(|(status, _, body)| (status, body))
    }

    /// [`Self::request`] with the body's `Content-Type`; the answer's too.
    pub(crate) async fn request_typed(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
        limit: usize,
    ) -> Result<(StatusCode, Option<String>, Bytes), OriginCallError> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if !body.is_empty() {
            req = req.header(http::header::CONTENT_TYPE, content_type);
        }
        let req = req
            .header(http::header::HOST, "origin-api")
            .body(crate::body::full(body))?;
        let resp = self.pool.send(req, true).await?;
        let status = resp.status();
        let answer_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = http_body_util::Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(OriginCallError::Body)?
            .to_bytes();
        Ok((status, answer_type, body))
    }

    async fn call(
        &self,
        method: Method,
        path: String,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Error> {
        let (status, body) = self
            .request(method, &path, body, MAX_VALUE + 4096)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        if status.is_server_error() {
            return Err(Error::Unavailable(format!(
                "origin KV answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        if status.is_client_error() && status != StatusCode::NOT_FOUND {
            return Err(Error::Invalid(format!(
                "origin KV answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        Ok((status, body))
    }
}

/// The validated names, by the one rule the origin applies too.
fn names(namespace: &str, key: &str) -> Result<(Namespace, KvKey), Error> {
    let invalid = |e: waypost_api::InvalidName| Error::Invalid(e.to_string());
    Ok((
        Namespace::parse(namespace).map_err(invalid)?,
        KvKey::parse(key).map_err(invalid)?,
    ))
}

/// The KV client, once `namespace` is one this plugin is granted.
fn client(ctx: &EdgeCtx, namespace: &str) -> Result<Arc<KvClient>, Error> {
    if let Some(reason) = ctx.grants.refuse_kv(&ctx.plugin, namespace) {
        tracing::warn!(plugin = %ctx.plugin, version = %ctx.version, namespace, "{reason}");
        return Err(Error::Invalid(reason));
    }
    ctx.kv.clone().ok_or_else(|| {
        Error::Unavailable("KV is not configured on this edge (set plugin_runtime.kv_pool)".into())
    })
}

impl Host for EdgeCtx {
    async fn get(&mut self, namespace: String, key: String) -> Result<Option<Vec<u8>>, Error> {
        let (ns, key) = names(&namespace, &key)?;
        let kv = client(self, &namespace)?;
        let path = key_path(&ns, &key);
        let fetch = async {
            let (status, body) = kv.call(Method::GET, path.clone(), Bytes::new()).await?;
            Ok::<_, Error>((status != StatusCode::NOT_FOUND).then_some(body))
        };
        let value = kv
            .reads
            .try_get_with(path.clone(), fetch)
            .await
            .map_err(|e| (*e).clone())?;
        Ok(value.map(|b| b.to_vec()))
    }

    async fn put(&mut self, namespace: String, key: String, value: Vec<u8>) -> Result<(), Error> {
        let (ns, key) = names(&namespace, &key)?;
        if value.len() > MAX_VALUE {
            return Err(Error::Invalid(format!(
                "value of {} bytes exceeds {MAX_VALUE}",
                value.len()
            )));
        }
        if std::str::from_utf8(&value).is_err() {
            return Err(Error::Invalid(
                "KV values are UTF-8 text (the origin stores and lists them as text); \
                 encode binary data, e.g. as base64"
                    .into(),
            ));
        }
        let kv = client(self, &namespace)?;
        let path = key_path(&ns, &key);
        let value = Bytes::from(value);
        kv.call(Method::PUT, path.clone(), value.clone()).await?;
        kv.reads.insert(path, Some(value)).await;
        Ok(())
    }

    async fn delete(&mut self, namespace: String, key: String) -> Result<(), Error> {
        let (ns, key) = names(&namespace, &key)?;
        let kv = client(self, &namespace)?;
        let path = key_path(&ns, &key);
        kv.call(Method::DELETE, path.clone(), Bytes::new()).await?;
        kv.reads.insert(path, None).await;
        Ok(())
    }

    async fn list(&mut self, namespace: String, prefix: String) -> Result<Vec<String>, Error> {
        let ns = Namespace::parse(&namespace).map_err(|e| Error::Invalid(e.to_string()))?;
        let kv = client(self, &namespace)?;
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = listing_path(&ns, &prefix, after.as_deref());
            let (status, body) = kv.call(Method::GET, path, Bytes::new()).await?;
            if status == StatusCode::NOT_FOUND {
                return Ok(keys);
            }
            let page: Listing = serde_json::from_slice(&body).map_err(|e| {
                Error::Unavailable(format!("origin KV listing is not a listing: {e}"))
            })?;
            keys.extend(page.entries.into_iter().map(|e| e.key));
            if !page.truncated {
                return Ok(keys);
            }
            if keys.len() >= MAX_LIST_KEYS {
                return Err(Error::Invalid(format!(
                    "more than {MAX_LIST_KEYS} keys start with {prefix:?}; list a longer prefix"
                )));
            }
            after = keys.last().cloned();
        }
    }
}
