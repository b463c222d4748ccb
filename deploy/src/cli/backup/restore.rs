//! Verifying a backup and replaying it into a cluster through the API.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use waypost_api::backup::{Manifest, StateDump};
use waypost_api::queues::{MAX_BATCH, NewMessage, SendRequest};
use waypost_api::{AssetPath, KvKey, Namespace, QueueName};

use super::store::{BackupStore, BlobCheck, BlobId};
use crate::cli::{OriginArgs, send, success};

/// Backup `name` (the newest without one), verified: its name and state.
/// Every problem found is named in the error.
pub async fn verified(
    store: &BackupStore,
    name: Option<&str>,
) -> anyhow::Result<(String, StateDump)> {
    let all = store.backups().await?;
    let (name, manifest): (String, Manifest) = match name {
        Some(n) => all
            .into_iter()
            .find(|(b, _)| b == n)
            .with_context(|| format!("no complete backup {n} in {}", store.shown()))?,
        None => all
            .into_iter()
            .next_back()
            .with_context(|| format!("no complete backup in {}", store.shown()))?,
    };
    let mut problems = Vec::new();
    let state_bytes = store.file(&name, "state.json").await?.unwrap_or_default();
    if hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&state_bytes)) != manifest.state_sha256 {
        problems.push(format!("backups/{name}/state.json is missing or corrupt"));
    }
    let total = manifest.blobs.len();
    for (i, (sha256, size)) in manifest.blobs.iter().enumerate() {
        let id = BlobId::parse(sha256).with_context(|| format!("backup {name}'s manifest"))?;
        match store.check_blob(&id, *size).await? {
            BlobCheck::Missing => {
                problems.push(format!("blob {} is missing", store.describe_blob(&id)))
            }
            BlobCheck::Corrupt {
                size: len,
                sha256: got,
            } => problems.push(format!(
                "blob {} is corrupt ({len} bytes hashing to {got}, expected {size} bytes)",
                store.describe_blob(&id)
            )),
            BlobCheck::Intact => {}
        }
        eprint!("\r  verifying blobs: {}/{total}", i + 1);
    }
    if total > 0 {
        eprintln!();
    }
    if !problems.is_empty() {
        bail!("backup {name} is damaged:\n  {}", problems.join("\n  "));
    }
    let state = serde_json::from_slice(&state_bytes).context("the backed-up state")?;
    Ok((name, state))
}

/// Most bytes of message bodies one restoring send carries (the origin
/// takes requests of twice the largest body).
const SEND_BYTES: usize = 8 * 1024 * 1024;

/// Sends `messages` to queue `name` of the cluster being restored.
async fn send_messages(
    o: &OriginArgs,
    http: &reqwest::Client,
    name: &QueueName,
    messages: Vec<NewMessage>,
) -> anyhow::Result<()> {
    let req = http
        .post(o.url(&waypost_api::queues::queue_path(name, "messages")))
        .json(&SendRequest { messages });
    success(
        send(req, "the origin").await?,
        &format!("restoring messages of {name}"),
    )
    .await?;
    Ok(())
}

/// A request body that streams blob `sha256` from the backup.
async fn blob_body(store: &BackupStore, sha256: &str) -> anyhow::Result<reqwest::Body> {
    let stream = store.blob_stream(&BlobId::parse(sha256)?).await?;
    Ok(reqwest::Body::wrap_stream(stream))
}

pub async fn restore(
    o: &OriginArgs,
    store: &BackupStore,
    name: Option<&str>,
    force: bool,
) -> anyhow::Result<()> {
    let (name, state) = verified(store, name).await?;
    let http = o.client(Duration::from_secs(600))?;
    let resp = send(http.get(o.url("/backup/state")), "the origin").await?;
    let current: StateDump = success(resp, "reading the target's state")
        .await?
        .json()
        .await?;
    if !current.is_empty() && !force {
        bail!(
            "the cluster at {} already holds data ({} assets, {} KV namespaces, {} plugins, {} queues); \
             restore into a fresh cluster, or pass --force to write over it",
            o.origin,
            current.assets.len(),
            current.kv.len(),
            current.plugins.len(),
            current.queues.len()
        );
    }
    for (path, a) in &state.assets {
        let asset =
            AssetPath::new(path).with_context(|| format!("asset {path:?} in the backup"))?;
        let mut req = http
            .put(o.url(&asset.url_path()))
            .header("content-type", &a.content_type)
            .header("content-length", a.size)
            .body(blob_body(store, &a.sha256).await?);
        if let Some(cc) = &a.cache_control {
            req = req.header("cache-control", cc);
        }
        if !a.surrogate_keys.is_empty() {
            req = req.header("surrogate-key", a.surrogate_keys.join(" "));
        }
        success(
            send(req, "the origin").await?,
            &format!("restoring asset {path}"),
        )
        .await?;
    }
    for (ns, entries) in &state.kv {
        let namespace = Namespace::parse(ns)?;
        for (key, value) in entries {
            let path = waypost_api::kv::key_path(&namespace, &KvKey::parse(key)?);
            let req = http.put(o.url(&path)).body(value.clone());
            success(
                send(req, "the origin").await?,
                &format!("restoring KV {ns}/{key}"),
            )
            .await?;
        }
    }
    for (plugin, blob) in &state.plugins {
        let req = http
            .put(o.url(&format!("/plugins/{plugin}")))
            .header("content-length", blob.size)
            .body(blob_body(store, &blob.sha256).await?);
        success(
            send(req, "the origin").await?,
            &format!("restoring plugin {plugin}"),
        )
        .await?;
    }
    let mut dead_skipped = 0;
    for q in &state.queues {
        let path = waypost_api::queues::queue_path(&q.name, "");
        let req = http.put(o.url(&path)).json(&q.spec);
        success(
            send(req, "the origin").await?,
            &format!("restoring queue {}", q.name),
        )
        .await?;
        // Batches of at most MAX_BATCH messages and SEND_BYTES of bodies,
        // so no request passes what the origin accepts.
        let mut batch = Vec::new();
        let mut bytes = 0;
        for body in &q.messages {
            if batch.len() == MAX_BATCH || (bytes + body.len() > SEND_BYTES && !batch.is_empty()) {
                send_messages(o, &http, &q.name, std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += body.len();
            batch.push(NewMessage::text(body.as_str()));
        }
        if !batch.is_empty() {
            send_messages(o, &http, &q.name, batch).await?;
        }
        // Bodies the origin kept as blobs: one at a time (each up to
        // MAX_BODY); the origin keeps them as blobs again.
        for blob in &q.large_messages {
            let bytes = store.blob_bytes(&BlobId::parse(&blob.sha256)?).await?;
            let body = String::from_utf8(bytes.to_vec()).with_context(|| {
                format!(
                    "a message of queue {} in the backup is not UTF-8 text",
                    q.name
                )
            })?;
            let messages = vec![NewMessage::text(body)];
            send_messages(o, &http, &q.name, messages).await?;
        }
        dead_skipped += q.dead_letters.len() + q.large_dead_letters.len();
    }
    let kv_keys: usize = state.kv.values().map(BTreeMap::len).sum();
    println!(
        "restored backup {name} (raft index {}): {} assets, {kv_keys} KV keys, {} plugins, {} queues",
        state.raft_index,
        state.assets.len(),
        state.plugins.len(),
        state.queues.len()
    );
    if dead_skipped > 0 {
        println!(
            "  {dead_skipped} dead letters were not restored (listed in the backup's state.json; large ones as blobs)"
        );
    }
    Ok(())
}
