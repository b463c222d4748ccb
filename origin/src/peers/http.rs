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
