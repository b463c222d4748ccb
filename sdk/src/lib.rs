//! # Waypost SDK
//!
//! Write request handlers that run on every Waypost edge, compiled to a
//! WebAssembly component for `wasm32-wasip2` (the standard wasi:http 0.2
//! `proxy` world). The SDK gives you:
//!
//! - the entry attribute [`http_server`], which turns an
//!   `async fn(Request<Body>) -> Result<Response<Body>, E>` into the
//!   component's wasi:http handler;
//! - the HTTP types ([`Request`], [`Response`], [`Body`], [`StatusCode`],
//!   [`http`] for the rest), from [`wstd`], re-exported so a plugin needs no
//!   other dependency;
//! - [`next`], to pass a request (or a modified one) down the site's plugin
//!   chain and on to the edge's cache and origin, and [`backend`], to call a
//!   named origin pool;
//! - typed access to the edge's own capabilities, one module each:
//!   [`geo`], [`kv`], [`assets`], [`queue`], [`purge`], [`config`], [`log`];
//! - [`queue::Consumer`] and [`export_consumer!`], for a background
//!   consumer of a queue instead of a request handler;
//! - [`headers`]: what the edge tells a plugin about the request.
//!
//! ## A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "greeter"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [dependencies]
//! waypost-sdk = { path = "../sdk" }
//!
//! [profile.release]
//! opt-level = "s"
//! lto = true
//! strip = true
//! ```
//!
//! `src/main.rs`:
//!
//! ```no_run
//! use waypost_sdk::{Body, Request, Response, Result, StatusCode, config, geo, headers, log, next};
//!
//! #[waypost_sdk::http_server]
//! async fn main(request: Request<Body>) -> Result<Response<Body>> {
//!     match request.uri().path() {
//!         // Answer one path at the edge...
//!         "/greet" => {
//!             let greeting = config::get("greeting").unwrap_or_else(|| "Hello".into());
//!             let country = geo::client_location().country.unwrap_or_else(|| "somewhere".into());
//!             log::info_with(
//!                 "greeted",
//!                 &[("country", &country), ("request_id", headers::request_id(&request).unwrap_or("-"))],
//!             );
//!             Ok(Response::builder()
//!                 .status(StatusCode::OK)
//!                 .header("content-type", "text/plain; charset=utf-8")
//!                 .body(format!("{greeting}, visitor from {country}!\n").into())?)
//!         }
//!         // ...and hand everything else down the chain (the next plugin,
//!         // then the edge's cache and the origin), tagging the response.
//!         _ => {
//!             let mut response = next::forward(request).await?;
//!             response.headers_mut().insert("x-greeter", "passed".parse()?);
//!             Ok(response)
//!         }
//!     }
//! }
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (add the
//! target once with `rustup target add wasm32-wasip2`); the component is
//! `target/wasm32-wasip2/release/greeter.wasm`. The edge config names it and
//! lists it on a site; see `plugins/README.md` in the Waypost repository.
//!
//! ## How a plugin runs
//!
//! The edge creates a fresh instance of the component for every request and
//! calls its wasi:http `incoming-handler`; nothing survives between requests
//! except what you put in [`kv`]. The handler's `Err` becomes a wasi:http
//! error for the edge to answer (an [`http::ErrorCode`] inside the error,
//! such as one returned by [`next::forward`], is passed on as is; anything
//! else is `internal-error` with the error's text, which the edge logs and
//! answers with a 5xx). A panic traps the instance: the edge fails only that
//! request. The edge bounds each plugin's time, memory and body sizes.
//!
//! Outgoing requests never reach the network directly: the edge routes them
//! by the URL's authority. `http://next/...` is the next link of the chain
//! ([`next`]); any other authority names an origin pool the plugin is
//! granted in the edge's config (`http://api/users` goes to the pool `api`,
//! see [`backend`]). KV namespaces and purging are granted the same way:
//! a plugin gets nothing it is not listed for.
//!
//! ## Request headers the edge adds
//!
//! | header | value |
//! | --- | --- |
//! | `x-waypost-client-ip` | the client's address as the edge saw it ([`headers::client_ip`]) |
//! | `x-waypost-request-id` | an id for this request, also in the edge's access and plugin logs ([`headers::request_id`]) |
//! | `x-waypost-geo-country` | the client's country code, when the geo database knows it ([`headers::country`]) |
//!
//! The edge removes every `x-waypost-*` header a client sent before setting
//! these, so a plugin may trust them.
//!
//! ## What a plugin's component imports
//!
//! Only what it uses: a plugin that never calls [`kv`] does not import
//! `waypost:edge/kv`. A plugin that uses none of the `waypost:edge`
//! capabilities is a plain wasi:http component that `wasmtime serve -S cli`
//! also runs.

use std::fmt;

pub use waypost_sdk_macros::http_server;

/// The HTTP toolkit, from [`wstd::http`]: requests, responses, bodies,
/// headers, the client and the error types.
pub mod http {
    pub use wstd::http::*;
}

pub use wstd::http::{
    Body, Client, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri,
};

/// The error type of handlers and of the HTTP toolkit: [`anyhow::Error`]
/// as re-exported by wstd, so `?` works on nearly anything.
///
/// [`anyhow::Error`]: https://docs.rs/anyhow
pub type Error = wstd::http::Error;
/// `Result<T, Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The async runtime and WASI helpers underneath the SDK (time, random,
/// I/O), for what the SDK does not wrap.
pub use wstd;

pub mod assets;
pub mod backend;
pub mod config;
pub mod geo;
pub mod headers;
pub mod kv;
pub mod log;
pub mod next;
pub mod purge;
pub mod queue;

/// Random bytes from the host (wasi:random).
pub mod random {
    /// Fills `buf` with cryptographically secure random bytes.
    pub fn fill(buf: &mut [u8]) {
        wstd::rand::get_random_bytes(buf)
    }

    /// A cryptographically secure random `u64`.
    pub fn u64() -> u64 {
        let mut buf = [0u8; 8];
        fill(&mut buf);
        u64::from_le_bytes(buf)
    }
}

/// The bindings generated from `wit/edge.wit` (world `queue-consumer`:
/// every import, plus the consumer export a consumer's
/// [`export_consumer!`] turns on). Public only for that macro; use the
/// capability modules.
#[doc(hidden)]
#[allow(unsafe_code, clippy::all, missing_docs, dead_code)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "queue-consumer",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_queue_consumer",
        default_bindings_module: "waypost_sdk::bindings",
    });
}

/// Strips the headers wasi:http hosts refuse in outgoing requests and
/// responses (hop-by-hop headers and `host`), which would otherwise make
/// sending fail.
pub(crate) fn strip_forbidden_headers(headers: &mut HeaderMap) {
    const FORBIDDEN: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "host",
        "http2-settings",
    ];
    for name in FORBIDDEN {
        headers.remove(name);
    }
}

/// A capability call that the edge refused or could not complete, for the
/// capabilities whose WIT error is a plain message ([`purge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityError {
    capability: &'static str,
    message: String,
}

impl CapabilityError {
    pub(crate) fn new(capability: &'static str, message: String) -> Self {
        Self {
            capability,
            message,
        }
    }

    /// The edge's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.capability, self.message)
    }
}

impl std::error::Error for CapabilityError {}

/// What `#[http_server]` expands to. Not a stable interface.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;

    pub use wstd::__internal::wasip2;
    pub use wstd::__internal::wasip2::exports::http::incoming_handler::Guest as IncomingHandler;
    pub use wstd::__internal::wasip2::http::types::{IncomingRequest, ResponseOutparam};

    use crate::{Body, Request, Response};

    /// Declares a body of known length (a string, bytes, a forwarded body
    /// whose length is known) with `content-length`, so the host need not
    /// chunk it. Left alone: responses that declare their length or
    /// encoding, bodiless statuses, and empty bodies answering `HEAD`.
    pub(crate) fn set_content_length(response: &mut Response<Body>, head_request: bool) {
        let status = response.status();
        if status.is_informational()
            || status == crate::StatusCode::NO_CONTENT
            || status == crate::StatusCode::NOT_MODIFIED
            || response.headers().contains_key("content-length")
            || response.headers().contains_key("transfer-encoding")
        {
            return;
        }
        match response.body().content_length() {
            Some(0) if head_request => {}
            Some(len) => {
                response
                    .headers_mut()
                    .insert("content-length", crate::HeaderValue::from(len));
            }
            None => {}
        }
    }

    /// Runs one request through `handler` and writes its response.
    pub fn serve<F, Fut, E>(request: IncomingRequest, response_out: ResponseOutparam, handler: F)
    where
        F: FnOnce(Request<Body>) -> Fut,
        Fut: Future<Output = Result<Response<Body>, E>>,
        E: Into<crate::Error>,
    {
        let responder = wstd::http::server::Responder::new(response_out);
        wstd::runtime::block_on(async move {
            let request = match wstd::http::request::try_from_incoming(request) {
                Ok(request) => request,
                Err(err) => return responder.fail(err),
            };
            let head_request = request.method() == crate::Method::HEAD;
            match handler(request).await {
                Ok(mut response) => {
                    crate::strip_forbidden_headers(response.headers_mut());
                    set_content_length(&mut response, head_request);
                    if let Err(err) = responder.respond(response).await {
                        // The head is out; the body could not be finished.
                        // The host sees the body end early.
                        eprintln!("waypost plugin: sending the response body failed: {err:#}");
                    }
                }
                Err(err) => {
                    let err = err.into();
                    eprintln!("waypost plugin: handler failed: {err:#}");
                    responder.fail(err)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        for name in [
            "host",
            "connection",
            "transfer-encoding",
            "te",
            "x-keep",
            "content-type",
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static("v"));
        }
        strip_forbidden_headers(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "x-keep"]);
    }

    #[test]
    fn content_length_is_declared_when_known() {
        use __private::set_content_length;
        let with = |status: u16, body: Body, head: bool| {
            let mut response = Response::builder().status(status).body(body).unwrap();
            set_content_length(&mut response, head);
            response
                .headers()
                .get("content-length")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(with(200, Body::from("hello"), false).as_deref(), Some("5"));
        assert_eq!(with(200, Body::empty(), false).as_deref(), Some("0"));
        assert_eq!(with(200, Body::empty(), true), None);
        assert_eq!(with(204, Body::empty(), false), None);
        assert_eq!(with(304, Body::empty(), false), None);
        let stream = Body::from_stream(futures_lite::stream::iter(vec![b"ab".to_vec()]));
        assert_eq!(with(200, stream, false), None);
        let mut declared = Response::builder()
            .header("content-length", "9")
            .body(Body::from("x"))
            .unwrap();
        set_content_length(&mut declared, false);
        assert_eq!(declared.headers()["content-length"], "9");
    }

    #[test]
    fn backend_and_next_uris() {
        assert_eq!(
            next::uri("/a?b=1").unwrap().to_string(),
            "http://next/a?b=1"
        );
        assert_eq!(backend::uri("api", "").unwrap().to_string(), "http://api/");
        assert!(backend::uri("api", "relative").is_err());
        assert!(backend::uri("bad host", "/").is_err());
    }

    #[test]
    fn edge_headers() {
        let request = Request::builder()
            .header(headers::CLIENT_IP, "2001:db8::1")
            .header(headers::REQUEST_ID, "r-42")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            headers::client_ip(&request),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(headers::request_id(&request), Some("r-42"));
        assert_eq!(headers::country(&request), None);
        let bare = Request::new(Body::empty());
        assert_eq!(headers::client_ip(&bare), None);
        assert_eq!(headers::request_id(&bare), None);
    }
}
