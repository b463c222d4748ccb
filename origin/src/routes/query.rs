//! Query-string parameters, percent-decoded.

use std::borrow::Cow;

/// The value of the first `name=` parameter in `uri`'s query, decoded.
pub fn param(uri: &http::Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v).into_owned())
    })
}

/// Whether the query asks for a linearizable read (`consistency=strong`).
pub fn strong(uri: &http::Uri) -> bool {
    param(uri, "consistency").as_deref() == Some("strong")
}

fn decode(s: &str) -> Cow<'_, str> {
    let plus_as_space = s.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&plus_as_space)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_decodes() {
        let uri: http::Uri = "/kv/n?prefix=a%2Fb&consistency=strong&x".parse().unwrap();
        assert_eq!(param(&uri, "prefix").as_deref(), Some("a/b"));
        assert!(strong(&uri));
        assert_eq!(param(&uri, "x").as_deref(), Some(""));
        assert_eq!(param(&uri, "y"), None);
    }
}
