//! One-line error messages for binaries' exit paths.

/// The cause chain on one line, without a backtrace, so operators see the
/// file, field and reason at once. Causes that an outer message already
/// quotes (some errors print their source) are not repeated.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(error);
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("config x.toml: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_on_one_line_without_repeats() {
        let e = Outer(std::io::Error::other("denied"));
        assert_eq!(one_line(&e), "config x.toml: denied");
    }
}
