//! `waypost up`: a local multi-region platform in this process. Each region
//! has an origin (together one Raft group) and an edge on its own loopback
//! address; geodns answers with the nearest healthy region's edge. Sample
//! assets go in through region 1, and the output shows a miss and a hit,
//! the same asset served by another region, and wasm plugins answering.

mod demo;
mod dns;
pub mod layout;
mod plugins;
mod regions;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use layout::{Layout, Ports};

/// The write/purge token of the local platform. Local use only.
pub const DEV_TOKEN: &str = "waypost-dev-token";
/// The read token of the local platform's origins, which its edges follow
/// the change feed with. Local use only.
pub const DEV_READ_TOKEN: &str = "waypost-dev-read-token";
/// Region 1's origin as `up` starts it by default: what the other commands
/// talk to unless told otherwise.
pub const DEFAULT_ORIGIN: &str = "http://127.0.1.1:7070";

#[derive(clap::Args)]
pub struct UpArgs {
    /// How many regions to start (1 to 9).
    #[arg(long, default_value_t = 3)]
    regions: u8,
    /// Loopback address of region 1; region N uses the third octet + N-1
    /// (127.0.1.1, 127.0.2.1, ...). Every 127.x.y.z works on Linux.
    #[arg(long, default_value = "127.0.1.1")]
    ip: Ipv4Addr,
    /// Port of each edge's public HTTP listener.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Port of each edge's admin listener (health, metrics, purge).
    #[arg(long, default_value_t = 9080)]
    admin_port: u16,
    /// Port of each region's origin.
    #[arg(long, default_value_t = 7070)]
    origin_port: u16,
    /// UDP/TCP port of the GeoDNS server (on region 1's address).
    #[arg(long, default_value_t = 5353)]
    dns_port: u16,
    /// Port of the live dashboard (on region 1's address).
    #[arg(long, default_value_t = 9900)]
    dashboard_port: u16,
    /// Where the origins' stores and the edges' disk caches live, one
    /// directory per region.
    #[arg(long, default_value = ".waypost")]
    data_dir: PathBuf,
    /// Exit after showing the platform working instead of serving.
    #[arg(long)]
    check: bool,
}

/// Everything `up` started, stopped in reverse order.
struct Platform {
    dashboard: crate::dashboard::RunningDashboard,
    dns: geodns::RunningServer,
    edges: Vec<edge_node::RunningServer>,
    origins: Vec<origin::RunningServer>,
}

impl Platform {
    async fn shutdown(self) {
        self.dashboard.stop();
        self.dns.shutdown().await;
        for edge in self.edges {
            edge.shutdown().await;
        }
        for origin in self.origins {
            origin.shutdown().await;
        }
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let ports = Ports {
        http: args.http_port,
        admin: args.admin_port,
        origin: args.origin_port,
    };
    // Refused before anything binds or is written.
    let layout = Layout::new(args.ip, args.regions, ports)?;
    init_logging();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    regions::claim_data_dir(&layout, &data_dir)?;
    // Bound first, so a port in use is refused before anything starts.
    let dashboard_addr = std::net::SocketAddr::new(IpAddr::V4(layout.ip(1)), args.dashboard_port);
    let dashboard_listener = tokio::net::TcpListener::bind(dashboard_addr)
        .await
        .with_context(|| {
            format!("cannot listen on {dashboard_addr} for the dashboard (--dashboard-port)")
        })?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let n = layout.len();

    eprintln!("[1/4] starting {n} origin(s), one Raft group ...");
    let origins = regions::start_origins(&layout, &data_dir).await?;
    regions::wait_origins(&layout, &client, &data_dir).await?;

    eprintln!("[2/4] starting {n} edge(s) and geodns ...");
    let built = plugins::ensure();
    if built.is_some() {
        // Before the edges, whose thumbnailer consumers lease from it.
        demo::declare_photo_queue(&client, &layout).await?;
    }
    let mut edges = Vec::new();
    for (r, _) in layout.regions() {
        let sites = match &built {
            Some(b) => plugins::sites(
                b,
                &data_dir.join(layout::region_name(r)),
                &data_dir.join("wasm-cache"),
            )?,
            None => String::new(),
        };
        edges.push(regions::start_edge(&layout, r, &data_dir, &sites).await?);
    }
    let dns = dns::start(IpAddr::V4(layout.ip(1)), args.dns_port, &layout).await?;
    let dashboard = start_dashboard(&layout, &dns, dashboard_listener)?;
    let platform = Platform {
        dashboard,
        dns,
        edges,
        origins,
    };

    if let Err(e) = demo::show(&client, &layout, built.is_some()).await {
        // Stopped in order, so the next start finds clean state.
        platform.shutdown().await;
        return Err(e);
    }
    print_summary(&layout, &platform, &data_dir, built.is_some());

    if !args.check {
        println!();
        println!("Press Ctrl-C to stop.");
        service_base::shutdown::requested()
            .await
            .context("cannot listen for Ctrl-C or SIGTERM")?;
        eprintln!("stopping ...");
    }
    platform.shutdown().await;
    Ok(())
}

/// The dashboard of every region `up` started, on region 1's address.
fn start_dashboard(
    layout: &Layout,
    dns: &geodns::RunningServer,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<crate::dashboard::RunningDashboard> {
    let targets = crate::dashboard::Targets {
        regions: layout
            .regions()
            .map(|(r, _)| crate::dashboard::RegionTarget {
                name: layout::region_name(r),
                origin: format!("http://{}", layout.origin(r)),
                edge_admin: format!("http://{}", layout.edge_admin(r)),
            })
            .collect(),
        geodns: Some(format!("http://{}", dns::metrics_addr(dns.udp_addrs()[0]))),
    };
    crate::dashboard::start(listener, targets, DEV_TOKEN.to_string())
}

fn print_summary(layout: &Layout, platform: &Platform, data_dir: &std::path::Path, plugins: bool) {
    let dns = &platform.dns;
    let n = layout.len();
    println!();
    println!(
        "Waypost is up ({n} region(s), data in {}):",
        data_dir.display()
    );
    for (r, _) in layout.regions() {
        println!(
            "  region {r}  edge http://{}  admin http://{}  origin http://{}",
            layout.edge_http(r),
            layout.edge_admin(r),
            layout.origin(r)
        );
    }
    println!(
        "  geodns    udp+tcp {} (zone waypost.test)  metrics http://{}/metrics   token {DEV_TOKEN}",
        dns.udp_addrs()[0],
        dns::metrics_addr(dns.udp_addrs()[0])
    );
    println!(
        "  dashboard http://{}/   (log in with the token {DEV_TOKEN})",
        platform.dashboard.addr
    );
    let origin = format!("http://{}", layout.origin(1));
    let flag = if origin == DEFAULT_ORIGIN {
        String::new()
    } else {
        format!(" --origin {origin}")
    };
    let (first, last) = (layout.edge_http(1), layout.edge_http(n));
    println!();
    println!("Try:");
    println!("  curl -i http://{first}/assets/hello.txt");
    if n > 1 {
        println!("  curl -i http://{last}/assets/hello.txt   # region {n}'s edge");
    }
    println!(
        "  {}   # GeoDNS: region 1's edge",
        dns::dig_line(dns, layout, None)
    );
    if n > 1 {
        println!(
            "  {}   # as a client in region {n}",
            dns::dig_line(dns, layout, Some(n))
        );
    }
    if plugins {
        println!("  curl -i http://{first}/hello   # a wasm plugin answering");
        println!(
            "  curl -T photo.png -H 'Authorization: Bearer {}' http://{first}/photos/mine   # then /assets/photos/thumbnails/mine.png",
            plugins::DEV_UPLOAD_TOKEN
        );
        println!("  waypost queue stats photos{flag}");
    }
    println!("  waypost status{flag}");
    println!("  waypost purge{flag} --key demo   # every region, through the change feed");
    println!("  waypost kv put{flag} demo greeting hello");
}

/// The servers' JSON logs on stderr: as `RUST_LOG` says when it is set,
/// else warnings and errors only, so the quick start's own lines are not
/// buried under every request and Raft step (openraft's warnings about
/// votes during the first election are routine, so only its errors).
fn init_logging() {
    service_base::logging::init_json_with_default("warn,openraft=error");
}
