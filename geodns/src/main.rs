//! `geodns` binary: parse flags, load config, serve until SIGTERM/ctrl-c,
//! reload on SIGHUP. All behaviour lives in the library; this file only
//! decides exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use geodns::{Config, Server};

/// Waypost GeoDNS: authoritative DNS answering with the nearest healthy region.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file (re-read on SIGHUP and when it changes).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("geodns: {}", service_base::error_line::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(&args.config)?;
    init_logging();
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(run(config))
}

/// JSON logs as every Waypost server writes them (`service_base::logging`),
/// except that hickory's own line per query is off unless `RUST_LOG` asks
/// for it: our query log (`query_log = true`) carries the geo decision.
fn init_logging() {
    service_base::logging::init_json_with_default("info,hickory_server=warn");
}

async fn run(config: Config) -> anyhow::Result<()> {
    let server = Server::start(config).await?;
    let mut stdout = std::io::stdout().lock();
    for (udp, tcp) in server.udp_addrs().iter().zip(server.tcp_addrs()) {
        writeln!(stdout, "geodns listening on udp://{udp} tcp://{tcp}")?;
    }
    if let Some(addr) = server.metrics_addr() {
        writeln!(stdout, "geodns metrics on http://{addr}")?;
    }
    stdout.flush()?;
    drop(stdout);
    tracing::info!(udp = ?server.udp_addrs(), "geodns started");
    serve_signals(&server).await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Reloads on SIGHUP; returns on SIGTERM or ctrl-c.
#[cfg(unix)]
async fn serve_signals(server: &geodns::RunningServer) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            r = tokio::signal::ctrl_c() => return r.context("cannot listen for ctrl-c"),
            _ = hup.recv() => {
                // Errors are logged by the reloader; the old config keeps serving.
                let _ = server.reload().await;
            }
        }
    }
}

#[cfg(not(unix))]
async fn serve_signals(_server: &geodns::RunningServer) -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for ctrl-c")
}
