//! The next link of the site's plugin chain.
//!
//! A plugin passes a request on by sending it to the authority `next`
//! (`http://next/path?query`): the edge hands it to the next plugin of the
//! site's chain or, after the last plugin, to its cache and then the
//! origin, so responses fetched through `next` are cached by the usual
//! rules. The response comes back to this plugin, which may change it
//! before returning it.
//!
//! ```no_run
//! # use waypost_sdk::{Body, Request, Response, Result, next};
//! # async fn handler(request: Request<Body>) -> Result<Response<Body>> {
//! // Unchanged:
//! let response = next::forward(request).await?;
//! # Ok(response) }
//! # async fn handler2(mut request: Request<Body>) -> Result<Response<Body>> {
//! // With a header added and the path rewritten:
//! request.headers_mut().insert("x-variant", "b".parse()?);
//! let response = next::forward_to(request, "/b/index.html").await?;
//! # Ok(response) }
//! ```

use crate::{Body, Client, Request, Response, Result, Uri};

/// The authority that names the next link of the chain.
pub const AUTHORITY: &str = "next";

/// `http://next` + `path_and_query` (which must start with `/`).
pub fn uri(path_and_query: &str) -> Result<Uri> {
    crate::backend::uri(AUTHORITY, path_and_query)
}

/// Sends `request` (method, headers and streamed body) to the next link,
/// keeping its path and query, and returns the response.
///
/// Hop-by-hop headers and `Host` are dropped: wasi:http hosts refuse them
/// in outgoing requests, and the edge keeps the client's `Host` for the
/// rest of the chain itself.
pub async fn forward(request: Request<Body>) -> Result<Response<Body>> {
    crate::backend::send(AUTHORITY, request).await
}

/// Like [`forward`], with the path and query replaced by `path_and_query`.
pub async fn forward_to(
    mut request: Request<Body>,
    path_and_query: &str,
) -> Result<Response<Body>> {
    *request.uri_mut() = uri(path_and_query)?;
    forward(request).await
}

/// Sends a new request built by the plugin (e.g. a `GET` of another path
/// for a subrequest) to the next link. Its URI's authority is replaced by
/// `next`; give it just a path, or a full `http://next/...` URI.
pub async fn send(request: Request<Body>) -> Result<Response<Body>> {
    forward(request).await
}

/// A client for many requests to the next link, e.g. with timeouts set.
pub fn client() -> Client {
    Client::new()
}
