//! Bearer-token check for writes.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::response::{self, ResBody};

/// `Ok` if `headers` carry `Authorization: Bearer <token>`, else the 401 to
/// send (with `WWW-Authenticate: Bearer`, as RFC 6750 asks).
#[allow(clippy::result_large_err)]
pub fn require_token(headers: &HeaderMap, token: &str) -> Result<(), Response<ResBody>> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
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
}
