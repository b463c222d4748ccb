//! The GeoDNS part of `waypost up`: geodns in this process, authoritative
//! for `waypost.test`, whose geo name `cdn.waypost.test` answers with the
//! edge of the nearest healthy region, each edge health-checked through
//! its admin `/healthz`.
//!
//! Loopback clients carry no location, so CIDR overrides stand in for the
//! MaxMind database: 127.0.0.0/8 belongs to region 1 and each region's own
//! /24 (127.0.N.0/24 by default) to that region. `dig +subnet=` sends an
//! EDNS Client Subnet and shows another region's answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::Context;

use super::layout::{Layout, region_name};

/// The geo name the quick start prints `dig` lines for.
pub const GEO_NAME: &str = "cdn.waypost.test";

/// Starts geodns on `ip:port` with one region per edge.
pub async fn start(
    ip: IpAddr,
    port: u16,
    layout: &Layout,
) -> anyhow::Result<geodns::RunningServer> {
    let toml = config_toml(SocketAddr::new(ip, port), layout);
    let config = geodns::Config::parse(Path::new("waypost-up-geodns.toml"), &toml)?;
    geodns::Server::start(config)
        .await
        .with_context(|| format!("starting geodns on {ip}:{port} (try --dns-port)"))
}

fn config_toml(listen: SocketAddr, layout: &Layout) -> String {
    let mut regions = String::new();
    let mut overrides = vec![format!(
        "{{ cidr = \"127.0.0.0/8\", region = \"{}\" }}",
        region_name(1)
    )];
    for (n, ip) in layout.regions() {
        let name = region_name(n);
        // Made-up coordinates, a few degrees apart: only the overrides
        // decide who goes where, the distances never come into play.
        regions.push_str(&format!(
            "[regions.{name}]\nlatitude = {lat}\nlongitude = 8.7\n\
             endpoints = [{{ address = \"{ip}\", health = \"http://{admin}/healthz\" }}]\n",
            lat = 40 + n,
            admin = layout.edge_admin(n),
        ));
        overrides.push(format!(
            "{{ cidr = \"{}/24\", region = \"{name}\" }}",
            subnet(ip)
        ));
    }
    let names: Vec<String> = layout
        .regions()
        .map(|(n, _)| format!("\"{}\"", region_name(n)))
        .collect();
    format!(
        r#"
[listen]
dns = ["{listen}"]
metrics = "{metrics}"
[health]
interval = "250ms"
# Every client of a local platform is on this machine.
[rate_limit]
exempt = ["127.0.0.0/8"]
[geoip]
overrides = [{overrides}]
{regions}
[[zones]]
origin = "waypost.test"
nameservers = ["ns1.waypost.test."]
records = [{{ name = "ns1", type = "A", value = "{ns}" }}]
geo = [{{ name = "cdn", regions = [{names}] }}]
"#,
        overrides = overrides.join(", "),
        names = names.join(", "),
        ns = listen.ip(),
        metrics = metrics_addr(listen),
    )
}

/// Where geodns serves `/metrics` in a local platform.
pub fn metrics_addr(dns: SocketAddr) -> SocketAddr {
    SocketAddr::new(dns.ip(), METRICS_PORT)
}

/// Port of geodns's `/metrics` (CoreDNS's convention).
const METRICS_PORT: u16 = 9153;

/// The /24 network a region's address is in.
fn subnet(ip: Ipv4Addr) -> Ipv4Addr {
    let [a, b, c, _] = ip.octets();
    Ipv4Addr::new(a, b, c, 0)
}

/// A `dig` command that asks the running server for the geo name, as a
/// client in region `n`'s network when `n` is given.
pub fn dig_line(server: &geodns::RunningServer, layout: &Layout, n: Option<usize>) -> String {
    let addr = server.udp_addrs()[0];
    let subnet = n.map_or(String::new(), |n| {
        format!(" +subnet={}/24", subnet(layout.ip(n)))
    });
    format!("dig @{} -p {} {GEO_NAME} A{subnet}", addr.ip(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::up::layout::Ports;

    #[test]
    fn config_is_accepted_by_geodns() {
        let ports = Ports {
            http: 8080,
            admin: 9080,
            origin: 7070,
            peer: 7071,
        };
        let layout = Layout::new(Ipv4Addr::new(127, 0, 1, 1), 3, ports).unwrap();
        let text = config_toml("127.0.1.1:5353".parse().unwrap(), &layout);
        let config = geodns::Config::parse(Path::new("up.toml"), &text).unwrap();
        assert_eq!(config.regions.len(), 3);
        assert_eq!(config.geoip.overrides.len(), 4);
    }
}
