//! The origin's configuration: a raw TOML shape that mirrors the file, and
//! the validated [`Config`] the server runs with.
//!
//! Parsing and validation are separate steps (as in ripgrep) so every
//! problem is reported through [`ConfigError`] with the file and the field.

mod blob_gc;
mod cluster;
mod feed;
mod listener;
mod raft_timing;
mod storage;

pub use blob_gc::BlobGc;
pub use cluster::ClusterConfig;
pub use listener::PeerListener;
pub use raft_timing::RaftTiming;
pub use storage::{S3Config, StorageConfig};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::public_tls::ServerTlsFiles;
use service_base::config_file::{self, ConfigError, FieldError};

/// The listen address used when the file does not name one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// The largest asset or plugin upload accepted by default (1 GiB).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 30;
/// The `Cache-Control` sent for assets no rule or upload header covers.
pub const DEFAULT_CACHE_CONTROL: &str = "public, max-age=60";

/// A validated origin configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP API listens; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Root of the local object store (blobs and metadata).
    pub data_dir: PathBuf,
    /// The cluster's own bearer token: scope `admin`, and without peer TLS
    /// also what regions present to each other on `/internal/*` (see
    /// [`crate::credentials`]).
    pub token: String,
    /// Bearer token that authorises reads of KV, the change feed, cluster
    /// state, plugins and metrics, but no writes: what edges and monitoring
    /// present. Without it only `token` reads them; assets and `/healthz`
    /// need no token.
    pub read_token: Option<String>,
    /// More tokens, `scope token` per line, re-read when the file changes
    /// (`tokens_file`; [`crate::credentials`]).
    pub tokens_file: Option<PathBuf>,
    /// `Cache-Control` for assets that match no rule.
    pub default_cache_control: String,
    /// Per-prefix `Cache-Control`; the longest matching prefix wins.
    pub cache_rules: Vec<CacheRule>,
    /// The Raft group of regions; `None` runs a group of one.
    pub cluster: Option<ClusterConfig>,
    /// Raft heartbeat and election timing (`[raft]`).
    pub raft: RaftTiming,
    /// Where blobs live (the Raft log and snapshots always stay in
    /// `data_dir`).
    pub storage: StorageConfig,
    /// The largest asset or plugin body `PUT` accepts (`max_upload_bytes`);
    /// larger ones get 413 naming it. Blobs pushed by peers are held to it
    /// too, so keep it the same in every region.
    pub max_upload_bytes: u64,
    /// Connection limits of the public listener (`[limits]`).
    pub limits: crate::listen::Limits,
    /// A listener of its own for traffic between regions (`[peer]`);
    /// `None` serves it on `listen`.
    pub peer: Option<PeerListener>,
    /// TLS on the public listener (`[tls]`); `None` serves plaintext.
    pub tls: Option<ServerTlsFiles>,
    /// How much of the change feed is kept per event class (`[feed]`).
    pub feed: crate::raft::FeedRetention,
    /// Collection of blobs nothing points at (`[blob_gc]`).
    pub blob_gc: BlobGc,
}

/// One `[[cache_rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRule {
    /// URL path prefix under `/assets`, e.g. `/static/`.
    pub prefix: String,
    /// The `Cache-Control` value for assets under `prefix`.
    pub cache_control: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    token: Option<String>,
    read_token: Option<String>,
    tokens_file: Option<PathBuf>,
    default_cache_control: Option<String>,
    #[serde(default)]
    cache_rules: Vec<RawCacheRule>,
    cluster: Option<cluster::RawCluster>,
    raft: Option<raft_timing::RawRaftTiming>,
    storage: Option<storage::RawStorage>,
    max_upload_bytes: Option<u64>,
    limits: Option<listener::RawLimits>,
    peer: Option<listener::RawPeer>,
    tls: Option<RawTls>,
    feed: Option<feed::RawFeed>,
    blob_gc: Option<blob_gc::RawBlobGc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCacheRule {
    prefix: String,
    cache_control: String,
}

impl Config {
    /// A configuration with every default, for embedding and tests.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>, token: impl Into<String>) -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("default listen address is valid"),
            data_dir: data_dir.into(),
            token: token.into(),
            read_token: None,
            tokens_file: None,
            default_cache_control: DEFAULT_CACHE_CONTROL.to_string(),
            cache_rules: Vec::new(),
            cluster: None,
            raft: RaftTiming::default(),
            storage: StorageConfig::Local,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            limits: crate::listen::Limits::PUBLIC,
            peer: None,
            tls: None,
            feed: crate::raft::FeedRetention::DEFAULT,
            blob_gc: BlobGc::DEFAULT,
        }
    }

    /// Reads and validates the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        config_file::load(path, validate)
    }

    /// Parses `text` as if it had been read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        config_file::parse(path, text, validate)
    }

    /// The `Cache-Control` for an asset at URL path `asset_path` (the part
    /// after `/assets`, starting with `/`) when its upload set none.
    pub fn cache_control_for(&self, asset_path: &str) -> &str {
        self.cache_rules
            .iter()
            .filter(|rule| asset_path.starts_with(&rule.prefix))
            .max_by_key(|rule| rule.prefix.len())
            .map_or(&self.default_cache_control, |rule| &rule.cache_control)
    }

    /// Everything [`Config::validate_shape`] checks, plus the strength of
    /// the tokens: what a server checks before it binds, after flags and
    /// the environment (`ORIGIN_TOKEN`) had their say.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.validate_shape()?;
        check_strength("token", &self.token, self.listen)?;
        if let Some(read) = &self.read_token {
            check_strength("read_token", read, self.listen)?;
        }
        Ok(())
    }

    /// Checks the invariants [`Config::load`] enforces. A placeholder token
    /// in a file passes here, since the environment may still replace it.
    pub fn validate_shape(&self) -> Result<(), FieldError> {
        check_token("token", &self.token)?;
        if let Some(read) = &self.read_token {
            check_token("read_token", read)?;
            if read == &self.token {
                return Err(FieldError::new(
                    "read_token",
                    "must differ from `token`: whoever holds the read token could write",
                ));
            }
        }
        check_header_value("default_cache_control", &self.default_cache_control)?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(FieldError::new("data_dir", "must not be empty"));
        }
        for (i, rule) in self.cache_rules.iter().enumerate() {
            check_rule(i, rule)?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        self.raft.validate()?;
        self.storage.validate()?;
        if self.max_upload_bytes == 0 {
            return Err(FieldError::new(
                "max_upload_bytes",
                "must be greater than zero",
            ));
        }
        listener::check_limits("limits", &self.limits)?;
        if let Some(peer) = &self.peer {
            listener::check_limits("peer", &peer.limits)?;
            if peer.listen == self.listen && peer.listen.port() != 0 {
                return Err(FieldError::new(
                    "peer.listen",
                    "must differ from `listen` (omit [peer] to share one listener)",
                ));
            }
        }
        Ok(())
    }
}

fn validate(raw: RawConfig) -> Result<Config, FieldError> {
    let listen = match raw.listen {
        None => DEFAULT_LISTEN
            .parse()
            .expect("default listen address is valid"),
        Some(text) => text.parse().map_err(|e| {
            FieldError::new(
                "listen",
                format!("`{text}` is not an address like 127.0.0.1:7070 ({e})"),
            )
        })?,
    };
    let data_dir = raw.data_dir.ok_or_else(|| {
        FieldError::new(
            "data_dir",
            "is required: the directory that holds blobs and metadata",
        )
    })?;
    let token = raw.token.ok_or_else(|| {
        FieldError::new(
            "token",
            "is required: the bearer token that authorises writes",
        )
    })?;
    let config = Config {
        listen,
        data_dir,
        token,
        read_token: raw.read_token,
        tokens_file: raw.tokens_file,
        default_cache_control: raw
            .default_cache_control
            .unwrap_or_else(|| DEFAULT_CACHE_CONTROL.to_string()),
        cache_rules: raw
            .cache_rules
            .into_iter()
            .map(|r| CacheRule {
                prefix: r.prefix,
                cache_control: r.cache_control,
            })
            .collect(),
        cluster: raw.cluster.map(cluster::RawCluster::validate).transpose()?,
        raft: raw
            .raft
            .map(raft_timing::RawRaftTiming::validate)
            .transpose()?
            .unwrap_or_default(),
        storage: raw
            .storage
            .map(storage::RawStorage::validate)
            .transpose()?
            .unwrap_or_default(),
        max_upload_bytes: raw.max_upload_bytes.unwrap_or(DEFAULT_MAX_UPLOAD_BYTES),
        limits: raw
            .limits
            .unwrap_or_default()
            .validate("limits", crate::listen::Limits::PUBLIC)?,
        peer: raw.peer.map(listener::RawPeer::validate).transpose()?,
        tls: raw.tls.map(|t| ServerTlsFiles {
            cert_file: t.cert_file,
            key_file: t.key_file,
        }),
        feed: raw.feed.unwrap_or_default().validate()?,
        blob_gc: raw.blob_gc.unwrap_or_default().validate()?,
    };
    config.validate_shape()?;
    Ok(config)
}

/// A token must not be a placeholder from the docs; off loopback, where
/// strangers may reach the listener, it must also be long enough to resist
/// guessing.
fn check_strength(field: &'static str, token: &str, listen: SocketAddr) -> Result<(), FieldError> {
    if let Some(reason) = service_base::secrets::placeholder(token) {
        return Err(FieldError::new(field, reason));
    }
    if !listen.ip().is_loopback()
        && let Some(reason) = service_base::secrets::too_short(token)
    {
        return Err(FieldError::new(
            field,
            format!("{reason} (required because `listen` = {listen} is not loopback)"),
        ));
    }
    Ok(())
}

/// A token must fit an Authorization header.
fn check_token(field: &'static str, token: &str) -> Result<(), FieldError> {
    if token.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(
            field,
            "must be printable ASCII without spaces, so it fits an Authorization header",
        ));
    }
    Ok(())
}

fn check_rule(index: usize, rule: &CacheRule) -> Result<(), FieldError> {
    if !rule.prefix.starts_with('/') {
        return Err(FieldError::new(
            format!("cache_rules[{index}].prefix"),
            format!(
                "`{}` must start with `/` (it matches the path after /assets)",
                rule.prefix
            ),
        ));
    }
    check_header_value(
        &format!("cache_rules[{index}].cache_control"),
        &rule.cache_control,
    )
}

fn check_header_value(field: &str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(FieldError::new(field, "is not a valid HTTP header value"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("origin.toml"), text)
    }

    #[test]
    fn placeholder_tokens_are_refused_at_start_not_at_load() {
        let c = parse("data_dir = \"/x\"\ntoken = \"change-me\"").unwrap();
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("`token`") && msg.contains("placeholder"),
            "{msg}"
        );
        let mut c = c;
        c.token = "3f9a1c0e7b2d4a5f8e6c1b0a9d7f3e2c".into();
        c.read_token = Some("secret".into());
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("`read_token`"), "{msg}");
    }

    #[test]
    fn short_tokens_are_refused_off_loopback_only() {
        let c = parse("data_dir = \"/x\"\ntoken = \"short-token\"").unwrap();
        c.validate().unwrap();
        let c =
            parse("listen = \"0.0.0.0:7070\"\ndata_dir = \"/x\"\ntoken = \"short-token\"").unwrap();
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("16 characters") && msg.contains("0.0.0.0:7070"),
            "{msg}"
        );
    }

    #[test]
    fn upload_limit_has_a_default_and_must_be_positive() {
        let c = parse("data_dir = \"/x\"\ntoken = \"t\"").unwrap();
        assert_eq!(c.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES);
        let c = parse("data_dir = \"/x\"\ntoken = \"t\"\nmax_upload_bytes = 10").unwrap();
        assert_eq!(c.max_upload_bytes, 10);
        let msg = parse("data_dir = \"/x\"\ntoken = \"t\"\nmax_upload_bytes = 0")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`max_upload_bytes`"), "{msg}");
    }

    #[test]
    fn defaults_fill_in() {
        let c = parse("data_dir = \"/tmp/x\"\ntoken = \"t\"").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.default_cache_control, DEFAULT_CACHE_CONTROL);
        assert!(c.cache_rules.is_empty());
    }

    #[test]
    fn empty_token_names_field() {
        let msg = parse("data_dir = \"/tmp/x\"\ntoken = \"\"")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("origin.toml") && msg.contains("`token`"),
            "{msg}"
        );
    }

    #[test]
    fn missing_data_dir_names_field() {
        let msg = parse("token = \"t\"").unwrap_err().to_string();
        assert!(msg.contains("`data_dir`"), "{msg}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let msg = parse("data_dir = \"/x\"\ntoken = \"t\"\ntokn = 1")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("tokn"), "{msg}");
    }

    #[test]
    fn bad_rule_names_index() {
        let text = "data_dir = \"/x\"\ntoken = \"t\"\n[[cache_rules]]\nprefix = \"static\"\ncache_control = \"x\"";
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.contains("cache_rules[0].prefix"), "{msg}");
    }

    #[test]
    fn cluster_parses() {
        let text = "data_dir = \"/x\"\ntoken = \"t\"\n[cluster]\nnode_id = 2\nmembers = [{ id = 1, addr = \"10.0.0.1:7070\" }, { id = 2, addr = \"10.0.0.2:7070\" }]";
        let c = parse(text).unwrap().cluster.unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.members[&1], "10.0.0.1:7070");
    }

    #[test]
    fn invalid_membership_names_field() {
        let base = "data_dir = \"/x\"\ntoken = \"t\"\n[cluster]\n";
        let cases = [
            (
                "node_id = 3\nmembers = [{ id = 1, addr = \"a:1\" }]",
                "cluster.node_id",
            ),
            (
                "node_id = 1\nmembers = [{ id = 1, addr = \"a:1\" }, { id = 1, addr = \"b:1\" }]",
                "cluster.members[1].id",
            ),
            (
                "node_id = 1\nmembers = [{ id = 1, addr = \"a\" }]",
                "cluster.members[0].addr",
            ),
            (
                "node_id = 1\nmembers = [{ id = 1, addr = \"a:1\" }, { id = 2, addr = \"a:1\" }]",
                "cluster.members[1].addr",
            ),
            ("node_id = 1", "cluster.members"),
        ];
        for (section, field) in cases {
            let msg = parse(&format!("{base}{section}")).unwrap_err().to_string();
            assert!(
                msg.contains(field) && msg.contains("origin.toml"),
                "{field}: {msg}"
            );
        }
    }

    #[test]
    fn s3_storage_needs_bucket_and_keys() {
        let base = "data_dir = \"/x\"\ntoken = \"t\"\n[storage]\nbackend = \"s3\"\n";
        let msg = parse(base).unwrap_err().to_string();
        assert!(msg.contains("storage.bucket"), "{msg}");
        let text = format!(
            "{base}bucket = \"b\"\naccess_key_id = \"a\"\nsecret_access_key = \"s\"\nendpoint = \"localhost:9000\""
        );
        let msg = parse(&text).unwrap_err().to_string();
        assert!(msg.contains("storage.endpoint"), "{msg}");
        let msg = parse("data_dir = \"/x\"\ntoken = \"t\"\n[storage]\nbackend = \"ftp\"")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("storage.backend"), "{msg}");
    }

    #[test]
    fn listener_limits_parse_and_name_bad_fields() {
        let c = parse("data_dir = \"/x\"\ntoken = \"t\"").unwrap();
        assert_eq!(c.limits, crate::listen::Limits::PUBLIC);
        assert_eq!(c.peer, None);
        let text = "data_dir = \"/x\"\ntoken = \"t\"\n[limits]\nheader_read_timeout = \"2s\"\n\
                    max_connections = 50\n[peer]\nlisten = \"127.0.0.1:7071\"\nidle_timeout = \"25s\"";
        let c = parse(text).unwrap();
        assert_eq!(
            c.limits.header_read_timeout,
            std::time::Duration::from_secs(2)
        );
        assert_eq!(c.limits.max_connections, 50);
        let peer = c.peer.unwrap();
        assert_eq!(peer.listen.to_string(), "127.0.0.1:7071");
        assert_eq!(peer.limits.idle_timeout, std::time::Duration::from_secs(25));
        assert_eq!(
            peer.limits.max_connections,
            crate::listen::Limits::PEER.max_connections
        );
        for (section, field) in [
            ("[limits]\nmax_connections = 0", "limits.max_connections"),
            ("[limits]\nmax_header_bytes = 10", "limits.max_header_bytes"),
            ("[peer]\nlisten = \"nowhere\"", "peer.listen"),
            (
                "[peer]\nlisten = \"127.0.0.1:7071\"\nidle_timeout = \"5s\"",
                "peer.idle_timeout",
            ),
            ("[peer]\nlisten = \"127.0.0.1:7070\"", "peer.listen"),
            (
                "[peer]\nlisten = \"127.0.0.1:7071\"\nca_file = \"/ca.pem\"",
                "peer.cert_file",
            ),
            ("[tls]\ncert_file = \"/c.pem\"", "key_file"),
        ] {
            let msg = parse(&format!("data_dir = \"/x\"\ntoken = \"t\"\n{section}"))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(field), "{field}: {msg}");
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let mut c = Config::for_data_dir("/x", "t");
        for (prefix, cc) in [("/static/", "a"), ("/static/img/", "b"), ("/", "c")] {
            c.cache_rules.push(CacheRule {
                prefix: prefix.into(),
                cache_control: cc.into(),
            });
        }
        assert_eq!(c.cache_control_for("/static/img/x.png"), "b");
        assert_eq!(c.cache_control_for("/static/x.css"), "a");
        assert_eq!(c.cache_control_for("/other"), "c");
        c.cache_rules.clear();
        assert_eq!(c.cache_control_for("/other"), DEFAULT_CACHE_CONTROL);
    }
}
