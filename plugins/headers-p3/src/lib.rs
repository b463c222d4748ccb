//! `headers-p3`: a middleware for the wasi:http 0.3 `middleware` world. It
//! imports and exports `wasi:http/handler`: each request goes unchanged to
//! the imported handler, which at the edge is the next link of the chain
//! (the next plugin, or the cache → origin path), and the response comes
//! back with `x-p3-middleware: headers-p3` added. The body streams
//! through untouched.

/// Generated bindings. The canonical-ABI glue is `unsafe` by nature; it
/// stays in this module, the handler below is safe code.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
    path: "wit",
    world: "waypost:headers-p3/middleware",
    with: {
        "wasi:http/types@0.3.0": wasip3::http::types,
        "wasi:http/client@0.3.0": wasip3::http::client,
        "wasi:clocks/types@0.3.0": wasip3::clocks::types,
        "wasi:clocks/monotonic-clock@0.3.0": wasip3::clocks::monotonic_clock,
        "wasi:clocks/system-clock@0.3.0": wasip3::clocks::system_clock,
        "wasi:http/handler@0.3.0": generate,
        "wasi:cli/types@0.3.0": wasip3::cli::types,
        "wasi:cli/stdout@0.3.0": wasip3::cli::stdout,
        "wasi:cli/stderr@0.3.0": wasip3::cli::stderr,
        "wasi:cli/stdin@0.3.0": wasip3::cli::stdin,
        "wasi:random/random@0.3.0": wasip3::random::random,
        "wasi:random/insecure@0.3.0": wasip3::random::insecure,
        "wasi:random/insecure-seed@0.3.0": wasip3::random::insecure_seed,
        },
    });

    use super::Headers;
    export!(Headers with_types_in self);
}

use wasip3::http::types::{ErrorCode, Response};
use wasip3::wit_future;

/// The header this middleware adds.
const HEADER: &str = "x-p3-middleware";

struct Headers;

impl bindings::exports::wasi::http::handler::Guest for Headers {
    async fn handle(request: wasip3::http::types::Request) -> Result<Response, ErrorCode> {
        let upstream = bindings::wasi::http::handler::handle(request).await?;
        let status = upstream.get_status_code();
        // Headers of a response are immutable; `clone` gives a mutable copy.
        let headers = upstream.get_headers().clone();
        headers
            .set(HEADER, &[b"headers-p3".to_vec()])
            .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
        // Dropping the writer reports success for the upstream body; the
        // edge sees a failure on the stream itself.
        let (_, consumed) = wit_future::new(|| Ok(()));
        let (body, trailers) = Response::consume_body(upstream, consumed);
        let (response, _delivered) = Response::new(headers, Some(body), trailers);
        response
            .set_status_code(status)
            .map_err(|()| ErrorCode::InternalError(Some("status".into())))?;
        Ok(response)
    }
}
