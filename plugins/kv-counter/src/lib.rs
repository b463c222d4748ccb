//! The logic of the `kv-counter` plugin, apart from the handler so it is
//! unit-tested on the host.

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET` or `HEAD /counter/<name>`.
    Read(&'a str),
    /// `POST /counter/<name>`.
    Increment(&'a str),
    /// `GET` or `HEAD /counters`: every counter's name.
    List,
    /// `/counter/<name>` or `/counters` with another method; the methods
    /// it takes, for `Allow`.
    MethodNotAllowed(&'static str),
    /// `/counter/<name>` with a name that is not allowed.
    BadName,
    /// Anything else.
    NotFound,
}

/// The route of `method` + `path`.
pub fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    if path == "/counters" {
        return match method {
            "GET" | "HEAD" => Route::List,
            _ => Route::MethodNotAllowed("GET, HEAD"),
        };
    }
    let Some(name) = path.strip_prefix("/counter/") else {
        return Route::NotFound;
    };
    if !valid_name(name) {
        return Route::BadName;
    }
    match method {
        "GET" | "HEAD" => Route::Read(name),
        "POST" => Route::Increment(name),
        _ => Route::MethodNotAllowed("GET, HEAD, POST"),
    }
}

/// Counter names: 1 to 128 of `A-Z a-z 0-9 - _ .` (so a name is also a
/// fine KV key and needs no escaping anywhere).
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A stored counter value (decimal ASCII); `None` when it is not one.
pub fn decode(stored: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(stored).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The value to store for `value`.
pub fn encode(value: u64) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// The JSON answer `{"name":"<name>","value":N}`.
pub fn answer(name: &str, value: u64) -> String {
    serde_json::json!({ "name": name, "value": value }).to_string()
}

/// The JSON answer `{"counters":["<name>",…]}`.
pub fn listing(names: &[String]) -> String {
    serde_json::json!({ "counters": names }).to_string()
}

/// A JSON error body `{"error":"<message>"}`.
pub fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/counter/hits"), Route::Read("hits"));
        assert_eq!(route("HEAD", "/counter/hits"), Route::Read("hits"));
        assert_eq!(
            route("POST", "/counter/a.b-c_9"),
            Route::Increment("a.b-c_9")
        );
        assert_eq!(
            route("DELETE", "/counter/hits"),
            Route::MethodNotAllowed("GET, HEAD, POST")
        );
        assert_eq!(route("GET", "/counters"), Route::List);
        assert_eq!(
            route("POST", "/counters"),
            Route::MethodNotAllowed("GET, HEAD")
        );
        assert_eq!(listing(&["a".into()]), r#"{"counters":["a"]}"#);
        assert_eq!(route("GET", "/counter/"), Route::BadName);
        assert_eq!(route("GET", "/counter/a/b"), Route::BadName);
        assert_eq!(route("GET", "/counter/%2F"), Route::BadName);
        assert_eq!(
            route("GET", &format!("/counter/{}", "x".repeat(129))),
            Route::BadName
        );
        assert_eq!(route("GET", "/counters/hits"), Route::NotFound);
        assert_eq!(route("GET", "/"), Route::NotFound);
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(decode(&encode(0)), Some(0));
        assert_eq!(decode(&encode(u64::MAX)), Some(u64::MAX));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"-1"), None);
        assert_eq!(decode(b" 1"), None);
        assert_eq!(decode(b"18446744073709551616"), None);
    }

    #[test]
    fn json() {
        assert_eq!(answer("hits", 3), r#"{"name":"hits","value":3}"#);
        assert_eq!(error_body("kv \"down\""), r#"{"error":"kv \"down\""}"#);
    }
}
