//! Response bodies and the short text responses every route shares.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Error type of response bodies (store errors while streaming).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body: a whole buffer or a stream from the store.
pub type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// An empty body (HEAD, 204, 304).
pub fn empty() -> ResBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A short `text/plain` response; `message` should say what failed and what
/// to do about it.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<ResBody> {
    let mut body = message.into();
    body.push('\n');
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 405 with the `Allow` header listing what the route accepts.
pub fn method_not_allowed(allow: &'static str) -> Response<ResBody> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; use one of: {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// 500 for failures on our side; the detail goes to the log, not the client.
pub fn internal(what: &str, error: &dyn std::error::Error) -> Response<ResBody> {
    tracing::error!(error = %error, "{what}");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{what}; the origin logged the cause, retry later"),
    )
}
