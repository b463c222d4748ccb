//! `signed-urls`: lets a request through only if its query carries a valid,
//! unexpired signature, then forwards it to `next` without the signature
//! parameters; otherwise answers `403` with the reason.
//!
//! Query: `expires=<unix seconds>&token=<hex HMAC-SHA256(secret, "<path>\n<expires>")>`.
//! Config: `secret` (required; without it every request gets a 500).

use std::time::{SystemTime, UNIX_EPOCH};

use signed_urls::verify;
use waypost_sdk::{Body, Request, Response, Result, StatusCode, config, log, next};

#[waypost_sdk::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {
    let Some(secret) = config::get("secret").filter(|s| !s.is_empty()) else {
        log::error("signed-urls: plugin config `secret` is not set");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "signed-urls: not configured\n",
        );
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let path = request.uri().path().to_owned();
    match verify(secret.as_bytes(), &path, request.uri().query(), now) {
        Ok(query) => {
            let path_and_query = match query {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            next::forward_to(request, &path_and_query).await
        }
        Err(reject) => text(
            StatusCode::FORBIDDEN,
            &format!("forbidden: {}\n", reject.reason()),
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Result<Response<Body>> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .body(body.to_owned().into())?)
}
