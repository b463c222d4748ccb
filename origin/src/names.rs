//! Name rules shared by the HTTP routes and the replicated state machine:
//! a route refuses a bad name with 400 before proposing anything, and the
//! state machine refuses the same name in a command that reached it by
//! another way (a peer's `/internal/raft/write`, an old log entry), so
//! both sides apply one rule.

/// Largest KV value, in bytes.
pub const MAX_KV_VALUE: usize = 1024 * 1024;
/// Longest KV namespace and key, in bytes.
pub const MAX_KV_NAME: usize = 1024;
/// Longest plugin name.
pub const MAX_PLUGIN_NAME: usize = 64;

/// Why a KV namespace or key, or a plugin name, is refused; the message is
/// the 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("the {0} must not be empty: use /kv/<namespace>/<key>")]
    EmptyKv(&'static str),
    #[error("the {0} is longer than {MAX_KV_NAME} bytes")]
    KvTooLong(&'static str),
    #[error("the {0} must not contain control characters")]
    KvControl(&'static str),
    #[error("a plugin name is 1 to {MAX_PLUGIN_NAME} characters, got {0}")]
    PluginLength(usize),
    #[error("plugin name {name:?} contains {found:?}; use only a-z, 0-9 and -")]
    PluginChar { name: String, found: char },
    #[error("plugin name {0:?} must not start or end with -")]
    PluginDash(String),
}

/// A KV namespace or key (`what` says which): 1 to [`MAX_KV_NAME`] bytes,
/// no control characters.
pub fn check_kv_name(what: &'static str, name: &str) -> Result<(), InvalidName> {
    if name.is_empty() {
        return Err(InvalidName::EmptyKv(what));
    }
    if name.len() > MAX_KV_NAME {
        return Err(InvalidName::KvTooLong(what));
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidName::KvControl(what));
    }
    Ok(())
}

/// A plugin name is a DNS label: 1 to 64 of `a-z`, `0-9` and `-`, not
/// starting or ending with `-`, so it can appear in hostnames, paths and
/// metric labels unescaped.
pub fn check_plugin_name(name: &str) -> Result<(), InvalidName> {
    if name.is_empty() || name.len() > MAX_PLUGIN_NAME {
        return Err(InvalidName::PluginLength(name.len()));
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(InvalidName::PluginChar {
            name: name.to_string(),
            found,
        });
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(InvalidName::PluginDash(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_dns_labels() {
        for ok in ["hello", "a", "geo-headers", "ab-test-2", &"x".repeat(64)] {
            assert!(check_plugin_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Hello",
            "a_b",
            "-a",
            "a-",
            "a.b",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(check_plugin_name(bad).is_err(), "{bad}");
        }
        let message = check_plugin_name("a_b").unwrap_err().to_string();
        assert!(message.contains("'_'"), "{message}");
    }

    #[test]
    fn kv_names_are_bounded_text() {
        assert!(check_kv_name("key", "a/b c").is_ok());
        assert_eq!(check_kv_name("key", ""), Err(InvalidName::EmptyKv("key")));
        assert_eq!(
            check_kv_name("namespace", &"x".repeat(MAX_KV_NAME + 1)),
            Err(InvalidName::KvTooLong("namespace"))
        );
        assert_eq!(
            check_kv_name("key", "a\nb"),
            Err(InvalidName::KvControl("key"))
        );
    }
}
