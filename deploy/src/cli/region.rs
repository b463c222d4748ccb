//! `waypost region add|remove`: change the origin cluster's membership at
//! runtime (`POST /cluster/members`, `DELETE /cluster/members/{id}` at any
//! region; forwarded to the leader), e.g. to replace a region for good
//! after a failover drill (`waypost failover`).

use std::time::Duration;

use waypost_api::cluster::{ClusterStatus, NewMember};

use super::{OriginArgs, send, success};

/// A new region catches up as a learner before it votes; the origin
/// allows 30 s for that, and the answer comes after.
const ADD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
pub struct RegionArgs {
    #[command(flatten)]
    origin: OriginArgs,
    #[command(subcommand)]
    command: RegionCommand,
}

#[derive(clap::Subcommand, Debug)]
enum RegionCommand {
    /// Add a running origin as a new region. Start it first with a
    /// `[cluster]` listing the current members and itself; it waits to be
    /// added, catches up as a learner, then votes.
    Add {
        /// Its `cluster.node_id`.
        #[arg(long)]
        id: u64,
        /// Where the other regions reach it (host:port).
        #[arg(long)]
        addr: String,
    },
    /// Remove a region. Refused if it is the last voter or if the voters
    /// left could not form an answering majority.
    Remove {
        /// The region's member id.
        id: u64,
    },
}

pub async fn run(args: RegionArgs) -> anyhow::Result<()> {
    let http = args.origin.client(ADD_TIMEOUT)?;
    let o = &args.origin;
    let resp = match args.command {
        RegionCommand::Add { id, addr } => {
            eprintln!("adding region {id} at {addr}: it catches up as a learner, then votes ...");
            let req = http
                .post(o.url("/cluster/members"))
                .bearer_auth(&o.token)
                .json(&NewMember { id, addr });
            success(send(req, "the origin").await?, "adding the region").await?
        }
        RegionCommand::Remove { id } => {
            let req = http
                .delete(o.url(&format!("/cluster/members/{id}")))
                .bearer_auth(&o.token);
            success(send(req, "the origin").await?, "removing the region").await?
        }
    };
    let cluster: ClusterStatus = resp.json().await?;
    let ids = |list: &[u64]| {
        let list: Vec<String> = list.iter().map(u64::to_string).collect();
        format!("[{}]", list.join(","))
    };
    println!(
        "voters {}, learners {}, leader {}",
        ids(&cluster.voters),
        ids(&cluster.learners),
        cluster.leader.map_or("none".to_string(), |l| l.to_string())
    );
    Ok(())
}
