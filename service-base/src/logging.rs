//! JSON logs on stderr, one object per line, filtered by `RUST_LOG`
//! (default `info`), so access logs and errors can be shipped as they are.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once from `main`.
pub fn init_json() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
