//! `waypost failover` measuring a real drill: three origin processes, the
//! drill writing probes through them, and the leader's process killed
//! while it watches. It must see the leader change and the write outage,
//! and find every acknowledged probe afterwards: with TLS on every hop (as
//! `waypost up` runs), and with plaintext regions that share a token.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use waypost_e2e::{Proc, bin_dir, https_client, start_origin_cluster, start_origin_cluster_tls};

const TOKEN: &str = "e2e-test-token-0123456789";

/// Three origin regions that form one cluster: their public URLs, the
/// processes, and the CA to trust when they run TLS.
struct Regions {
    urls: Vec<String>,
    procs: Vec<Proc>,
    ca_file: Option<PathBuf>,
}

fn start_regions(dir: &Path, tls: bool) -> Regions {
    if tls {
        let ips = ["127.0.84.9", "127.0.85.9", "127.0.86.9"];
        let (regions, procs, ca_file) = start_origin_cluster_tls(dir, ips, TOKEN);
        let urls = regions
            .iter()
            .map(|r| format!("https://{}", r.addr))
            .collect();
        return Regions {
            urls,
            procs,
            ca_file: Some(ca_file),
        };
    }
    let ips = ["127.0.81.9", "127.0.82.9", "127.0.83.9"];
    let (regions, procs) = start_origin_cluster(dir, ips, TOKEN);
    let urls = regions
        .iter()
        .map(|r| format!("http://{}", r.addr))
        .collect();
    Regions {
        urls,
        procs,
        ca_file: None,
    }
}

/// The leader's member id as the region at `url` reports it.
fn leader(url: &str, ca_file: Option<&Path>) -> usize {
    let client = match ca_file {
        Some(ca) => https_client(ca),
        None => reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap(),
    };
    let cluster: serde_json::Value = client
        .get(format!("{url}/cluster"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    cluster["leader"].as_u64().expect("a leader") as usize
}

#[test]
fn drill_sees_the_leader_killed_and_loses_nothing_with_tls_on_every_hop() {
    drill(true);
}

#[test]
fn drill_sees_the_leader_killed_and_loses_nothing() {
    drill(false);
}

fn drill(tls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Regions {
        urls,
        mut procs,
        ca_file,
    } = start_regions(dir.path(), tls);
    let old = leader(&urls[0], ca_file.as_deref());
    // Through a region that survives, so the drill starts on it.
    let via = urls[old % 3].clone();

    let mut command = Command::new(bin_dir().join("waypost"));
    command
        .args(["failover", "--for", "6s", "--interval", "20ms"])
        .args(["--origin", &via, "--token", TOKEN]);
    if let Some(ca) = &ca_file {
        // The members' addresses are the mutual-TLS links between regions:
        // the drill writes through the regions' public URLs.
        command
            .arg("--ca-file")
            .arg(ca)
            .arg("--origins")
            .arg(urls.join(","));
    }
    let mut drill = command.stdout(Stdio::piped()).spawn().unwrap();
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
