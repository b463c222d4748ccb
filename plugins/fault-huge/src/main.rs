//! TEST FIXTURE, not an example: answers `200` with a 1 GiB body streamed
//! in 64 KiB chunks, to exercise the edge's response-body limit while the
//! body streams. By default the response has no `Content-Length` (so the
//! limit can only be enforced while streaming); with `?announce` in the
//! query it declares `content-length: 1073741824` up front. Used by the
//! edge's plugin limit tests.

use std::convert::Infallible;

use waypost_sdk::http::body::Bytes;
use waypost_sdk::{Body, Request, Response, Result, StatusCode};

const CHUNK: usize = 64 * 1024;
const TOTAL: u64 = 1 << 30;

#[waypost_sdk::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {
    let announce = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "announce"));
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let chunks = TOTAL / CHUNK as u64;
    let stream =
        futures_lite::stream::iter((0..chunks).map(move |_| Ok::<_, Infallible>(chunk.clone())));
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream");
    if announce {
        response = response.header("content-length", TOTAL.to_string());
    }
    Ok(response.body(Body::from_try_stream(stream))?)
}
