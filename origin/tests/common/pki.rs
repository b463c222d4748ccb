//! Test certificates: a peer CA per test (rcgen) and per-node certificates
//! written to a temporary directory as `[peer]` expects them.

use std::path::{Path, PathBuf};

use origin::peer_tls::PeerTlsFiles;
use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair, SanType};

pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// What a test certificate says.
pub struct Leaf<'a> {
    pub node: Option<u64>,
    /// DNS names or IP addresses.
    pub names: &'a [&'a str],
    pub expired: bool,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate and its key, both PEM.
    pub fn issue(&self, leaf: &Leaf<'_>) -> (String, String) {
        let names: Vec<String> = leaf.names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if let Some(node) = leaf.node {
            params.subject_alt_names.push(SanType::URI(
                format!("waypost-node://{node}").try_into().unwrap(),
            ));
        }
        if leaf.expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA and a certificate for `leaf` into `dir` as
    /// `<stem>.pem`/`<stem>.key`, returning them as `[peer]` files.
    pub fn write(&self, dir: &Path, stem: &str, leaf: &Leaf<'_>) -> PeerTlsFiles {
        let (cert, key) = self.issue(leaf);
        let path = |ext: &str| -> PathBuf { dir.join(format!("{stem}.{ext}")) };
        std::fs::write(dir.join("ca.pem"), self.pem()).unwrap();
        std::fs::write(path("pem"), cert).unwrap();
        std::fs::write(path("key"), key).unwrap();
        PeerTlsFiles {
            ca_file: dir.join("ca.pem"),
            cert_file: path("pem"),
            key_file: path("key"),
        }
    }
}

/// A reqwest client that presents `leaf` (issued by `ca`) and trusts
/// `trust`.
pub fn client(ca: &Ca, trust: &Ca, leaf: &Leaf<'_>) -> reqwest::Client {
    let (cert, key) = ca.issue(leaf);
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(trust.pem().as_bytes()).unwrap())
        .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap())
        .build()
        .unwrap()
}
