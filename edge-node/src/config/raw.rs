//! The config file as written: every field optional where a default is sane,
//! unknown fields refused so typos are caught.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ByteSize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listen: RawListen,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub limits: RawLimits,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub pools: Vec<RawPool>,
    #[serde(default)]
    pub sites: Vec<RawSite>,
    #[serde(default)]
    pub plugins: Vec<RawPlugin>,
    #[serde(default)]
    pub plugin_runtime: RawPluginRuntime,
    pub feed: Option<RawFeed>,
    #[serde(default)]
    pub consumers: Vec<RawConsumer>,
}

/// `[[consumers]]`: a wasm component consuming one queue in the
/// background.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub name: String,
    /// The `waypost:edge/queue-consumer` component (`.wasm`).
    pub file: PathBuf,
    pub queue: String,
    /// Most messages handed to one call.
    #[serde(default = "default_consumer_batch")]
    pub batch: usize,
    /// Batches handled at once.
    #[serde(default = "default_consumer_concurrency")]
    pub concurrency: usize,
    /// Deadline of one call (longer than a request's: this is slow work).
    #[serde(with = "humantime_serde", default = "secs::<60>")]
    pub timeout: Duration,
    #[serde(default = "default_consumer_memory")]
    pub memory: ByteSize,
    /// Also send the consumer's own queue a tick at every multiple of
    /// this interval (cron); one per interval across every edge.
    #[serde(with = "humantime_serde", default)]
    pub schedule: Option<Duration>,
    #[serde(default)]
    pub kv_namespaces: Vec<String>,
    #[serde(default)]
    pub assets: Vec<String>,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub backends: Vec<String>,
    #[serde(default)]
    pub purge: bool,
}

fn default_consumer_batch() -> usize {
    10
}

fn default_consumer_concurrency() -> usize {
    1
}

fn default_consumer_memory() -> ByteSize {
    ByteSize(256 << 20)
}

/// `[feed]`: follow an origin's change feed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeed {
    /// The pool whose origins serve `GET /events`.
    pub pool: String,
    /// Whether plugin versions published at the origin replace the
    /// versions of the plugins this edge declares.
    #[serde(default = "yes")]
    pub plugins: bool,
    /// Bearer token the origin reads the feed and plugin versions with (its
    /// `read_token`); the origin refuses them without one.
    pub token: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

impl Default for RawListen {
    fn default() -> Self {
        Self {
            http: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            https: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default = "default_admin")]
    pub listen: SocketAddr,
    /// Bearer token for purges and plugin uploads; the `EDGE_ADMIN_TOKEN`
    /// environment variable overrides it (keep it out of the file).
    pub token: Option<String>,
    /// Serve the admin API over TLS with the certificates of `[tls]`
    /// (chosen by SNI as on the public HTTPS listener); then it may listen
    /// off loopback.
    #[serde(default)]
    pub tls: bool,
    /// Allow what is refused by default: a plaintext listener on a
    /// non-loopback address (only on a private network behind a firewall)
    /// and a placeholder token such as `change-me`.
    #[serde(default)]
    pub allow_insecure: bool,
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9080))
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: default_admin(),
            token: None,
            tls: false,
            allow_insecure: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_header_bytes: ByteSize,
    pub max_headers: usize,
    pub max_body_bytes: ByteSize,
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Most open connections per client (IPv4 address, IPv6 /64).
    pub max_connections_per_client: usize,
    /// How long a write to a client may make no progress.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: ByteSize(16 << 10),
            max_headers: 100,
            max_body_bytes: ByteSize(100 << 20),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_client: 256,
            write_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub certificates: Vec<RawCert>,
    #[serde(with = "humantime_serde", default = "default_reload")]
    pub reload_interval: Duration,
}

fn default_reload() -> Duration {
    Duration::from_secs(5)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    pub memory_capacity: ByteSize,
    pub max_memory_object: ByteSize,
    /// Largest response stored at all; bigger ones pass through.
    pub max_object_size: ByteSize,
    pub disk: Option<RawDisk>,
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    #[serde(with = "humantime_serde")]
    pub keep: Duration,
    /// RFC 9213 targeted fields, first wins; `[]` turns targeting off.
    pub targeted_fields: Vec<String>,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            memory_capacity: ByteSize(256 << 20),
            max_memory_object: ByteSize(2 << 20),
            max_object_size: ByteSize(1 << 30),
            disk: None,
            grace: Duration::from_secs(600),
            keep: Duration::from_secs(3600),
            targeted_fields: crate::cache::DEFAULT_TARGETED_FIELDS
                .iter()
                .map(|f| f.to_string())
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisk {
    pub dir: PathBuf,
    pub capacity: ByteSize,
    /// RAM for the disk tier's index (a few hundred bytes per object on
    /// disk), taken out of `memory_capacity`; default a quarter of it.
    pub index_memory: Option<ByteSize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub name: String,
    /// One region's origins; or use `regions` for failover across regions.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Origin regions in order of preference (nearest first): traffic goes
    /// to the first region with a healthy origin.
    #[serde(default)]
    pub regions: Vec<RawRegion>,
    #[serde(default = "default_health_path")]
    pub health_path: String,
    #[serde(with = "humantime_serde", default = "secs::<1>")]
    pub health_interval: Duration,
    #[serde(with = "humantime_serde", default = "secs::<1>")]
    pub health_timeout: Duration,
    #[serde(default = "two")]
    pub rise: u32,
    #[serde(default = "two")]
    pub fall: u32,
    #[serde(with = "humantime_serde", default = "secs::<2>")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde", default = "secs::<30>")]
    pub response_timeout: Duration,
    #[serde(with = "humantime_serde", default = "secs::<30>")]
    pub between_bytes_timeout: Duration,
    /// Most cache fills (origin downloads being stored) at once; a miss
    /// beyond it is passed to the origin as the client asked (its Range
    /// included) and not stored.
    #[serde(default = "default_max_fills")]
    pub max_fills: usize,
    /// Most connections this edge opens to each origin of the pool;
    /// requests beyond it wait for one to come free.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long a request waits for a connection slot before the pool
    /// tries its next origin (and answers 503 when every one is full).
    #[serde(with = "humantime_serde", default = "secs::<5>")]
    pub queue_timeout: Duration,
    /// How `https://` origins are verified (CA, SNI name, client cert).
    pub tls: Option<super::origin_tls::RawOriginTls>,
}

fn default_max_fills() -> usize {
    64
}

fn default_max_connections() -> usize {
    512
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub name: String,
    pub origins: Vec<String>,
}

fn default_health_path() -> String {
    "/healthz".into()
}

fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}

fn two() -> u32 {
    2
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    #[serde(default = "any_host")]
    pub hosts: Vec<String>,
    #[serde(default = "root")]
    pub path_prefix: String,
    pub pool: String,
    /// Plugin names, in chain order (the first sees the request first).
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Values plugins read through `waypost:edge/config`.
    #[serde(default)]
    pub plugin_config: std::collections::HashMap<String, String>,
    /// Let request `Cache-Control: no-cache`/`max-age=0` and
    /// `Pragma: no-cache` force revalidation at the origin. Off: any client
    /// could otherwise turn every hit into origin traffic.
    #[serde(default)]
    pub honor_client_cache_control: bool,
    /// Drop `CDN-Cache-Control` and the other targeted fields from
    /// responses to clients.
    #[serde(default)]
    pub strip_targeted_cache_control: bool,
}

fn any_host() -> Vec<String> {
    vec!["*".into()]
}

fn root() -> String {
    "/".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugin {
    pub name: String,
    /// The wasi:http component (`.wasm`).
    pub file: PathBuf,
    #[serde(with = "humantime_serde", default = "secs::<5>")]
    pub timeout: Duration,
    #[serde(default = "default_plugin_memory")]
    pub memory: ByteSize,
    #[serde(default = "default_plugin_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "default_plugin_queue")]
    pub max_queue: usize,
    #[serde(default = "default_plugin_body")]
    pub max_response_bytes: ByteSize,
    /// KV namespaces the plugin may use; none unless listed.
    #[serde(default)]
    pub kv_namespaces: Vec<String>,
    /// Origin pools the plugin may call by name; none unless listed.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Whether the plugin may purge the cache.
    #[serde(default)]
    pub purge: bool,
    /// Queues the plugin may send to; none unless listed.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Asset path prefixes the plugin may read and write; none unless
    /// listed.
    #[serde(default)]
    pub assets: Vec<String>,
}

fn default_plugin_memory() -> ByteSize {
    ByteSize(64 << 20)
}

fn default_plugin_concurrency() -> usize {
    256
}

fn default_plugin_queue() -> usize {
    1024
}

fn default_plugin_body() -> ByteSize {
    ByteSize(64 << 20)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPluginRuntime {
    /// Where compiled plugin code is cached across restarts.
    pub compile_cache_dir: Option<PathBuf>,
    /// MaxMind-format database for `waypost:edge/geo`.
    pub geoip_db: Option<PathBuf>,
    /// Origin pool serving the KV API for `waypost:edge/kv`.
    pub kv_pool: Option<String>,
    /// Bearer token for KV writes at the origin.
    pub kv_token: Option<String>,
    #[serde(with = "humantime_serde", default)]
    pub kv_cache_ttl: Option<Duration>,
    /// How often plugin files are checked for a new version.
    #[serde(with = "humantime_serde", default)]
    pub reload_interval: Option<Duration>,
}
