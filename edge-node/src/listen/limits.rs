//! Per-listener resource limits.
//!
//! Every limit here protects the edge from a client that holds resources
//! without making progress (slow or silent peers, oversized heads, connection
//! floods). Each one is answered on the wire where HTTP allows it and is
//! logged and counted, so an operator can tell a misbehaving client from a
//! limit that is set too tight.

use std::fmt;
use std::time::Duration;

/// The smallest per-connection read buffer hyper accepts for HTTP/1; a
/// smaller `max_header_bytes` would make hyper panic, so it is refused.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

/// Limits applied to every connection of one listener.
///
/// Construct with struct-update syntax over [`Limits::default`] so that
/// fields added later get production defaults, and call [`Limits::validate`]
/// when the values come from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + headers) in bytes. HTTP/1 heads
    /// over this get `431`; for HTTP/2 it is advertised as
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` and enforced by the h2 stack.
    pub max_header_bytes: usize,
    /// Most header fields in one HTTP/1 request head; more get `431`.
    pub max_headers: usize,
    /// How long a client may take to deliver a complete HTTP/1 request head,
    /// counted from the first byte of the head (from the accept for the first
    /// request). Also bounds the TLS handshake. Plain-HTTP clients get `408`.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight before
    /// it is closed (HTTP/1 keep-alive and HTTP/2 alike).
    pub idle_timeout: Duration,
    /// Most concurrently open connections; further plain-HTTP clients get
    /// `503` with `Retry-After: 1`, TLS clients are closed.
    pub max_connections: usize,
    /// Most connections one client (an IPv4 address, an IPv6 /64) may
    /// keep open; more are refused like `max_connections`.
    pub max_connections_per_client: usize,
    /// How long a write to a client may make no progress (a client that
    /// stopped reading) before the connection is closed.
    pub write_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish before
    /// the remaining connections are dropped.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_client: 256,
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// A [`Limits`] value that cannot be served with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    /// `max_header_bytes` is below what the HTTP/1 stack can work with.
    #[error("max_header_bytes must be at least {MIN_HEADER_BYTES} (got {0})")]
    HeaderBytesTooSmall(usize),
    /// A limit that must be positive is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

impl Limits {
    /// Checks that the limits can be enforced as written.
    ///
    /// `serve` never panics on bad limits (it clamps), but configuration
    /// should be refused up front rather than silently adjusted.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(LimitsError::HeaderBytesTooSmall(self.max_header_bytes));
        }
        let zero_checks = [
            ("max_headers", self.max_headers == 0),
            ("header_read_timeout", self.header_read_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            ("max_connections", self.max_connections == 0),
            (
                "max_connections_per_client",
                self.max_connections_per_client == 0,
            ),
            ("write_timeout", self.write_timeout.is_zero()),
        ];
        match zero_checks.into_iter().find(|(_, is_zero)| *is_zero) {
            Some((field, _)) => Err(LimitsError::Zero(field)),
            None => Ok(()),
        }
    }

    /// `max_header_bytes` raised to what hyper accepts, so a bad value
    /// cannot panic the connection task.
    pub(crate) fn effective_header_bytes(&self) -> usize {
        self.max_header_bytes.max(MIN_HEADER_BYTES)
    }
}

/// Which limit a connection ran into; the `kind` label of the limit-hit
/// counter and the `limit` field of the log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// The request head exceeded `max_header_bytes` or `max_headers`.
    HeaderTooLarge,
    /// The request head (or the TLS handshake) took longer than
    /// `header_read_timeout`.
    HeaderTimeout,
    /// The connection sat without a request for `idle_timeout`.
    IdleTimeout,
    /// The TLS handshake failed.
    TlsHandshakeError,
    /// A response waited `write_timeout` for the client to read more.
    WriteTimeout,
}

impl LimitKind {
    /// Every kind, for pre-registering label values.
    pub const ALL: [LimitKind; 5] = [
        LimitKind::HeaderTooLarge,
        LimitKind::HeaderTimeout,
        LimitKind::IdleTimeout,
        LimitKind::TlsHandshakeError,
        LimitKind::WriteTimeout,
    ];

    /// The stable snake_case name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::HeaderTooLarge => "header_too_large",
            LimitKind::HeaderTimeout => "header_timeout",
            LimitKind::IdleTimeout => "idle_timeout",
            LimitKind::TlsHandshakeError => "tls_handshake_error",
            LimitKind::WriteTimeout => "write_timeout",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn refuses_tiny_header_buffer_and_zeroes() {
        let tiny = Limits {
            max_header_bytes: 1024,
            ..Limits::default()
        };
        assert_eq!(tiny.validate(), Err(LimitsError::HeaderBytesTooSmall(1024)));
        assert_eq!(tiny.effective_header_bytes(), MIN_HEADER_BYTES);
        let zero = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert_eq!(zero.validate(), Err(LimitsError::Zero("max_connections")));
    }
}
