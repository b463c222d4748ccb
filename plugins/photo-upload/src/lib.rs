//! What `photo-upload` decides, apart from the edge calls, so it is tested
//! on the host: which uploads are accepted, where each version lives, and
//! the job message.

/// Largest photo accepted.
pub const MAX_PHOTO: u64 = 16 * 1024 * 1024;

/// The image formats accepted, by their leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
}

impl Format {
    /// The format `bytes` start with, if it is one we accept.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Format::Jpeg)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
        }
    }
}

/// A photo's name from the request path `/photos/<name>`: 1 to 100 of
/// `a-z 0-9 - _`, so it is safe in asset paths, URLs and logs.
pub fn photo_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/photos/")?;
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    ok.then_some(name)
}

/// Where the original of `name` is stored.
pub fn original(name: &str) -> String {
    format!("photos/originals/{name}")
}

/// The versions the thumbnailer makes: (kind, asset path).
pub fn versions(name: &str) -> [(&'static str, String); 2] {
    [
        ("thumbnail", format!("photos/thumbnails/{name}.png")),
        ("sepia", format!("photos/sepia/{name}.png")),
    ]
}

/// The job message for `name`.
pub fn job(name: &str) -> String {
    serde_json::json!({ "name": name, "original": original(name) }).to_string()
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed token was right.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_labels() {
        assert_eq!(photo_name("/photos/cat-1"), Some("cat-1"));
        for bad in [
            "/photos/",
            "/photos/a/b",
            "/photos/../x",
            "/photos/Cat",
            "/other/cat",
        ] {
            assert_eq!(photo_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_are_sniffed_not_trusted() {
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\nrest"), Some(Format::Png));
        assert_eq!(Format::sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"<svg>"), None);
    }

    #[test]
    fn the_job_names_the_original() {
        let job: serde_json::Value = serde_json::from_str(&job("cat")).unwrap();
        assert_eq!(job["original"], "photos/originals/cat");
        assert!(same_secret(b"abc", b"abc") && !same_secret(b"abc", b"abd"));
    }
}
