//! `waypost backup`: consistent backups of the origin's replicated state
//! into a directory or an S3-compatible bucket, and restores into a fresh
//! cluster.
//!
//! A destination holds content-addressed blobs, shared by every backup in
//! it, so a second backup copies only new blobs, and one folder per backup
//! (`backups/<time>-i<raft index>/`) with the state (`state.json`, as
//! `GET /backup/state` answered, at one Raft index) and `manifest.json`
//! (the state's hash and every blob's size), written last ([`store`]).
//! `verify` re-hashes everything and names what is missing or corrupt;
//! `restore` verifies first and writes nothing from a damaged backup.

mod restore;
mod store;

use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use waypost_api::backup::{FORMAT, Manifest, StateDump};

use self::store::{BackupStore, BlobId};
use super::{OriginArgs, send, success};

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    origin: OriginArgs,
    #[command(subcommand)]
    command: BackupCommand,
}

/// Where backups go: a directory, or `s3://BUCKET/PREFIX` with the
/// endpoint and credentials in `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` (and `AWS_DEFAULT_REGION`).
#[derive(clap::Subcommand, Debug)]
enum BackupCommand {
    /// Back up the cluster's state and every blob it references.
    Create {
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        to: String,
    },
    /// List the complete backups in a destination, oldest first.
    List {
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from: String,
    },
    /// Re-hash a backup (the newest without --backup) and name what is
    /// missing or corrupt.
    Verify {
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from: String,
        #[arg(long)]
        backup: Option<String>,
    },
    /// Restore a backup into a fresh cluster (refused into one with data,
    /// unless --force); verified first.
    Restore {
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from: String,
        #[arg(long)]
        backup: Option<String>,
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let o = &args.origin;
    match args.command {
        BackupCommand::Create { to } => create(o, &BackupStore::open(&to)?).await,
        BackupCommand::List { from } => {
            for (name, m) in BackupStore::open(&from)?.backups().await? {
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
            let store = BackupStore::open(&from)?;
            let (name, _) = restore::verified(&store, backup.as_deref()).await?;
            println!("backup {name} is intact");
            Ok(())
        }
        BackupCommand::Restore {
            from,
            backup,
            force,
        } => restore::restore(o, &BackupStore::open(&from)?, backup.as_deref(), force).await,
    }
}

async fn create(o: &OriginArgs, store: &BackupStore) -> anyhow::Result<()> {
    let http = o.client(Duration::from_secs(600))?;
    let resp = send(http.get(o.url("/backup/state")), "the origin").await?;
    let state_bytes = success(resp, "reading the state").await?.bytes().await?;
    let state: StateDump =
        serde_json::from_slice(&state_bytes).context("the origin's state dump")?;
    let blobs = state.blobs();
    let (mut copied, mut bytes) = (0usize, 0u64);
    for (i, (sha256, size)) in blobs.iter().enumerate() {
        let id = BlobId::parse(sha256).context("the origin's state dump")?;
        if !store.has_blob(&id, *size).await? {
            let url = o.url(&format!("/backup/blobs/{sha256}?size={size}"));
            let resp = success(send(http.get(url), "the origin").await?, "reading a blob").await?;
            let body = resp.bytes_stream().map_err(anyhow::Error::from);
            store.put_blob(&id, *size, body).await?;
            copied += 1;
            bytes += size;
        }
        eprint!(
            "\r  blobs: {}/{} checked, {copied} copied ({bytes} bytes)",
            i + 1,
            blobs.len()
        );
    }
    eprintln!();
    let name = format!("{}-i{}", state.taken_at_ms, state.raft_index);
    let manifest = Manifest {
        format: FORMAT,
        created_at_ms: state.taken_at_ms,
        state_sha256: hex::encode(Sha256::digest(&state_bytes)),
        raft_index: state.raft_index,
        blobs,
    };
    store.put_file(&name, "state.json", state_bytes).await?;
    store
        .put_file(
            &name,
            "manifest.json",
            serde_json::to_vec_pretty(&manifest)?.into(),
        )
        .await?;
    println!(
        "backup {name} in {}: {} assets, {} KV namespaces, {} plugins, {} queues at raft index {}; {copied} new blobs ({bytes} bytes), {} already there",
        store.shown(),
        state.assets.len(),
        state.kv.len(),
        state.plugins.len(),
        state.queues.len(),
        state.raft_index,
        manifest.blobs.len() - copied
    );
    Ok(())
}
