//! What a command must satisfy before it changes the replicated state.
//!
//! The public routes build commands from checked input, but a command can
//! also arrive through a peer's `POST /internal/raft/write` (anyone holding
//! the token) or sit in a log written by an older origin. Whatever is
//! stored here is later put into headers and dates on every read, so a
//! value that cannot be one (an ETag with a `"`, a date past year 9999)
//! would make each read of it fail or panic. [`Command::check`] is a pure
//! function of the command, and [`super::State::apply`] runs it (plus the
//! checks that need the state) on every replica, so every replica refuses
//! the same commands and their states stay identical.

use serde::{Deserialize, Serialize};

use crate::store::{AssetMeta, meta};
use waypost_api::names::{self, InvalidName, KvKey, Namespace, PluginName};
use waypost_api::{AssetPath, InvalidAssetPath};

use super::Command;

/// The last second `httpdate` can format (9999-12-31T23:59:59Z); a
/// Last-Modified beyond it would panic when sent.
pub const MAX_LAST_MODIFIED: u64 = 253_402_300_799;
/// Longest `Content-Type` and `Cache-Control` stored with an asset.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// Most bytes of surrogate keys on one asset (joined by spaces, they are
/// one response header).
pub const MAX_SURROGATE_BYTES: usize = 64 * 1024;
/// Most paths plus surrogate keys in one purge.
pub const MAX_PURGE_ITEMS: usize = 10_000;
/// Longest path or surrogate key in a purge.
pub const MAX_PURGE_ITEM: usize = 8 * 1024;

/// Why a committed command changed nothing; returned to the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// The command is not valid (400 for the client).
    #[error("the write is invalid: {reason}")]
    Invalid { reason: String },
    /// A compare-and-set precondition did not hold on the current version
    /// (412 for the client).
    #[error("the precondition does not hold for the current version")]
    PreconditionFailed,
    /// What the command names does not exist (404 for the client).
    #[error("{reason}")]
    NotFound { reason: String },
    /// The command would pass a configured limit (429 for the client).
    #[error("{reason}")]
    Exhausted { reason: String },
}

/// Why a command is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCommand {
    #[error("asset path: {0}")]
    Path(#[from] InvalidAssetPath),
    #[error(transparent)]
    Name(#[from] InvalidName),
    #[error("sha256 {0:?} is not 64 lowercase hex digits")]
    Sha256(String),
    #[error("asset metadata format {0} is not {format}", format = meta::FORMAT)]
    Format(u32),
    #[error("last_modified {0} is past {MAX_LAST_MODIFIED} (year 9999)")]
    LastModified(u64),
    #[error("{field} is not a valid header value of at most {MAX_HEADER_VALUE} bytes")]
    HeaderValue { field: &'static str },
    #[error(
        "surrogate keys must be visible ASCII without spaces, together at most \
         {MAX_SURROGATE_BYTES} bytes"
    )]
    SurrogateKeys,
    #[error("a KV value is at most {max} bytes, got {0}", max = names::MAX_KV_VALUE)]
    ValueTooLarge(usize),
    #[error(
        "a purge names 1 to {MAX_PURGE_ITEMS} paths and keys of at most {MAX_PURGE_ITEM} \
         bytes each, without control characters"
    )]
    Purge,
    #[error("node ids and incarnations are not zero")]
    Incarnation,
    #[error(transparent)]
    Queue(#[from] waypost_api::queues::InvalidQueueInput),
    #[error(
        "blob {sha256} is {known} bytes (as other entries record it), not {claimed}; \
         a content address has one size"
    )]
    SizeMismatch {
        sha256: String,
        known: u64,
        claimed: u64,
    },
}

impl From<InvalidCommand> for Refusal {
    fn from(e: InvalidCommand) -> Self {
        Refusal::Invalid {
            reason: e.to_string(),
        }
    }
}

impl Command {
    /// Checks everything about the command that does not depend on the
    /// state; the same answer on every replica and every proposer.
    pub fn check(&self) -> Result<(), InvalidCommand> {
        match self {
            Command::PutAsset { path, meta, .. } => {
                check_path(path)?;
                check_meta(meta)
            }
            Command::DeleteAsset { path, .. } => check_path(path),
            Command::KvPut {
                namespace,
                key,
                value,
                ..
            } => {
                Namespace::parse(namespace)?;
                KvKey::parse(key)?;
                if value.len() > names::MAX_KV_VALUE {
                    return Err(InvalidCommand::ValueTooLarge(value.len()));
                }
                Ok(())
            }
            Command::KvDelete { namespace, key, .. } => {
                Namespace::parse(namespace)?;
                KvKey::parse(key)?;
                Ok(())
            }
            Command::Purge {
                paths,
                surrogate_keys,
                ..
            } => check_purge(paths, surrogate_keys),
            Command::PutPlugin { name, sha256, .. } => {
                PluginName::parse(name)?;
                check_sha256(sha256)
            }
            Command::DeletePlugin { name } => Ok(PluginName::parse(name).map(drop)?),
            Command::Queue(command) => Ok(command.check()?),
            Command::RegisterIncarnation {
                node_id,
                incarnation,
            } => {
                if *node_id == 0 || *incarnation == 0 {
                    return Err(InvalidCommand::Incarnation);
                }
                Ok(())
            }
        }
    }
}

/// A content address: exactly 64 lowercase hex digits, so it is a valid
/// ETag, header value and object-store key.
pub fn check_sha256(sha256: &str) -> Result<(), InvalidCommand> {
    let hex = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex {
        Ok(())
    } else {
        Err(InvalidCommand::Sha256(sha256.chars().take(80).collect()))
    }
}

fn check_path(path: &str) -> Result<(), InvalidCommand> {
    AssetPath::new(path)?;
    Ok(())
}

fn check_meta(m: &AssetMeta) -> Result<(), InvalidCommand> {
    if m.format != meta::FORMAT {
        return Err(InvalidCommand::Format(m.format));
    }
    check_sha256(&m.sha256)?;
    if m.last_modified > MAX_LAST_MODIFIED {
        return Err(InvalidCommand::LastModified(m.last_modified));
    }
    check_header_value("content_type", &m.content_type)?;
    if let Some(cc) = &m.cache_control {
        check_header_value("cache_control", cc)?;
    }
    let keys_ok = m
        .surrogate_keys
        .iter()
        .all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()))
        && m.surrogate_keys.iter().map(|k| k.len() + 1).sum::<usize>() <= MAX_SURROGATE_BYTES;
    if !keys_ok {
        return Err(InvalidCommand::SurrogateKeys);
    }
    Ok(())
}

fn check_header_value(field: &'static str, value: &str) -> Result<(), InvalidCommand> {
    if value.is_empty()
        || value.len() > MAX_HEADER_VALUE
        || http::HeaderValue::from_str(value).is_err()
    {
        return Err(InvalidCommand::HeaderValue { field });
    }
    Ok(())
}

fn check_purge(paths: &[String], keys: &[String]) -> Result<(), InvalidCommand> {
    let count = paths.len() + keys.len();
    let items_ok = paths.iter().chain(keys).all(|item| {
        !item.is_empty() && item.len() <= MAX_PURGE_ITEM && !item.chars().any(char::is_control)
    });
    if count == 0 || count > MAX_PURGE_ITEMS || !items_ok {
        return Err(InvalidCommand::Purge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn asset(adjust: impl FnOnce(&mut AssetMeta)) -> Command {
        let mut meta = AssetMeta {
            format: meta::FORMAT,
            sha256: SHA.into(),
            size: 0,
            content_type: "text/plain".into(),
            cache_control: None,
            surrogate_keys: vec!["a".into()],
            last_modified: 1_700_000_000,
        };
        adjust(&mut meta);
        Command::PutAsset {
            path: "a.txt".into(),
            meta,
            precondition: None,
        }
    }

    #[test]
    fn a_sound_asset_passes() {
        assert_eq!(asset(|_| {}).check(), Ok(()));
        let at_limit = asset(|m| m.last_modified = MAX_LAST_MODIFIED);
        assert_eq!(at_limit.check(), Ok(()));
    }

    #[test]
    fn values_that_break_reads_are_refused() {
        type Adjust = Box<dyn FnOnce(&mut AssetMeta)>;
        let cases: Vec<Adjust> = vec![
            Box::new(|m| m.sha256 = format!("{}\"", &SHA[..63])),
            Box::new(|m| m.sha256 = SHA.to_uppercase()),
            Box::new(|m| m.sha256 = SHA[..10].into()),
            Box::new(|m| m.last_modified = u64::MAX),
            Box::new(|m| m.last_modified = MAX_LAST_MODIFIED + 1),
            Box::new(|m| m.content_type = "text/plain\r\nx: y".into()),
            Box::new(|m| m.content_type = String::new()),
            Box::new(|m| m.cache_control = Some("max-age=1\n".into())),
            Box::new(|m| m.surrogate_keys = vec!["a b".into()]),
            Box::new(|m| m.surrogate_keys = vec![String::new()]),
            Box::new(|m| m.format = 99),
        ];
        for (i, adjust) in cases.into_iter().enumerate() {
            assert!(asset(adjust).check().is_err(), "case {i}");
        }
        let bad_path = Command::DeleteAsset {
            path: "../etc/passwd".into(),
        };
        assert!(bad_path.check().is_err());
    }

    #[test]
    fn kv_plugin_and_purge_bounds() {
        let kv = |key: &str, len: usize| Command::KvPut {
            namespace: "n".into(),
            key: key.into(),
            value: "v".repeat(len),
            precondition: None,
        };
        assert_eq!(kv("k", names::MAX_KV_VALUE).check(), Ok(()));
        assert!(kv("k", names::MAX_KV_VALUE + 1).check().is_err());
        assert!(kv("", 1).check().is_err());
        let plugin = |sha: &str| Command::PutPlugin {
            name: "hello".into(),
            sha256: sha.into(),
            size: 8,
        };
        assert_eq!(plugin(SHA).check(), Ok(()));
        assert!(plugin("zz").check().is_err());
        let purge = |paths: Vec<String>| Command::Purge {
            paths,
            surrogate_keys: vec![],
            soft: false,
        };
        assert_eq!(purge(vec!["/a".into()]).check(), Ok(()));
        assert!(purge(vec![]).check().is_err());
        assert!(purge(vec!["/a\r\n".into()]).check().is_err());
        assert!(
            purge(vec!["/a".into(); MAX_PURGE_ITEMS + 1])
                .check()
                .is_err()
        );
    }
}
