//! Where a guest's outgoing requests go. Guests never get raw network
//! access: wasi:http 0.2 `outgoing-handler` and 0.3 `client` requests, and
//! a 0.3 middleware's imported `handler` (addressed to `next` by `p3.rs`),
//! are routed here by authority: `next` is the next link of the chain, a
//! pool the plugin is granted (`backends`) is that origin pool, anything
//! else is denied.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use http::uri::Scheme;
use http::{Request, Response};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::link::Link;
use crate::body;
use crate::config::Grants;
use crate::upstream::Pool;

/// The authority that names the next link of the chain.
pub const NEXT: &str = "next";

pub struct Hooks {
    pub next: Arc<dyn Link>,
    pub pools: Arc<HashMap<String, Arc<Pool>>>,
    pub plugin: Arc<str>,
    pub grants: Arc<Grants>,
    /// The client's Host, restored on requests to `next` so the cache path
    /// routes and keys them as the client's request.
    pub client_host: http::HeaderValue,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Hooks {
    fn is_supported_scheme(&mut self, scheme: &Scheme) -> bool {
        *scheme == Scheme::HTTP
    }

    fn default_scheme(&mut self) -> Option<Scheme> {
        Some(Scheme::HTTP)
    }

    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), Error>> + Send> {
        let target = request
            .uri()
            .host()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let (mut parts, wasi_body) = request.into_parts();
        let req_body = body::boxed(wasi_body);
        if target == NEXT {
            let next = self.next.clone();
            parts
                .headers
                .insert(http::header::HOST, self.client_host.clone());
            return Box::new(async move {
                let resp = next.call(Request::from_parts(parts, req_body)).await;
                Ok((to_wasi(resp), done()))
            });
        }
        let pool = match self.grants.refuse_backend(&self.plugin, &target) {
            Some(reason) => {
                tracing::warn!(plugin = %self.plugin, target = %target, "{reason}");
                None
            }
            None => self.pools.get(&target).cloned(),
        };
        let Some(pool) = pool else {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        };
        Box::new(async move {
            let idempotent = matches!(parts.method, http::Method::GET | http::Method::HEAD);
            match pool
                .send(Request::from_parts(parts, req_body), idempotent)
                .await
            {
                Ok(resp) => Ok((to_wasi(resp.map(body::boxed)), done())),
                Err(e) => {
                    tracing::warn!(error = %e, "plugin request to origin pool failed");
                    Err(Error::ConnectionRefused)
                }
            }
        })
    }
}

fn done() -> IoFuture {
    Box::new(async { Ok(()) })
}

fn to_wasi(resp: Response<body::Body>) -> Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    resp.map(|b| {
        b.map_err(|e| Error::InternalError(Some(e.to_string())))
            .boxed_unsync()
    })
}
