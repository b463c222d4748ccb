//! The disk tier's file format and startup scan.
//!
//! Each object is two files under `<dir>/objects/<xx>/`: `<hash>.meta`
//! (versioned JSON, rewritten when a 304 refreshes headers) and
//! `<hash>-<fill>.body` (the bytes, written while they stream to clients).
//! The body name is unique per fill, so a new fill never truncates a file
//! that readers of the previous version still have open. A meta file is
//! written only after its body is complete, so a crash leaves at most an
//! orphan body, which the startup scan deletes.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::directives::StaleRules;
use super::meta::ObjectMeta;

/// Bump when the meta layout changes; older files are discarded at startup.
/// 2: no serialized `CachePolicy`; response time and initial age instead;
/// keys carry the scheme.
const FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct DiskMeta {
    format: u32,
    key: String,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    response_time_ms: u64,
    initial_age_secs: u64,
    fresh_until_ms: u64,
    swr_secs: u64,
    sie_secs: Option<u64>,
    forbids_stale: bool,
    surrogate_keys: Vec<String>,
    vary: Vec<String>,
    body_file: String,
    body_len: u64,
    /// Unix millis of a soft purge (0 = none); absent in older files.
    #[serde(default)]
    soft_purged_ms: u64,
}

/// Paths of the disk tier.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> io::Result<Self> {
        let root = dir.join("objects");
        create_private_dir(dir)?;
        create_private_dir(&root)?;
        Ok(Self { root })
    }

    fn hash(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    fn shard(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2])
    }

    pub fn meta_path(&self, key: &str) -> PathBuf {
        let h = Self::hash(key);
        self.shard(&h).join(format!("{h}.meta"))
    }

    /// A fresh body path for a new fill of `key`.
    pub fn new_body_path(&self, key: &str, fill_id: u64) -> io::Result<PathBuf> {
        let h = Self::hash(key);
        let shard = self.shard(&h);
        if !shard.is_dir() {
            create_private_dir(&shard)?;
        }
        Ok(shard.join(format!("{h}-{fill_id}.body")))
    }
}

/// Creates `dir` (and parents) as 0700: only this user lists or reads the
/// cache; an existing directory is tightened to 0700.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes the meta file for an object whose body is complete in `body`;
/// `soft_purged_ms` keeps a soft purge across restarts.
pub fn write_meta(
    layout: &Layout,
    meta: &ObjectMeta,
    soft_purged_ms: u64,
    body: &Path,
    body_len: u64,
) -> io::Result<()> {
    let record = DiskMeta {
        format: FORMAT,
        key: meta.key.clone(),
        status: meta.status.as_u16(),
        headers: meta
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        response_time_ms: millis(meta.response_time),
        initial_age_secs: meta.initial_age.as_secs(),
        fresh_until_ms: meta
            .fresh_until
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64,
        swr_secs: meta.stale.stale_while_revalidate.as_secs(),
        sie_secs: meta.stale.stale_if_error.map(|d| d.as_secs()),
        forbids_stale: meta.stale.forbids_stale,
        surrogate_keys: meta.surrogate_keys.clone(),
        vary: meta.vary.iter().map(|n| n.as_str().to_string()).collect(),
        body_file: body
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string(),
        body_len,
        soft_purged_ms,
    };
    write_record(&layout.meta_path(&meta.key), &record)
}

/// An object found on disk at startup.
pub struct Recovered {
    pub meta: ObjectMeta,
    pub body: PathBuf,
    pub body_len: u64,
    /// When it was soft-purged, if it was.
    pub soft_purged: Option<SystemTime>,
}

/// Reads every meta file under the layout and hands each live object to
/// `each` (one at a time: a large disk tier is never held in memory at
/// once); deletes files of unknown format, metas whose body is missing or
/// short, bodies without a meta, and objects whose retention ended before
/// `now`. A body lives in its meta's shard directory, so orphans are found
/// one shard at a time.
pub fn scan(
    layout: &Layout,
    now: SystemTime,
    retain: impl Fn(&ObjectMeta) -> SystemTime,
    mut each: impl FnMut(Recovered),
) {
    let Ok(shards) = std::fs::read_dir(&layout.root) else {
        return;
    };
    let shard_dirs: Vec<PathBuf> = shards
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    for shard in &shard_dirs {
        let mut referenced = std::collections::HashSet::new();
        let mut bodies = Vec::new();
        for entry in std::fs::read_dir(shard).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("meta") {
                bodies.push(path);
                continue;
            }
            match read_meta(&path, shard) {
                Some(r) if retain(&r.meta) > now => {
                    referenced.insert(r.body.clone());
                    each(r);
                }
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        for body in bodies {
            if !referenced.contains(&body) {
                let _ = std::fs::remove_file(&body);
            }
        }
    }
}

/// The object stored under `key`, read from its meta file (a disk-tier hit:
/// metadata stays on disk until then). `None` if the files are gone or do
/// not match.
pub fn load(layout: &Layout, key: &str) -> Option<Recovered> {
    let path = layout.meta_path(key);
    let r = read_meta(&path, path.parent()?)?;
    (r.meta.key == key).then_some(r)
}

/// Records a soft purge in the meta file of `key` (an object no longer in
/// memory), so it is stale when next loaded or after a restart.
pub fn record_soft_purge(layout: &Layout, key: &str, soft_purged_ms: u64) -> io::Result<()> {
    let path = layout.meta_path(key);
    let mut record: DiskMeta =
        serde_json::from_slice(&std::fs::read(&path)?).map_err(io::Error::other)?;
    if record.key != key || record.soft_purged_ms != 0 {
        return Ok(());
    }
    record.soft_purged_ms = soft_purged_ms;
    write_record(&path, &record)
}

fn write_record(path: &Path, record: &DiskMeta) -> io::Result<()> {
    let tmp = path.with_extension("meta.tmp");
    write_private(&tmp, &serde_json::to_vec(record).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` to a new file readable by this user only: cached
/// responses may hold what one site's users fetched.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

fn read_meta(path: &Path, shard: &Path) -> Option<Recovered> {
    let record: DiskMeta = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if record.format != FORMAT || record.body_file.contains('/') {
        return None;
    }
    let body = shard.join(&record.body_file);
    if std::fs::metadata(&body).ok()?.len() != record.body_len {
        return None;
    }
    let mut headers = HeaderMap::new();
    for (k, v) in record.headers {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).ok()?,
            HeaderValue::from_bytes(&v).ok()?,
        );
    }
    let meta = ObjectMeta {
        key: record.key,
        status: StatusCode::from_u16(record.status).ok()?,
        headers,
        response_time: UNIX_EPOCH + Duration::from_millis(record.response_time_ms),
        initial_age: Duration::from_secs(record.initial_age_secs),
        stale: StaleRules {
            stale_while_revalidate: Duration::from_secs(record.swr_secs),
            stale_if_error: record.sie_secs.map(Duration::from_secs),
            forbids_stale: record.forbids_stale,
        },
        fresh_until: UNIX_EPOCH + Duration::from_millis(record.fresh_until_ms),
        surrogate_keys: record.surrogate_keys,
        vary: record
            .vary
            .iter()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect(),
    };
    Some(Recovered {
        meta,
        body,
        body_len: record.body_len,
        soft_purged: (record.soft_purged_ms > 0)
            .then(|| UNIX_EPOCH + Duration::from_millis(record.soft_purged_ms)),
    })
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}
