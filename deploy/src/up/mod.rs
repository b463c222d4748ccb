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
pub mod tls;

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
pub const DEFAULT_ORIGIN: &str = "https://127.0.1.1:7070";
/// `up`'s data dir unless `--data-dir` says otherwise; the other commands
/// trust the CA in it (`tls/ca.pem`) when no `--ca-file` is given.
pub const DEFAULT_DATA_DIR: &str = ".waypost";

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
    /// Port on which the origins reach each other (mutual TLS).
    #[arg(long, default_value_t = 7071)]
    peer_port: u16,
    /// UDP/TCP port of the GeoDNS server (on region 1's address).
    #[arg(long, default_value_t = 5353)]
    dns_port: u16,
    /// Port of the live dashboard (on region 1's address).
    #[arg(long, default_value_t = 9900)]
    dashboard_port: u16,
    /// Where the origins' stores and the edges' disk caches live, one
    /// directory per region.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Plaintext HTTP between the services instead of TLS from the local
    /// CA in `<data dir>/tls` (for benchmarks; credentials then cross
    /// loopback in clear).
    #[arg(long)]
    plaintext: bool,
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
        peer: args.peer_port,
    };
    // Refused before anything binds or is written.
    let mut layout = Layout::new(args.ip, args.regions, ports)?;
    if args.plaintext {
        layout = layout.plaintext();
    }
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
    let tls = layout
        .tls()
        .then(|| tls::LocalTls::prepare(&data_dir, &layout))
        .transpose()?;
    let roots: Vec<reqwest::Certificate> =
        tls.iter().map(|t| t.root()).collect::<Result<_, _>>()?;
    let client = roots
        .iter()
        .fold(reqwest::Client::builder(), |b, root| {
            b.add_root_certificate(root.clone())
        })
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let n = layout.len();

    eprintln!("[1/4] starting {n} origin(s), one Raft group ...");
    let origins = regions::start_origins(&layout, &data_dir, tls.as_ref()).await?;
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
        edges.push(regions::start_edge(&layout, r, &data_dir, &sites, tls.as_ref()).await?);
    }
    let dns = dns::start(IpAddr::V4(layout.ip(1)), args.dns_port, &layout).await?;
    let dashboard = start_dashboard(&layout, &dns, dashboard_listener, roots)?;
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
    print_summary(&layout, &platform, &data_dir, tls.as_ref(), built.is_some());

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
    roots: Vec<reqwest::Certificate>,
) -> anyhow::Result<crate::dashboard::RunningDashboard> {
    let targets = crate::dashboard::Targets {
        regions: layout
            .regions()
            .map(|(r, _)| crate::dashboard::RegionTarget {
                name: layout::region_name(r),
                origin: layout.origin_url(r),
                edge_admin: format!("http://{}", layout.edge_admin(r)),
            })
            .collect(),
        geodns: Some(format!("http://{}", dns::metrics_addr(dns.udp_addrs()[0]))),
    };
    crate::dashboard::start(listener, targets, DEV_TOKEN.to_string(), roots)
}

fn print_summary(
    layout: &Layout,
    platform: &Platform,
    data_dir: &std::path::Path,
    tls: Option<&tls::LocalTls>,
    plugins: bool,
) {
    let dns = &platform.dns;
    let n = layout.len();
    println!();
    println!(
        "Waypost is up ({n} region(s), data in {}):",
        data_dir.display()
    );
    for (r, _) in layout.regions() {
        println!(
            "  region {r}  edge http://{}  admin http://{}  origin {}",
            layout.edge_http(r),
            layout.edge_admin(r),
            layout.origin_url(r)
        );
    }
    match tls {
        Some(t) => println!(
            "  TLS       origins and the links between them use the local CA {}",
            t.ca_file.display()
        ),
        None => println!("  TLS       off (--plaintext): tokens cross loopback in clear"),
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
    let origin = layout.origin_url(1);
    let mut flag = if origin == DEFAULT_ORIGIN {
        String::new()
    } else {
        format!(" --origin {origin}")
    };
    // The commands find the CA of the default data dir by themselves.
    if let Some(t) = tls
        && !uses_default_ca(&t.ca_file)
    {
        flag.push_str(&format!(" --ca-file {}", t.ca_file.display()));
    }
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

/// Whether `ca_file` is the one the commands trust without `--ca-file`.
fn uses_default_ca(ca_file: &std::path::Path) -> bool {
    crate::cli::default_ca_file().is_some_and(|d| d.canonicalize().ok().as_deref() == Some(ca_file))
}

/// The servers' JSON logs on stderr: as `RUST_LOG` says when it is set,
/// else warnings and errors only, so the quick start's own lines are not
/// buried under every request and Raft step (openraft's warnings about
/// votes during the first election are routine, so only its errors).
fn init_logging() {
    service_base::logging::init_json_with_default("warn,openraft=error");
}
