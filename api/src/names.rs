//! The names that cross process boundaries, each with one validation rule:
//! KV namespaces and keys, plugin names (asset names are in
//! [`crate::asset_path`]). A value of one of these types has passed its
//! rule, so the edge, the origin's routes, its state machine and the CLI
//! cannot disagree on what is valid.

use std::fmt;

/// Largest KV value, in bytes.
pub const MAX_KV_VALUE: usize = 1024 * 1024;
/// Longest KV namespace and key, in bytes.
pub const MAX_KV_NAME: usize = 1024;
/// Longest plugin or queue name (a DNS label).
pub const MAX_LABEL: usize = 64;
/// Longest plugin name.
pub const MAX_PLUGIN_NAME: usize = MAX_LABEL;

/// Why a KV namespace or key, or a plugin name, is refused; the message is
/// the 400 body or the config error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("the {0} must not be empty: use /kv/<namespace>/<key>")]
    EmptyKv(&'static str),
    #[error("the {0} is longer than {MAX_KV_NAME} bytes")]
    KvTooLong(&'static str),
    #[error("the {0} must not contain control characters")]
    KvControl(&'static str),
    #[error("a {what} is 1 to {MAX_LABEL} characters, got {len}")]
    LabelLength { what: &'static str, len: usize },
    #[error("{what} {name:?} contains {found:?}; use only a-z, 0-9 and -")]
    LabelChar {
        what: &'static str,
        name: String,
        found: char,
    },
    #[error("{what} {name:?} must not start or end with -")]
    LabelDash { what: &'static str, name: String },
}

/// A KV namespace or key (`what` says which): 1 to [`MAX_KV_NAME`] bytes,
/// no control characters. Anything else is allowed; clients percent-encode
/// it in URLs ([`crate::kv::key_path`]).
fn check_kv_name(what: &'static str, name: &str) -> Result<(), InvalidName> {
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

/// Plugin and queue names are DNS labels: 1 to 64 of `a-z`, `0-9` and
/// `-`, not starting or ending with `-`, so they can appear in hostnames,
/// paths and metric labels unescaped.
fn check_label(what: &'static str, name: &str) -> Result<(), InvalidName> {
    if name.is_empty() || name.len() > MAX_LABEL {
        return Err(InvalidName::LabelLength {
            what,
            len: name.len(),
        });
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(InvalidName::LabelChar {
            what,
            name: name.to_string(),
            found,
        });
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(InvalidName::LabelDash {
            what,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Defines a validated string newtype: built only through `TryFrom`
/// (or `parse`), serialised as the plain string, deserialised through the
/// same rule.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
        pub struct $name(String);

        impl $name {
            /// Checks `name` against this type's rule.
            pub fn parse(name: &str) -> Result<Self, InvalidName> {
                $check(name)?;
                Ok(Self(name.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(name: String) -> Result<Self, InvalidName> {
                $check(&name)?;
                Ok(Self(name))
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(name: &str) -> Result<Self, InvalidName> {
                Self::parse(name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A KV namespace: 1 to [`MAX_KV_NAME`] bytes, no control characters.
    Namespace,
    |n: &str| check_kv_name("namespace", n)
);
name_type!(
    /// A KV key: 1 to [`MAX_KV_NAME`] bytes, no control characters.
    KvKey,
    |k: &str| check_kv_name("key", k)
);
name_type!(
    /// A plugin name: a DNS label of `a-z`, `0-9` and `-`.
    PluginName,
    |n: &str| check_label("plugin name", n)
);
name_type!(
    /// A queue name: a DNS label of `a-z`, `0-9` and `-`.
    QueueName,
    |n: &str| check_label("queue name", n)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_dns_labels() {
        for ok in ["hello", "a", "geo-headers", "ab-test-2", &"x".repeat(64)] {
            assert!(PluginName::parse(ok).is_ok(), "{ok}");
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
            assert!(PluginName::parse(bad).is_err(), "{bad}");
        }
        let message = PluginName::parse("a_b").unwrap_err().to_string();
        assert!(message.contains("'_'"), "{message}");
    }

    #[test]
    fn kv_names_are_bounded_text() {
        assert!(KvKey::parse("a/b c").is_ok());
        assert_eq!(KvKey::parse(""), Err(InvalidName::EmptyKv("key")));
        assert_eq!(
            Namespace::parse(&"x".repeat(MAX_KV_NAME + 1)),
            Err(InvalidName::KvTooLong("namespace"))
        );
        assert_eq!(KvKey::parse("a\nb"), Err(InvalidName::KvControl("key")));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn names_deserialise_through_their_rule() {
        let ok: PluginName = serde_json::from_str(r#""hello""#).unwrap();
        assert_eq!(ok.as_str(), "hello");
        assert!(serde_json::from_str::<PluginName>(r#""Hello""#).is_err());
        assert!(serde_json::from_str::<Namespace>(r#""""#).is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#""hello""#);
    }
}
