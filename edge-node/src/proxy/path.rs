//! Request paths as routing and the cache see them: one spelling per
//! resource, decided before any site is matched.
//!
//! Without this, `/%68ello` skips the `/hello` site (and its plugin) while
//! the origin decodes it to `/hello`, and `/a/../hello` or `//hello` reach
//! a different site than the origin's router would pick. So, in order
//! (RFC 3986 §6.2.2): percent-encoded unreserved characters are decoded and
//! the hex digits of the remaining escapes upper-cased, dot segments are
//! removed (§5.2.4), and runs of `/` collapse to one. An encoded `/` or `\`
//! or a NUL is refused: origins disagree about whether `%2F` separates
//! segments, so any answer could route differently there.

use std::fmt;

/// Why a path is refused (the client gets 400 with this text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    EncodedSlash,
    EncodedBackslash,
    Nul,
    BadEscape,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::EncodedSlash => {
                "the path contains an encoded `/` (%2F), which origins split differently"
            }
            PathError::EncodedBackslash => {
                "the path contains a `\\` (or %5C), which some origins read as `/`"
            }
            PathError::Nul => "the path contains a NUL byte (%00)",
            PathError::BadEscape => "the path contains a `%` not followed by two hex digits",
        })
    }
}

/// The normalized form of `path` (which starts with `/`, as hyper
/// guarantees for origin-form targets; `*` and an empty path are returned
/// as they are). Borrowed when nothing changes, the common case.
pub fn normalize(path: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Ok(path.into());
    }
    let decoded = decode_unreserved(path)?;
    let needs_segments =
        decoded.contains("//") || decoded.split('/').any(|s| s == "." || s == "..");
    if !needs_segments {
        return Ok(decoded);
    }
    Ok(remove_dot_segments(&decoded).into())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes `%XX` of unreserved characters, upper-cases the others, and
/// refuses the escapes that could route differently at the origin.
fn decode_unreserved(path: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.contains(&b'\\') {
        return Err(PathError::EncodedBackslash);
    }
    if !bytes.contains(&b'%') {
        return Ok(path.into());
    }
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let value = hi * 16 + lo;
        match value {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::EncodedBackslash),
            0 => return Err(PathError::Nul),
            v if is_unreserved(v) => out.push(char::from(v)),
            v => {
                out.push('%');
                out.push_str(&format!("{v:02X}"));
            }
        }
        i += 3;
    }
    Ok(out.into())
}

/// RFC 3986 §5.2.4 on an absolute path, with empty segments dropped (so
/// `//` is one `/`); `..` above the root stays at the root.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let trailing_slash = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    out
}

/// Whether a site whose prefix is `prefix` serves `path`: on segment
/// boundaries, so `/hello` serves `/hello` and `/hello/x` but not
/// `/hellox`; a prefix ending in `/` serves what is under it.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> String {
        normalize(p).unwrap().into_owned()
    }

    #[test]
    fn unreserved_escapes_decode_and_others_are_upper_cased() {
        assert_eq!(n("/%68ello"), "/hello");
        assert_eq!(n("/%7Euser/%2e%2E/x"), "/x");
        assert_eq!(n("/a%20b"), "/a%20b");
        assert_eq!(n("/a%3fb"), "/a%3Fb");
        assert_eq!(n("/caf%c3%a9"), "/caf%C3%A9");
    }

    #[test]
    fn dot_segments_and_duplicate_slashes() {
        assert_eq!(n("/a/./b/../c"), "/a/c");
        assert_eq!(n("//hello"), "/hello");
        assert_eq!(n("/a//b///c/"), "/a/b/c/");
        assert_eq!(n("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(n("/a/.."), "/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/"), "/");
        assert_eq!(n("/.hidden/..x"), "/.hidden/..x");
    }

    #[test]
    fn ambiguous_escapes_are_refused() {
        assert_eq!(normalize("/a%2Fb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a%5Cb"), Err(PathError::EncodedBackslash));
        assert_eq!(normalize("/a\\b"), Err(PathError::EncodedBackslash));
        assert_eq!(normalize("/a%00"), Err(PathError::Nul));
        assert_eq!(normalize("/a%2"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEscape));
    }

    #[test]
    fn unchanged_paths_are_borrowed() {
        assert!(matches!(
            normalize("/assets/app.css").unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/hello", "/hello"));
        assert!(prefix_matches("/hello", "/hello/x"));
        assert!(!prefix_matches("/hello", "/hellox"));
        assert!(prefix_matches("/assets/", "/assets/x"));
        assert!(!prefix_matches("/assets/", "/assets"));
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("", "/anything"));
    }
}
