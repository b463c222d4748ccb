//! Bearer-token checks: the write token for writes; the read token (or the
//! write token, which implies read) for reads of everything but assets.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::config::Config;
use crate::response::{self, ResBody};

/// `Ok` if `headers` carry `Authorization: Bearer <token>`, else the 401 to
/// send (with `WWW-Authenticate: Bearer`, as RFC 6750 asks).
#[allow(clippy::result_large_err)]
pub fn require_token(headers: &HeaderMap, token: &str) -> Result<(), Response<ResBody>> {
    let presented = bearer(headers);
    let reason = match presented {
        Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => return Ok(()),
        Some(_) => "the bearer token is not valid for this origin",
        None => "writes need `Authorization: Bearer <token>` with the origin's token",
    };
    let mut response = response::text(StatusCode::UNAUTHORIZED, reason);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(response)
}

/// `Ok` if `headers` carry a token that may read private state (KV, the
/// change feed, cluster state, plugins, metrics): the read token, or the
/// write token. Assets and `/healthz` are the origin's only public reads,
/// so an edge that routes every path to the origin leaks nothing else.
#[allow(clippy::result_large_err)]
pub fn require_read(headers: &HeaderMap, config: &Config) -> Result<(), Response<ResBody>> {
    let presented = bearer(headers);
    let valid = presented.is_some_and(|t| {
        constant_time_eq(t.as_bytes(), config.token.as_bytes())
            | config
                .read_token
                .as_deref()
                .is_some_and(|r| constant_time_eq(t.as_bytes(), r.as_bytes()))
    });
    if valid {
        return Ok(());
    }
    let reason = match presented {
        Some(_) => "the bearer token is not valid for this origin",
        None => {
            "reading this needs `Authorization: Bearer <token>` with the origin's read token \
             (`read_token`) or write token; only /assets/ and /healthz are public"
        }
    };
    Err(unauthorized(reason))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

fn unauthorized(reason: &str) -> Response<ResBody> {
    let mut response = response::text(StatusCode::UNAUTHORIZED, reason);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares without an early exit, so response timing does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn accepts_only_the_token() {
        assert!(require_token(&with("Bearer s3cret"), "s3cret").is_ok());
        assert!(require_token(&with("bearer s3cret"), "s3cret").is_ok());
        assert!(require_token(&with("Bearer s3cre"), "s3cret").is_err());
        assert!(require_token(&with("Basic s3cret"), "s3cret").is_err());
        let denied = require_token(&HeaderMap::new(), "s3cret").unwrap_err();
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(denied.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn reads_take_the_read_or_the_write_token() {
        let mut config = Config::for_data_dir("/x", "writer");
        assert!(require_read(&HeaderMap::new(), &config).is_err());
        assert!(require_read(&with("Bearer writer"), &config).is_ok());
        assert!(require_read(&with("Bearer reader"), &config).is_err());
        config.read_token = Some("reader".into());
        assert!(require_read(&with("Bearer reader"), &config).is_ok());
        assert!(require_read(&with("Bearer writer"), &config).is_ok());
        assert!(require_read(&with("Bearer readers"), &config).is_err());
        assert!(require_token(&with("Bearer reader"), &config.token).is_err());
    }
}
