//! One spelling of `Accept-Encoding` per set of acceptable codings.
//!
//! Clients spell the same preference many ways (`gzip, deflate, br`,
//! `br;q=1.0, gzip;q=0.8`, `GZIP`), and a response that varies on the field
//! would be stored once per spelling. The edge rewrites the field before it
//! keys a variant *and* before the origin sees it, so the origin's choice
//! depends only on the normalized value and two requests with one key can
//! never have been answered differently. The value lists the codings a
//! cache can serve (`br`, `deflate`, `gzip`, `zstd`) that the client
//! accepts (q > 0), sorted; nothing acceptable removes the field. Order and
//! q-value preferences are dropped, as Fastly and Cloudflare do: an origin
//! picks among what the client accepts.

use http::HeaderValue;
use http::header::{ACCEPT_ENCODING, HeaderMap};

/// The codings kept, in the order they are written.
const KNOWN: [&str; 4] = ["br", "deflate", "gzip", "zstd"];

/// Rewrites `headers`' `Accept-Encoding` to its normalized form.
pub fn normalize(headers: &mut HeaderMap) {
    if !headers.contains_key(ACCEPT_ENCODING) {
        return;
    }
    let mut accepted = [false; KNOWN.len()];
    let mut star = None;
    let mut refused = [false; KNOWN.len()];
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for member in text.split(',') {
            let mut parts = member.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            if coding == "*" {
                star = Some(!q_zero);
                continue;
            }
            let name = if coding.eq_ignore_ascii_case("x-gzip") {
                "gzip"
            } else {
                coding
            };
            if let Some(i) = KNOWN.iter().position(|k| k.eq_ignore_ascii_case(name)) {
                if q_zero {
                    refused[i] = true;
                } else {
                    accepted[i] = true;
                }
            }
        }
    }
    let mut out = String::new();
    for (i, name) in KNOWN.iter().enumerate() {
        let ok = !refused[i] && (accepted[i] || star == Some(true));
        if ok {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(name);
        }
    }
    if out.is_empty() {
        headers.remove(ACCEPT_ENCODING);
    } else {
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_str(&out).expect("coding names are valid header values"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(values: &[&str]) -> Option<String> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, v.parse().unwrap());
        }
        normalize(&mut h);
        h.get(ACCEPT_ENCODING)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn spellings_of_one_preference_share_a_value() {
        let want = Some("br, deflate, gzip".to_string());
        assert_eq!(norm(&["gzip, deflate, br"]), want);
        assert_eq!(norm(&["br;q=1.0, gzip;q=0.8, deflate"]), want);
        assert_eq!(norm(&["GZIP", "Deflate,BR"]), want);
        assert_eq!(norm(&["gzip,deflate,br,sdch"]), want);
    }

    #[test]
    fn refused_and_unknown_codings_drop_out() {
        assert_eq!(norm(&["gzip;q=0, br"]), Some("br".into()));
        assert_eq!(norm(&["identity"]), None);
        assert_eq!(norm(&["x-gzip"]), Some("gzip".into()));
        assert_eq!(norm(&["*"]), Some("br, deflate, gzip, zstd".into()));
        assert_eq!(norm(&["*, br;q=0"]), Some("deflate, gzip, zstd".into()));
        assert_eq!(norm(&["*;q=0"]), None);
        assert_eq!(norm(&[""]), None);
    }
}
