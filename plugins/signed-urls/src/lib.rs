//! The logic of the `signed-urls` plugin, apart from the handler so it is
//! unit-tested on the host.
//!
//! A signed URL carries `expires=<unix seconds>` and
//! `token=<hex HMAC-SHA256(secret, "<path>\n<expires>")>` in its query,
//! where `<path>` is the URL's path exactly as requested (no query).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// `expires` or `token` is absent.
    Missing,
    /// The token does not match (or a parameter is malformed or repeated).
    BadToken,
    /// The token matches but `expires` has passed.
    Expired,
}

impl Reject {
    /// The short reason put in the 403 body.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::BadToken => "bad token",
            Reject::Expired => "expired",
        }
    }
}

/// The token for `path` valid until `expires` (lowercase hex).
pub fn sign(secret: &[u8], path: &str, expires: u64) -> String {
    hex::encode(new_mac(secret, path, expires).finalize().into_bytes())
}

fn new_mac(secret: &[u8], path: &str, expires: u64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(expires.to_string().as_bytes());
    mac
}

/// Checks the signature of `path` + `query` at time `now` (unix seconds).
/// On success returns the query to forward: the original one without
/// `expires` and `token` (`None` when nothing else is left).
pub fn verify(
    secret: &[u8],
    path: &str,
    query: Option<&str>,
    now: u64,
) -> Result<Option<String>, Reject> {
    let mut expires = None;
    let mut token = None;
    let mut rest = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "expires" => &mut expires,
            "token" => &mut token,
            _ => {
                rest.push(pair);
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(Reject::BadToken);
        }
    }
    let (Some(expires_raw), Some(token)) = (expires, token) else {
        return Err(Reject::Missing);
    };
    if expires_raw.is_empty() || token.is_empty() {
        return Err(Reject::Missing);
    }
    // Only plain decimal digits: the signed text must be what we rebuild.
    if !expires_raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reject::BadToken);
    }
    let expires: u64 = expires_raw.parse().map_err(|_| Reject::BadToken)?;
    if expires.to_string() != expires_raw {
        return Err(Reject::BadToken);
    }
    let token = hex::decode(token).map_err(|_| Reject::BadToken)?;
    // Constant-time comparison.
    new_mac(secret, path, expires)
        .verify_slice(&token)
        .map_err(|_| Reject::BadToken)?;
    if expires < now {
        return Err(Reject::Expired);
    }
    Ok((!rest.is_empty()).then(|| rest.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";

    #[test]
    fn known_vector() {
        // HMAC-SHA256("s3cret", "/video.mp4\n1700000000"), computed independently
        // with `printf '/video.mp4\n1700000000' | openssl dgst -sha256 -hmac s3cret`.
        assert_eq!(
            sign(SECRET, "/video.mp4", 1_700_000_000),
            "202e0d2b923db7204d3b5e6b5b619946accc95378c442a4f59e419f5722758f6"
        );
    }

    #[test]
    fn valid_token_passes_and_strips_its_params() {
        let token = sign(SECRET, "/a/b.mp4", 2000);
        let q = format!("x=1&expires=2000&token={token}&y=2");
        assert_eq!(
            verify(SECRET, "/a/b.mp4", Some(&q), 1000),
            Ok(Some("x=1&y=2".into()))
        );
        let q = format!("token={}&expires=2000", token.to_uppercase());
        assert_eq!(verify(SECRET, "/a/b.mp4", Some(&q), 2000), Ok(None));
    }

    #[test]
    fn expired() {
        let token = sign(SECRET, "/f", 1000);
        let q = format!("expires=1000&token={token}");
        assert_eq!(verify(SECRET, "/f", Some(&q), 1001), Err(Reject::Expired));
    }

    #[test]
    fn missing() {
        assert_eq!(verify(SECRET, "/f", None, 0), Err(Reject::Missing));
        assert_eq!(
            verify(SECRET, "/f", Some("expires=5"), 0),
            Err(Reject::Missing)
        );
        assert_eq!(
            verify(SECRET, "/f", Some("token=ab"), 0),
            Err(Reject::Missing)
        );
        assert_eq!(
            verify(SECRET, "/f", Some("expires=&token="), 0),
            Err(Reject::Missing)
        );
    }

    #[test]
    fn bad_tokens() {
        let token = sign(SECRET, "/f", 1000);
        let cases = [
            // another path
            format!("expires=1000&token={}", sign(SECRET, "/g", 1000)),
            // another expiry
            format!("expires=1001&token={token}"),
            // another secret
            format!("expires=1000&token={}", sign(b"other", "/f", 1000)),
            // truncated, not hex, repeated, padded expiry
            format!("expires=1000&token={}", &token[..62]),
            "expires=1000&token=zz".to_owned(),
            format!("expires=1000&token={token}&token={token}"),
            format!("expires=01000&token={token}"),
            format!("expires=+1000&token={token}"),
        ];
        for q in cases {
            assert_eq!(
                verify(SECRET, "/f", Some(&q), 0),
                Err(Reject::BadToken),
                "{q}"
            );
        }
    }
}
