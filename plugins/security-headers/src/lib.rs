//! The logic of the `security-headers` plugin, apart from the handler so
//! it is unit-tested on the host.

use waypost_sdk::{HeaderMap, HeaderName, HeaderValue};

/// `Strict-Transport-Security` unless the config key `hsts` says otherwise.
pub const DEFAULT_HSTS: &str = "max-age=31536000; includeSubDomains";
/// `Content-Security-Policy` unless the config key `csp` says otherwise.
pub const DEFAULT_CSP: &str = "default-src 'self'";

/// The headers to add, given the config values of `hsts` and `csp`
/// (`None`: unset, use the default; an empty value leaves that header out).
/// A value that is not a valid header value is an error naming the header.
pub fn security_headers(
    hsts: Option<&str>,
    csp: Option<&str>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let configured = [
        ("strict-transport-security", hsts.unwrap_or(DEFAULT_HSTS)),
        ("content-security-policy", csp.unwrap_or(DEFAULT_CSP)),
    ];
    let fixed = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
    ];
    configured
        .into_iter()
        .map(|(name, value)| (name, value.trim()))
        .filter(|(_, value)| !value.is_empty())
        .chain(fixed)
        .map(|(name, value)| {
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for {name}: {value:?}"))?;
            Ok((HeaderName::from_static(name), value))
        })
        .collect()
}

/// Adds each header that `headers` does not have yet.
pub fn add_missing(headers: &mut HeaderMap, add: Vec<(HeaderName, HeaderValue)>) {
    for (name, value) in add {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_response() {
        let mut headers = HeaderMap::new();
        add_missing(&mut headers, security_headers(None, None).unwrap());
        assert_eq!(headers["strict-transport-security"], DEFAULT_HSTS);
        assert_eq!(headers["content-security-policy"], DEFAULT_CSP);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(
            headers["referrer-policy"],
            "strict-origin-when-cross-origin"
        );
        assert_eq!(headers.len(), 5);
    }

    #[test]
    fn existing_headers_win() {
        let mut headers = HeaderMap::new();
        headers.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src *"),
        );
        add_missing(&mut headers, security_headers(None, None).unwrap());
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
        assert_eq!(headers["content-security-policy"], "default-src *");
        assert_eq!(headers.get_all("x-frame-options").iter().count(), 1);
    }

    #[test]
    fn config_overrides_and_disables() {
        let mut headers = HeaderMap::new();
        add_missing(
            &mut headers,
            security_headers(Some("max-age=60"), Some("")).unwrap(),
        );
        assert_eq!(headers["strict-transport-security"], "max-age=60");
        assert!(!headers.contains_key("content-security-policy"));
    }

    #[test]
    fn bad_config_value_is_an_error() {
        let err = security_headers(Some("a\nb"), None).unwrap_err();
        assert!(err.contains("strict-transport-security"), "{err}");
    }
}
