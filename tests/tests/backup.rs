//! `waypost backup` against real origin processes: assets, KV and plugin
//! versions written through three regions are backed up to a directory and
//! to a real S3-compatible server (s3s-fs; a second backup copies no blob
//! again), the cluster is destroyed, and a restore from the bucket into a
//! fresh cluster gives back every byte and every version. A corrupted or
//! truncated backup is caught by `verify` and by `restore` before anything
//! is written, in the directory and in the bucket.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use waypost_e2e::s3::{BUCKET, S3Server};
use waypost_e2e::{OriginRegion, Proc, bin_dir, start_origin_cluster};

const TOKEN: &str = "backup-test-token-0123456789";

fn cluster(dir: &Path, ips: [&str; 3]) -> (Vec<OriginRegion>, Vec<Proc>) {
    std::fs::create_dir_all(dir).unwrap();
    start_origin_cluster(dir, ips, TOKEN)
}

/// The `AWS_*` variables of the S3 server the test runs, if any.
type Env = Vec<(&'static str, String)>;

fn waypost(origin: &str, args: &[&str], env: &Env) -> Output {
    Command::new(bin_dir().join("waypost"))
        .args(args)
        .env("WAYPOST_ORIGIN", format!("http://{origin}"))
        .env("WAYPOST_TOKEN", TOKEN)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

fn ok(origin: &str, args: &[&str]) -> String {
    ok_with(origin, args, &Vec::new())
}

fn ok_with(origin: &str, args: &[&str], env: &Env) -> String {
    let out = waypost(origin, args, env);
    assert!(
        out.status.success(),
        "waypost {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(origin: &str, args: &[&str], env: &Env) -> String {
    let out = waypost(origin, args, env);
    assert!(!out.status.success(), "waypost {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The state a region dumps, without what differs between clusters.
fn contents(c: &reqwest::blocking::Client, origin: &str) -> Value {
    let mut state: Value = c
        .get(format!("http://{origin}/backup/state"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    for volatile in ["raft_index", "taken_at_ms"] {
        state.as_object_mut().unwrap().remove(volatile);
    }
    for asset in state["assets"].as_object_mut().unwrap().values_mut() {
        asset.as_object_mut().unwrap().remove("last_modified");
    }
    state
}

#[test]
fn a_backup_restores_every_byte_into_a_fresh_cluster_and_damage_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (first, procs) = cluster(
        &dir.path().join("a"),
        ["127.0.94.1", "127.0.95.1", "127.0.96.1"],
    );
    let c = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let put = |region: usize, path: &str, body: Vec<u8>, ctype: &str| {
        let r = c
            .put(format!("http://{}{path}", first[region].addr))
            .bearer_auth(TOKEN)
            .header("content-type", ctype)
            .header("surrogate-key", "k1 k2")
            .body(body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    };
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    put(
        0,
        "/assets/img/big.bin",
        big.clone(),
        "application/octet-stream",
    );
    put(
        1,
        "/assets/a%20b/index.html",
        b"<h1>hi</h1>".to_vec(),
        "text/html",
    );
    put(2, "/kv/users/u1", b"alice".to_vec(), "text/plain");
    put(0, "/kv/users/u2", b"bob".to_vec(), "text/plain");
    put(
        1,
        "/plugins/hello",
        b"\0asm-not-really-but-bytes-v1".to_vec(),
        "application/wasm",
    );
    put(
        2,
        "/plugins/hello",
        b"\0asm-not-really-but-bytes-v2".to_vec(),
        "application/wasm",
    );
    ok(&first[0].addr, &["queue", "create", "jobs"]);
    ok(&first[1].addr, &["queue", "send", "jobs", "job one"]);
    // A body over 64 KiB: the origin keeps it as a blob, and so does the
    // backup.
    let large = "a large job ".repeat(10_000);
    let r = c
        .post(format!("http://{}/queues/jobs/messages", first[2].addr))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"messages": [{"body": large}]}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let backups = dir.path().join("backups");
    let to = backups.to_str().unwrap();
    let created = ok(&first[1].addr, &["backup", "create", "--to", to]);
    assert!(
        created.contains("2 assets") && created.contains("4 new blobs"),
        "{created}"
    );
    let again = ok(&first[2].addr, &["backup", "create", "--to", to]);
    assert!(
        again.contains("0 new blobs") && again.contains("4 already there"),
        "{again}"
    );
    let listed = ok(&first[0].addr, &["backup", "list", "--from", to]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(ok(&first[0].addr, &["backup", "verify", "--from", to]).contains("intact"));

    // The same into a bucket of a real S3-compatible server.
    let s3 = S3Server::start("backups to S3");
    let bucket_url = format!("s3://{BUCKET}/waypost/nightly");
    let s3_env: Env = s3.as_ref().map(|s| s.env().to_vec()).unwrap_or_default();
    if s3.is_some() {
        let b = bucket_url.as_str();
        let created = ok_with(&first[0].addr, &["backup", "create", "--to", b], &s3_env);
        assert!(created.contains("4 new blobs"), "{created}");
        let again = ok_with(&first[1].addr, &["backup", "create", "--to", b], &s3_env);
        assert!(again.contains("0 new blobs"), "{again}");
        let listed = ok_with(&first[0].addr, &["backup", "list", "--from", b], &s3_env);
        assert_eq!(listed.lines().count(), 2, "{listed}");
    }
    let before = contents(&c, &first[0].addr);

    // Destroy the cluster: every process and every data directory.
    drop(procs);
    std::fs::remove_dir_all(dir.path().join("a")).unwrap();
    let (second, _procs) = cluster(
        &dir.path().join("b"),
        ["127.0.97.1", "127.0.98.1", "127.0.99.1"],
    );

    // A damaged blob: verify names it, restore refuses before writing.
    let no_env = Vec::new();
    let mut damaged = vec![(backups.join("blobs"), to.to_string(), &no_env)];
    if let Some(s3) = &s3 {
        let files = s3.bucket_dir().join("waypost/nightly/blobs");
        damaged.push((files, bucket_url.clone(), &s3_env));
    }
    for (files, from, env) in damaged {
        let from = from.as_str();
        let blob = walk(&files)
            .into_iter()
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap();
        let original = std::fs::read(&blob).unwrap();
        std::fs::write(&blob, &original[..original.len() / 2]).unwrap();
        let err = fails(&second[0].addr, &["backup", "verify", "--from", from], env);
        assert!(
            err.contains("corrupt") && err.contains(blob.file_name().unwrap().to_str().unwrap()),
            "{from}: {err}"
        );
        let err = fails(&second[0].addr, &["backup", "restore", "--from", from], env);
        assert!(err.contains("damaged"), "{from}: {err}");
        assert_eq!(
            contents(&c, &second[0].addr)["assets"],
            serde_json::json!({}),
            "nothing written from {from}"
        );
        std::fs::write(&blob, &original).unwrap();
    }

    // Restored from the bucket (the directory where s3s-fs is not here).
    let (from, env) = match &s3 {
        Some(_) => (bucket_url.as_str(), &s3_env),
        None => (to, &no_env),
    };
    let restored = ok_with(&second[2].addr, &["backup", "restore", "--from", from], env);
    assert!(
        restored.contains("2 assets, 2 KV keys, 1 plugins, 1 queues"),
        "{restored}"
    );
    // Into a cluster with data only with --force.
    let err = fails(
        &second[0].addr,
        &["backup", "restore", "--from", to],
        &no_env,
    );
    assert!(err.contains("already holds data"), "{err}");
    for region in &second {
        let mut after = contents(&c, &region.addr);
        for _ in 0..100 {
            if after == before {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            after = contents(&c, &region.addr);
        }
        assert_eq!(after, before, "region {} differs", region.addr);
    }
    let got = c
        .get(format!("http://{}/assets/img/big.bin", second[1].addr))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(
        got.as_ref() == big.as_slice(),
        "the big asset's bytes differ"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
