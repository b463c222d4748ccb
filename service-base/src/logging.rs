//! JSON logs on stderr, one object per line, filtered by `RUST_LOG`
//! (default `info`), so access logs and errors can be shipped as they are.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once from `main`.
pub fn init_json() {
    init_json_with_default("info");
}

/// As [`init_json`], with `default` as the filter when `RUST_LOG` is unset
/// (for binaries whose dependencies are noisy at `info`).
pub fn init_json_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
