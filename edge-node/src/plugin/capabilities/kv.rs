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

use super::EdgeCtx;
use super::waypost::edge::kv::{Error, Host};
use crate::upstream::Pool;

/// Largest value a plugin may store or read (the origin may be stricter).
const MAX_VALUE: usize = 1 << 20;

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
        self.reads
            .invalidate(&format!("/kv/{namespace}/{key}"))
            .await;
    }

    async fn call(
        &self,
        method: Method,
        path: String,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Error> {
        let mut req = Request::builder().method(method).uri(&path);
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .header(http::header::HOST, "kv")
            .body(crate::body::full(body))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let resp = self
            .pool
            .send(req, true)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_VALUE + 4096)
            .collect()
            .await
            .map_err(|e| Error::Unavailable(format!("reading KV response: {e}")))?
            .to_bytes();
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

fn check(namespace: &str, key: &str) -> Result<(), Error> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 256
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
    };
    if !ok(namespace) {
        return Err(Error::Invalid(format!(
            "namespace `{namespace}`: use 1-256 of [A-Za-z0-9-_.:@]"
        )));
    }
    if !key.is_empty() && !ok(key) {
        return Err(Error::Invalid(format!(
            "key `{key}`: use 1-256 of [A-Za-z0-9-_.:@]"
        )));
    }
    Ok(())
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
        check(&namespace, &key)?;
        let kv = client(self, &namespace)?;
        let path = format!("/kv/{namespace}/{key}");
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
        check(&namespace, &key)?;
        if value.len() > MAX_VALUE {
            return Err(Error::Invalid(format!(
                "value of {} bytes exceeds {MAX_VALUE}",
                value.len()
            )));
        }
        let kv = client(self, &namespace)?;
        let path = format!("/kv/{namespace}/{key}");
        let value = Bytes::from(value);
        kv.call(Method::PUT, path.clone(), value.clone()).await?;
        kv.reads.insert(path, Some(value)).await;
        Ok(())
    }

    async fn delete(&mut self, namespace: String, key: String) -> Result<(), Error> {
        check(&namespace, &key)?;
        let kv = client(self, &namespace)?;
        let path = format!("/kv/{namespace}/{key}");
        kv.call(Method::DELETE, path.clone(), Bytes::new()).await?;
        kv.reads.insert(path, None).await;
        Ok(())
    }

    async fn list(&mut self, namespace: String, prefix: String) -> Result<Vec<String>, Error> {
        check(&namespace, "")?;
        let kv = client(self, &namespace)?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("prefix", &prefix)
            .finish();
        let (status, body) = kv
            .call(
                Method::GET,
                format!("/kv/{namespace}?{query}"),
                Bytes::new(),
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        parse_keys(&body).ok_or_else(|| {
            Error::Unavailable("origin KV list answer is not a JSON list of keys".into())
        })
    }
}

/// Accepts `["a","b"]`, `{"keys":["a","b"]}` or `{"keys":[{"key":"a"},…]}`.
fn parse_keys(body: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = match &v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => o.get("keys")?.as_array()?,
        _ => return None,
    };
    list.iter()
        .map(|k| match k {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o.get("key")?.as_str().map(str::to_string),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_keys;

    #[test]
    fn list_formats() {
        assert_eq!(parse_keys(br#"["a","b"]"#).unwrap(), vec!["a", "b"]);
        assert_eq!(parse_keys(br#"{"keys":[{"key":"a"}]}"#).unwrap(), vec!["a"]);
        assert!(parse_keys(b"nope").is_none());
    }
}
