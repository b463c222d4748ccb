//! Structured logging into the edge's JSON log; each line is tagged with
//! the plugin's name and version (and the request id) by the edge.
//!
//! `eprintln!` also works (wasi:cli stderr) but gives the edge no level or
//! fields.

use crate::bindings::waypost::edge::log as wit;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl From<Level> for wit::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        }
    }
}

/// Logs `message` with `fields` (key, value) at `level`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wit::log(level.into(), message, &fields);
}

/// Logs `message` at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message, &[]);
}
/// Logs `message` at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}
/// Logs `message` at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}
/// Logs `message` at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}
/// Logs `message` at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}
/// Logs `message` with `fields` at [`Level::Info`].
pub fn info_with(message: &str, fields: &[(&str, &str)]) {
    log(Level::Info, message, fields);
}
/// Logs `message` with `fields` at [`Level::Warn`].
pub fn warn_with(message: &str, fields: &[(&str, &str)]) {
    log(Level::Warn, message, fields);
}
/// Logs `message` with `fields` at [`Level::Error`].
pub fn error_with(message: &str, fields: &[(&str, &str)]) {
    log(Level::Error, message, fields);
}
