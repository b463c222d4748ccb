//! The GeoDNS part of `waypost up`: geodns in this process, authoritative
//! for `waypost.test`, whose geo name `cdn.waypost.test` points at the
//! local edge and follows the edge's `/healthz`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::Context;

/// The geo name the quick start prints a `dig` line for.
pub const GEO_NAME: &str = "cdn.waypost.test";

/// Starts geodns on `ip:port` with one region: the edge at `edge_ip`,
/// health-checked through `health_url`.
pub async fn start(
    ip: IpAddr,
    port: u16,
    edge_ip: IpAddr,
    health_url: &str,
) -> anyhow::Result<geodns::RunningServer> {
    let toml = format!(
        r#"
[listen]
dns = ["{listen}"]
[regions.local]
latitude = 50.1
longitude = 8.7
endpoints = [{{ address = "{edge_ip}", health = "{health_url}" }}]
[[zones]]
origin = "waypost.test"
nameservers = ["ns1.waypost.test."]
records = [{{ name = "ns1", type = "A", value = "{ip}" }}]
geo = [{{ name = "cdn", regions = ["local"] }}]
"#,
        listen = SocketAddr::new(ip, port),
    );
    let config = geodns::Config::parse(Path::new("waypost-up-geodns.toml"), &toml)?;
    geodns::Server::start(config)
        .await
        .context("starting geodns")
}

/// A `dig` command that asks the running server for the geo name.
pub fn dig_line(server: &geodns::RunningServer) -> String {
    let addr = server.udp_addrs()[0];
    format!("dig @{} -p {} {GEO_NAME} A", addr.ip(), addr.port())
}
