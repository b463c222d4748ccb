//! GeoDNS configuration: the TOML file (`raw`) validated into the types the
//! server runs on, so a bad region name, CIDR or record is reported with its
//! file and field before anything binds, and a bad reload keeps the old
//! configuration serving.

mod limits;
mod raw;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::IpNet;
use service_base::config_file::{self, ConfigError, FieldError};

use raw::{RawConfig, RawRegion, RawZone};

pub use limits::{RateLimitConfig, TcpLimits};

/// Most UDP worker threads per address an operator may ask for.
const MAX_UDP_THREADS: usize = 256;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Each address is served over UDP and TCP.
    pub dns: Vec<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    /// Read at start; a reload keeps the limits the server started with.
    pub tcp: TcpLimits,
    /// UDP response rate limiting (off when `None`); read at start.
    pub rate_limit: Option<RateLimitConfig>,
    /// UDP worker threads per address (0: no fast path).
    pub udp_threads: usize,
    pub geoip: GeoIpConfig,
    pub health: HealthConfig,
    pub regions: Vec<Region>,
    pub zones: Vec<ZoneConfig>,
    pub query_log: bool,
    /// One query in this many is logged when `query_log` is on.
    pub query_log_sample: u32,
    /// The file this came from; watched for changes and re-read on SIGHUP.
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct GeoIpConfig {
    pub database: Option<PathBuf>,
    /// CIDR → region index; these win over the database.
    pub overrides: Vec<(IpNet, usize)>,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// `health.ca_file`, read at load: the only roots `https://` health
    /// URLs are checked against when set (built-in roots otherwise).
    pub ca: Option<std::sync::Arc<Vec<reqwest::Certificate>>>,
}

#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Upper-case ISO 3166 codes.
    pub countries: Vec<String>,
    /// Upper-case continent codes.
    pub continents: Vec<String>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: IpAddr,
    pub weight: u32,
    pub health: Option<reqwest::Url>,
}

#[derive(Debug, Clone)]
pub struct ZoneConfig {
    pub origin: Name,
    pub ttl: u32,
    pub geo_ttl: u32,
    pub degraded_ttl: u32,
    pub max_answers: usize,
    pub nameservers: Vec<Name>,
    pub rname: Name,
    pub serial: u32,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    pub minimum: u32,
    pub records: Vec<Record>,
    pub geo: Vec<GeoName>,
}

/// A name answered from the nearest healthy region.
#[derive(Debug, Clone)]
pub struct GeoName {
    pub name: Name,
    /// Indexes into [`Config::regions`].
    pub regions: Vec<usize>,
    pub ttl: Option<u32>,
}

impl Config {
    /// Reads and validates `path`; relative database paths are taken from
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        config_file::load(path, |raw| validate(raw, path))
    }

    /// Validates `text` as if it were the content of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        config_file::parse(path, text, |raw| validate(raw, path))
    }
}

fn validate(raw: RawConfig, path: &Path) -> Result<Config, FieldError> {
    let dns = raw
        .listen
        .dns
        .iter()
        .enumerate()
        .map(|(i, a)| parse_addr(a, &format!("listen.dns[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if dns.is_empty() {
        return Err(FieldError::new("listen.dns", "needs at least one address"));
    }
    let metrics = raw
        .listen
        .metrics
        .as_deref()
        .map(|a| parse_addr(a, "listen.metrics"))
        .transpose()?;

    let mut regions = Vec::new();
    for (name, region) in &raw.regions {
        regions.push(validate_region(name, region)?);
    }
    let region_index = |name: &str, field: String| {
        regions
            .iter()
            .position(|r| r.name == name)
            .ok_or_else(|| FieldError::new(field, format!("unknown region `{name}`")))
    };

    let base = path.parent().unwrap_or(Path::new("."));
    let database = raw.geoip.database.as_ref().map(|d| base.join(d));
    if let Some(db) = &database
        && !db.is_file()
    {
        return Err(FieldError::new(
            "geoip.database",
            format!("no such file: {}", db.display()),
        ));
    }
    let mut overrides = Vec::new();
    for (i, o) in raw.geoip.overrides.iter().enumerate() {
        let net = IpNet::from_str(&o.cidr).map_err(|e| {
            FieldError::new(
                format!("geoip.overrides[{i}].cidr"),
                format!("`{}` is not a CIDR: {e}", o.cidr),
            )
        })?;
        let region = region_index(&o.region, format!("geoip.overrides[{i}].region"))?;
        overrides.push((net.trunc(), region));
    }

    let health = HealthConfig {
        interval: raw.health.interval,
        timeout: raw.health.timeout,
        rise: raw.health.rise.max(1),
        fall: raw.health.fall.max(1),
        ca: raw
            .health
            .ca_file
            .as_ref()
            .map(|f| read_ca(&base.join(f)).map(std::sync::Arc::new))
            .transpose()?,
    };
    if health.interval.is_zero() || health.timeout.is_zero() {
        return Err(FieldError::new(
            "health",
            "interval and timeout must be above 0",
        ));
    }

    let mut zones = Vec::new();
    for (i, zone) in raw.zones.iter().enumerate() {
        zones.push(validate_zone(zone, &format!("zones[{i}]"), &region_index)?);
    }
    if zones.is_empty() {
        return Err(FieldError::new("zones", "needs at least one zone"));
    }

    if raw.query_log_sample == 0 {
        return Err(FieldError::new("query_log_sample", "must be at least 1"));
    }
    let udp_threads = match raw.listen.udp_threads {
        Some(n) if n > MAX_UDP_THREADS => {
            return Err(FieldError::new(
                "listen.udp_threads",
                format!("at most {MAX_UDP_THREADS}"),
            ));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_UDP_THREADS)),
    };

    let tcp = limits::tcp_limits(&raw.listen)?;
    let rate_limit = limits::rate_limit(&raw.rate_limit)?;
    if rate_limit.is_some() && udp_threads == 0 {
        return Err(FieldError::new(
            "rate_limit",
            "needs listen.udp_threads of at least 1 (the UDP workers limit rates); \
             set rate_limit.responses_per_second = 0 to serve without it",
        ));
    }

    Ok(Config {
        dns,
        metrics,
        tcp,
        rate_limit,
        udp_threads,
        geoip: GeoIpConfig {
            database,
            overrides,
        },
        health,
        regions,
        zones,
        query_log: raw.query_log,
        query_log_sample: raw.query_log_sample,
        source: Some(path.to_path_buf()),
    })
}

/// Reads a PEM CA bundle for `health.ca_file`; an unreadable file, bad
/// PEM or a file without certificates is refused naming field and file.
fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, FieldError> {
    let field = "health.ca_file";
    let pem = std::fs::read(path)
        .map_err(|e| FieldError::new(field, format!("cannot read {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| FieldError::new(field, format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(FieldError::new(
            field,
            format!("{} holds no PEM CERTIFICATE block", path.display()),
        ));
    }
    Ok(certs)
}

fn parse_addr(text: &str, field: &str) -> Result<SocketAddr, FieldError> {
    text.parse()
        .map_err(|_| FieldError::new(field, format!("`{text}` is not an IP:port address")))
}

fn validate_region(name: &str, raw: &RawRegion) -> Result<Region, FieldError> {
    let field = format!("regions.{name}");
    if !(-90.0..=90.0).contains(&raw.latitude) || !(-180.0..=180.0).contains(&raw.longitude) {
        return Err(FieldError::new(field, "latitude/longitude out of range"));
    }
    if raw.endpoints.is_empty() {
        return Err(FieldError::new(
            format!("{field}.endpoints"),
            "needs at least one endpoint",
        ));
    }
    let mut endpoints = Vec::new();
    for (i, e) in raw.endpoints.iter().enumerate() {
        let f = format!("{field}.endpoints[{i}]");
        let address = e.address.parse().map_err(|_| {
            FieldError::new(
                format!("{f}.address"),
                format!("`{}` is not an IP address", e.address),
            )
        })?;
        if e.weight == 0 {
            return Err(FieldError::new(format!("{f}.weight"), "must be at least 1"));
        }
        let health = e
            .health
            .as_deref()
            .map(|u| {
                reqwest::Url::parse(u)
                    .ok()
                    .filter(|u| u.scheme() == "http" || u.scheme() == "https")
                    .ok_or_else(|| {
                        FieldError::new(
                            format!("{f}.health"),
                            format!("`{u}` is not an http(s) URL"),
                        )
                    })
            })
            .transpose()?;
        if let Some(url) = &health
            && !e.health_on_other_host
            && !names_address(url, address)
        {
            return Err(FieldError::new(
                format!("{f}.health"),
                format!(
                    "`{url}` is not on the endpoint's address {address}, so its answer says \
                     nothing certain about what clients are sent to; use http(s)://{} or set \
                     health_on_other_host = true for this endpoint if that host does check it",
                    url_host(address)
                ),
            ));
        }
        endpoints.push(Endpoint {
            address,
            weight: e.weight,
            health,
        });
    }
    Ok(Region {
        name: name.to_owned(),
        latitude: raw.latitude,
        longitude: raw.longitude,
        countries: raw
            .countries
            .iter()
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        continents: raw
            .continents
            .iter()
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        endpoints,
    })
}

/// A CNAME must be the only record at its name (RFC 1034 §3.6.2, RFC
/// 2181 §10.1), so none at the apex (which holds SOA and NS) and none
/// beside other data; the error names the later of the clashing records.
fn check_cnames(records: &[Record], origin: &Name, field: &str) -> Result<(), FieldError> {
    let mut seen: HashMap<&Name, (usize, bool)> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let cname = r.record_type() == RecordType::CNAME;
        let f = format!("{field}.records[{i}]");
        if cname && &r.name == origin {
            return Err(FieldError::new(
                f,
                "a CNAME cannot be at the zone apex (it holds SOA and NS)",
            ));
        }
        match seen.get(&r.name) {
            Some(&(first, first_cname)) if cname || first_cname => {
                return Err(FieldError::new(
                    f,
                    format!(
                        "`{}` has a CNAME and other records ({field}.records[{first}]); a CNAME must be alone at its name",
                        r.name
                    ),
                ));
            }
            Some(_) => {}
            None => {
                seen.insert(&r.name, (i, cname));
            }
        }
    }
    Ok(())
}

fn validate_zone(
    raw: &RawZone,
    field: &str,
    region_index: &dyn Fn(&str, String) -> Result<usize, FieldError>,
) -> Result<ZoneConfig, FieldError> {
    let origin = Name::from_str(&raw.origin)
        .map_err(|e| FieldError::new(format!("{field}.origin"), e.to_string()))?
        .append_domain(&Name::root())
        .map_err(|e| FieldError::new(format!("{field}.origin"), e.to_string()))?;
    let origin = origin.to_lowercase();
    let name_in_zone = |text: &str, f: String| -> Result<Name, FieldError> {
        let name = if text == "@" {
            origin.clone()
        } else if text.ends_with('.') {
            Name::from_str(text).map_err(|e| FieldError::new(&f, e.to_string()))?
        } else {
            Name::from_str(text)
                .and_then(|n| n.append_domain(&origin))
                .map_err(|e| FieldError::new(&f, e.to_string()))?
        };
        if !origin.zone_of(&name) {
            return Err(FieldError::new(
                f,
                format!("`{text}` is outside the zone {origin}"),
            ));
        }
        Ok(name.to_lowercase())
    };
    let absolute = |text: &str, f: String| -> Result<Name, FieldError> {
        Name::from_str(text)
            .and_then(|n| n.append_domain(&Name::root()))
            .map_err(|e| FieldError::new(f, e.to_string()))
    };

    if raw.nameservers.is_empty() {
        return Err(FieldError::new(
            format!("{field}.nameservers"),
            "needs at least one name server",
        ));
    }
    let nameservers = raw
        .nameservers
        .iter()
        .enumerate()
        .map(|(i, n)| absolute(n, format!("{field}.nameservers[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let rname = match &raw.soa.rname {
        Some(r) => absolute(r, format!("{field}.soa.rname"))?,
        None => Name::from_str("hostmaster")
            .and_then(|n| n.append_domain(&origin))
            .map_err(|e| FieldError::new(format!("{field}.soa.rname"), e.to_string()))?,
    };

    let mut records = Vec::new();
    for (i, r) in raw.records.iter().enumerate() {
        let f = format!("{field}.records[{i}]");
        let name = name_in_zone(&r.name, format!("{f}.name"))?;
        let rtype = RecordType::from_str(&r.rtype.to_ascii_uppercase()).map_err(|_| {
            FieldError::new(format!("{f}.type"), format!("unknown type `{}`", r.rtype))
        })?;
        if matches!(rtype, RecordType::SOA | RecordType::OPT | RecordType::ANY) {
            return Err(FieldError::new(
                format!("{f}.type"),
                format!("{rtype} cannot be a static record"),
            ));
        }
        let rdata = RData::try_from_str(rtype, &r.value)
            .map_err(|e| FieldError::new(format!("{f}.value"), e.to_string()))?;
        records.push(Record::from_rdata(name, r.ttl.unwrap_or(raw.ttl), rdata));
    }
    check_cnames(&records, &origin, field)?;

    let mut geo = Vec::new();
    for (i, g) in raw.geo.iter().enumerate() {
        let f = format!("{field}.geo[{i}]");
        let name = name_in_zone(&g.name, format!("{f}.name"))?;
        if name == origin {
            return Err(FieldError::new(
                format!("{f}.name"),
                "a geo name cannot be the zone apex: its answers would replace the SOA and NS records",
            ));
        }
        if g.regions.is_empty() {
            return Err(FieldError::new(
                format!("{f}.regions"),
                "needs at least one region",
            ));
        }
        let regions = g
            .regions
            .iter()
            .map(|r| region_index(r, format!("{f}.regions")))
            .collect::<Result<Vec<_>, _>>()?;
        if records.iter().any(|r: &Record| r.name == name) {
            return Err(FieldError::new(
                format!("{f}.name"),
                "also has static records",
            ));
        }
        geo.push(GeoName {
            name,
            regions,
            ttl: g.ttl,
        });
    }
    if raw.max_answers == 0 {
        return Err(FieldError::new(
            format!("{field}.max_answers"),
            "must be at least 1",
        ));
    }

    Ok(ZoneConfig {
        origin,
        ttl: raw.ttl,
        geo_ttl: raw.geo_ttl,
        degraded_ttl: raw.degraded_ttl,
        max_answers: raw.max_answers,
        nameservers,
        rname,
        serial: raw.soa.serial,
        refresh: raw.soa.refresh,
        retry: raw.soa.retry,
        expire: raw.soa.expire,
        minimum: raw.soa.minimum,
        records,
        geo,
    })
}

/// Whether `url`'s host is the IP address `address`.
fn names_address(url: &reqwest::Url, address: IpAddr) -> bool {
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        == Some(address)
}

/// `address` as a URL host (IPv6 in brackets).
fn url_host(address: IpAddr) -> String {
    match address {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}
