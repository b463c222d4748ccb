//! Edge-node configuration: the TOML file an operator writes, parsed raw
//! (`raw` types, unknown fields refused) and then validated into the types the
//! server runs on, so a bad value is reported with its file and field before
//! any socket is bound.

mod consumers;
mod listeners;
mod origin_tls;
mod plugins;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use service_base::config_file::{self, ConfigError, FieldError};

use crate::listen::{Limits, TlsSettings};
pub use consumers::{ConsumerConfig, MAX_CONSUMER_CONCURRENCY};
pub use listeners::{AdminConfig, check_admin_exposure};
pub use origin_tls::{OriginAddr, OriginTls};
pub use plugins::{Grants, MAX_TOTAL_CONCURRENCY, PluginConfig};
pub use service_base::byte_size::ByteSize;

/// A validated edge-node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_http: Option<SocketAddr>,
    pub listen_https: Option<SocketAddr>,
    pub admin: AdminConfig,
    pub limits: Limits,
    /// Largest request body forwarded to an origin; larger ones get 413.
    pub max_body_bytes: u64,
    pub tls: Option<TlsSettings>,
    pub cache: CacheConfig,
    pub pools: Vec<PoolConfig>,
    pub sites: Vec<SiteConfig>,
    pub plugins: Vec<PluginConfig>,
    pub plugin_runtime: PluginRuntimeConfig,
    pub feed: Option<FeedConfig>,
    pub consumers: Vec<ConsumerConfig>,
}

#[derive(Debug, Clone)]
pub struct PluginRuntimeConfig {
    pub compile_cache_dir: Option<PathBuf>,
    pub geoip_db: Option<PathBuf>,
    /// Index into [`Config::pools`].
    pub kv_pool: Option<usize>,
    pub kv_token: Option<String>,
    pub kv_cache_ttl: Duration,
    pub reload_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Bytes of response bodies and headers kept in memory.
    pub memory_capacity: u64,
    /// Objects larger than this are kept on disk only.
    pub max_memory_object: u64,
    /// Largest body stored in either tier.
    pub max_object_size: u64,
    pub disk: Option<DiskConfig>,
    /// How long past its freshness an object may be served when every origin
    /// is failing (stale-if-error default, like Varnish's grace).
    pub grace: Duration,
    /// How long past its freshness an object with a validator is kept for
    /// revalidation with a conditional request.
    pub keep: Duration,
    /// RFC 9213 targeted cache-control fields this cache obeys, in
    /// precedence order (lower-case names).
    pub targeted_fields: Vec<http::HeaderName>,
}

#[derive(Debug, Clone)]
pub struct DiskConfig {
    pub dir: PathBuf,
    pub capacity: u64,
    /// The part of `memory_capacity` the disk tier's index may use.
    pub index_memory: u64,
}

/// A set of interchangeable origin servers.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub name: String,
    /// Every origin, region by region in order of preference.
    pub origins: Vec<OriginAddr>,
    /// How `https://` origins are verified; set when the pool has one.
    pub tls: Option<OriginTls>,
    /// The regions, in order of preference, as ranges of `origins`; a pool
    /// configured with a plain `origins` list has one region.
    pub regions: Vec<PoolRegion>,
    pub health_path: String,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    /// Consecutive successes before a down origin is used again.
    pub rise: u32,
    /// Consecutive failures before an origin is skipped.
    pub fall: u32,
    pub connect_timeout: Duration,
    /// Time allowed for the origin's response headers.
    pub response_timeout: Duration,
    /// Longest silence allowed between body bytes of a response being
    /// cached: a fill that stalls is dropped instead of keeping every
    /// client of that object waiting.
    pub between_bytes_timeout: Duration,
    /// Most concurrent cache fills from this pool.
    pub max_fills: usize,
    /// Most connections to each origin (health checks aside).
    pub max_connections: usize,
    /// Longest wait for a connection slot.
    pub queue_timeout: Duration,
}

/// `[feed]`: the origin change feed this edge follows, so deploys, purges
/// and plugin versions published at the origin reach it without anyone
/// calling its admin API.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Index into [`Config::pools`].
    pub pool: usize,
    /// Whether published plugin versions replace declared plugins'.
    pub plugins: bool,
    /// Bearer token for the origin's feed and plugin reads.
    pub token: Option<String>,
}

/// One origin region of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRegion {
    pub name: String,
    /// Indexes into [`PoolConfig::origins`].
    pub origins: std::ops::Range<usize>,
}

/// Which requests a site serves and where its misses go.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Lower-case host names; `*` matches any host, `*.example.com` any
    /// subdomain.
    pub hosts: Vec<String>,
    pub path_prefix: String,
    /// Index into [`Config::pools`].
    pub pool: usize,
    /// Indexes into [`Config::plugins`], in chain order.
    pub plugins: Vec<usize>,
    pub plugin_config: std::collections::HashMap<String, String>,
    /// Whether request cache directives may force origin traffic.
    pub honor_client_cache_control: bool,
    /// Remove the targeted cache-control fields from responses to clients
    /// (they are meant for this cache; Fastly and Cloudflare strip theirs).
    pub strip_targeted_cache_control: bool,
}

impl Config {
    /// Loads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        config_file::load(path, |raw: raw::RawConfig| validate(raw, &base))
    }

    /// Parses `text` as the content of a file at `path` (embedded defaults,
    /// tests); relative paths resolve against `path`'s directory.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        config_file::parse(path, text, |raw: raw::RawConfig| validate(raw, &base))
    }
}

fn validate(raw: raw::RawConfig, base: &Path) -> Result<Config, FieldError> {
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    if raw.listen.http.is_none() && raw.listen.https.is_none() {
        return Err(FieldError::new("listen", "set `http` or `https` (or both)"));
    }
    let tls = listeners::tls(raw.listen.https, raw.admin.tls, raw.tls, &resolve)?;
    let l = raw.limits;
    let limits = Limits {
        max_header_bytes: l.max_header_bytes.0 as usize,
        max_headers: l.max_headers,
        header_read_timeout: l.header_read_timeout,
        idle_timeout: l.idle_timeout,
        max_connections: l.max_connections,
        max_connections_per_client: l.max_connections_per_client,
        write_timeout: l.write_timeout,
        ..Limits::default()
    };
    limits
        .validate()
        .map_err(|e| FieldError::new("limits", e.to_string()))?;

    let c = raw.cache;
    if c.max_memory_object > c.memory_capacity {
        return Err(FieldError::new(
            "cache.max_memory_object",
            "is larger than cache.memory_capacity",
        ));
    }
    if c.max_object_size.0 < c.max_memory_object.0 {
        return Err(FieldError::new(
            "cache.max_object_size",
            "is smaller than cache.max_memory_object",
        ));
    }
    let disk = match c.disk {
        None => None,
        Some(d) => {
            let index_memory = d.index_memory.map_or(c.memory_capacity.0 / 4, |b| b.0);
            if index_memory == 0 || index_memory + c.max_memory_object.0 > c.memory_capacity.0 {
                return Err(FieldError::new(
                    "cache.disk.index_memory",
                    "must be above 0 and leave at least cache.max_memory_object of \
                     cache.memory_capacity to the memory tier",
                ));
            }
            Some(DiskConfig {
                dir: resolve(d.dir),
                capacity: d.capacity.0,
                index_memory,
            })
        }
    };
    let cache = CacheConfig {
        memory_capacity: c.memory_capacity.0,
        max_memory_object: c.max_memory_object.0,
        max_object_size: c.max_object_size.0,
        disk,
        grace: c.grace,
        keep: c.keep,
        targeted_fields: targeted_fields(c.targeted_fields)?,
    };

    let mut pools: Vec<PoolConfig> = Vec::with_capacity(raw.pools.len());
    for (i, p) in raw.pools.into_iter().enumerate() {
        let field = |f: &str| format!("pools[{i}].{f}");
        if p.name.is_empty() {
            return Err(FieldError::new(field("name"), "must not be empty"));
        }
        if pools.iter().any(|q| q.name == p.name) {
            return Err(FieldError::new(
                field("name"),
                format!("pool `{}` is defined twice", p.name),
            ));
        }
        let (origins, regions) = pool_regions(&p, &field)?;
        if !p.health_path.starts_with('/')
            || http::uri::PathAndQuery::try_from(p.health_path.as_str()).is_err()
        {
            return Err(FieldError::new(
                field("health_path"),
                format!(
                    "`{}` is not a request path starting with `/`",
                    p.health_path
                ),
            ));
        }
        if p.max_fills == 0 {
            return Err(FieldError::new(field("max_fills"), "must be at least 1"));
        }
        if p.max_connections == 0 {
            return Err(FieldError::new(
                field("max_connections"),
                "must be at least 1 (connections to each origin)",
            ));
        }
        if p.queue_timeout.is_zero() || p.queue_timeout >= p.response_timeout {
            return Err(FieldError::new(
                field("queue_timeout"),
                format!(
                    "must be above 0 and below `response_timeout` ({:?}), or a wait for a \
                     connection would count as the origin timing out",
                    p.response_timeout
                ),
            ));
        }
        if p.rise == 0 || p.fall == 0 {
            return Err(FieldError::new(
                field("rise"),
                "`rise` and `fall` must be at least 1",
            ));
        }
        let tls = match (origins.iter().any(|o| o.tls), p.tls) {
            (true, raw_tls) => Some(origin_tls::validate(raw_tls, &field("tls"), &resolve)?),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(FieldError::new(
                    field("tls"),
                    "is set but no origin of this pool is https://; write its origins as \
                     \"https://host:port\" (plain \"host:port\" is HTTP)",
                ));
            }
        };
        pools.push(PoolConfig {
            name: p.name,
            origins,
            tls,
            regions,
            health_path: p.health_path,
            health_interval: p.health_interval,
            health_timeout: p.health_timeout,
            rise: p.rise,
            fall: p.fall,
            connect_timeout: p.connect_timeout,
            response_timeout: p.response_timeout,
            between_bytes_timeout: p.between_bytes_timeout,
            max_fills: p.max_fills,
            max_connections: p.max_connections,
            queue_timeout: p.queue_timeout,
        });
    }

    if raw.sites.is_empty() {
        return Err(FieldError::new(
            "sites",
            "declare at least one [[sites]] entry",
        ));
    }
    let mut sites = Vec::with_capacity(raw.sites.len());
    for (i, s) in raw.sites.into_iter().enumerate() {
        let pool = pools.iter().position(|p| p.name == s.pool).ok_or_else(|| {
            FieldError::new(
                format!("sites[{i}].pool"),
                format!("no pool named `{}`", s.pool),
            )
        })?;
        if !s.path_prefix.starts_with('/') {
            return Err(FieldError::new(
                format!("sites[{i}].path_prefix"),
                "must start with `/`",
            ));
        }
        // Requests are routed on normalized paths, which never contain
        // these; a prefix with them would match nothing.
        if s.path_prefix.contains('%')
            || s.path_prefix.contains("//")
            || s.path_prefix
                .split('/')
                .any(|seg| seg == "." || seg == "..")
        {
            return Err(FieldError::new(
                format!("sites[{i}].path_prefix"),
                "must be a normalized path: no `%` escapes, `//`, `.` or `..` segments",
            ));
        }
        if s.hosts.is_empty() {
            return Err(FieldError::new(
                format!("sites[{i}].hosts"),
                "list at least one host (or \"*\")",
            ));
        }
        let plugins = s
            .plugins
            .iter()
            .map(|name| {
                raw.plugins
                    .iter()
                    .position(|p| p.name == *name)
                    .ok_or_else(|| {
                        FieldError::new(
                            format!("sites[{i}].plugins"),
                            format!("no [[plugins]] entry named `{name}`"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        sites.push(SiteConfig {
            hosts: s.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            path_prefix: s.path_prefix,
            pool,
            plugins,
            plugin_config: s.plugin_config,
            honor_client_cache_control: s.honor_client_cache_control,
            strip_targeted_cache_control: s.strip_targeted_cache_control,
        });
    }

    let plugins = plugins::validate(raw.plugins, &resolve, &pools)?;
    let rt = raw.plugin_runtime;
    let kv_pool = match &rt.kv_pool {
        None => None,
        Some(name) => Some(pools.iter().position(|p| p.name == *name).ok_or_else(|| {
            FieldError::new("plugin_runtime.kv_pool", format!("no pool named `{name}`"))
        })?),
    };
    let feed = match raw.feed {
        None => None,
        Some(f) => Some(FeedConfig {
            pool: pools.iter().position(|p| p.name == f.pool).ok_or_else(|| {
                FieldError::new("feed.pool", format!("no pool named `{}`", f.pool))
            })?,
            plugins: f.plugins,
            token: f.token,
        }),
    };
    let plugin_runtime = PluginRuntimeConfig {
        compile_cache_dir: rt.compile_cache_dir.map(&resolve),
        geoip_db: rt.geoip_db.map(&resolve),
        kv_pool,
        kv_token: rt.kv_token,
        kv_cache_ttl: rt.kv_cache_ttl.unwrap_or(Duration::from_secs(1)),
        reload_interval: rt.reload_interval.unwrap_or(Duration::from_secs(1)),
    };
    let consumers = consumers::validate(raw.consumers, &resolve, &pools, kv_pool.is_some())?;
    if let Some(db) = &plugin_runtime.geoip_db
        && !db.is_file()
    {
        return Err(FieldError::new(
            "plugin_runtime.geoip_db",
            format!("{} does not exist", db.display()),
        ));
    }
    let admin = listeners::admin(raw.admin)?;
    Ok(Config {
        listen_http: raw.listen.http,
        listen_https: raw.listen.https,
        admin,
        limits,
        max_body_bytes: l.max_body_bytes.0,
        tls,
        cache,
        pools,
        sites,
        plugins,
        plugin_runtime,
        feed,
        consumers,
    })
}

/// A pool's origins in preference order and its regions: either the plain
/// `origins` list (one region) or `regions = [{ name, origins }, ...]`.
fn pool_regions(
    p: &raw::RawPool,
    field: &dyn Fn(&str) -> String,
) -> Result<(Vec<OriginAddr>, Vec<PoolRegion>), FieldError> {
    let groups: Vec<(String, &[String], String)> =
        match (p.origins.is_empty(), p.regions.is_empty()) {
            (false, true) => vec![("default".into(), &p.origins, field("origins"))],
            (true, false) => p
                .regions
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    (
                        r.name.clone(),
                        r.origins.as_slice(),
                        field(&format!("regions[{j}].origins")),
                    )
                })
                .collect(),
            (true, true) => {
                return Err(FieldError::new(
                    field("origins"),
                    "list at least one origin as \"host:port\", or `regions` with origins each",
                ));
            }
            (false, false) => {
                return Err(FieldError::new(
                    field("regions"),
                    "give either `origins` (one region) or `regions`, not both",
                ));
            }
        };
    let mut origins = Vec::new();
    let mut regions: Vec<PoolRegion> = Vec::new();
    for (j, (name, list, list_field)) in groups.into_iter().enumerate() {
        if name.is_empty() || regions.iter().any(|r| r.name == name) {
            return Err(FieldError::new(
                field(&format!("regions[{j}].name")),
                "every region needs a distinct, non-empty name",
            ));
        }
        if list.is_empty() {
            return Err(FieldError::new(
                list_field,
                "list at least one origin as \"host:port\"",
            ));
        }
        let start = origins.len();
        for o in list {
            origins.push(
                origin_tls::parse_origin(o)
                    .map_err(|r| FieldError::new(list_field.clone(), r.to_string()))?,
            );
        }
        regions.push(PoolRegion {
            name,
            origins: start..origins.len(),
        });
    }
    Ok((origins, regions))
}

/// `cache.targeted_fields`: header names, each once.
fn targeted_fields(raw: Vec<String>) -> Result<Vec<http::HeaderName>, FieldError> {
    let mut out: Vec<http::HeaderName> = Vec::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let field = format!("cache.targeted_fields[{i}]");
        let parsed = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            FieldError::new(field.clone(), format!("`{name}` is not a header name"))
        })?;
        if parsed == http::header::CACHE_CONTROL || out.contains(&parsed) {
            return Err(FieldError::new(
                field,
                format!("`{name}` is Cache-Control or listed twice"),
            ));
        }
        out.push(parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[pools]]
        name = "o"
        origins = ["127.0.0.1:7070"]
        [[sites]]
        pool = "o"
    "#;

    #[test]
    fn minimal_config_has_defaults() {
        let c = Config::from_toml(Path::new("/etc/edge.toml"), MINIMAL).unwrap();
        assert!(c.listen_http.is_some());
        assert_eq!(c.sites[0].hosts, vec!["*"]);
        assert_eq!(c.pools[0].origins[0].authority.port_u16(), Some(7070));
        assert!(!c.pools[0].origins[0].tls && c.pools[0].tls.is_none());
    }

    #[test]
    fn unknown_pool_is_named() {
        let text = MINIMAL.replace("pool = \"o\"", "pool = \"nope\"");
        let err = Config::from_toml(Path::new("edge.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("edge.toml") && err.contains("sites[0].pool") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn origin_without_port_is_refused() {
        let text = MINIMAL.replace("127.0.0.1:7070", "example.com");
        let err = Config::from_toml(Path::new("edge.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pools[0].origins"), "{err}");
    }

    #[test]
    fn pool_regions_keep_preference_order() {
        let text = MINIMAL.replace(
            "origins = [\"127.0.0.1:7070\"]",
            "regions = [{ name = \"near\", origins = [\"127.0.0.1:1\", \"127.0.0.2:1\"] }, \
             { name = \"far\", origins = [\"127.0.0.3:1\"] }]",
        );
        let c = Config::from_toml(Path::new("edge.toml"), &text).unwrap();
        let pool = &c.pools[0];
        assert_eq!(pool.origins.len(), 3);
        assert_eq!(pool.regions[0].name, "near");
        assert_eq!(pool.regions[0].origins, 0..2);
        assert_eq!(pool.regions[1].origins, 2..3);
        assert_eq!(c.pools[0].origins[2].authority.host(), "127.0.0.3");
        let single = Config::from_toml(Path::new("edge.toml"), MINIMAL).unwrap();
        assert_eq!(single.pools[0].regions[0].origins, 0..1);
    }

    #[test]
    fn bad_pool_regions_name_the_field() {
        let cases = [
            (
                "regions = [{ name = \"a\", origins = [] }]",
                "pools[0].regions[0].origins",
            ),
            (
                "regions = [{ name = \"a\", origins = [\"h:1\"] }, { name = \"a\", origins = [\"h:2\"] }]",
                "pools[0].regions[1].name",
            ),
            (
                "origins = [\"h:1\"]\nregions = [{ name = \"a\", origins = [\"h:2\"] }]",
                "pools[0].regions",
            ),
        ];
        for (pool, field) in cases {
            let text = MINIMAL.replace("origins = [\"127.0.0.1:7070\"]", pool);
            let err = Config::from_toml(Path::new("edge.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("edge.toml") && err.contains(field),
                "{field}: {err}"
            );
        }
    }

    #[test]
    fn https_without_tls_is_refused() {
        let text = format!("[listen]\nhttps = \"127.0.0.1:0\"\n{MINIMAL}");
        let err = Config::from_toml(Path::new("edge.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`tls`"), "{err}");
    }
}
