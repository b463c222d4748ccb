//! The servers of a local platform: one origin per region, together one
//! Raft group, and one edge per region whose pool lists its own region's
//! origin first and the others after it, following the origin's change
//! feed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use origin::config::ClusterConfig;
use tokio::net::TcpListener;

use super::layout::{Layout, region_name};
use super::tls::LocalTls;
use super::{DEV_READ_TOKEN, DEV_TOKEN};

/// How long the origins get to elect a leader and report healthy. A fresh
/// group takes about a second.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// The file in the data dir naming the Raft members it was created for.
const LAYOUT_FILE: &str = "layout";
/// First line of [`LAYOUT_FILE`]; a new format gets a new version. Version
/// 1 named the origins' public addresses, which were the members until
/// `up` ran the links between regions on TLS listeners of their own.
const LAYOUT_VERSION: &str = "waypost-up-layout 2";

/// The Raft members' addresses of `layout`: the peer listeners with TLS,
/// the public ones with `--plaintext`.
fn member_addr(layout: &Layout, n: usize) -> std::net::SocketAddr {
    if layout.tls() {
        layout.origin_peer(n)
    } else {
        layout.origin(n)
    }
}

/// Refuses a data dir made for other members: its Raft logs name those,
/// and the origins would wait for peers that never come (seen only after
/// a timeout, under a flood of Raft errors). A new data dir is marked with
/// this layout.
pub fn claim_data_dir(layout: &Layout, data_dir: &Path) -> anyhow::Result<()> {
    let mut expected = format!("{LAYOUT_VERSION}\n");
    for (n, _) in layout.regions() {
        expected.push_str(&format!("{}\n", member_addr(layout, n)));
    }
    let file = data_dir.join(LAYOUT_FILE);
    match std::fs::read_to_string(&file) {
        Ok(found) if found == expected => Ok(()),
        Ok(found) if found.lines().next() != Some(LAYOUT_VERSION) => anyhow::bail!(
            "{} was made by an older `waypost up`, whose regions reached each other on another \
             address; pass another --data-dir (or remove this one: its data is sample data)",
            data_dir.display()
        ),
        Ok(found) => anyhow::bail!(
            "{} was created for other regions (members {}); start with the --regions, --ip, \
             --origin-port, --peer-port and --plaintext it was made with, or pass another --data-dir",
            data_dir.display(),
            found.lines().skip(1).collect::<Vec<_>>().join(", ")
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&file, expected).with_context(|| format!("writing {}", file.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// Starts every region's origin as one Raft group: with `tls`, HTTPS for
/// clients and mutual TLS between the origins on a peer listener of their
/// own. The public listeners are bound first, so a port in use fails
/// before any region starts.
pub async fn start_origins(
    layout: &Layout,
    data_dir: &Path,
    tls: Option<&LocalTls>,
) -> anyhow::Result<Vec<origin::RunningServer>> {
    let members: BTreeMap<u64, String> = layout
        .regions()
        .map(|(n, _)| (n as u64, member_addr(layout, n).to_string()))
        .collect();
    let mut listeners = Vec::new();
    for (n, _) in layout.regions() {
        let addr = layout.origin(n);
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} for region {n}'s origin; is another `waypost up` running? (try --ip or --origin-port)")
        })?;
        listeners.push(listener);
    }
    let mut origins = Vec::new();
    for ((n, _), listener) in layout.regions().zip(listeners) {
        let mut config =
            origin::Config::for_data_dir(data_dir.join(region_name(n)).join("origin"), DEV_TOKEN);
        config.listen = layout.origin(n);
        config.read_token = Some(DEV_READ_TOKEN.into());
        config.cache_rules.push(origin::CacheRule {
            prefix: "/static/".into(),
            cache_control: "public, max-age=86400, stale-while-revalidate=60".into(),
        });
        config.cluster = Some(ClusterConfig {
            node_id: n as u64,
            members: members.clone(),
        });
        if let Some(tls) = tls {
            let certs = tls.region(n);
            config.tls = Some(certs.api.clone());
            config.peer = Some(origin::config::PeerListener {
                listen: layout.origin_peer(n),
                limits: origin::listen::Limits::PEER,
                tls: Some(certs.peer.clone()),
            });
        }
        let server = origin::Server::start_on(config, listener)
            .await
            .with_context(|| format!("starting region {n}'s origin"))?;
        origins.push(server);
    }
    Ok(origins)
}

/// Waits until every origin's `/healthz` answers 200: a leader is elected
/// and each region has applied what was committed.
pub async fn wait_origins(
    layout: &Layout,
    client: &reqwest::Client,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for (n, _) in layout.regions() {
        let url = format!("{}/healthz", layout.origin_url(n));
        loop {
            let ok = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < READY_LIMIT,
                "region {n}'s origin is not healthy after {READY_LIMIT:?} ({url}); its data is in {}",
                data_dir.join(region_name(n)).display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Starts region `n`'s edge.
pub async fn start_edge(
    layout: &Layout,
    n: usize,
    data_dir: &Path,
    plugin_sites: &str,
    tls: Option<&LocalTls>,
) -> anyhow::Result<edge_node::RunningServer> {
    let dir = data_dir.join(region_name(n));
    let toml = edge_toml(layout, n, &dir, plugin_sites, tls);
    let config = edge_node::Config::from_toml(&dir.join("edge.toml"), &toml)
        .with_context(|| format!("region {n}'s edge config"))?;
    edge_node::Server::start(config)
        .await
        .with_context(|| format!("starting region {n}'s edge (try --ip or --http-port/--admin-port if the address is taken)"))
}

/// Region `n`'s edge config: a pool of every region's origin, its own
/// first (over HTTPS checked against the local CA with `tls`), and the
/// change feed through that pool.
fn edge_toml(
    layout: &Layout,
    n: usize,
    dir: &Path,
    plugin_sites: &str,
    tls: Option<&LocalTls>,
) -> String {
    let regions: Vec<String> = layout
        .preference(n)
        .into_iter()
        .map(|m| {
            format!(
                "{{ name = \"{}\", origins = [\"{}\"] }}",
                region_name(m),
                layout.origin_url(m)
            )
        })
        .collect();
    format!(
        r#"
[listen]
http = "{http}"
[admin]
listen = "{admin}"
token = "{DEV_TOKEN}"
[cache]
memory_capacity = "256MiB"
disk = {{ dir = "{cache}", capacity = "4GiB" }}
[[pools]]
name = "origin"
regions = [{regions}]
{pool_tls}
[feed]
pool = "origin"
token = "{DEV_READ_TOKEN}"
# Only assets are public: the origin's KV, feed, cluster, plugin and
# metrics routes stay behind its tokens and are never routed here.
[[sites]]
hosts = ["*"]
path_prefix = "/assets/"
pool = "origin"
{plugin_sites}"#,
        http = layout.edge_http(n),
        admin = layout.edge_admin(n),
        cache = dir.join("edge-cache").display(),
        regions = regions.join(", "),
        pool_tls = tls.map_or_else(String::new, |t| format!(
            "tls = {{ ca_file = \"{}\" }}",
            t.ca_file.display()
        )),
    )
}
