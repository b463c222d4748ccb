//! One spelling of `Accept-Language` per preference (RFC 9111 §4.1 allows
//! normalising selecting fields the cache knows the semantics of).
//!
//! Language ranges are case-insensitive (RFC 4647 §2.1) and their
//! preference is the q-value (RFC 9110 §12.4.2), so `en-US,fr;q=0.5`,
//! `fr;q=0.50, EN-us` and `en-us;q=1.0, fr;q=0.5` select the same language
//! at any origin and should share a variant. Ranges are lower-cased, q-values
//! written canonically (`q=1` dropped) and members ordered by q-value,
//! highest first; members of equal q keep their order, since origins often
//! break ties by position. Like `Accept-Encoding`, the edge rewrites the
//! field before the origin sees it, so requests that share a key were
//! answered from the same value. A field that does not parse is left alone.

use http::HeaderValue;
use http::header::{ACCEPT_LANGUAGE, HeaderMap};

/// Rewrites `headers`' `Accept-Language` to its normalized form.
pub fn normalize(headers: &mut HeaderMap) {
    if !headers.contains_key(ACCEPT_LANGUAGE) {
        return;
    }
    let Some(value) = normalized(headers) else {
        return;
    };
    headers.remove(ACCEPT_LANGUAGE);
    if !value.is_empty() {
        headers.insert(
            ACCEPT_LANGUAGE,
            HeaderValue::from_str(&value).expect("language ranges are valid header values"),
        );
    }
}

fn normalized(headers: &HeaderMap) -> Option<String> {
    // (q in thousandths, range)
    let mut members: Vec<(u16, String)> = Vec::new();
    for value in headers.get_all(ACCEPT_LANGUAGE) {
        for member in value.to_str().ok()?.split(',') {
            let mut parts = member.split(';').map(str::trim);
            let range = parts.next().unwrap_or_default();
            if range.is_empty() {
                continue;
            }
            if !range
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
            {
                return None;
            }
            let mut q = 1000;
            for p in parts {
                let (k, v) = p.split_once('=')?;
                if !k.trim().eq_ignore_ascii_case("q") {
                    return None;
                }
                q = qvalue(v.trim())?;
            }
            let range = range.to_ascii_lowercase();
            if !members.iter().any(|(_, r)| *r == range) {
                members.push((q, range));
            }
        }
    }
    members.sort_by_key(|m| std::cmp::Reverse(m.0));
    let out: Vec<String> = members
        .into_iter()
        .map(|(q, r)| match q {
            1000 => r,
            q => {
                let mut s = format!("{r};q=0.{q:03}");
                while s.ends_with('0') {
                    s.pop();
                }
                if s.ends_with('.') {
                    s.pop();
                }
                s
            }
        })
        .collect();
    Some(out.join(", "))
}

/// RFC 9110 §12.4.2 qvalue as thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_n: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_n),
        "1" if frac_n == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(values: &[&str]) -> Option<String> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_LANGUAGE, v.parse().unwrap());
        }
        normalize(&mut h);
        h.get(ACCEPT_LANGUAGE)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn case_whitespace_q_spelling_and_q_order_do_not_matter() {
        let want = Some("en-us, fr;q=0.5".to_string());
        assert_eq!(norm(&["en-US,fr;q=0.5"]), want);
        assert_eq!(norm(&["fr;q=0.50, EN-us"]), want);
        assert_eq!(norm(&["en-us;q=1.0 ,  fr ; q=0.500"]), want);
        assert_eq!(norm(&["en-us", "fr;q=0.5"]), want);
    }

    #[test]
    fn preferences_that_differ_stay_apart() {
        assert_ne!(
            norm(&["en, fr"]),
            norm(&["fr, en"]),
            "ties keep their order"
        );
        assert_ne!(norm(&["en;q=0.5, fr"]), norm(&["en, fr;q=0.5"]));
        assert_eq!(norm(&["de;q=0"]), Some("de;q=0".into()));
    }

    #[test]
    fn unparsable_fields_are_left_alone() {
        assert_eq!(norm(&["en;q=2"]), Some("en;q=2".into()));
        assert_eq!(norm(&["en;foo=1"]), Some("en;foo=1".into()));
    }
}
