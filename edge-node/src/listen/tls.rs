//! TLS termination: certificate loading, SNI selection and hot reload.
//!
//! Certificates are PEM files on disk, renewed in place by an external tool
//! (certbot, cert-manager, ...). A background task re-reads them every
//! `reload_interval` and swaps changed ones in without dropping connections.
//! A file that fails to load keeps the previous certificate for that entry,
//! so a half-written renewal never takes a name offline.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerConnection;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::sni::{CertStore, NamedCert, SniResolver, leaf_facts};

/// ALPN protocols offered, in server preference order.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// One certificate to serve: a PEM chain (leaf first) and its PEM private
/// key (PKCS#8, PKCS#1 RSA or SEC1 EC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSpec {
    /// PEM certificate chain, end-entity certificate first.
    pub cert: PathBuf,
    /// PEM private key matching the end-entity certificate.
    pub key: PathBuf,
}

/// TLS configuration of a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificates chosen by SNI; the first one is also the default for
    /// clients without SNI or with an unknown name.
    pub certificates: Vec<CertSpec>,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
}

/// Why certificates could not be loaded; always names the offending file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No certificate was configured.
    #[error("no TLS certificates configured")]
    NoCertificates,
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the key, or it does not match the certificate.
    #[error("{key} does not fit {cert}: {source}")]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' verdict.
        source: rustls::Error,
    },
    /// The server configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// What was last read for one [`CertSpec`]: a digest of both files, so a
/// rewrite is noticed even within the filesystem's timestamp granularity
/// and a failed load is not retried (and logged) until the files change.
#[derive(Debug)]
struct Entry {
    spec: CertSpec,
    digest: [u8; 32],
    /// The files could not be read at the last attempt (reported once).
    unreadable: bool,
}

/// Terminates TLS for a listener, choosing the certificate by SNI and
/// reloading certificates when their files change.
pub struct TlsAcceptor {
    acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<SniResolver>,
    provider: Arc<CryptoProvider>,
    entries: Mutex<Vec<Entry>>,
    reload_interval: Duration,
    watching: AtomicBool,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("names", &self.served_names())
            .field("reload_interval", &self.reload_interval)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads every certificate; any failure is an error naming the file.
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsError> {
        if settings.certificates.is_empty() {
            return Err(TlsError::NoCertificates);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut entries = Vec::with_capacity(settings.certificates.len());
        let mut certs = Vec::with_capacity(settings.certificates.len());
        for spec in &settings.certificates {
            let pems = read_pems(spec)?;
            let cert = parse(spec, &pems, &provider)?;
            if cert.names.is_empty() {
                tracing::warn!(
                    cert = %spec.cert.display(),
                    "certificate has no DNS subjectAltName; it is only served as the default"
                );
            }
            certs.push(cert);
            entries.push(Entry {
                spec: spec.clone(),
                digest: pems.digest,
                unreadable: false,
            });
        }
        let resolver = Arc::new(SniResolver::new(CertStore::new(certs)));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            resolver,
            provider,
            entries: Mutex::new(entries),
            reload_interval: settings.reload_interval,
            watching: AtomicBool::new(false),
        })
    }

    /// A collector of `tls_certificate_expiry_seconds`, read from the
    /// certificates in use at each scrape (so a reload shows at once).
    pub fn expiry_collector(&self) -> super::cert_expiry::ExpiryCollector {
        super::cert_expiry::ExpiryCollector::new(Arc::downgrade(&self.resolver))
    }

    /// Performs the server side of the handshake.
    pub async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }

    /// The DNS names of every certificate currently served, in settings
    /// order (for logs and status pages).
    pub fn served_names(&self) -> Vec<Vec<String>> {
        self.resolver
            .snapshot()
            .certs()
            .iter()
            .map(|cert| cert.names.clone())
            .collect()
    }

    /// Re-reads every certificate whose files changed since the last
    /// attempt and swaps the new set in. Entries that fail keep their old
    /// certificate; their errors are returned once (not again until the
    /// files change, or become readable and fail anew). Returns whether
    /// anything was swapped in. The reload task calls this; call it directly
    /// to reload on demand (e.g. on SIGHUP).
    pub fn reload(&self) -> (bool, Vec<TlsError>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.resolver.snapshot();
        let mut certs: Vec<NamedCert> = current.certs().to_vec();
        let mut changed = false;
        let mut errors = Vec::new();
        for (entry, slot) in entries.iter_mut().zip(certs.iter_mut()) {
            let pems = match read_pems(&entry.spec) {
                Ok(pems) => pems,
                Err(error) => {
                    if !std::mem::replace(&mut entry.unreadable, true) {
                        errors.push(error);
                    }
                    continue;
                }
            };
            entry.unreadable = false;
            if pems.digest == entry.digest {
                continue;
            }
            entry.digest = pems.digest;
            match parse(&entry.spec, &pems, &self.provider) {
                Ok(cert) => {
                    *slot = cert;
                    changed = true;
                }
                Err(error) => errors.push(error),
            }
        }
        if changed {
            self.resolver.swap(CertStore::new(certs));
        }
        (changed, errors)
    }

    /// Starts the background reload task (once per acceptor; later calls do
    /// nothing). It ends when the acceptor is dropped.
    pub fn spawn_reloader(self: &Arc<Self>) {
        if self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.reload_interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(acceptor) = weak.upgrade() else {
                    return;
                };
                // File IO; keep it off the async workers.
                let outcome = tokio::task::spawn_blocking(move || acceptor.reload()).await;
                match outcome {
                    Ok((changed, errors)) => {
                        for error in errors {
                            tracing::error!(%error, "TLS certificate reload failed; keeping the previous certificate");
                        }
                        if changed {
                            tracing::info!("TLS certificates reloaded");
                        }
                    }
                    Err(error) => tracing::error!(%error, "TLS certificate reload task failed"),
                }
            }
        });
    }
}

/// The SNI name the client asked for, if any.
pub(crate) fn sni(connection: &ServerConnection) -> Option<String> {
    connection.server_name().map(str::to_owned)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Both files of a [`CertSpec`] as read from disk, with their digest.
struct Pems {
    cert: Vec<u8>,
    key: Vec<u8>,
    digest: [u8; 32],
}

fn read_pems(spec: &CertSpec) -> Result<Pems, TlsError> {
    let cert = read(&spec.cert)?;
    let key = read(&spec.key)?;
    let mut hasher = Sha256::new();
    hasher.update(&cert);
    hasher.update(&key);
    Ok(Pems {
        cert,
        key,
        digest: hasher.finalize().into(),
    })
}

fn parse(spec: &CertSpec, pems: &Pems, provider: &CryptoProvider) -> Result<NamedCert, TlsError> {
    let pem_error = |path: &Path, reason: String| TlsError::Pem {
        path: path.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pems.cert.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(&spec.cert, format!("invalid PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(pem_error(&spec.cert, "no CERTIFICATE block".into()));
    };
    let (names, not_after) =
        leaf_facts(leaf).map_err(|e| pem_error(&spec.cert, format!("invalid certificate: {e}")))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pems.key.as_slice())
        .map_err(|e| pem_error(&spec.key, format!("invalid PEM: {e}")))?
        .ok_or_else(|| pem_error(&spec.key, "no private key block".into()))?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Key {
        cert: spec.cert.clone(),
        key: spec.key.clone(),
        source,
    })?;
    Ok(NamedCert {
        key: Arc::new(key),
        names,
        not_after,
        file: spec.cert.display().to_string(),
    })
}
