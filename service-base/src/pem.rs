//! Reading PEM certificates and keys with errors that name the file, for
//! every server that loads TLS material (the origin's listeners and peer
//! client; the edge and geodns keep their loaders for now).

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a PEM file could not be used; always names it.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: bad PEM: {source}", path.display())]
    Bad {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no PEM {kind} block", path.display())]
    Empty { path: PathBuf, kind: &'static str },
    #[error("{} does not fit {}: {reason}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl PemError {
    /// The file at fault (for a mismatch, the key).
    pub fn path(&self) -> &Path {
        match self {
            PemError::Read { path, .. }
            | PemError::Bad { path, .. }
            | PemError::Empty { path, .. } => path,
            PemError::Mismatch { key, .. } => key,
        }
    }
}

/// The certificates in `path`, in file order (leaf first for a chain).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PemError::Bad {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            path: path.to_path_buf(),
            kind: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The first private key in `path` (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| PemError::Bad {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| PemError::Empty {
            path: path.to_path_buf(),
            kind: "PRIVATE KEY",
        })
}

/// The chain in `cert` with the key in `key`, checked to belong together,
/// ready for a rustls certificate resolver.
pub fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<rustls::sign::CertifiedKey, PemError> {
    let chain = read_certs(cert)?;
    let mismatch = |reason: String| PemError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason,
    };
    let signing = provider
        .key_provider
        .load_private_key(read_key(key)?)
        .map_err(|e| mismatch(e.to_string()))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| mismatch(e.to_string()))?;
    Ok(certified)
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let msg = read_certs(&empty).unwrap_err().to_string();
        assert!(
            msg.contains("empty.pem") && msg.contains("CERTIFICATE"),
            "{msg}"
        );
        let msg = read_key(&empty).unwrap_err().to_string();
        assert!(
            msg.contains("empty.pem") && msg.contains("PRIVATE KEY"),
            "{msg}"
        );
        let msg = read_certs(&dir.path().join("gone.pem"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("gone.pem"), "{msg}");
    }
}
