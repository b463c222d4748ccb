//! `waypost failover`: measures a failover drill while the operator causes
//! it. It writes numbered probe keys to the origin cluster without pause
//! (through whichever region answers), reports each leader change and how
//! long writes failed, and at the end reads every acknowledged probe back
//! through the leader: the drill fails if any acknowledged write is gone.
//!
//! It causes nothing itself: stop a region's origin process while it
//! watches (`systemctl stop waypost-origin`, `docker compose stop
//! origin-1`, `kill`). `waypost up` runs every region in one process, so
//! there the drill needs the regions as separate processes.

use std::time::{Duration, Instant};

use anyhow::Context;
use waypost_api::cluster::ClusterStatus;
use waypost_api::kv::Listing;

use super::{OriginArgs, send, success};

/// The KV namespace the probes go to; removed again at the end.
const NAMESPACE: &str = "waypost-drill";

#[derive(clap::Args, Debug)]
pub struct FailoverArgs {
    #[command(flatten)]
    origin: OriginArgs,
    /// How long to watch, e.g. 30s or 2m.
    #[arg(long = "for", value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Pause between probe writes.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Every region's origin URL (comma-separated), to write through
    /// whichever answers. Needed when the origins reach each other on a
    /// `[peer]` listener (the cluster then knows only those addresses);
    /// otherwise the members' addresses are used.
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    origins: Vec<String>,
}

/// What the drill saw.
#[derive(Default)]
struct Record {
    acked: Vec<u64>,
    leader_changes: u32,
    /// The longest time without an acknowledged write: failed attempts and
    /// writes that hang until a new leader commits them both count.
    longest_gap: Duration,
}

pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    // Short timeouts: a dead region must cost one interval, not a minute.
    let http = args.origin.client(Duration::from_secs(1))?;
    let members = if args.origins.is_empty() {
        members(&http, &args.origin).await?
    } else {
        args.origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_string())
            .collect()
    };
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    println!(
        "watching {} origin regions for {:?}: stop one now (the leader, for the full drill)",
        members.len(),
        args.duration
    );
    let started = Instant::now();
    let mut record = Record::default();
    let mut leader: Option<u64> = None;
    let mut failing = false;
    let mut last_ack = Instant::now();
    // A gap this long is reported; shorter ones are the probe rhythm.
    let notable = args.interval * 5 + Duration::from_millis(250);
    let mut via = 0;
    let mut n = 0;
    while started.elapsed() < args.duration {
        n += 1;
        let key = format!("{run_id}-{n:08}");
        let result = put_anywhere(&http, &args.origin.token, &members, &mut via, &key).await;
        let t = started.elapsed().as_secs_f64();
        match result {
            Ok(now_leader) => {
                record.acked.push(n);
                failing = false;
                let gap = last_ack.elapsed();
                last_ack = Instant::now();
                record.longest_gap = record.longest_gap.max(gap);
                if gap > notable {
                    println!(
                        "{t:7.2}s  acknowledged again after {:.2} s without an acknowledged write",
                        gap.as_secs_f64()
                    );
                }
                if now_leader.is_some() && now_leader != leader {
                    if leader.is_some() {
                        record.leader_changes += 1;
                    }
                    leader = now_leader;
                    println!("{t:7.2}s  leader: region {}", leader.unwrap_or_default());
                }
            }
            Err(reason) => {
                if !failing {
                    failing = true;
                    println!("{t:7.2}s  writes failing: {reason}");
                }
            }
        }
        tokio::time::sleep(args.interval).await;
    }
    record.longest_gap = record.longest_gap.max(last_ack.elapsed());
    verify(&http, &args.origin.token, &members, run_id, &record).await
}

/// Every member's URL, from the cluster view of `--origin` (its
/// addresses with `--origin`'s scheme).
async fn members(http: &reqwest::Client, origin: &OriginArgs) -> anyhow::Result<Vec<String>> {
    let resp = send(http.get(origin.url("/cluster")), "the origin").await?;
    let cluster: ClusterStatus = success(resp, "GET /cluster").await?.json().await?;
    let scheme = origin.origin.split_once("://").map_or("http", |(s, _)| s);
    let members: Vec<String> = cluster
        .members
        .into_iter()
        .map(|m| format!("{scheme}://{}", m.addr))
        .collect();
    anyhow::ensure!(!members.is_empty(), "the origin lists no cluster members");
    Ok(members)
}

/// Writes probe `key` through member `via`, moving on to the next member
/// when one does not answer. Returns the leader that member names.
async fn put_anywhere(
    http: &reqwest::Client,
    token: &str,
    members: &[String],
    via: &mut usize,
    key: &str,
) -> Result<Option<u64>, String> {
    let addr = &members[*via % members.len()];
    let put = http
        .put(format!("{addr}/kv/{NAMESPACE}/{key}"))
        .bearer_auth(token)
        .body("probe")
        .send()
        .await;
    match put {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            let reason = format!("via {addr}: {}", r.status());
            if r.status().is_client_error() {
                // A refused token will not get better by waiting.
                return Err(format!("{reason} (check --token/WAYPOST_TOKEN)"));
            }
            *via += 1;
            return Err(reason);
        }
        Err(e) => {
            *via += 1;
            return Err(format!("via {addr}: unreachable ({e})"));
        }
    }
    let view: Option<ClusterStatus> = match http.get(format!("{addr}/cluster")).send().await {
        Ok(r) => r.json().await.ok(),
        Err(_) => None,
    };
    Ok(view.and_then(|v| v.leader))
}

/// Reads the probes back through the leader (strong reads), reports, and
/// removes them.
async fn verify(
    http: &reqwest::Client,
    token: &str,
    members: &[String],
    run_id: u64,
    record: &Record,
) -> anyhow::Result<()> {
    let mut found = None;
    for addr in members {
        if let Ok(keys) = probe_keys(http, addr, run_id).await {
            found = Some((addr, keys));
            break;
        }
    }
    let (addr, keys) = found
        .context("no region answers a strongly consistent read; the cluster has no majority")?;
    let lost: Vec<u64> = record
        .acked
        .iter()
        .filter(|n| !keys.contains(&format!("{run_id}-{n:08}")))
        .copied()
        .collect();
    println!(
        "drill: {} writes acknowledged, {} lost; {} leader change(s); longest time without an \
         acknowledged write {:.2} s",
        record.acked.len(),
        lost.len(),
        record.leader_changes,
        record.longest_gap.as_secs_f64()
    );
    for key in &keys {
        let _ = http
            .delete(format!("{addr}/kv/{NAMESPACE}/{key}"))
            .bearer_auth(token)
            .send()
            .await;
    }
    anyhow::ensure!(lost.is_empty(), "acknowledged writes lost: probes {lost:?}");
    Ok(())
}

/// This run's probe keys as `addr` sees them after confirming with the
/// leader, following pages.
async fn probe_keys(
    http: &reqwest::Client,
    addr: &str,
    run_id: u64,
) -> anyhow::Result<Vec<String>> {
    let mut keys: Vec<String> = Vec::new();
    loop {
        let after: String = keys.last().cloned().unwrap_or_default();
        let page: Listing = http
            .get(format!("{addr}/kv/{NAMESPACE}"))
            .query(&[
                ("prefix", format!("{run_id}-").as_str()),
                ("after", after.as_str()),
                ("consistency", "strong"),
            ])
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        keys.extend(page.entries.into_iter().map(|e| e.key));
        if !page.truncated {
            return Ok(keys);
        }
    }
}
