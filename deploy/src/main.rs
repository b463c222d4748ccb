//! `waypost`: the operator's CLI. `up` runs a whole local platform in one
//! process on loopback addresses; `purge` and `status` talk to a running
//! edge's admin API.

mod up;
mod up_dns;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Waypost: run and operate a WebAssembly edge/CDN platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start origin + edge on loopback with sample assets and show them working.
    Up(up::UpArgs),
    /// Purge cached objects on an edge by URL or surrogate key.
    Purge(PurgeArgs),
    /// Show an edge's health and cache figures.
    Status(StatusArgs),
}

#[derive(clap::Args)]
struct PurgeArgs {
    /// The edge's admin address.
    #[arg(long, default_value = "http://127.0.1.1:9080")]
    admin: String,
    /// Bearer token (`admin.token` of the edge).
    #[arg(long, env = "WAYPOST_TOKEN", default_value = up::DEV_TOKEN)]
    token: String,
    /// Absolute URL to purge (every variant).
    #[arg(long, conflicts_with = "key", required_unless_present = "key")]
    url: Option<String>,
    /// Surrogate key to purge.
    #[arg(long)]
    key: Option<String>,
    /// Mark stale instead of removing (revalidated on next use).
    #[arg(long)]
    soft: bool,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[arg(long, default_value = "http://127.0.1.1:9080")]
    admin: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Purge(args) => purge(args).await,
        Command::Status(args) => status(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waypost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let mut query = vec![];
    if let Some(u) = &args.url {
        query.push(("url", u.as_str()));
    }
    if let Some(k) = &args.key {
        query.push(("key", k.as_str()));
    }
    if args.soft {
        query.push(("soft", "true"));
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/purge", args.admin.trim_end_matches('/')))
        .query(&query)
        .bearer_auth(&args.token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the edge admin API at {}: {e}", args.admin))?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(
        status.is_success(),
        "purge refused ({status}): {}",
        text.trim()
    );
    println!("{}", text.trim());
    Ok(())
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let base = args.admin.trim_end_matches('/');
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("edge admin API at {base} is unreachable: {e}"))?;
    println!("edge {base}: {}", health.status());
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let sum = |prefix: &str, filter: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let hits = sum("waypost_edge_requests_total", "cache=\"Hit\"");
    let total = sum("waypost_edge_requests_total", "");
    println!(
        "requests {total}, hits {hits}, hit ratio {:.1}%",
        if total > 0.0 {
            100.0 * hits / total
        } else {
            0.0
        }
    );
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("waypost_edge_origin_up") || l.starts_with("waypost_edge_cache_"))
    {
        println!("  {line}");
    }
    Ok(())
}
