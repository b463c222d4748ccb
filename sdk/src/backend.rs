//! Named origin pools.
//!
//! An outgoing request whose URL authority is not `next` goes to the
//! origin pool of that name in the edge's config: `http://api/users/7`
//! reaches the pool `api` with path `/users/7`. The edge picks the server,
//! pools connections and retries; the plugin never gets raw network
//! access. Only pools the operator grants the plugin (`backends = ["api"]`
//! in its `[[plugins]]` entry) are reachable; any other name fails the
//! request with a wasi:http error (`HTTP-request-denied`).

use crate::{Body, Client, Request, Response, Result, Uri};

/// `http://{pool}{path_and_query}`.
pub fn uri(pool: &str, path_and_query: &str) -> Result<Uri> {
    let path_and_query = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    if !path_and_query.starts_with('/') {
        return Err(crate::Error::msg(format!(
            "path `{path_and_query}` must start with `/`"
        )));
    }
    Ok(Uri::builder()
        .scheme("http")
        .authority(pool)
        .path_and_query(path_and_query)
        .build()?)
}

/// Sends `request` to the pool `pool`, keeping its method, path, query,
/// headers and body (hop-by-hop headers and `Host` are dropped).
pub async fn send(pool: &str, mut request: Request<Body>) -> Result<Response<Body>> {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .to_owned();
    *request.uri_mut() = uri(pool, &path_and_query)?;
    crate::strip_forbidden_headers(request.headers_mut());
    let mut response = Client::new().send(request).await?;
    crate::strip_forbidden_headers(response.headers_mut());
    Ok(response)
}
