//! A partitioned old leader can no longer acknowledge writes.
//!
//! Three real `origin` processes, each in a network namespace of its own,
//! reach each other only through a hub namespace that routes between them
//! (10.99.{i}.2 is region i, 10.99.{i}.1 the hub's end of its link). The
//! test cuts the leader off from the other two regions with `ip rule ...
//! blackhole` on the hub, which silently drops every forwarded packet
//! between the leader and a peer in both directions, while the test client
//! (on the hub) can still reach every region. Writes sent to the isolated
//! leader must not be acknowledged, the other two regions elect a leader
//! and accept writes, and after the partition heals the old leader is a
//! follower that has the majority's writes and none of its own.
//!
//! Why not in-process regions and `tc` on `lo`: regions in one process
//! all connect from 127.0.0.1 (the kernel picks the source address by
//! destination), so no filter on `lo` can tell the leader's traffic to a
//! peer from the other peer's. Separate namespaces give every region its
//! own source address. (Routing rules also need no `tc` modules: some
//! kernels, such as the sandbox this was written in, have neither the
//! `prio` qdisc nor the `gact` drop action.)
//!
//! The namespaces, the network and when the test is skipped: `netns`
//! (`partition/netns.rs`).

#[path = "partition/netns.rs"]
mod netns;

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use netns::{PROBE_TIMEOUT, Probe, REGIONS, all_pairs, expect_probes, partition, region_addr};

const TOKEN: &str = "partition-test-token";
const RUN_DIR: &str = "/run/waypost-partition";
/// The origin's `WRITE_TIMEOUT` is 5 s; a refusal must come well within this.
const REFUSAL_LIMIT: Duration = Duration::from_secs(9);

#[test]
fn partitioned_old_leader_cannot_acknowledge_writes() {
    netns::run_isolated(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(scenario());
    });
}

// ---------------------------------------------------------------------
// Inside: the regions, the scenario.

/// The three `origin` processes; killed on drop, with their logs printed
/// if the test is failing.
struct Regions {
    children: Vec<Child>,
}

impl Regions {
    fn start() -> Self {
        let members: Vec<String> = REGIONS
            .iter()
            .map(|j| format!("{{ id = {j}, addr = \"{}\" }}", region_addr(*j)))
            .collect();
        let mut children = Vec::new();
        for i in REGIONS {
            let dir = PathBuf::from(RUN_DIR).join(format!("r{i}"));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            let config = format!(
                "listen = \"{addr}\"\ndata_dir = \"{data}\"\ntoken = \"{TOKEN}\"\n\n\
                 [cluster]\nnode_id = {i}\nmembers = [{members}]\n",
                addr = region_addr(i),
                data = dir.join("data").display(),
                members = members.join(", "),
            );
            std::fs::write(dir.join("origin.toml"), config).unwrap();
            let log = File::create(dir.join("origin.log")).unwrap();
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &netns::netns(i),
                    env!("CARGO_BIN_EXE_origin"),
                ])
                .arg("--config")
                .arg(dir.join("origin.toml"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start origin");
            children.push(child);
        }
        Self { children }
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for i in REGIONS {
                let log = PathBuf::from(RUN_DIR).join(format!("r{i}/origin.log"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(25)..];
                eprintln!("--- region {i} log (last {} lines) ---", tail.len());
                for line in tail {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn url(i: u8, path: &str) -> String {
    format!("http://{}{path}", region_addr(i))
}

/// Region `i`'s `/cluster`, or `None` if it does not answer within 1 s.
async fn status(client: &reqwest::Client, i: u8) -> Option<Value> {
    let resp = client
        .get(url(i, "/cluster"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

/// The leader every region in `regions` names, if they agree and the
/// leader (when it is one of them) says it is the leader.
async fn agreed_leader(client: &reqwest::Client, regions: &[u8]) -> Option<u8> {
    let mut seen = None;
    for &i in regions {
        let s = status(client, i).await?;
        let leader = s["leader"].as_u64()? as u8;
        if seen.is_some_and(|l| l != leader) {
            return None;
        }
        seen = Some(leader);
        if leader == i && s["role"] != "leader" {
            return None;
        }
    }
    seen
}

/// Calls `check` until it returns `Some`, at most for `limit`.
async fn poll<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn put(client: &reqwest::Client, i: u8, key: &str) -> reqwest::Result<reqwest::Response> {
    client
        .put(url(i, &format!("/kv/part/{key}")))
        .bearer_auth(TOKEN)
        .body(format!("value of {key}"))
        .send()
        .await
}

async fn strong_get(
    client: &reqwest::Client,
    i: u8,
    key: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .get(url(i, &format!("/kv/part/{key}?consistency=strong")))
        .send()
        .await
}

/// What became of a request the isolated old leader was sent.
#[derive(Debug)]
struct Refusal {
    what: String,
    status: Option<StatusCode>,
    retry_after: bool,
    body: String,
    error: Option<String>,
    took: Duration,
}

impl Refusal {
    async fn of(
        what: &str,
        sent: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Self {
        let started = Instant::now();
        let (status, retry_after, body, error) = match sent.await {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp.headers().contains_key("retry-after");
                (
                    Some(status),
                    retry_after,
                    resp.text().await.unwrap_or_default(),
                    None,
                )
            }
            Err(e) => (None, false, String::new(), Some(e.to_string())),
        };
        Self {
            what: what.to_string(),
            status,
            retry_after,
            body,
            error,
            took: started.elapsed(),
        }
    }

    /// The old leader answered 503 with Retry-After, in bounded time.
    fn assert_refused(&self) {
        eprintln!("partition: {self:?}");
        if let Some(e) = &self.error {
            panic!(
                "{}: no answer from the isolated old leader after {:?}: {e}",
                self.what, self.took
            );
        }
        assert_eq!(
            self.status,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "{}: the isolated old leader must refuse with 503: {self:?}",
            self.what
        );
        assert!(self.retry_after, "{}: no Retry-After: {self:?}", self.what);
        assert!(
            self.took < REFUSAL_LIMIT,
            "{}: refused only after {:?}",
            self.what,
            self.took
        );
    }
}

async fn scenario() {
    // The write token also reads (`/cluster`, strong KV reads).
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .default_headers(auth)
        .build()
        .unwrap();
    let regions = Regions::start();
    let leader = poll(
        "three regions agree on a leader",
        Duration::from_secs(15),
        || agreed_leader(&client, &REGIONS),
    )
    .await;
    let peers: Vec<u8> = REGIONS.into_iter().filter(|i| *i != leader).collect();
    eprintln!("partition: region {leader} leads; peers {peers:?}");

    // A write acknowledged before the partition, through a follower.
    let resp = put(&client, peers[0], "before").await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // The network works, so the probes below can fail for the right reason.
    tokio::task::block_in_place(|| {
        expect_probes("before the partition", &all_pairs(Probe::Connected))
    });
    let old_term = status(&client, leader).await.unwrap()["term"]
        .as_u64()
        .unwrap();

    partition("add", leader);
    let cut_at = Instant::now();
    // A write to the old leader right away, while it still believes it leads.
    let early = tokio::spawn({
        let client = client.clone();
        async move { Refusal::of("write at the cut", put(&client, leader, "lost-at-cut")).await }
    });

    // Watched from the cut on, so the time it takes is measured exactly.
    let election = tokio::spawn({
        let (client, peers) = (client.clone(), peers.clone());
        async move {
            let elected = poll(
                "the majority side elects a new leader",
                Duration::from_secs(10),
                || async {
                    agreed_leader(&client, &peers)
                        .await
                        .filter(|l| *l != leader)
                },
            )
            .await;
            (elected, cut_at.elapsed())
        }
    });

    // The cut is real: leader <-> peers dropped (time out) both ways; the
    // peers still reach each other and the test client still reaches the
    // old leader.
    let mut expected = Vec::new();
    for &p in &peers {
        expected.push((leader, p, Probe::TimedOut));
        expected.push((p, leader, Probe::TimedOut));
    }
    expected.push((peers[0], peers[1], Probe::Connected));
    expected.push((peers[1], peers[0], Probe::Connected));
    tokio::task::block_in_place(|| expect_probes("during the partition", &expected));
    let hub_to_leader: SocketAddr = region_addr(leader).parse().unwrap();
    TcpStream::connect_timeout(&hub_to_leader, PROBE_TIMEOUT)
        .expect("the test client reaches the isolated old leader");

    // The majority side elects a new leader and accepts writes.
    let (new_leader, elected_after) = election.await.unwrap();
    let old_view = status(&client, leader)
        .await
        .expect("old leader answers /cluster");
    eprintln!(
        "partition: region {new_leader} elected {elected_after:?} after the cut; the old leader \
         then says role={} leader={} term={}",
        old_view["role"], old_view["leader"], old_view["term"]
    );
    let mut acked = vec!["before".to_string()];
    for k in 0..4 {
        let via = peers[k % 2];
        let key = format!("after-{k}");
        let resp = put(&client, via, &key).await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{key} via region {via}");
        acked.push(key);
    }

    // A write and a strong read on the old leader after the majority moved
    // on: neither may pretend to be up to date.
    let (late, stale_read) = tokio::join!(
        Refusal::of(
            "write after the new election",
            put(&client, leader, "lost-late")
        ),
        Refusal::of(
            "strong read on the old leader",
            strong_get(&client, leader, "after-0")
        ),
    );
    let early = early.await.unwrap();
    early.assert_refused();
    late.assert_refused();
    stale_read.assert_refused();
    assert!(early.body.contains("majority"), "{early:?}");
    let still = status(&client, leader)
        .await
        .expect("old leader answers /cluster");
    eprintln!(
        "partition: {:?} after the cut the old leader says role={} leader={} term={}",
        cut_at.elapsed(),
        still["role"],
        still["leader"],
        still["term"]
    );

    // Heal.
    partition("del", leader);
    let healed_at = Instant::now();
    tokio::task::block_in_place(|| expect_probes("after healing", &all_pairs(Probe::Connected)));
    let rejoined = poll(
        "the old leader rejoins as a follower",
        Duration::from_secs(10),
        || {
            let client = &client;
            async move {
                let s = status(client, leader).await?;
                (s["role"] == "follower" && s["leader"].as_u64() == Some(u64::from(new_leader)))
                    .then_some(s)
            }
        },
    )
    .await;
    eprintln!(
        "partition: old leader a follower of region {new_leader} {:?} after healing (term {} -> {})",
        healed_at.elapsed(),
        old_term,
        rejoined["term"]
    );
    assert!(rejoined["term"].as_u64().unwrap() > old_term, "{rejoined}");
    assert_eq!(agreed_leader(&client, &REGIONS).await, Some(new_leader));

    // The healed old leader takes writes again (as a follower, forwarding).
    let resp = put(&client, leader, "healed").await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    acked.push("healed".into());
    acked.sort();

    for i in REGIONS {
        for key in &acked {
            let resp = strong_get(&client, i, key).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{key} on region {i}");
            assert_eq!(resp.text().await.unwrap(), format!("value of {key}"));
        }
        for key in ["lost-at-cut", "lost-late"] {
            let resp = strong_get(&client, i, key).await.unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::NOT_FOUND,
                "{key}, refused by the isolated leader, is on region {i}"
            );
        }
        let page: Value = client
            .get(url(i, "/kv/part?prefix=&consistency=strong"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let keys: Vec<&str> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, acked, "keys on region {i}");
        assert_eq!(page["truncated"], false);
    }
    drop(regions);
}
