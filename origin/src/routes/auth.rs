//! Who may call what: bearer tokens by scope ([`crate::credentials`]) and,
//! on a peer listener with mutual TLS, the peer's certificate.
//!
//! A missing or unknown token is 401 (with `WWW-Authenticate: Bearer`, as
//! RFC 6750 asks); a valid token whose scope is too narrow is 403 with the
//! scope it has and the one needed, so the operator knows which token to
//! use instead.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::credentials::{Credentials, Scope};
use crate::response::{self, ResBody};

/// `Ok` if `headers` carry a token of scope `need` or wider; `what` names
/// the action for the refusal ("uploading an asset").
#[allow(clippy::result_large_err)]
pub fn require(
    headers: &HeaderMap,
    credentials: &Credentials,
    need: Scope,
    what: &str,
) -> Result<(), Response<ResBody>> {
    let Some(presented) = bearer(headers) else {
        return Err(unauthorized(format!(
            "{what} needs `Authorization: Bearer <token>` with a token of scope `{}`; only \
             /assets/ and /healthz are public",
            need.as_str()
        )));
    };
    match credentials.scope_of(presented) {
        Some(have) if have >= need => Ok(()),
        Some(have) => Err(forbidden(have, need, what)),
        None => Err(unauthorized(
            "the bearer token is not valid for this origin".into(),
        )),
    }
}

fn forbidden(have: Scope, need: Scope, what: &str) -> Response<ResBody> {
    let reason = if need == Scope::Peer {
        format!(
            "{what} is peer traffic between regions: only the cluster's own `token` reaches it, \
             not a `{}` token",
            have.as_str()
        )
    } else {
        format!(
            "this token has scope `{}`; {what} needs `{}`",
            have.as_str(),
            need.as_str()
        )
    };
    response::text(StatusCode::FORBIDDEN, reason)
}

/// The bearer token in `headers`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

fn unauthorized(reason: String) -> Response<ResBody> {
    let mut response = response::text(StatusCode::UNAUTHORIZED, reason);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn status(headers: &HeaderMap, c: &Credentials, need: Scope) -> StatusCode {
        match require(headers, c, need, "this") {
            Ok(()) => StatusCode::OK,
            Err(r) => r.status(),
        }
    }

    #[test]
    fn unknown_is_401_and_too_narrow_is_403() {
        let c = Credentials::new("cluster", false, Some("reader"), None).unwrap();
        assert_eq!(
            status(&with("Bearer cluster"), &c, Scope::Admin),
            StatusCode::OK
        );
        assert_eq!(
            status(&with("bearer cluster"), &c, Scope::Read),
            StatusCode::OK
        );
        assert_eq!(
            status(&with("Bearer reader"), &c, Scope::Read),
            StatusCode::OK
        );
        for bad in ["Bearer cluste", "Basic cluster", "Bearer readers"] {
            assert_eq!(
                status(&with(bad), &c, Scope::Read),
                StatusCode::UNAUTHORIZED
            );
        }
        let denied = require(&HeaderMap::new(), &c, Scope::Read, "x").unwrap_err();
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(denied.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            status(&with("Bearer reader"), &c, Scope::Write),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(&with("Bearer cluster"), &c, Scope::Peer),
            StatusCode::FORBIDDEN
        );
    }
}
