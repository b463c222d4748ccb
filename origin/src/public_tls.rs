//! TLS on the public listener (`[tls] cert_file`, `key_file`), so edges'
//! feed and KV reads and the CLI's tokens cross networks encrypted. Any
//! certificate the clients trust does (a public CA, or a private one they
//! are given: the edge's pool `tls.ca_file`, the CLI's `--ca-file`). No
//! client certificates here: callers are identified by their tokens. The
//! files are re-read like the peer certificates ([`crate::reload`]).
//!
//! ```toml
//! [tls]
//! cert_file = "/etc/waypost/origin.pem"   # chain, leaf first
//! key_file = "/etc/waypost/origin.key"
//! ```

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use service_base::pem::{self, PemError};
use sha2::{Digest, Sha256};

/// How often the files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The public certificate could not be used; names field and file.
#[derive(Debug, thiserror::Error)]
#[error("tls.{field}: {source}")]
pub struct PublicTlsError {
    field: &'static str,
    #[source]
    source: PemError,
}

/// The public listener's certificate, reloadable.
#[derive(Debug)]
pub struct PublicTls {
    files: ServerTlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

/// The certificate in use, the digest of the files it came from, and its
/// leaf's notAfter (seconds since the Unix epoch).
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    digest: [u8; 32],
    not_after: i64,
}

impl PublicTls {
    pub fn load(files: ServerTlsFiles) -> Result<Arc<Self>, PublicTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = load(&files, &provider)?;
        Ok(Arc::new(Self {
            files,
            provider,
            current: RwLock::new(current),
        }))
    }

    /// Re-reads the files if their bytes changed; `Ok(true)` when the new
    /// certificate is served. On error the previous one stays.
    pub fn reload(&self) -> Result<bool, PublicTlsError> {
        let unchanged = digest(&self.files)
            == Some(
                self.current
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .digest,
            );
        if unchanged {
            return Ok(false);
        }
        let loaded = load(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(true)
    }

    /// Seconds until the served certificate expires (negative once it
    /// has), for `origin_tls_certificate_expiry_seconds`.
    pub fn seconds_left(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .not_after
            - now
    }

    /// TLS 1.2 and 1.3, h2 and http/1.1 by ALPN.
    pub fn server_config(self: &Arc<Self>) -> ServerConfig {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

#[derive(Debug)]
struct Resolver(Arc<PublicTls>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .key
                .clone(),
        )
    }
}

fn digest(files: &ServerTlsFiles) -> Option<[u8; 32]> {
    let mut hash = Sha256::new();
    for path in [&files.cert_file, &files.key_file] {
        hash.update(std::fs::read(path).ok()?);
        hash.update([0]);
    }
    Some(hash.finalize().into())
}

fn load(files: &ServerTlsFiles, provider: &CryptoProvider) -> Result<Loaded, PublicTlsError> {
    let digest = digest(files).unwrap_or_default();
    let key =
        pem::certified_key(&files.cert_file, &files.key_file, provider).map_err(|source| {
            let field = if source.path() == files.key_file {
                "key_file"
            } else {
                "cert_file"
            };
            PublicTlsError { field, source }
        })?;
    let not_after = key
        .cert
        .first()
        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf.as_ref()).ok())
        .map_or(0, |(_, cert)| cert.validity().not_after.timestamp());
    Ok(Loaded {
        key: Arc::new(key),
        digest,
        not_after,
    })
}
