//! What one listener allows a connection: the same limits, and the same
//! answers, as the edge's listener (`edge-node/src/listen/`).
//!
//! Without them a client that opens connections and sends request heads a
//! byte at a time (slowloris) holds a file descriptor each for as long as
//! it likes; enough of them leave the process unable to accept anything,
//! including the Raft RPCs that keep the cluster writable.

use std::fmt;
use std::time::Duration;

/// The smallest per-connection read buffer hyper accepts for HTTP/1.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;

/// How long the origin's own clients (Raft, forwarded writes, blob copies)
/// keep an idle pooled connection. It must stay below the peers'
/// `idle_timeout`, or a request can go out on a connection the peer is
/// closing and fail with an unknown outcome.
pub const CLIENT_POOL_IDLE: Duration = Duration::from_secs(20);

/// Limits applied to every connection of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to deliver a complete HTTP/1 request
    /// head, from its first byte (from the accept for the first request);
    /// then `408` and close.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight
    /// (HTTP/1 keep-alive and HTTP/2 alike). Keep it above the idle time
    /// of clients' connection pools ([`CLIENT_POOL_IDLE`] for the origin's
    /// own; the peer listener refuses less), or a client can send on a
    /// connection the server is closing.
    pub idle_timeout: Duration,
    /// Most open connections; more get `503` + `Retry-After: 1` and close.
    pub max_connections: usize,
    /// Largest HTTP/1 request head in bytes (`431` beyond it); advertised
    /// to HTTP/2 clients as the header list size.
    pub max_header_bytes: usize,
    /// On graceful shutdown, how long in-flight requests may take before
    /// the remaining connections are dropped.
    pub drain_timeout: Duration,
}

impl Limits {
    /// The public API's defaults.
    pub const PUBLIC: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 10_000,
        max_header_bytes: 16 * 1024,
        drain_timeout: Duration::from_secs(30),
    };

    /// The peer listener's defaults: a handful of regions, each with a
    /// small pool of connections.
    pub const PEER: Self = Self {
        max_connections: 1024,
        ..Self::PUBLIC
    };
}

/// Which limit a connection ran into; the `kind` label of
/// `origin_connection_limits_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// The request head exceeded `max_header_bytes`.
    HeaderTooLarge,
    /// The request head took longer than `header_read_timeout`.
    HeaderTimeout,
    /// The connection sat without a request for `idle_timeout`.
    IdleTimeout,
}

impl LimitKind {
    /// The stable snake_case name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::HeaderTooLarge => "header_too_large",
            LimitKind::HeaderTimeout => "header_timeout",
            LimitKind::IdleTimeout => "idle_timeout",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
