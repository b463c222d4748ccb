//! What every Waypost server shares, so that operators see the same behaviour
//! from each binary: config files whose errors name the file and the field,
//! JSON logs on stderr, Prometheus text exposition, and the same shutdown
//! signals.

pub mod byte_range;
pub mod byte_size;
pub mod config_file;
pub mod error_line;
pub mod logging;
pub mod metrics_text;
pub mod pem;
pub mod secrets;
pub mod shutdown;
