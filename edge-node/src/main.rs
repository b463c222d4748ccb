//! `edge-node --config edge.toml`: runs one edge node until SIGTERM/ctrl-c.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use edge_node::{Config, RunningServer, Server};

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

/// Threads for blocking work (disk-tier file writes and metadata, purges
/// that walk the cache). Tokio's default of 512 lets a burst of disk fills
/// start hundreds of threads, each with its own stack and allocator heap:
/// tens of MiB that no cache setting accounts for.
const MAX_BLOCKING_THREADS: usize = 32;

fn main() -> ExitCode {
    service_base::logging::init_json();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edge-node: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    // The admin token belongs in the environment (a systemd
    // EnvironmentFile, a Kubernetes Secret), not in a file that is copied.
    if let Ok(token) = std::env::var("EDGE_ADMIN_TOKEN") {
        anyhow::ensure!(!token.is_empty(), "EDGE_ADMIN_TOKEN is set but empty");
        if !config.admin.allow_insecure {
            edge_node::config::check_admin_exposure(
                config.admin.listen,
                config.admin.tls,
                Some(&token),
            )
            .map_err(|e| anyhow::anyhow!("EDGE_ADMIN_TOKEN: {}: {}", e.field, e.reason))?;
        }
        config.admin.token = Some(token);
    }
    if let Ok(token) = std::env::var("EDGE_FEED_TOKEN")
        && let Some(feed) = config.feed.as_mut()
    {
        feed.token = Some(token);
    }
    if let Ok(token) = std::env::var("EDGE_KV_TOKEN") {
        config.plugin_runtime.kv_token = Some(token);
    }
    let server = Server::start(config).await?;
    announce(&server);
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

/// Prints the bound addresses for whoever started the edge (scripts read
/// them to learn port 0's choice). A closed stdout is not a reason to stop
/// serving, so a failed write is ignored; the same facts are in the log.
fn announce(server: &RunningServer) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut lines = Vec::new();
    if let Some(a) = server.http_addr() {
        lines.push(format!("edge-node listening on http://{a}"));
    }
    if let Some(a) = server.https_addr() {
        lines.push(format!("edge-node listening on https://{a}"));
    }
    lines.push(format!("edge-node admin on http://{}", server.admin_addr()));
    for line in &lines {
        tracing::info!("{line}");
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}
