//! `waypost`: the operator's CLI. `up` runs a whole local multi-region
//! platform in one process on loopback addresses; the other commands talk
//! to running services: the origin's API (any region) and edges' admin
//! APIs, and `failover` measures a drill the operator causes. This file
//! only parses flags and decides the exit code.

mod cli;
mod dashboard;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Waypost: run and operate a WebAssembly edge/CDN platform",
    after_help = "Commands that talk to an origin use --origin/WAYPOST_ORIGIN (default: region 1 \
                  of `waypost up`) and --token/WAYPOST_TOKEN (default: the dev token of `up`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local platform: per region an origin (one Raft group) and an
    /// edge on 127.0.N.1, plus geodns; sample assets and plugins.
    Up(up::UpArgs),
    /// Scaffold, build and publish WebAssembly plugins.
    Plugin(cli::plugin::PluginArgs),
    /// Purge cached objects: every region through the origin, or one edge.
    Purge(cli::purge::PurgeArgs),
    /// Read and write the replicated key-value store.
    Kv(cli::kv::KvArgs),
    /// Durable queues: declare, send, pull, ack, stats, dead letters.
    Queue(cli::queue::QueueArgs),
    /// Back up the origin's state and blobs to a directory, verify, restore.
    Backup(cli::backup::BackupArgs),
    /// Show the origin cluster (leader, voters, health, lag), published
    /// plugins and edges' hit ratios.
    Status(cli::status::StatusArgs),
    /// Add or remove an origin region at runtime.
    Region(cli::region::RegionArgs),
    /// Measure a failover drill: write probes while you stop a region's
    /// origin, report leader changes and write outages, check nothing
    /// acknowledged was lost.
    Failover(cli::failover::FailoverArgs),
    /// Serve the live dashboard of every region (behind the operator's
    /// token); `up` starts one too.
    Dashboard(dashboard::DashboardArgs),
    /// Issue certificates for one more region from `waypost up`'s local
    /// CA, printed as origin config lines (to add a region to it).
    Cert(up::tls::CertArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that print are used in pipelines (`waypost status | head`):
    // end quietly when the reader goes, as Unix tools do, instead of
    // panicking on the write. `up` keeps ignoring SIGPIPE: it serves
    // sockets and its children's pipes.
    if !matches!(cli.command, Command::Up(_) | Command::Dashboard(_)) {
        sigpipe::reset();
    }
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Plugin(args) => cli::plugin::run(args).await,
        Command::Purge(args) => cli::purge::run(args).await,
        Command::Kv(args) => cli::kv::run(args).await,
        Command::Queue(args) => cli::queue::run(args).await,
        Command::Backup(args) => cli::backup::run(args).await,
        Command::Status(args) => cli::status::run(args).await,
        Command::Region(args) => cli::region::run(args).await,
        Command::Failover(args) => cli::failover::run(args).await,
        Command::Dashboard(args) => dashboard::run(args).await,
        Command::Cert(args) => up::tls::run_cert(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waypost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks flag references (conflicts, requires) only when a
    /// command is used; this checks every command at once.
    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
