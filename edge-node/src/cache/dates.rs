//! HTTP dates as recipients must read them (RFC 9110 §5.6.7).
//!
//! Senders generate IMF-fixdate, but recipients must also accept the
//! obsolete RFC 850 and asctime forms, and origins in the wild send day and
//! month names and `GMT` in any case. `httpdate` reads all three forms but
//! only in canonical case, and `http-cache-semantics` reads only
//! IMF-fixdate (RFC 2822), so an asctime `Expires` there would count as
//! "invalid, already expired" and an asctime `Last-Modified` would get no
//! heuristic freshness. This module canonicalises the case first, then
//! lets `httpdate` parse; the policy is handed IMF-fixdate only.

use std::time::SystemTime;

const NAMES: &[&str] = &[
    "Mon",
    "Tue",
    "Wed",
    "Thu",
    "Fri",
    "Sat",
    "Sun",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
    "GMT",
];

/// Parses an HTTP date in any of the three forms, names in any case.
/// `None` for anything else (callers decide what invalid means: for
/// `Expires` it is "already expired").
pub fn parse(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if !text.is_ascii() {
        return None;
    }
    let mut canonical = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_alphabetic() {
            let end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let word = &rest[..end];
            match NAMES.iter().find(|n| n.eq_ignore_ascii_case(word)) {
                Some(n) => canonical.push_str(n),
                None => canonical.push_str(word),
            }
            rest = &rest[end..];
        } else {
            canonical.push(c);
            rest = &rest[1..];
        }
    }
    httpdate::parse_http_date(&canonical).ok()
}

/// `text` as IMF-fixdate, the one form every reader understands.
pub fn to_imf_fixdate(text: &str) -> Option<String> {
    parse(text).map(httpdate::fmt_http_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMF: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn all_three_forms_read_the_same_instant() {
        for form in [
            IMF,
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(to_imf_fixdate(form).as_deref(), Some(IMF), "{form}");
        }
    }

    #[test]
    fn names_in_any_case() {
        for form in [
            "sun, 06 nov 1994 08:49:37 gmt",
            "SUN, 06 NOV 1994 08:49:37 GMT",
            "SUNDAY, 06-nov-94 08:49:37 Gmt",
            "sun NOV  6 08:49:37 1994",
        ] {
            assert_eq!(to_imf_fixdate(form).as_deref(), Some(IMF), "{form}");
        }
    }

    #[test]
    fn garbage_is_not_a_date() {
        for bad in [
            "0",
            "-1",
            "",
            "tomorrow",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sün, 06",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
