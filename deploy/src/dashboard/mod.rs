//! The live dashboard (`waypost dashboard`, and part of `waypost up`): a
//! scraper reads every region's origin and edge and geodns once a second
//! into an in-process ring of the last hour ([`history`]), and a small
//! HTTP server behind the operator's token draws it. The history lives in
//! the process because the dashboard is for the incident at hand and must
//! work with nothing else deployed; Prometheus and Grafana
//! (`deploy/monitoring/`) keep the long term.

mod history;
mod http;
mod prom;
mod scrape;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use scrape::{RegionTarget, Targets};

/// How often every service is read; a region that stops answering is
/// drawn red within one interval plus the page's half-second poll.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// A service slower than this to answer counts as down for that reading.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(700);

#[derive(clap::Args)]
pub struct DashboardArgs {
    /// Where the dashboard listens. Keep it private (loopback, VPN): it
    /// is for operators.
    #[arg(long, default_value = "127.0.0.1:9900")]
    listen: SocketAddr,
    /// One region: NAME=ORIGIN_URL,EDGE_ADMIN_URL (repeat per region).
    #[arg(
        long = "region",
        value_name = "NAME=ORIGIN,EDGE_ADMIN",
        required = true
    )]
    regions: Vec<String>,
    /// geodns's metrics URL (its `[listen] metrics`), e.g. http://127.0.0.1:9153.
    #[arg(long)]
    geodns: Option<String>,
    /// The operator's token: it reads the origins and logs browsers in.
    #[arg(long, env = "WAYPOST_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM file of CA certificates to trust for `https://` origins (as
    /// the other commands' `--ca-file`; `waypost up`'s is
    /// `.waypost/tls/ca.pem`).
    #[arg(long, env = "WAYPOST_CA_FILE", value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
}

/// A started dashboard; dropping it does not stop it.
pub struct RunningDashboard {
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningDashboard {
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

pub async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    // It logs browsers in: the same rule as every server's tokens.
    if let Some(weakness) = service_base::secrets::weakness(args.token.trim()) {
        anyhow::bail!("--token (WAYPOST_TOKEN) {weakness}");
    }
    let mut regions = Vec::new();
    for spec in &args.regions {
        regions.push(parse_region(spec)?);
    }
    let targets = Targets {
        regions,
        geodns: args.geodns.map(|g| g.trim_end_matches('/').to_string()),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let roots = match &args.ca_file {
        Some(path) => crate::cli::read_cas(path)?,
        None => Vec::new(),
    };
    let dashboard = start(listener, targets, args.token, roots)?;
    println!("waypost dashboard on http://{}/", dashboard.addr);
    service_base::shutdown::requested()
        .await
        .context("cannot listen for Ctrl-C or SIGTERM")?;
    dashboard.stop();
    Ok(())
}

/// `NAME=ORIGIN,EDGE_ADMIN` as `--region` takes it.
fn parse_region(spec: &str) -> anyhow::Result<RegionTarget> {
    let bad = || {
        anyhow::anyhow!(
            "--region {spec:?}: expected NAME=ORIGIN_URL,EDGE_ADMIN_URL, e.g. \
             region-1=http://127.0.1.1:7070,http://127.0.1.1:9080"
        )
    };
    let (name, urls) = spec.split_once('=').ok_or_else(bad)?;
    let (origin, edge) = urls.split_once(',').ok_or_else(bad)?;
    let url = |u: &str| {
        let u = u.trim().trim_end_matches('/');
        (u.starts_with("http://") || u.starts_with("https://"))
            .then(|| u.to_string())
            .ok_or_else(bad)
    };
    if name.is_empty() {
        return Err(bad());
    }
    Ok(RegionTarget {
        name: name.to_string(),
        origin: url(origin)?,
        edge_admin: url(edge)?,
    })
}

/// Starts scraping `targets` (trusting `roots` besides the public ones)
/// and serving on `listener`.
pub fn start(
    listener: TcpListener,
    targets: Targets,
    token: String,
    roots: Vec<reqwest::Certificate>,
) -> anyhow::Result<RunningDashboard> {
    let addr = listener.local_addr()?;
    let history = Arc::new(Mutex::new(history::History::new(
        targets.regions.iter().map(|r| r.name.clone()).collect(),
    )));
    let client = roots
        .into_iter()
        .fold(reqwest::Client::builder(), |b, root| {
            b.add_root_certificate(root)
        })
        .no_proxy()
        .timeout(SCRAPE_TIMEOUT)
        .build()?;
    let scraper = tokio::spawn(scrape_loop(client, token.clone(), targets, history.clone()));
    let app = Arc::new(http::App::new(token, history));
    let server = tokio::spawn(serve(listener, app));
    Ok(RunningDashboard {
        addr,
        tasks: vec![scraper, server],
    })
}

async fn scrape_loop(
    client: reqwest::Client,
    token: String,
    targets: Targets,
    history: Arc<Mutex<history::History>>,
) {
    let mut previous = scrape::Previous::default();
    let mut ticker = tokio::time::interval(SCRAPE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        ticker.tick().await;
        let interval = last.elapsed();
        last = Instant::now();
        let reading = scrape::read(&client, &token, &targets, &mut previous, interval).await;
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(at, reading);
    }
}

/// Connections stay few (operators' browsers); each is served on its own
/// task until it closes.
async fn serve(listener: TcpListener, app: Arc<http::App>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, most likely: do not spin on it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { app.handle(req).await }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_named_with_two_urls() {
        let r = parse_region("eu=http://127.0.1.1:7070/,http://127.0.1.1:9080").unwrap();
        assert_eq!(
            (r.name.as_str(), r.origin.as_str(), r.edge_admin.as_str()),
            ("eu", "http://127.0.1.1:7070", "http://127.0.1.1:9080")
        );
        for bad in [
            "eu",
            "eu=http://a",
            "=http://a,http://b",
            "eu=ftp://a,http://b",
        ] {
            let e = parse_region(bad).unwrap_err().to_string();
            assert!(e.contains("NAME=ORIGIN_URL,EDGE_ADMIN_URL"), "{bad}: {e}");
        }
    }
}
