//! `waypost backup`: consistent backups of the origin's replicated state
//! into a directory, and restores into a fresh cluster.
//!
//! A backup directory holds content-addressed blobs (`blobs/ab/<sha256>`),
//! shared by every backup in it, so a second backup copies only new blobs,
//! and one directory per backup (`backups/<time>-i<raft index>/`) with the
//! state (`state.json`, as `GET /backup/state` answered, at one Raft index)
//! and `manifest.json` (the state's hash and every blob's size), written
//! last: a backup without a manifest is incomplete. `verify` re-hashes
//! everything and names what is missing or corrupt; `restore` verifies
//! first and writes nothing from a damaged backup.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use waypost_api::backup::{FORMAT, Manifest, StateDump};
use waypost_api::queues::{MAX_BATCH, NewMessage, SendRequest};
use waypost_api::{AssetPath, KvKey, Namespace};

use super::{OriginArgs, send, success};

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    origin: OriginArgs,
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(clap::Subcommand, Debug)]
enum BackupCommand {
    /// Back up the cluster's state and every blob it references.
    Create {
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// List the complete backups in a directory, oldest first.
    List {
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// Re-hash a backup (the newest without --backup) and name what is
    /// missing or corrupt.
    Verify {
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[arg(long)]
        backup: Option<String>,
    },
    /// Restore a backup into a fresh cluster (refused into one with data,
    /// unless --force); verified first.
    Restore {
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[arg(long)]
        backup: Option<String>,
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let o = &args.origin;
    match args.command {
        BackupCommand::Create { to } => create(o, &to).await,
        BackupCommand::List { from } => {
            for (name, m) in backups(&from)? {
                println!(
                    "{name}\traft index {}\t{} blobs\t{} bytes",
                    m.raft_index,
                    m.blobs.len(),
                    m.blobs.values().sum::<u64>()
                );
            }
            Ok(())
        }
        BackupCommand::Verify { from, backup } => {
            let (name, _, _) = verified(&from, backup.as_deref())?;
            println!("backup {name} is intact");
            Ok(())
        }
        BackupCommand::Restore {
            from,
            backup,
            force,
        } => restore(o, &from, backup.as_deref(), force).await,
    }
}

fn blob_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join("blobs").join(&sha256[..2]).join(sha256)
}

fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), size))
}

async fn create(o: &OriginArgs, dir: &Path) -> anyhow::Result<()> {
    let http = o.client(Duration::from_secs(600))?;
    let resp = send(http.get(o.url("/backup/state")), "the origin").await?;
    let state_bytes = success(resp, "reading the state").await?.bytes().await?;
    let state: StateDump =
        serde_json::from_slice(&state_bytes).context("the origin's state dump")?;
    let blobs = state.blobs();
    let (mut copied, mut bytes) = (0usize, 0u64);
    for (i, (sha256, size)) in blobs.iter().enumerate() {
        let path = blob_path(dir, sha256);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == *size) {
            continue;
        }
        let url = o.url(&format!("/backup/blobs/{sha256}?size={size}"));
        let resp = success(send(http.get(url), "the origin").await?, "reading a blob").await?;
        let body = resp.bytes().await.context("downloading a blob")?;
        let got = hex::encode(Sha256::digest(&body));
        if got != *sha256 || body.len() as u64 != *size {
            bail!(
                "blob {sha256} arrived as {} bytes hashing to {got}; nothing kept",
                body.len()
            );
        }
        write_atomically(&path, &body)?;
        copied += 1;
        bytes += size;
        eprint!(
            "\r  blobs: {}/{} checked, {copied} copied ({bytes} bytes)",
            i + 1,
            blobs.len()
        );
    }
    eprintln!();
    let name = format!("{}-i{}", state.taken_at_ms, state.raft_index);
    let backup = dir.join("backups").join(&name);
    write_atomically(&backup.join("state.json"), &state_bytes)?;
    let manifest = Manifest {
        format: FORMAT,
        created_at_ms: state.taken_at_ms,
        state_sha256: hex::encode(Sha256::digest(&state_bytes)),
        raft_index: state.raft_index,
        blobs,
    };
    write_atomically(
        &backup.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    println!(
        "backup {name}: {} assets, {} KV namespaces, {} plugins, {} queues at raft index {}; {copied} new blobs ({bytes} bytes), {} already there",
        state.assets.len(),
        state.kv.len(),
        state.plugins.len(),
        state.queues.len(),
        state.raft_index,
        manifest.blobs.len() - copied
    );
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let parent = path.parent().expect("paths here have a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The complete backups in `dir`, oldest first.
fn backups(dir: &Path) -> anyhow::Result<Vec<(String, Manifest)>> {
    let root = dir.join("backups");
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(&root).with_context(|| format!("no backups in {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let manifest = entry.path().join("manifest.json");
        let Ok(bytes) = std::fs::read(&manifest) else {
            continue;
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a manifest", manifest.display()))?;
        out.push((entry.file_name().to_string_lossy().into_owned(), m));
    }
    out.sort_by_key(|(_, m)| (m.created_at_ms, m.raft_index));
    Ok(out)
}

/// Backup `name` (the newest without one), verified: its name, manifest
/// and state. Every problem found is named in the error.
fn verified(dir: &Path, name: Option<&str>) -> anyhow::Result<(String, Manifest, StateDump)> {
    let all = backups(dir)?;
    let (name, manifest) = match name {
        Some(n) => all
            .into_iter()
            .find(|(b, _)| b == n)
            .with_context(|| format!("no complete backup {n} in {}", dir.display()))?,
        None => all
            .into_iter()
            .next_back()
            .with_context(|| format!("no complete backup in {}", dir.display()))?,
    };
    let mut problems = Vec::new();
    let state_path = dir.join("backups").join(&name).join("state.json");
    let state_bytes = std::fs::read(&state_path).unwrap_or_default();
    if hex::encode(Sha256::digest(&state_bytes)) != manifest.state_sha256 {
        problems.push(format!("{} is missing or corrupt", state_path.display()));
    }
    for (sha256, size) in &manifest.blobs {
        let path = blob_path(dir, sha256);
        match sha256_file(&path) {
            Err(_) => problems.push(format!("blob {} is missing", path.display())),
            Ok((got, len)) if got != *sha256 || len != *size => problems.push(format!(
                "blob {} is corrupt ({len} bytes hashing to {got}, expected {size} bytes)",
                path.display()
            )),
            Ok(_) => {}
        }
    }
    if !problems.is_empty() {
        bail!("backup {name} is damaged:\n  {}", problems.join("\n  "));
    }
    let state = serde_json::from_slice(&state_bytes).context("the backed-up state")?;
    Ok((name, manifest, state))
}

async fn restore(
    o: &OriginArgs,
    dir: &Path,
    name: Option<&str>,
    force: bool,
) -> anyhow::Result<()> {
    let (name, _, state) = verified(dir, name)?;
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
        let body = std::fs::read(blob_path(dir, &a.sha256))?;
        let mut req = http
            .put(o.url(&asset.url_path()))
            .header("content-type", &a.content_type)
            .body(body);
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
        let body = std::fs::read(blob_path(dir, &blob.sha256))?;
        let req = http.put(o.url(&format!("/plugins/{plugin}"))).body(body);
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
        for chunk in q.messages.chunks(MAX_BATCH) {
            let messages = chunk.iter().map(NewMessage::text).collect();
            let req = http
                .post(o.url(&waypost_api::queues::queue_path(&q.name, "messages")))
                .json(&SendRequest { messages });
            success(
                send(req, "the origin").await?,
                &format!("restoring messages of {}", q.name),
            )
            .await?;
        }
        dead_skipped += q.dead_letters.len();
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
            "  {dead_skipped} dead letters were not restored (their bodies are in state.json)"
        );
    }
    Ok(())
}
