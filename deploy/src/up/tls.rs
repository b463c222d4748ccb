//! The local platform's certificates: `waypost up` runs every hop between
//! its services on TLS, as production does, from a CA of its own kept in
//! `<data dir>/tls/`. The CA is made once and kept (the CLI and browsers
//! that trust `ca.pem` keep trusting it); the servers' certificates are
//! issued again at every start, valid for [`LEAF_VALIDITY`], so none of
//! them outlives the platform by long.
//!
//! Per region `n`: `origin-n.pem`/`.key` for the origin's client API (the
//! CLI, the edges, the dashboard) and `peer-n.pem`/`.key`, which carries
//! the node id as `waypost-node://n`, for the mutual TLS between origins.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

use origin::peer_tls::{NODE_URI_PREFIX, PeerTlsFiles};
use origin::public_tls::ServerTlsFiles;

/// The directory under the data dir.
pub const TLS_DIR: &str = "tls";
/// The CA certificate clients trust, in [`TLS_DIR`].
pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
/// How long a server certificate is valid from its issue.
const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// How long the CA is valid from its creation.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The CA's name; issued certificates name it as their issuer, so it must
/// stay the same for a kept key.
const CA_NAME: &str = "Waypost local CA";

/// The local CA, loaded or made.
pub struct LocalCa {
    dir: PathBuf,
    cert: Certificate,
    key: KeyPair,
}

/// The certificates of every region of a layout, issued at this start.
pub struct LocalTls {
    pub ca_file: PathBuf,
    /// Region `n`'s at `n - 1`.
    regions: Vec<RegionCerts>,
}

impl LocalTls {
    /// Opens (or makes) the CA in `data_dir` and issues every region's
    /// certificates.
    pub fn prepare(data_dir: &Path, layout: &super::layout::Layout) -> anyhow::Result<Self> {
        let ca = LocalCa::open(data_dir)?;
        let regions = layout
            .regions()
            .map(|(n, ip)| ca.issue_region(n as u64, vec![SanType::IpAddress(IpAddr::V4(ip))]))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            ca_file: ca.ca_file(),
            regions,
        })
    }

    pub fn region(&self, n: usize) -> &RegionCerts {
        &self.regions[n - 1]
    }

    /// The CA as a root for this process's own clients.
    pub fn root(&self) -> anyhow::Result<reqwest::Certificate> {
        let pem = std::fs::read(&self.ca_file)
            .with_context(|| format!("reading {}", self.ca_file.display()))?;
        reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", self.ca_file.display()))
    }
}

/// One region's certificate files.
pub struct RegionCerts {
    pub api: ServerTlsFiles,
    pub peer: PeerTlsFiles,
}

impl LocalCa {
    /// The CA of `data_dir`, made (key readable only by this user) if it
    /// has none yet.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join(TLS_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        restrict(&dir, 0o700)?;
        let key_path = dir.join(CA_KEY_FILE);
        let ca_path = dir.join(CA_FILE);
        let (key, fresh) = match std::fs::read_to_string(&key_path) {
            Ok(pem) => (
                KeyPair::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM private key; remove {} to make a new CA (clients must then trust the new ca.pem)", key_path.display(), dir.display()))?,
                false,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (KeyPair::generate().context("generating the local CA key")?, true)
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", key_path.display())),
        };
        // The same name and key give the same issuer and key identifier, so
        // certificates signed with a rebuilt CA verify against the kept
        // ca.pem.
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, CA_NAME);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key).context("signing the local CA")?;
        if fresh || !ca_path.exists() {
            write_private(&key_path, &key.serialize_pem())?;
            std::fs::write(&ca_path, cert.pem())
                .with_context(|| format!("writing {}", ca_path.display()))?;
        }
        Ok(Self { dir, cert, key })
    }

    /// The CA certificate file clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    /// Issues region `node`'s certificates for the addresses and names
    /// its origin is reached at.
    pub fn issue_region(&self, node: u64, names: Vec<SanType>) -> anyhow::Result<RegionCerts> {
        let api = self.issue(
            &format!("origin-{node}"),
            &format!("origin {node}"),
            names.clone(),
        )?;
        let uri = format!("{NODE_URI_PREFIX}{node}")
            .try_into()
            .context("node id URI")?;
        let mut peer_names = names;
        peer_names.push(SanType::URI(uri));
        let peer = self.issue(&format!("peer-{node}"), &format!("peer {node}"), peer_names)?;
        Ok(RegionCerts {
            api,
            peer: PeerTlsFiles {
                ca_file: self.ca_file(),
                cert_file: peer.cert_file,
                key_file: peer.key_file,
            },
        })
    }

    /// Writes `<stem>.pem` and `<stem>.key` for a server named `names`.
    fn issue(
        &self,
        stem: &str,
        common_name: &str,
        names: Vec<SanType>,
    ) -> anyhow::Result<ServerTlsFiles> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = names;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Waypost {common_name}"));
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + LEAF_VALIDITY;
        let key = KeyPair::generate().context("generating a certificate key")?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .with_context(|| format!("signing {stem}'s certificate"))?;
        let files = ServerTlsFiles {
            cert_file: self.dir.join(format!("{stem}.pem")),
            key_file: self.dir.join(format!("{stem}.key")),
        };
        write_private(&files.key_file, &key.serialize_pem())?;
        std::fs::write(&files.cert_file, cert.pem())
            .with_context(|| format!("writing {}", files.cert_file.display()))?;
        Ok(files)
    }
}

#[derive(clap::Args)]
pub struct CertArgs {
    /// The region's node id (its `cluster.node_id`).
    #[arg(long)]
    node: u64,
    /// An address its origin is reached at, by clients and peers
    /// (repeat for several).
    #[arg(long = "ip", value_name = "IP")]
    ips: Vec<IpAddr>,
    /// A DNS name its origin is reached at, as the members' `addr` and
    /// the edges' pools write it (repeat for several).
    #[arg(long = "name", value_name = "DNS_NAME")]
    names: Vec<String>,
    /// The port of its `[peer]` listener.
    #[arg(long, default_value_t = 7071)]
    peer_port: u16,
    /// The directory whose `tls/` holds the CA that signs: `waypost up`'s
    /// data dir, or one kept for production (a CA is made there if it has
    /// none; keep its `tls/ca.key` off the servers).
    #[arg(long, default_value = super::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Also copy the files into this directory under the names the
    /// configs in `deploy/` use: ca.pem, origin.pem, origin.key, peer.pem,
    /// peer.key.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// `waypost cert`: one region's certificates from the CA in `--data-dir`,
/// and the origin config lines that use them.
pub fn run_cert(args: CertArgs) -> anyhow::Result<()> {
    let mut names: Vec<SanType> = args.ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
    for name in &args.names {
        let valid = rustls::pki_types::DnsName::try_from(name.as_str()).is_ok()
            && name.parse::<IpAddr>().is_err();
        anyhow::ensure!(
            valid,
            "--name {name:?} is not a DNS name (an address goes in --ip)"
        );
        let dns = name.clone().try_into().context("DNS name")?;
        names.push(SanType::DnsName(dns));
    }
    anyhow::ensure!(
        !names.is_empty(),
        "name the origin: --name <DNS name> and/or --ip <address>, as its clients and peers reach it"
    );
    if !args.data_dir.join(TLS_DIR).join(CA_KEY_FILE).is_file() {
        eprintln!(
            "no CA in {} yet: making one (trust its {TLS_DIR}/{CA_FILE})",
            args.data_dir.display()
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let mut certs = LocalCa::open(&data_dir)?.issue_region(args.node, names)?;
    if let Some(out) = &args.out {
        certs = move_out(&certs, out)?;
    }
    let listen = match args.ips.as_slice() {
        [ip] => std::net::SocketAddr::new(*ip, args.peer_port),
        _ => std::net::SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), args.peer_port),
    };
    println!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n[peer]\nlisten = \"{listen}\"\n\
         ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
        certs.api.cert_file.display(),
        certs.api.key_file.display(),
        certs.peer.ca_file.display(),
        certs.peer.cert_file.display(),
        certs.peer.key_file.display(),
    );
    Ok(())
}

/// Moves `certs` into `out` under the names `deploy/` uses (keys stay
/// readable by this user only; the CA stays where it is, and no server
/// key is left beside it).
fn move_out(certs: &RegionCerts, out: &Path) -> anyhow::Result<RegionCerts> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize()?;
    let put = |from: &Path, name: &str, private: bool, keep: bool| -> anyhow::Result<PathBuf> {
        let to = out.join(name);
        let text =
            std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
        if private {
            write_private(&to, &text)?;
        } else {
            std::fs::write(&to, text).with_context(|| format!("writing {}", to.display()))?;
        }
        if !keep {
            std::fs::remove_file(from).with_context(|| format!("removing {}", from.display()))?;
        }
        Ok(to)
    };
    Ok(RegionCerts {
        api: ServerTlsFiles {
            cert_file: put(&certs.api.cert_file, "origin.pem", false, false)?,
            key_file: put(&certs.api.key_file, "origin.key", true, false)?,
        },
        peer: PeerTlsFiles {
            ca_file: put(&certs.peer.ca_file, CA_FILE, false, true)?,
            cert_file: put(&certs.peer.cert_file, "peer.pem", false, false)?,
            key_file: put(&certs.peer.key_file, "peer.key", true, false)?,
        },
    })
}

/// Writes a key readable by this user only (created so, never widened).
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    restrict(path, 0o600)?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {} to mode {mode:o}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[test]
    fn a_kept_ca_signs_certificates_its_first_ca_pem_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalCa::open(dir.path()).unwrap();
        let ca_pem = std::fs::read_to_string(first.ca_file()).unwrap();
        drop(first);
        let again = LocalCa::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.ca_file()).unwrap(),
            ca_pem,
            "the CA file is kept"
        );
        let ip = SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1)));
        let certs = again.issue_region(2, vec![ip]).unwrap();
        let leaf = std::fs::read(&certs.peer.cert_file).unwrap();
        let leaf = CertificateDer::from_pem_slice(&leaf).unwrap();
        let root = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            rustls::crypto::ring::default_provider().into(),
        )
        .build()
        .unwrap();
        let name = ServerName::try_from("127.0.2.1").unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .expect("a certificate from the rebuilt CA verifies against the kept ca.pem");
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&certs.peer.key_file), 0o600);
        assert_eq!(mode(&dir.path().join(TLS_DIR).join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.path().join(TLS_DIR)), 0o700);
    }
}
