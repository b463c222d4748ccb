//! Checks on credentials every server applies at start: a token copied
//! from the documentation (`change-me`) is known to everyone who read it,
//! so a server refuses to run with one rather than be open with a
//! password in its README. Presented credentials are compared in constant
//! time ([`constant_time_eq`]).

/// Whether `token` is one of the placeholders documentation and examples
/// use, or too short to resist guessing (under 16 characters).
pub fn weakness(token: &str) -> Option<&'static str> {
    placeholder(token).or_else(|| too_short(token))
}

/// Whether `token` is a placeholder from the documentation (`change-me`,
/// `secret`, …): known to everyone who read the docs, whatever the listener.
pub fn placeholder(token: &str) -> Option<&'static str> {
    const PLACEHOLDERS: &[&str] = &[
        "change-me",
        "changeme",
        "change_me",
        "replace-me",
        "secret",
        "token",
        "password",
        "admin",
    ];
    let lower = token.to_ascii_lowercase();
    PLACEHOLDERS
        .iter()
        .any(|p| lower == *p || lower.starts_with(&format!("{p}-")))
        .then_some(
            "is a placeholder from the documentation; generate one, e.g. `openssl rand -hex 32`",
        )
}

/// Whether `token` is too short (under 16 characters) to resist guessing
/// by anyone who can reach the listener.
pub fn too_short(token: &str) -> Option<&'static str> {
    (token.len() < 16)
        .then_some("is shorter than 16 characters; generate one, e.g. `openssl rand -hex 32`")
}

/// Compares a presented credential with the expected one without an early
/// exit, so response timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, weakness};

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"token-1", b"token-1"));
        assert!(!constant_time_eq(b"token-1", b"token-2"));
        assert!(!constant_time_eq(b"token", b"token-1"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn placeholders_and_short_tokens_are_weak() {
        assert!(weakness("change-me").is_some());
        assert!(weakness("CHANGE-ME").is_some());
        assert!(weakness("change-me-please-really").is_some());
        assert!(weakness("abc").is_some());
        assert!(weakness("3f9a1c0e7b2d4a5f8e6c1b0a9d7f3e2c").is_none());
    }
}
