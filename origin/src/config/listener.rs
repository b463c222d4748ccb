//! `[limits]` (the public listener at `listen`) and `[peer]` (an optional
//! listener of its own for the traffic between regions).
//!
//! ```toml
//! [limits]
//! header_read_timeout = "10s"   # a request head must arrive within this
//! idle_timeout = "60s"          # close a connection idle this long
//! max_connections = 10000       # more get 503 + Retry-After: 1
//! max_header_bytes = 16384      # larger heads get 431
//! drain_timeout = "30s"         # graceful shutdown waits this long
//!
//! [peer]
//! listen = "10.0.1.10:7071"     # Raft RPCs, forwarded writes, blob copies
//! max_connections = 1024        # same fields as [limits], own defaults
//! ca_file = "/etc/waypost/peer-ca.pem"   # mutual TLS between regions:
//! cert_file = "/etc/waypost/peer.pem"    # all three or none (see
//! key_file = "/etc/waypost/peer.key"     # crate::peer_tls)
//! ```
//!
//! Without `[peer]` the regions talk to each other on `listen`, sharing
//! its connection cap with every client (configs from before `[peer]`
//! existed keep working). With it, the cluster members' `addr`s are the
//! peer addresses; the peer listener answers only `/internal/*`,
//! `/cluster*` and `/healthz`, and the public one no `/internal/*`, so a
//! flood of the public port leaves the cluster's own connections alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use service_base::config_file::FieldError;

use crate::listen::{CLIENT_POOL_IDLE, Limits, MIN_HEADER_BYTES};
use crate::peer_tls::PeerTlsFiles;

/// The separate listener for traffic between regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerListener {
    pub listen: SocketAddr,
    pub limits: Limits,
    /// Mutual TLS between regions; `None` is plaintext with the cluster
    /// token.
    pub tls: Option<PeerTlsFiles>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default, with = "humantime_serde")]
    header_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
    max_connections: Option<usize>,
    max_header_bytes: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    drain_timeout: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    listen: String,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(flatten)]
    limits: RawLimits,
}

impl RawLimits {
    pub(super) fn validate(self, section: &str, defaults: Limits) -> Result<Limits, FieldError> {
        let limits = Limits {
            header_read_timeout: self
                .header_read_timeout
                .unwrap_or(defaults.header_read_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(defaults.idle_timeout),
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            max_header_bytes: self.max_header_bytes.unwrap_or(defaults.max_header_bytes),
            drain_timeout: self.drain_timeout.unwrap_or(defaults.drain_timeout),
        };
        check_limits(section, &limits)?;
        Ok(limits)
    }
}

impl RawPeer {
    pub(super) fn validate(self) -> Result<PeerListener, FieldError> {
        let listen = self.listen.parse().map_err(|e| {
            FieldError::new(
                "peer.listen",
                format!(
                    "`{}` is not an address like 10.0.1.10:7071 ({e})",
                    self.listen
                ),
            )
        })?;
        let limits = self.limits.validate("peer", Limits::PEER)?;
        if limits.idle_timeout <= CLIENT_POOL_IDLE {
            return Err(FieldError::new(
                "peer.idle_timeout",
                format!(
                    "must be longer than {CLIENT_POOL_IDLE:?}, how long the other regions keep an \
                     idle connection to this one"
                ),
            ));
        }
        let tls = match (self.ca_file, self.cert_file, self.key_file) {
            (Some(ca_file), Some(cert_file), Some(key_file)) => Some(PeerTlsFiles {
                ca_file,
                cert_file,
                key_file,
            }),
            (None, None, None) => None,
            (ca, cert, _) => {
                let missing = if ca.is_none() {
                    "ca_file"
                } else if cert.is_none() {
                    "cert_file"
                } else {
                    "key_file"
                };
                return Err(FieldError::new(
                    format!("peer.{missing}"),
                    "mutual TLS between regions needs all of ca_file, cert_file and key_file",
                ));
            }
        };
        Ok(PeerListener {
            listen,
            limits,
            tls,
        })
    }
}

/// Limits that can be enforced as written; `section` names the table.
pub fn check_limits(section: &str, limits: &Limits) -> Result<(), FieldError> {
    if limits.max_header_bytes < MIN_HEADER_BYTES {
        return Err(FieldError::new(
            format!("{section}.max_header_bytes"),
            format!("must be at least {MIN_HEADER_BYTES} (hyper's smallest HTTP/1 buffer)"),
        ));
    }
    let zero = [
        ("header_read_timeout", limits.header_read_timeout.is_zero()),
        ("idle_timeout", limits.idle_timeout.is_zero()),
        ("max_connections", limits.max_connections == 0),
    ];
    if let Some((field, _)) = zero.into_iter().find(|(_, is_zero)| *is_zero) {
        return Err(FieldError::new(
            format!("{section}.{field}"),
            "must be greater than zero",
        ));
    }
    Ok(())
}
