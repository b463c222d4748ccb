//! Mutual TLS between regions: the peer listener's TLS and the client the
//! regions reach each other with.
//!
//! Every region holds a certificate from the cluster's peer CA
//! (`[peer] ca_file`, `cert_file`, `key_file`) whose subjectAltName
//! carries its node id as the URI `waypost-node://<id>`, beside the DNS
//! names or IP addresses of its peer address (the ordinary hostname check
//! the client makes against the member's `addr`). Both sides verify the
//! other against the peer CA only (not the system roots), refuse expired
//! certificates and any certificate without exactly one node id; this
//! happens in the handshake, so nothing else ever reaches a request.
//! Per request, a Raft RPC whose sender is not the node its certificate
//! names is refused (`routes/internal.rs`), so one region cannot speak for
//! another.
//!
//! The files are re-read when they change (checked every
//! [`RELOAD_INTERVAL`]) and on SIGHUP; new handshakes use the new
//! certificate and CA, open connections keep theirs. Files that do not
//! load keep the previous set (reported once). TLS 1.3 only: both ends
//! are ours.

mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use service_base::pem::{self, PemError};
use sha2::{Digest, Sha256};

use crate::raft::NodeId;

/// The subjectAltName URI prefix that names a node.
pub const NODE_URI_PREFIX: &str = "waypost-node://";

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The node a peer listener's connection proved to be, by its client
/// certificate; in the request extensions of everything it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerIdentity(pub NodeId);

/// `[peer] ca_file`, `cert_file`, `key_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTlsFiles {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Why the peer certificates could not be used; names field and file.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    #[error("peer.{field}: {source}")]
    Pem {
        field: &'static str,
        #[source]
        source: PemError,
    },
    #[error("peer.{field}: {}: {reason}", path.display())]
    Invalid {
        field: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "peer.cert_file: {} names node {found}, but this region is node {expected} \
         (cluster.node_id); give it the certificate issued for node {expected}",
        path.display()
    )]
    WrongNode {
        path: PathBuf,
        found: NodeId,
        expected: NodeId,
    },
}

/// Why a certificate names no node.
#[derive(Debug, thiserror::Error)]
pub enum NoNodeId {
    #[error("not an X.509 certificate: {0}")]
    NotX509(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    #[error("bad subjectAltName: {0}")]
    BadSan(#[source] x509_parser::error::X509Error),
    #[error("no subjectAltName URI {NODE_URI_PREFIX}<id>: not a Waypost peer certificate")]
    Missing,
    #[error("`{NODE_URI_PREFIX}{0}` is not a node id")]
    NotANumber(String),
    #[error("more than one node id")]
    Several,
}

/// The node id a peer certificate (DER) names, or why it names none.
pub fn node_id_of(der: &[u8]) -> Result<NodeId, NoNodeId> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(NoNodeId::NotX509)?;
    let san = cert
        .subject_alternative_name()
        .map_err(NoNodeId::BadSan)?
        .ok_or(NoNodeId::Missing)?;
    let ids: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(NODE_URI_PREFIX),
            _ => None,
        })
        .collect();
    match ids.as_slice() {
        [one] => one
            .parse()
            .map_err(|_| NoNodeId::NotANumber(one.to_string())),
        [] => Err(NoNodeId::Missing),
        _ => Err(NoNodeId::Several),
    }
}

fn not_after_of(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// One consistent load of the three files.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    clients: Arc<dyn ClientCertVerifier>,
    servers: Arc<WebPkiServerVerifier>,
    /// This region's certificate's notAfter (Unix seconds).
    not_after: i64,
    digest: [u8; 32],
}

/// This region's peer identity and the CA it trusts, reloadable.
#[derive(Debug)]
pub struct PeerTls {
    files: PeerTlsFiles,
    node_id: NodeId,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Loaded>>,
}

impl PeerTls {
    /// Loads the files; this region's certificate must name `node_id`.
    pub fn load(files: PeerTlsFiles, node_id: NodeId) -> Result<Arc<Self>, PeerTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(&files, node_id, &provider)?;
        Ok(Arc::new(Self {
            files,
            node_id,
            provider,
            current: RwLock::new(Arc::new(loaded)),
        }))
    }

    fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Seconds until this region's certificate expires (negative once it
    /// has), for `origin_peer_certificate_expiry_seconds`.
    pub fn seconds_left(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.current().not_after - now
    }

    /// Re-reads the files if their bytes changed; `Ok(true)` when the new
    /// ones are in use. On error the previous ones stay.
    pub fn reload(&self) -> Result<bool, PeerTlsError> {
        if digest(&self.files) == Some(self.current().digest) {
            return Ok(false);
        }
        let loaded = load(&self.files, self.node_id, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(true)
    }

    /// The peer listener's TLS: a client certificate from the peer CA is
    /// required.
    pub fn server_config(self: &Arc<Self>) -> ServerConfig {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("the ring provider supports TLS 1.3")
            .with_client_cert_verifier(Arc::new(verify::Clients(self.clone())))
            .with_cert_resolver(Arc::new(verify::OwnCert(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// The TLS of requests to other regions: presents this region's
    /// certificate, trusts only the peer CA.
    pub fn client_config(self: &Arc<Self>) -> ClientConfig {
        ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("the ring provider supports TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::Servers(self.clone())))
            .with_client_cert_resolver(Arc::new(verify::OwnCert(self.clone())))
    }
}

fn digest(files: &PeerTlsFiles) -> Option<[u8; 32]> {
    let mut hash = Sha256::new();
    for path in [&files.ca_file, &files.cert_file, &files.key_file] {
        hash.update(std::fs::read(path).ok()?);
        hash.update([0]);
    }
    Some(hash.finalize().into())
}

fn load(
    files: &PeerTlsFiles,
    node_id: NodeId,
    provider: &Arc<CryptoProvider>,
) -> Result<Loaded, PeerTlsError> {
    // Digest first: a file rewritten while we read it shows as a change
    // at the next check, never as a load we would not retry.
    let digest = digest(files).unwrap_or_default();
    let pem_err = |field| move |source| PeerTlsError::Pem { field, source };
    let invalid = |field, path: &Path, reason: String| PeerTlsError::Invalid {
        field,
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for ca in pem::read_certs(&files.ca_file).map_err(pem_err("ca_file"))? {
        roots.add(ca).map_err(|e| {
            invalid(
                "ca_file",
                &files.ca_file,
                format!("not a CA certificate: {e}"),
            )
        })?;
    }
    let roots = Arc::new(roots);
    let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| invalid("ca_file", &files.ca_file, e.to_string()))?;
    let servers = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| invalid("ca_file", &files.ca_file, e.to_string()))?;
    let key =
        pem::certified_key(&files.cert_file, &files.key_file, provider).map_err(|source| {
            let field = if source.path() == files.key_file {
                "key_file"
            } else {
                "cert_file"
            };
            PeerTlsError::Pem { field, source }
        })?;
    let leaf = &key.cert[0];
    let found =
        node_id_of(leaf).map_err(|r| invalid("cert_file", &files.cert_file, r.to_string()))?;
    if found != node_id {
        return Err(PeerTlsError::WrongNode {
            path: files.cert_file.clone(),
            found,
            expected: node_id,
        });
    }
    let not_after = not_after_of(leaf).unwrap_or_default();
    Ok(Loaded {
        key: Arc::new(key),
        clients,
        servers,
        not_after,
        digest,
    })
}
