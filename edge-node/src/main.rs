//! `edge-node --config edge.toml`: runs one edge node until SIGTERM/ctrl-c.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use edge_node::{Config, Server};

/// mimalloc: small cached objects and per-request allocations are the
/// edge's hot path, and glibc malloc both spent ~11% of a cache-hit's CPU
/// and fragmented per-thread arenas under a million small objects.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Waypost edge node: caching HTTP/1.1 + HTTP/2 reverse proxy"
)]
struct Args {
    /// Path to the edge config (TOML).
    #[arg(long, short)]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    service_base::logging::init_json();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let server = Server::start(config).await?;
    if let Some(a) = server.http_addr() {
        println!("edge-node listening on http://{a}");
    }
    if let Some(a) = server.https_addr() {
        println!("edge-node listening on https://{a}");
    }
    println!("edge-node admin on http://{}", server.admin_addr());
    use std::io::Write;
    std::io::stdout().flush()?;
    let stop = server.stop_token();
    tokio::spawn(async move {
        match service_base::shutdown::requested().await {
            Ok(()) => {
                tracing::info!("shutdown requested; draining in-flight requests");
                stop.cancel();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for Ctrl-C or SIGTERM; only SIGKILL stops this edge")
            }
        }
    });
    server.wait().await;
    Ok(())
}
