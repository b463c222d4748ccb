//! `origin` binary: parse flags, load config, serve until SIGTERM/ctrl-c.
//! All behaviour lives in the library; this file only decides exit codes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use origin::{Config, Server};

/// Waypost origin: serves and stores assets for the edges.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file; without it, --data-dir and --token are required.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address (overrides the file's `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory (overrides the file's `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Bearer token for writes (overrides the file's `token`).
    #[arg(long, value_name = "T", env = "ORIGIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Bearer token for reads of KV, feed, cluster, plugins and metrics
    /// (overrides the file's `read_token`).
    #[arg(
        long,
        value_name = "T",
        env = "ORIGIN_READ_TOKEN",
        hide_env_values = true
    )]
    read_token: Option<String>,
    /// File of further tokens, `scope token` per line (overrides the
    /// file's `tokens_file`); re-read on change and on SIGHUP.
    #[arg(long, value_name = "FILE", env = "ORIGIN_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("origin: {}", service_base::error_line::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = build_config(args)?;
    service_base::logging::init_json();
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(run(config))
}

/// Applies flag overrides on top of the file (or the defaults), and checks
/// the result before anything binds.
fn build_config(args: Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            let (Some(data_dir), Some(token)) = (&args.data_dir, &args.token) else {
                bail!("give --config FILE, or both --data-dir DIR and --token T");
            };
            Config::for_data_dir(data_dir, token)
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
    if let Some(token) = args.token {
        config.token = token;
    }
    if let Some(read_token) = args.read_token {
        config.read_token = Some(read_token);
    }
    if let Some(tokens_file) = args.tokens_file {
        config.tokens_file = Some(tokens_file);
    }
    config
        .validate()
        .context("invalid value given on the command line")?;
    Ok(config)
}

async fn run(config: Config) -> anyhow::Result<()> {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let server = Server::start(config).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "origin listening on {scheme}://{}",
        server.local_addr()
    )?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(
        addr = %server.local_addr(),
        peer_addr = ?server.peer_addr(),
        "origin started"
    );
    service_base::shutdown::requested()
        .await
        .context("cannot listen for Ctrl-C or SIGTERM")?;
    tracing::info!("shutting down: draining in-flight requests");
    server.shutdown().await;
    Ok(())
}
