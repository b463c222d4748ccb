//! `security-headers`: a middleware. Forwards every request to `next` and
//! adds to the response, unless the response already has them:
//!
//! | header | value |
//! | --- | --- |
//! | `Strict-Transport-Security` | config `hsts`, default `max-age=31536000; includeSubDomains` |
//! | `Content-Security-Policy` | config `csp`, default `default-src 'self'` |
//! | `X-Content-Type-Options` | `nosniff` |
//! | `X-Frame-Options` | `DENY` |
//! | `Referrer-Policy` | `strict-origin-when-cross-origin` |
//!
//! Setting `hsts` or `csp` to the empty string leaves that header out.

use security_headers::{add_missing, security_headers};
use waypost_sdk::{Body, Error, Request, Response, Result, config, next};

#[waypost_sdk::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {
    // Checked before forwarding: a bad config value fails the request
    // without a wasted trip down the chain.
    let add = security_headers(
        config::get("hsts").as_deref(),
        config::get("csp").as_deref(),
    )
    .map_err(|e| Error::msg(format!("security-headers plugin config: {e}")))?;
    let mut response = next::forward(request).await?;
    add_missing(response.headers_mut(), add);
    Ok(response)
}
