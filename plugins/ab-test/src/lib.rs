//! The logic of the `ab-test` plugin, apart from the handler so it is
//! unit-tested on the host.

/// The cookie holding a client's bucket.
pub const COOKIE: &str = "wp_ab";
/// How long the bucket cookie lives: 30 days.
pub const COOKIE_MAX_AGE: u32 = 2_592_000;

/// One of the two buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    A,
    B,
}

impl Bucket {
    /// `"a"` or `"b"`, as in the cookie and `x-ab-bucket`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::A => "a",
            Bucket::B => "b",
        }
    }
}

/// The bucket in the `wp_ab` cookie of `cookie_headers` (every `Cookie`
/// header of the request); `None` when absent or not `a`/`b`.
pub fn bucket_from_cookies<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
) -> Option<Bucket> {
    cookie_headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| match value.trim().trim_matches('"') {
            "a" => Some(Bucket::A),
            "b" => Some(Bucket::B),
            _ => None,
        })
}

/// The bucket for a new client: `A` with probability `split_a` percent
/// (0-100), given a uniformly random `random`.
pub fn pick(random: u64, split_a: u8) -> Bucket {
    if random % 100 < u64::from(split_a.min(100)) {
        Bucket::A
    } else {
        Bucket::B
    }
}

/// Parses the `split` config value: an integer percentage 0-100.
pub fn parse_split(raw: Option<&str>) -> Result<u8, String> {
    match raw.map(str::trim) {
        None => Ok(50),
        Some(raw) => match raw.parse::<u8>() {
            Ok(split) if split <= 100 => Ok(split),
            _ => Err(format!("`split` must be a percentage 0-100, got {raw:?}")),
        },
    }
}

/// `path_and_query` under `prefix`: `/a` + `/x?y=1` → `/a/x?y=1`.
pub fn prefixed(prefix: &str, path_and_query: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let path_and_query = if path_and_query.starts_with('/') {
        path_and_query.to_owned()
    } else {
        format!("/{path_and_query}")
    };
    if prefix.is_empty() {
        path_and_query
    } else if prefix.starts_with('/') {
        format!("{prefix}{path_and_query}")
    } else {
        format!("/{prefix}{path_and_query}")
    }
}

/// The `Set-Cookie` value giving a client its bucket.
pub fn set_cookie(bucket: Bucket) -> String {
    format!(
        "{COOKIE}={}; Path=/; Max-Age={COOKIE_MAX_AGE}; SameSite=Lax",
        bucket.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies() {
        assert_eq!(bucket_from_cookies(["wp_ab=a"]), Some(Bucket::A));
        assert_eq!(bucket_from_cookies(["x=1; wp_ab=b; y=2"]), Some(Bucket::B));
        assert_eq!(bucket_from_cookies(["x=1", "wp_ab=b"]), Some(Bucket::B));
        assert_eq!(bucket_from_cookies(["wp_ab=c"]), None);
        assert_eq!(bucket_from_cookies(["xwp_ab=a"]), None);
        assert_eq!(bucket_from_cookies(["wp_abc=a"]), None);
        assert_eq!(bucket_from_cookies(std::iter::empty()), None);
    }

    #[test]
    fn picking_follows_the_split() {
        let count_a = |split| {
            (0..10_000u64)
                .filter(|r| pick(*r, split) == Bucket::A)
                .count()
        };
        assert_eq!(count_a(50), 5_000);
        assert_eq!(count_a(0), 0);
        assert_eq!(count_a(100), 10_000);
        assert_eq!(count_a(10), 1_000);
        assert_eq!(pick(u64::MAX, 100), Bucket::A);
    }

    #[test]
    fn splits() {
        assert_eq!(parse_split(None), Ok(50));
        assert_eq!(parse_split(Some(" 20 ")), Ok(20));
        assert_eq!(parse_split(Some("100")), Ok(100));
        assert!(parse_split(Some("101")).is_err());
        assert!(parse_split(Some("-1")).is_err());
        assert!(parse_split(Some("half")).is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefixed("/a", "/x?y=1"), "/a/x?y=1");
        assert_eq!(prefixed("/a/", "/"), "/a/");
        assert_eq!(prefixed("b", "/x"), "/b/x");
        assert_eq!(prefixed("", "/x"), "/x");
        assert_eq!(prefixed("/v2/b", "/x"), "/v2/b/x");
    }

    #[test]
    fn cookie_attributes() {
        assert_eq!(
            set_cookie(Bucket::B),
            "wp_ab=b; Path=/; Max-Age=2592000; SameSite=Lax"
        );
    }
}
