//! The config file as written: serde types with every default spelled out
//! and unknown fields refused, so a typo is an error rather than a silently
//! ignored setting. `super` turns these into validated types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listen: RawListen,
    #[serde(default)]
    pub geoip: RawGeoIp,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    #[serde(default)]
    pub regions: BTreeMap<String, RawRegion>,
    #[serde(default)]
    pub zones: Vec<RawZone>,
    /// Log queries as JSON lines (target `geodns::query`).
    #[serde(default)]
    pub query_log: bool,
    /// With `query_log`, log one query in this many (per UDP worker and on
    /// the general path), so a flood does not turn into a flood of lines.
    #[serde(default = "default_query_log_sample")]
    pub query_log_sample: u32,
}

fn default_query_log_sample() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// Addresses served over both UDP and TCP.
    #[serde(default = "default_dns")]
    pub dns: Vec<String>,
    /// HTTP address of `/metrics`; none when absent.
    pub metrics: Option<String>,
    /// A TCP connection with no query for this long is closed.
    #[serde(default = "default_tcp_timeout", with = "humantime_serde")]
    pub tcp_timeout: Duration,
    /// Time a client has to send one whole query once its first byte came,
    /// and we have to write its reply: a client trickling bytes is cut.
    #[serde(default = "default_tcp_io_timeout", with = "humantime_serde")]
    pub tcp_io_timeout: Duration,
    /// A connection is closed after this long whatever it does, so queries
    /// sent just before each idle timeout cannot hold a slot forever.
    #[serde(default = "default_tcp_max_lifetime", with = "humantime_serde")]
    pub tcp_max_lifetime: Duration,
    /// Open TCP connections per process; past it new connections wait in
    /// the kernel's backlog until one closes.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    /// Open TCP connections per client address; one more is closed at once.
    #[serde(default = "default_tcp_max_per_client")]
    pub tcp_max_per_client: usize,
    /// UDP worker threads per address, each with its own SO_REUSEPORT
    /// socket (the fast path); one per core when absent; 0 serves UDP from
    /// the async runtime only.
    pub udp_threads: Option<usize>,
}

impl Default for RawListen {
    fn default() -> Self {
        Self {
            dns: default_dns(),
            metrics: None,
            tcp_timeout: default_tcp_timeout(),
            tcp_io_timeout: default_tcp_io_timeout(),
            tcp_max_lifetime: default_tcp_max_lifetime(),
            tcp_max_connections: default_tcp_max_connections(),
            tcp_max_per_client: default_tcp_max_per_client(),
            udp_threads: None,
        }
    }
}

fn default_tcp_io_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_tcp_max_lifetime() -> Duration {
    Duration::from_secs(120)
}

fn default_tcp_max_connections() -> usize {
    1024
}

fn default_tcp_max_per_client() -> usize {
    16
}

/// Response rate limiting on UDP (as BIND's and Knot's RRL): replies to
/// one client prefix beyond `responses_per_second` are dropped, every
/// `slip`-th of them sent as an empty truncated reply instead, so a real
/// client retries over TCP (which is not limited) while a spoofed victim
/// gets no amplified traffic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Replies per second to one prefix; 0 turns rate limiting off.
    #[serde(default = "default_responses_per_second")]
    pub responses_per_second: u32,
    /// Every slip-th limited reply is sent truncated (TC) instead of
    /// dropped; 0 drops them all, 1 truncates them all.
    #[serde(default = "default_slip")]
    pub slip: u32,
    /// Client addresses are counted per prefix of this length.
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4_prefix: u8,
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Prefixes tracked at once (a fixed table: spoofed sources cannot grow
    /// it; 8 bytes each).
    #[serde(default = "default_rate_table_size")]
    pub table_size: usize,
    /// Source CIDRs never limited (your own resolvers, monitoring).
    #[serde(default)]
    pub exempt: Vec<String>,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            responses_per_second: default_responses_per_second(),
            slip: default_slip(),
            ipv4_prefix: default_ipv4_prefix(),
            ipv6_prefix: default_ipv6_prefix(),
            table_size: default_rate_table_size(),
            exempt: Vec::new(),
        }
    }
}

fn default_responses_per_second() -> u32 {
    200
}

fn default_slip() -> u32 {
    2
}

fn default_ipv4_prefix() -> u8 {
    24
}

fn default_ipv6_prefix() -> u8 {
    56
}

fn default_rate_table_size() -> usize {
    65_536
}

fn default_dns() -> Vec<String> {
    vec!["127.0.0.1:5353".to_owned()]
}

fn default_tcp_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoIp {
    /// A MaxMind-format database (City or Country).
    pub database: Option<String>,
    #[serde(default)]
    pub overrides: Vec<RawOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    pub cidr: String,
    /// The region clients in `cidr` belong to.
    pub region: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_threshold")]
    pub rise: u32,
    #[serde(default = "default_threshold")]
    pub fall: u32,
    /// PEM bundle of the CAs that `https://` health URLs' certificates must
    /// chain to, instead of the built-in (webpki) roots: for endpoints
    /// with certificates from a private CA.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for RawHealth {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            timeout: default_timeout(),
            rise: default_threshold(),
            fall: default_threshold(),
            ca_file: None,
        }
    }
}

/// Two failed checks half a second apart, each given 400 ms, take a dead
/// region out within about 1.3 s: under the 2 s failover budget.
fn default_interval() -> Duration {
    Duration::from_millis(500)
}

fn default_timeout() -> Duration {
    Duration::from_millis(400)
}

fn default_threshold() -> u32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub latitude: f64,
    pub longitude: f64,
    /// ISO country codes whose clients go here first.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Continent codes (EU, NA, …) whose clients go here before distance counts.
    #[serde(default)]
    pub continents: Vec<String>,
    pub endpoints: Vec<RawEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub address: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// `http://…` or `https://…` URL whose 2xx answer (redirects are not followed) means the endpoint is up; without it
    /// the endpoint is always considered healthy. Its host must be
    /// `address` itself unless `health_on_other_host` is set.
    pub health: Option<String>,
    /// The health URL names another host than `address` on purpose (an
    /// edge's private admin listener, a load balancer's status page): a
    /// check there says something about `address` only if the operator
    /// knows it does, so it has to be said.
    #[serde(default)]
    pub health_on_other_host: bool,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub origin: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// TTL of geo answers while every region is healthy.
    #[serde(default = "default_geo_ttl")]
    pub geo_ttl: u32,
    /// TTL of geo answers while any region is down, so clients come back
    /// soon after it recovers.
    #[serde(default = "default_degraded_ttl")]
    pub degraded_ttl: u32,
    /// Most endpoints in one geo answer; weights choose among more.
    #[serde(default = "default_max_answers")]
    pub max_answers: usize,
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub soa: RawSoa,
    #[serde(default)]
    pub records: Vec<RawRecord>,
    #[serde(default)]
    pub geo: Vec<RawGeo>,
}

fn default_ttl() -> u32 {
    300
}

fn default_geo_ttl() -> u32 {
    30
}

fn default_degraded_ttl() -> u32 {
    5
}

fn default_max_answers() -> usize {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSoa {
    /// Mailbox in name form; `hostmaster.<origin>` by default.
    pub rname: Option<String>,
    #[serde(default = "default_serial")]
    pub serial: u32,
    #[serde(default = "default_refresh")]
    pub refresh: i32,
    #[serde(default = "default_retry")]
    pub retry: i32,
    #[serde(default = "default_expire")]
    pub expire: i32,
    /// Negative-caching TTL (RFC 2308).
    #[serde(default = "default_minimum")]
    pub minimum: u32,
}

impl Default for RawSoa {
    fn default() -> Self {
        Self {
            rname: None,
            serial: default_serial(),
            refresh: default_refresh(),
            retry: default_retry(),
            expire: default_expire(),
            minimum: default_minimum(),
        }
    }
}

fn default_serial() -> u32 {
    1
}
fn default_refresh() -> i32 {
    3600
}
fn default_retry() -> i32 {
    600
}
fn default_expire() -> i32 {
    604_800
}
fn default_minimum() -> u32 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    /// `@`, a name relative to the origin, or an absolute name ending in `.`.
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    /// Record data in zone-file syntax; names inside it must be absolute.
    pub value: String,
    pub ttl: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeo {
    pub name: String,
    /// Regions that may answer for this name.
    pub regions: Vec<String>,
    pub ttl: Option<u32>,
}
