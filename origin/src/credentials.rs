//! Bearer tokens with scopes, so the credential an edge holds cannot
//! write and the one the CLI holds cannot change membership.
//!
//! | scope | grants | who holds it |
//! |---|---|---|
//! | `read` | KV, change feed, plugins, `/cluster`, `/metrics` | edges, monitoring |
//! | `write` | `read` + uploads, KV writes, purges, plugin publishing | the CLI, CI |
//! | `admin` | `write` + membership (`/cluster/members...`) | operators |
//!
//! Tokens come from three places, all checked on every request:
//! `token` (the cluster's own token: `admin`, and without peer TLS also
//! what the regions present to each other on `/internal/*`), `read_token`
//! (`read`), and `tokens_file`, one `scope token` per line:
//!
//! ```text
//! # scope  token
//! read   3f9a1c0e7b2d4a5f8e6c1b0a9d7f3e2c
//! read   0b7e55d2a1f94c6e8d3a2b1c0f9e8d7c   # the next edge token, during rotation
//! write  9c1d4e7f2a5b8c3d6e9f0a1b4c7d2e5f
//! ```
//!
//! Several tokens per scope is how a token is rotated without downtime:
//! add the new one, move the clients, remove the old one. The file is
//! re-read when it changes (checked every [`RELOAD_INTERVAL`]) and on
//! SIGHUP; a file that no longer parses keeps the previous set (and is
//! reported once), so a half-written edit never locks everyone out. Tokens
//! are compared in constant time and never logged: errors name the file
//! and the line, not the value.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use service_base::secrets::constant_time_eq;
use sha2::{Digest, Sha256};

/// How often `tokens_file` is checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// What a token may do; each scope implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
    /// The cluster `token` while peer traffic is not on mutual TLS: the
    /// only token that reaches `/internal/*` (never one from the file).
    Peer,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Peer => "peer",
        }
    }
}

/// Why `tokens_file` could not be used; names the file and line, never
/// the token.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// One accepted token.
#[derive(Clone)]
struct Entry {
    scope: Scope,
    token: String,
}

/// The tokens a server accepts: the fixed ones from the config and the
/// current contents of `tokens_file`.
pub struct Credentials {
    fixed: Vec<Entry>,
    file: Option<PathBuf>,
    /// The file's tokens and the digest of the bytes they came from.
    loaded: RwLock<(Arc<Vec<Entry>>, [u8; 32])>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("fixed", &self.fixed.len())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The cluster `token` (scope `admin`, or `peer` when `token_is_peer`:
    /// peer traffic authenticates with it), `read_token`, and the tokens in
    /// `file`, which must load now.
    pub fn new(
        token: &str,
        token_is_peer: bool,
        read_token: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Self, TokensFileError> {
        let top = if token_is_peer {
            Scope::Peer
        } else {
            Scope::Admin
        };
        let mut fixed = vec![Entry {
            scope: top,
            token: token.to_string(),
        }];
        if let Some(read) = read_token {
            fixed.push(Entry {
                scope: Scope::Read,
                token: read.to_string(),
            });
        }
        let loaded = match file {
            Some(path) => {
                let bytes = read_file(path)?;
                (Arc::new(parse(path, &bytes)?), digest(&bytes))
            }
            None => (Arc::default(), [0; 32]),
        };
        Ok(Self {
            fixed,
            file: file.map(Path::to_path_buf),
            loaded: RwLock::new(loaded),
        })
    }

    /// The widest scope `presented` carries, if it is a token at all. Every
    /// accepted token is compared, each in constant time, so the answer's
    /// timing does not tell which (or how much of one) matched.
    pub fn scope_of(&self, presented: &str) -> Option<Scope> {
        let file = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        self.fixed
            .iter()
            .chain(file.iter())
            .filter(|e| constant_time_eq(e.token.as_bytes(), presented.as_bytes()))
            .map(|e| e.scope)
            .fold(None, |widest, scope| widest.max(Some(scope)))
    }

    /// Re-reads `tokens_file` if its bytes changed; `Ok(true)` when a new
    /// set is in use. On error the previous set stays.
    pub fn reload(&self) -> Result<bool, TokensFileError> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let bytes = read_file(path)?;
        let new_digest = digest(&bytes);
        if self.loaded.read().unwrap_or_else(|e| e.into_inner()).1 == new_digest {
            return Ok(false);
        }
        let entries = parse(path, &bytes)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(entries), new_digest);
        Ok(true)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TokensFileError> {
    std::fs::read(path).map_err(|source| TokensFileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `scope token` per line; `#` starts a comment (so a token cannot hold
/// one; generated hex or base64url tokens never do); blank lines are
/// skipped.
fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<Entry>, TokensFileError> {
    let err = |line: usize, reason: String| TokensFileError::Line {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| err(0, "is not UTF-8".into()))?;
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(scope), Some(token), None) = (words.next(), words.next(), words.next()) else {
            return Err(err(n, "expected `<scope> <token>`".into()));
        };
        let scope = match scope {
            "read" => Scope::Read,
            "write" => Scope::Write,
            "admin" => Scope::Admin,
            other => {
                return Err(err(
                    n,
                    format!("unknown scope `{other}` (read, write or admin)"),
                ));
            }
        };
        if let Some(reason) = service_base::secrets::weakness(token) {
            return Err(err(n, format!("the token {reason}")));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err(n, "the token must be printable ASCII".into()));
        }
        entries.push(Entry {
            scope,
            token: token.to_string(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "read-aaaaaaaaaaaaaaaa";
    const W1: &str = "write-bbbbbbbbbbbbbbbb";

    #[test]
    fn scopes_come_from_every_source_and_the_widest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, format!("# edges\nread {R1}\n\nwrite {W1}  # ci\n")).unwrap();
        let c = Credentials::new("cluster-token", true, Some("rt"), Some(&file)).unwrap();
        assert_eq!(c.scope_of("cluster-token"), Some(Scope::Peer));
        assert_eq!(c.scope_of("rt"), Some(Scope::Read));
        assert_eq!(c.scope_of(R1), Some(Scope::Read));
        assert_eq!(c.scope_of(W1), Some(Scope::Write));
        assert_eq!(c.scope_of("nope"), None);
        assert_eq!(c.scope_of(""), None);
        let c = Credentials::new("cluster-token", false, None, None).unwrap();
        assert_eq!(c.scope_of("cluster-token"), Some(Scope::Admin));
    }

    #[test]
    fn reload_swaps_the_set_and_keeps_it_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, format!("read {R1}\n")).unwrap();
        let c = Credentials::new("t", false, None, Some(&file)).unwrap();
        assert!(!c.reload().unwrap());
        std::fs::write(&file, format!("write {W1}\n")).unwrap();
        assert!(c.reload().unwrap());
        assert_eq!(c.scope_of(R1), None);
        assert_eq!(c.scope_of(W1), Some(Scope::Write));
        std::fs::write(&file, "root x\n").unwrap();
        assert!(c.reload().is_err());
        assert_eq!(c.scope_of(W1), Some(Scope::Write));
    }

    #[test]
    fn bad_lines_name_file_and_line_but_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        for (text, expect) in [
            (
                format!("read {R1}\nsuper {W1}\n"),
                ":2: unknown scope `super`",
            ),
            ("read\n".to_string(), ":1: expected"),
            (format!("read {R1} extra\n"), ":1: expected"),
            (
                "write change-me\n".to_string(),
                ":1: the token is a placeholder",
            ),
            ("write short\n".to_string(), ":1: the token is shorter"),
        ] {
            std::fs::write(&file, &text).unwrap();
            let msg = Credentials::new("t", false, None, Some(&file))
                .unwrap_err()
                .to_string();
            assert!(msg.contains("tokens") && msg.contains(expect), "{msg}");
            assert!(!msg.contains(W1) && !msg.contains(R1), "{msg}");
        }
        let missing = dir.path().join("missing");
        let msg = Credentials::new("t", false, None, Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing"), "{msg}");
    }
}
