//! Asset names: the validated path after `/assets/` in a request URL.
//!
//! The name becomes part of an object-store key, so anything that could
//! escape the `meta/` tree or alias another asset is refused up front with a
//! reason the client can act on, rather than being silently rewritten.

use percent_encoding::percent_decode_str;

/// Suffix of metadata documents in the store. Asset path segments may not end
/// with it, so a directory `a.wpmeta/` can never collide with the document of
/// asset `a` on file-system backends.
pub const META_SUFFIX: &str = ".wpmeta";

/// Longest accepted asset name, in bytes after percent-decoding.
const MAX_LEN: usize = 1024;
/// Longest accepted segment; most file systems cap names at 255 bytes and the
/// metadata suffix needs room.
const MAX_SEGMENT_LEN: usize = 255 - META_SUFFIX.len();

/// A validated asset name such as `static/app.js` (no leading slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetPath(String);

/// Why a request path does not name a valid asset; the message is sent to
/// the client as the 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAssetPath {
    #[error("asset path is empty; use /assets/<name>")]
    Empty,
    #[error("asset path is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("asset path is not valid UTF-8 after percent-decoding")]
    NotUtf8,
    #[error("asset path has an empty segment (leading, trailing or doubled `/`)")]
    EmptySegment,
    #[error("asset path segment `{0}` is not allowed (no `.` or `..` segments)")]
    DotSegment(String),
    #[error("asset path contains a control character (such as NUL)")]
    ControlChar,
    #[error("asset path contains `\\`; use `/` to separate segments")]
    Backslash,
    #[error("asset path segment is longer than {MAX_SEGMENT_LEN} bytes")]
    SegmentTooLong,
    #[error("asset path segments may not end with `{META_SUFFIX}` (reserved for metadata)")]
    ReservedSuffix,
}

/// The one rule of an asset name (already decoded).
fn check(name: &str) -> Result<(), InvalidAssetPath> {
    if name.is_empty() {
        return Err(InvalidAssetPath::Empty);
    }
    if name.len() > MAX_LEN {
        return Err(InvalidAssetPath::TooLong);
    }
    name.split('/').try_for_each(check_segment)
}

impl TryFrom<String> for AssetPath {
    type Error = InvalidAssetPath;
    fn try_from(name: String) -> Result<Self, InvalidAssetPath> {
        check(&name)?;
        Ok(Self(name))
    }
}

impl From<AssetPath> for String {
    fn from(path: AssetPath) -> String {
        path.0
    }
}

impl AssetPath {
    /// Decodes and validates the raw (still percent-encoded) URL path that
    /// follows `/assets/`.
    pub fn from_url_path(raw: &str) -> Result<Self, InvalidAssetPath> {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| InvalidAssetPath::NotUtf8)?;
        Self::new(&decoded)
    }

    /// Validates an already-decoded asset name.
    pub fn new(name: &str) -> Result<Self, InvalidAssetPath> {
        check(name)?;
        Ok(Self(name.to_string()))
    }

    /// The name without a leading slash, e.g. `static/app.js`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a URL path under `/assets`, e.g. `/static/app.js`; this is
    /// what cache rule prefixes match against.
    pub fn rule_path(&self) -> String {
        format!("/{}", self.0)
    }

    /// The origin URL path of the asset, `/assets/<name>` with each segment
    /// percent-encoded, so any valid name survives the trip through a URL.
    pub fn url_path(&self) -> String {
        let segments: Vec<String> = self
            .0
            .split('/')
            .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        format!("/assets/{}", segments.join("/"))
    }
}

/// Bytes escaped in a URL path segment (asset names, KV namespaces and
/// keys): all but RFC 3986 unreserved characters.
pub(crate) const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn check_segment(segment: &str) -> Result<(), InvalidAssetPath> {
    if segment.is_empty() {
        return Err(InvalidAssetPath::EmptySegment);
    }
    if segment == "." || segment == ".." {
        return Err(InvalidAssetPath::DotSegment(segment.to_string()));
    }
    if segment.chars().any(char::is_control) {
        return Err(InvalidAssetPath::ControlChar);
    }
    if segment.contains('\\') {
        return Err(InvalidAssetPath::Backslash);
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(InvalidAssetPath::SegmentTooLong);
    }
    if segment.ends_with(META_SUFFIX) {
        return Err(InvalidAssetPath::ReservedSuffix);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        let p = AssetPath::from_url_path("static/app%20v2.js").unwrap();
        assert_eq!(p.as_str(), "static/app v2.js");
        assert_eq!(p.rule_path(), "/static/app v2.js");
        assert!(AssetPath::new(".well-known/x").is_ok());
    }

    #[test]
    fn refuses_traversal_and_oddities() {
        use InvalidAssetPath::*;
        let cases = [
            ("", Empty),
            ("a/../b", DotSegment("..".into())),
            ("%2e%2e/etc/passwd", DotSegment("..".into())),
            ("./a", DotSegment(".".into())),
            ("a//b", EmptySegment),
            ("/a", EmptySegment),
            ("a/", EmptySegment),
            ("a%00b", ControlChar),
            ("a%5Cb", Backslash),
            ("a%FF", NotUtf8),
            ("x.wpmeta/y", ReservedSuffix),
        ];
        for (raw, want) in cases {
            assert_eq!(AssetPath::from_url_path(raw), Err(want), "{raw}");
        }
        assert_eq!(AssetPath::new(&"a".repeat(300)), Err(SegmentTooLong));
        assert_eq!(AssetPath::new(&"a/".repeat(600)), Err(TooLong));
        // The same rule through TryFrom<String>.
        assert_eq!(
            AssetPath::try_from("a/../b".to_string()),
            Err(DotSegment("..".into()))
        );
        let ok = AssetPath::try_from("img/logo.svg".to_string()).unwrap();
        assert_eq!(String::from(ok), "img/logo.svg");
    }
}
