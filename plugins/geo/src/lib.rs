//! The logic of the `geo` plugin, apart from the handler so it is
//! unit-tested on the host.

/// The request and response header carrying the client's country code.
pub const COUNTRY_HEADER: &str = "x-geo-country";
/// The request and response header carrying the client's continent code.
pub const CONTINENT_HEADER: &str = "x-geo-continent";

/// The plugin config key naming the redirect target for `country`:
/// `redirect.<COUNTRY>`, upper case (`redirect.DE`).
pub fn redirect_key(country: &str) -> String {
    format!("redirect.{}", country.trim().to_ascii_uppercase())
}

/// A geo code fit for a header value: ASCII letters and digits only,
/// upper-cased; anything else (or empty) is unknown.
pub fn header_code(code: Option<&str>) -> Option<String> {
    let code = code?.trim();
    (!code.is_empty() && code.len() <= 8 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keys_are_upper_case() {
        assert_eq!(redirect_key("de"), "redirect.DE");
        assert_eq!(redirect_key("US"), "redirect.US");
    }

    #[test]
    fn header_codes() {
        assert_eq!(header_code(Some("de")), Some("DE".into()));
        assert_eq!(header_code(Some("EU")), Some("EU".into()));
        assert_eq!(header_code(Some("")), None);
        assert_eq!(header_code(Some("D\nE")), None);
        assert_eq!(header_code(None), None);
    }
}
