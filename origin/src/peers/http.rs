//! How this region reaches the others: `https` with its peer certificate
//! when `[peer]` has TLS ([`crate::peer_tls`]), else `http` with the
//! cluster token. Every client that talks to peers (Raft RPCs, forwarded
//! writes and membership changes, blob pushes and fetches, bootstrap
//! probes) is built here, so none can forget the credential or the scheme.

use std::sync::Arc;

use reqwest::{ClientBuilder, Method, RequestBuilder};

use crate::peer_tls::PeerTls;
use crate::raft::NodeId;

/// The credential peer requests carry.
#[derive(Debug, Clone)]
pub enum PeerAuth {
    /// Plaintext, `Authorization: Bearer <token>` on every request.
    Token(String),
    /// Mutual TLS: the certificate is the credential; no token is sent.
    Tls(Arc<PeerTls>),
}

impl PeerAuth {
    /// A client from `builder` that carries this credential.
    pub fn client(&self, builder: ClientBuilder) -> PeerHttp {
        let (builder, scheme) = match self {
            PeerAuth::Token(token) => {
                let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .expect("the token was validated as header-safe");
                auth.set_sensitive(true);
                let headers =
                    reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, auth)]);
                (builder.default_headers(headers), "http")
            }
            PeerAuth::Tls(tls) => (
                builder
                    .use_preconfigured_tls(tls.client_config())
                    .https_only(true)
                    // For [`PeerHttp::node_of`].
                    .tls_info(true),
                "https",
            ),
        };
        PeerHttp {
            client: builder.build().expect("reqwest client builds"),
            scheme,
        }
    }
}

/// A client for other regions, addressed by their member `addr`.
#[derive(Debug, Clone)]
pub struct PeerHttp {
    client: reqwest::Client,
    scheme: &'static str,
}

impl PeerHttp {
    /// `method` on `path` of the region at `addr` (`host:port`).
    pub fn request(&self, method: Method, addr: &str, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}://{addr}{path}", self.scheme))
    }

    pub fn get(&self, addr: &str, path: &str) -> RequestBuilder {
        self.request(Method::GET, addr, path)
    }

    pub fn post(&self, addr: &str, path: &str) -> RequestBuilder {
        self.request(Method::POST, addr, path)
    }

    /// The node whose certificate answered `response`; `None` without
    /// peer TLS. The handshake already checked the CA, the address's name
    /// and that the certificate names some node; which node is for the
    /// caller to compare with the one it meant to reach.
    pub fn node_of(
        response: &reqwest::Response,
    ) -> Option<Result<NodeId, crate::peer_tls::NoNodeId>> {
        let der = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()?
            .peer_certificate()?;
        Some(crate::peer_tls::node_id_of(der))
    }
}

/// Most bytes of a peer's answer this region reads when nothing says
/// otherwise: Raft RPC results, cluster views, health, membership answers
/// are a few KiB. A member that answers more is treated as failing, so a
/// misbehaving or misaddressed peer cannot make this region buffer
/// without bound.
pub const ANSWER_MAX: usize = 1024 * 1024;
/// Most bytes of a peer's error text kept for a log line or a reason.
const ERROR_TEXT_MAX: usize = 4 * 1024;

/// Why a peer's answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("reading the peer's answer failed: {0}")]
    Read(#[from] reqwest::Error),
    #[error("the peer's answer passed {limit} bytes; it was not read further")]
    TooLarge { limit: usize },
    #[error("the peer's answer is not the JSON expected: {0}")]
    Json(#[from] serde_json::Error),
}

/// The body of `response`, refused once it passes `limit` bytes.
pub async fn read_answer(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, AnswerError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(AnswerError::TooLarge { limit });
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(AnswerError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The body of `response` as JSON, at most `limit` bytes of it.
pub async fn json_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    limit: usize,
) -> Result<T, AnswerError> {
    Ok(serde_json::from_slice(
        &read_answer(response, limit).await?,
    )?)
}

/// The start of an error answer's text, for a log line or a reason.
pub async fn error_text(mut response: reqwest::Response) -> String {
    let mut text = Vec::new();
    while text.len() < ERROR_TEXT_MAX
        && let Ok(Some(chunk)) = response.chunk().await
    {
        text.extend_from_slice(&chunk[..chunk.len().min(ERROR_TEXT_MAX - text.len())]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on loopback that answers one request with `head` and then
    /// `body_len` bytes of `x` (chunked when `head` says so).
    async fn answer_once(head: &'static str, body_len: usize, chunked: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request).await.unwrap();
            conn.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(chunk.len());
                let framed = if chunked {
                    [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat()
                } else {
                    chunk[..n].to_vec()
                };
                if conn.write_all(&framed).await.is_err() {
                    return;
                }
                left -= n;
            }
            if chunked {
                let _ = conn.write_all(b"0\r\n\r\n").await;
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn an_answer_past_the_limit_is_refused_with_or_without_its_length() {
        let client = reqwest::Client::new();
        let sized = answer_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n",
            300_000,
            false,
        )
        .await;
        let resp = client.get(sized).send().await.unwrap();
        let err = read_answer(resp, 100_000).await.unwrap_err();
        assert!(
            matches!(err, AnswerError::TooLarge { limit: 100_000 }),
            "{err}"
        );

        let chunked = answer_once(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            10 * 1024 * 1024,
            true,
        )
        .await;
        let resp = client.get(chunked).send().await.unwrap();
        let err = read_answer(resp, 100_000).await.unwrap_err();
        assert!(err.to_string().contains("100000 bytes"), "{err}");

        let small = answer_once(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            1000,
            true,
        )
        .await;
        let resp = client.get(small).send().await.unwrap();
        assert_eq!(read_answer(resp, 1000).await.unwrap().len(), 1000);
    }

    #[tokio::test]
    async fn error_text_keeps_only_the_start() {
        let url = answer_once(
            "HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n",
            1024 * 1024,
            true,
        )
        .await;
        let resp = reqwest::Client::new().get(url).send().await.unwrap();
        assert_eq!(error_text(resp).await, "x".repeat(ERROR_TEXT_MAX));
    }
}
