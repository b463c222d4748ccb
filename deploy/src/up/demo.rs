//! What `waypost up` shows once the platform runs: sample assets uploaded
//! through region 1's origin, a miss then a hit at region 1's edge, the
//! same upload served by the last region's edge (metadata replicated by
//! Raft, the blob copied to a majority of regions before the upload was
//! acknowledged), the example plugins answering, and the photo case: an
//! upload answered at once, its thumbnail made by a queue consumer in the
//! background and served by another region's edge.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Client;

use super::DEV_TOKEN;
use super::layout::Layout;
use super::plugins::{DEV_UPLOAD_TOKEN, PHOTO_QUEUE};

/// The photo the demo uploads (480 × 320 PNG).
const SAMPLE_PHOTO: &[u8] = include_bytes!("sample-photo.png");
/// How long the demo waits for the thumbnail.
const THUMBNAIL_LIMIT: Duration = Duration::from_secs(30);

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
        show_photos(client, layout).await?;
    }
    Ok(())
}

/// Declares the photo queue (idempotent) so uploads can be queued; the
/// consumers retry until it exists.
pub async fn declare_photo_queue(client: &Client, layout: &Layout) -> anyhow::Result<()> {
    let origin = layout.origin_url(1);
    let resp = client
        .put(format!("{origin}/queues/{PHOTO_QUEUE}"))
        .bearer_auth(DEV_TOKEN)
        .json(&serde_json::json!({"max_attempts": 5}))
        .send()
        .await
        .context("declaring the photo queue at region 1's origin")?;
    anyhow::ensure!(
        resp.status().is_success(),
        "declaring the photo queue: region 1's origin answered {}",
        resp.status()
    );
    Ok(())
}

/// A photo uploaded through region 1's edge, its thumbnail served by the
/// last region's edge once a consumer made it.
async fn show_photos(client: &Client, layout: &Layout) -> anyhow::Result<()> {
    let edge = layout.edge_http(1);
    let started = Instant::now();
    let resp = client
        .put(format!("http://{edge}/photos/demo"))
        .bearer_auth(DEV_UPLOAD_TOKEN)
        .body(SAMPLE_PHOTO)
        .send()
        .await
        .context("uploading the sample photo through region 1's edge")?;
    let status = resp.status();
    let accepted: serde_json::Value = resp.json().await.unwrap_or_default();
    anyhow::ensure!(
        status == reqwest::StatusCode::ACCEPTED,
        "uploading the sample photo: the edge answered {status}: {accepted}"
    );
    println!(
        "  PUT /photos/demo -> {status} in {:?}; queued job {}",
        started.elapsed(),
        accepted["job"]
    );
    let path = accepted["versions"]["thumbnail"]
        .as_str()
        .context("the upload's answer names no thumbnail URL")?;
    let last = layout.edge_http(layout.len());
    let url = format!("http://{last}{path}");
    loop {
        let resp = client.get(&url).send().await?;
        if resp.status().is_success() {
            let bytes = resp.bytes().await?;
            let size = png_size(&bytes).map_or_else(|| "?".into(), |(w, h)| format!("{w}x{h}"));
            println!(
                "  GET {path} at region {}'s edge -> {size} thumbnail, made by the thumbnailer consumer {:?} after the upload",
                layout.len(),
                started.elapsed()
            );
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < THUMBNAIL_LIMIT,
            "no thumbnail after {THUMBNAIL_LIMIT:?}; `waypost queue stats {PHOTO_QUEUE}` shows the job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    let be = |at: usize| Some(u32::from_be_bytes(png.get(at..at + 4)?.try_into().ok()?));
    png.starts_with(b"\x89PNG").then_some(())?;
    Some((be(16)?, be(20)?))
}

/// Uploads the samples through region 1's origin.
async fn upload_samples(client: &Client, layout: &Layout) -> anyhow::Result<()> {
    let origin = layout.origin_url(1);
    for (path, ctype, keys, body) in SAMPLES {
        let resp = client
            .put(format!("{origin}/assets/{path}"))
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
    let at_origin = format!("{}/assets/index.html", layout.origin_url(n));
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
