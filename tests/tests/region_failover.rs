//! Three origin regions as real processes and an edge whose pool lists them
//! nearest first: when the nearest region dies, the edge keeps serving
//! *fresh* content from the next one (a version written after the kill),
//! and it returns to the nearest region once that has restarted and caught
//! up.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use waypost_e2e::{Proc, wait_healthy, write_origin_cluster};

const TOKEN: &str = "e2e-test-token-0123456789";
const ASSET: &str = "/assets/news/today.txt";

struct Region {
    config: PathBuf,
    url: String,
    proc: Option<Proc>,
}

impl Region {
    fn start(&mut self) {
        let proc = Proc::start("origin", &["--config", self.config.to_str().unwrap()], 1).unwrap();
        assert_eq!(proc.addrs[0], self.url, "origin announced another address");
        self.proc = Some(proc);
    }
}

/// Starts three origin regions that form one cluster.
fn start_regions(dir: &Path) -> Vec<Region> {
    let ips = ["127.0.41.9", "127.0.42.9", "127.0.43.9"];
    let mut regions: Vec<Region> = write_origin_cluster(dir, ips, TOKEN)
        .into_iter()
        .map(|r| Region {
            config: r.config,
            url: format!("http://{}", r.addr),
            proc: None,
        })
        .collect();
    for region in &mut regions {
        region.start();
    }
    for region in &regions {
        wait_healthy(&format!("{}/healthz", region.url), Duration::from_secs(20)).unwrap();
    }
    regions
}

fn start_edge(dir: &Path, regions: &[Region]) -> Proc {
    let config = dir.join("edge.toml");
    let region = |name: &str, r: &Region| {
        format!(
            "{{ name = \"{name}\", origins = [\"{}\"] }}",
            r.url.trim_start_matches("http://")
        )
    };
    std::fs::write(
        &config,
        format!(
            r#"
[listen]
http = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[[pools]]
name = "origin"
regions = [{}, {}, {}]
health_interval = "100ms"
health_timeout = "500ms"
connect_timeout = "500ms"
rise = 2
fall = 1
[[sites]]
pool = "origin"
"#,
            region("near", &regions[0]),
            region("mid", &regions[1]),
            region("far", &regions[2]),
        ),
    )
    .unwrap();
    Proc::start("edge-node", &["--config", config.to_str().unwrap()], 2).unwrap()
}

/// How many asset GETs `origin` has answered, from its own metrics.
async fn asset_gets(c: &reqwest::Client, origin: &str) -> u64 {
    let text = c
        .get(format!("{origin}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("origin_http_requests_total{") && l.contains("route=\"assets\""))
        .filter(|l| l.contains("method=\"GET\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Uploads `body` through `origin`, retrying while the group elects a
/// leader (503), until `limit`.
async fn put_until_acked(c: &reqwest::Client, origin: &str, body: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let r = c
            .put(format!("{origin}{ASSET}"))
            .bearer_auth(TOKEN)
            .header("cache-control", "public, max-age=0")
            .body(body.to_string())
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => return,
            other => assert!(
                Instant::now() < deadline,
                "write through {origin} not acknowledged within {limit:?}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn edge_get(c: &reqwest::Client, edge: &str) -> (u16, String) {
    let r = c.get(format!("{edge}{ASSET}")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_serves_fresh_content_from_the_next_region_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut regions = start_regions(dir.path());
    let edge = start_edge(dir.path(), &regions);
    let (edge_url, admin_url) = (edge.addrs[0].clone(), edge.addrs[1].clone());
    wait_healthy(&format!("{admin_url}/healthz"), Duration::from_secs(10)).unwrap();
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    put_until_acked(&c, &regions[0].url, "v1", Duration::from_secs(10)).await;
    let near_before = asset_gets(&c, &regions[0].url).await;
    assert_eq!(edge_get(&c, &edge_url).await, (200, "v1".into()));
    assert!(
        asset_gets(&c, &regions[0].url).await > near_before,
        "the edge asks its nearest region first"
    );

    // The nearest region dies; a new version is written to the survivors.
    regions[0].proc.take().unwrap().kill();
    put_until_acked(&c, &regions[1].url, "v2", Duration::from_secs(10)).await;

    // Every request keeps succeeding, and the new version shows up: the
    // edge revalidates (max-age=0) against a live region, not only stale.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = edge_get(&c, &edge_url).await;
        assert_eq!(status, 200, "edge failed a request after the kill: {body}");
        if body == "v2" {
            break;
        }
        assert_eq!(body, "v1");
        assert!(
            Instant::now() < deadline,
            "edge still serves v1 10 s after v2 was acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The nearest region restarts, catches up (ready only then), and gets
    // the traffic back, serving the version written while it was down.
    regions[0].start();
    wait_healthy(
        &format!("{}/healthz", regions[0].url),
        Duration::from_secs(20),
    )
    .unwrap();
    let near_before = asset_gets(&c, &regions[0].url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(edge_get(&c, &edge_url).await, (200, "v2".into()));
        if asset_gets(&c, &regions[0].url).await > near_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edge did not return to the recovered nearest region within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
