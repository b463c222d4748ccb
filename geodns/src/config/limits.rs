//! The abuse limits of the config: TCP connection limits and UDP response
//! rate limiting, validated so a limit that would do nothing (or refuse
//! everything) is reported with its field.

use std::time::Duration;

use ipnet::IpNet;
use service_base::config_file::FieldError;

use super::raw::{RawListen, RawRateLimit};

/// Most slots the rate-limit table may have (64 MiB of table).
const MAX_RATE_TABLE: usize = 1 << 23;

/// How TCP clients are bounded.
#[derive(Debug, Clone)]
pub struct TcpLimits {
    /// No query for this long closes the connection.
    pub idle_timeout: Duration,
    /// One query's bytes, once started, and its reply's write.
    pub io_timeout: Duration,
    /// A connection is closed after this long whatever it does.
    pub max_lifetime: Duration,
    pub max_connections: usize,
    pub max_per_client: usize,
}

/// UDP response rate limiting; `None` in [`super::Config`] when off.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub responses_per_second: u32,
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// A power of two.
    pub table_size: usize,
    pub exempt: Vec<IpNet>,
}

pub fn tcp_limits(raw: &RawListen) -> Result<TcpLimits, FieldError> {
    for (field, value) in [
        ("listen.tcp_timeout", raw.tcp_timeout),
        ("listen.tcp_io_timeout", raw.tcp_io_timeout),
        ("listen.tcp_max_lifetime", raw.tcp_max_lifetime),
    ] {
        if value.is_zero() {
            return Err(FieldError::new(field, "must be above 0"));
        }
    }
    if raw.tcp_max_connections == 0 {
        return Err(FieldError::new(
            "listen.tcp_max_connections",
            "must be at least 1 (TCP is required of a DNS server, RFC 7766)",
        ));
    }
    if raw.tcp_max_per_client == 0 || raw.tcp_max_per_client > raw.tcp_max_connections {
        return Err(FieldError::new(
            "listen.tcp_max_per_client",
            "must be between 1 and listen.tcp_max_connections",
        ));
    }
    Ok(TcpLimits {
        idle_timeout: raw.tcp_timeout,
        io_timeout: raw.tcp_io_timeout,
        max_lifetime: raw.tcp_max_lifetime,
        max_connections: raw.tcp_max_connections,
        max_per_client: raw.tcp_max_per_client,
    })
}

pub fn rate_limit(raw: &RawRateLimit) -> Result<Option<RateLimitConfig>, FieldError> {
    if raw.responses_per_second == 0 {
        return Ok(None);
    }
    if !(1..=32).contains(&raw.ipv4_prefix) {
        return Err(FieldError::new(
            "rate_limit.ipv4_prefix",
            "must be between 1 and 32",
        ));
    }
    if !(1..=128).contains(&raw.ipv6_prefix) {
        return Err(FieldError::new(
            "rate_limit.ipv6_prefix",
            "must be between 1 and 128",
        ));
    }
    if raw.table_size == 0 || raw.table_size > MAX_RATE_TABLE {
        return Err(FieldError::new(
            "rate_limit.table_size",
            format!("must be between 1 and {MAX_RATE_TABLE}"),
        ));
    }
    let mut exempt = Vec::new();
    for (i, cidr) in raw.exempt.iter().enumerate() {
        let net: IpNet = cidr.parse().map_err(|e| {
            FieldError::new(
                format!("rate_limit.exempt[{i}]"),
                format!("{cidr:?} is not a CIDR: {e}"),
            )
        })?;
        exempt.push(net.trunc());
    }
    Ok(Some(RateLimitConfig {
        // The counter holds 24 bits.
        responses_per_second: raw.responses_per_second.min((1 << 24) - 2),
        slip: raw.slip,
        ipv4_prefix: raw.ipv4_prefix,
        ipv6_prefix: raw.ipv6_prefix,
        table_size: raw.table_size.next_power_of_two(),
        exempt,
    }))
}
