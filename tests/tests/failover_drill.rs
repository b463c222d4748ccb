//! `waypost failover` measuring a real drill: three origin processes, the
//! drill writing probes through them, and the leader's process killed
//! while it watches. It must see the leader change and the write outage,
//! and find every acknowledged probe afterwards.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use waypost_e2e::{Proc, bin_dir, start_origin_cluster};

const TOKEN: &str = "e2e-test-token-0123456789";

/// Starts three origin regions that form one cluster.
fn start_regions(dir: &Path) -> (Vec<String>, Vec<Proc>) {
    let ips = ["127.0.81.9", "127.0.82.9", "127.0.83.9"];
    let (regions, procs) = start_origin_cluster(dir, ips, TOKEN);
    (regions.into_iter().map(|r| r.addr).collect(), procs)
}

/// The leader's member id as region `addr` reports it.
fn leader(addr: &str) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cluster: serde_json::Value = rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{addr}/cluster"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    cluster["leader"].as_u64().expect("a leader") as usize
}

#[test]
fn drill_sees_the_leader_killed_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (addrs, mut procs) = start_regions(dir.path());
    let old = leader(&addrs[0]);
    // Through a region that survives, so the drill starts on it.
    let via = addrs[old % 3].clone();

    let mut drill = Command::new(bin_dir().join("waypost"))
        .args(["failover", "--for", "6s", "--interval", "20ms"])
        .args(["--origin", &format!("http://{via}"), "--token", TOKEN])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(drill.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Kill the leader once the drill has seen it.
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(&format!("leader: region {old}")) {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("leader: region")),
        "{seen:?}"
    );
    procs[old - 1].kill();
    let killed_at = Instant::now();
    seen.extend(lines.map(|l| l.unwrap()));
    let status = drill.wait().unwrap();
    let out = seen.join("\n");
    assert!(status.success(), "{out}");
    assert!(
        seen.iter()
            .any(|l| l.contains("leader: region") && !l.contains(&format!("region {old}"))),
        "no new leader reported:\n{out}"
    );
    assert!(
        out.contains("acknowledged again after"),
        "no write stall reported:\n{out}"
    );
    let summary = seen.last().unwrap();
    assert!(
        summary.starts_with("drill: ")
            && summary.contains(" acknowledged, 0 lost; 1 leader change(s)"),
        "{out}"
    );
    assert!(killed_at.elapsed() < Duration::from_secs(30));
}
