//! What `invoke` hands a world's runner (`p2`, `p3`) and gets back: the
//! request in the wasi:http host's body type, and the channel for the
//! response head. Kept apart so the runners depend on this, not on
//! `invoke`, which depends on them.

use http::{Request, Response};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

use crate::body::Body;

/// Where a world's runner sends the response head, or the error code the
/// guest answered with instead of a response.
pub type HeadSender = oneshot::Sender<Result<Response<Body>, String>>;

/// The edge's request with a body the wasi:http host types accept.
pub fn to_wasi_request(
    req: Request<Body>,
) -> Request<impl http_body::Body<Data = bytes::Bytes, Error = wasmtime_wasi_http::Error> + use<>> {
    req.map(|b| b.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))))
}
