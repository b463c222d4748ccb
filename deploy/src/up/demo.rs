//! What `waypost up` shows once the platform runs: sample assets uploaded
//! through region 1's origin, a miss then a hit at region 1's edge, the
//! same upload served by the last region's edge (metadata replicated by
//! Raft, the blob copied to a majority of regions before the upload was
//! acknowledged), and the example plugins answering.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Client;

use super::DEV_TOKEN;
use super::layout::Layout;

const SAMPLES: &[(&str, &str, &str, &str)] = &[
    (
        "hello.txt",
        "text/plain",
        "demo",
        "Hello from the Waypost edge!\n",
    ),
    (
        "index.html",
        "text/html",
        "demo html",
        "<!doctype html><title>Waypost</title><h1>It works</h1>\n",
    ),
    (
        "static/app.css",
        "text/css",
        "demo css",
        "body { font-family: sans-serif; }\n",
    ),
];

/// How long a follower region gets to apply an upload before the demo
/// gives up on showing it there.
const REPLICATION_LIMIT: Duration = Duration::from_secs(10);

/// The whole demo, with its progress lines.
pub async fn show(client: &Client, layout: &Layout, plugins: bool) -> anyhow::Result<()> {
    eprintln!("[3/4] uploading sample assets through region 1 ...");
    upload_samples(client, layout).await?;
    eprintln!("[4/4] fetching through the edges ...");
    miss_then_hit(client, layout).await?;
    if layout.len() > 1 {
        cross_region(client, layout).await?;
    }
    if plugins {
        show_plugins(client, layout).await?;
    }
    Ok(())
}

/// Uploads the samples through region 1's origin.
async fn upload_samples(client: &Client, layout: &Layout) -> anyhow::Result<()> {
    let origin = layout.origin(1);
    for (path, ctype, keys, body) in SAMPLES {
        let resp = client
            .put(format!("http://{origin}/assets/{path}"))
            .bearer_auth(DEV_TOKEN)
            .header("content-type", *ctype)
            .header("surrogate-key", *keys)
            .body(*body)
            .send()
            .await
            .with_context(|| format!("uploading {path} to region 1's origin"))?;
        anyhow::ensure!(
            resp.status().is_success(),
            "uploading {path}: region 1's origin answered {}",
            resp.status()
        );
    }
    Ok(())
}

/// A GET's status and `Cache-Status`, checked for success.
async fn get(client: &Client, url: &str) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    anyhow::ensure!(status.is_success(), "GET {url}: the edge answered {status}");
    let cs = header(&resp, "cache-status");
    Ok((status, cs))
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// A miss, then a hit, at region 1's edge.
async fn miss_then_hit(client: &Client, layout: &Layout) -> anyhow::Result<()> {
    let url = format!("http://{}/assets/hello.txt", layout.edge_http(1));
    for attempt in ["first", "second"] {
        let (status, cs) = get(client, &url).await?;
        println!("  {attempt} GET /assets/hello.txt -> {status}  Cache-Status: {cs}");
    }
    Ok(())
}

/// The upload made through region 1, served by the last region's edge
/// once that region's origin has applied it (its index is local; a read
/// before that would be an honest 404, not a demo).
async fn cross_region(client: &Client, layout: &Layout) -> anyhow::Result<()> {
    let n = layout.len();
    let started = Instant::now();
    let at_origin = format!("http://{}/assets/index.html", layout.origin(n));
    while !client
        .head(&at_origin)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        anyhow::ensure!(
            started.elapsed() < REPLICATION_LIMIT,
            "region {n}'s origin has not applied the upload after {REPLICATION_LIMIT:?}; \
             `waypost status` shows its lag"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let edge = layout.edge_http(n);
    let (status, cs) = get(client, &format!("http://{edge}/assets/index.html")).await?;
    println!(
        "  /assets/index.html uploaded via region 1, served by region {n}'s edge ({edge}) -> {status}  Cache-Status: {cs}"
    );
    Ok(())
}

/// The example plugins answering at region 1's edge.
async fn show_plugins(client: &Client, layout: &Layout) -> anyhow::Result<()> {
    let edge = layout.edge_http(1);
    let resp = client.get(format!("http://{edge}/hello")).send().await?;
    let plugin = header(&resp, "x-plugin");
    let text = resp.text().await?;
    let first = text.lines().next().unwrap_or_default();
    println!("  GET /hello -> plugin `{plugin}` answered: {first}");
    let resp = client
        .get(format!("http://{edge}/assets/static/app.css"))
        .send()
        .await?;
    println!(
        "  GET /assets/static/app.css -> security-headers plugin added Strict-Transport-Security: {}",
        header(&resp, "strict-transport-security")
    );
    Ok(())
}
