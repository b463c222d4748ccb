//! A pool's `tls` table: how its `https://` origins are verified and how
//! the edge proves itself to origins that ask for a client certificate.
//!
//! Every file is read and parsed here, at load, so a missing CA bundle, a
//! PEM without certificates or a key without its certificate is refused
//! with the field and the file before any socket is bound, instead of
//! surfacing as a handshake failure on the first miss. There is deliberately
//! no `insecure_skip_verify`: an origin with a private CA gets `ca_file`, an
//! origin addressed by IP gets `server_name`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;
use service_base::config_file::FieldError;

/// `[pools.tls]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawOriginTls {
    /// PEM bundle of the CAs origin certificates must chain to; replaces
    /// the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Name sent as SNI and checked against the origin's certificate,
    /// instead of the host in the origin's address.
    pub server_name: Option<String>,
    /// PEM certificate chain presented to origins that require mTLS.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

/// How a pool's `https://` origins are reached (validated).
#[derive(Debug, Clone)]
pub struct OriginTls {
    /// Roots, client certificate and the ring provider; ALPN is set by the
    /// connector. One per pool, so its session cache (rustls' default
    /// in-memory resumption store) is shared by all of the pool's
    /// connections and a reconnect resumes instead of a full handshake.
    pub client_config: Arc<ClientConfig>,
    /// `server_name`: SNI and the name the certificate must carry, for
    /// every origin of the pool (typically origins addressed by IP).
    pub server_name: Option<ServerName<'static>>,
}

/// Validates `raw` (absent: defaults) for pool field prefix `field`
/// (`pools[0].tls`); `resolve` makes paths relative to the config file.
pub fn validate(
    raw: Option<RawOriginTls>,
    field: &str,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<OriginTls, FieldError> {
    let raw = raw.unwrap_or_default();
    let f = |name: &str| format!("{field}.{name}");
    let roots = match raw.ca_file.map(resolve) {
        None => default_roots(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(&path, &f("ca_file"))? {
                roots.add(cert).map_err(|e| {
                    FieldError::new(
                        f("ca_file"),
                        format!("{}: a certificate is not a usable CA: {e}", path.display()),
                    )
                })?;
            }
            roots
        }
    };
    let server_name = raw
        .server_name
        .map(|name| {
            ServerName::try_from(name.clone()).map_err(|_| {
                FieldError::new(
                    f("server_name"),
                    format!("`{name}` is not a DNS name or IP address"),
                )
            })
        })
        .transpose()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FieldError::new(field, format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let config = match (
        raw.client_cert_file.map(resolve),
        raw.client_key_file.map(resolve),
    ) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(FieldError::new(
                f("client_key_file"),
                "`client_cert_file` is set without its private key",
            ));
        }
        (None, Some(_)) => {
            return Err(FieldError::new(
                f("client_cert_file"),
                "`client_key_file` is set without the certificate it belongs to",
            ));
        }
        (Some(cert), Some(key)) => {
            let chain = read_certs(&cert, &f("client_cert_file"))?;
            let key_der = read_key(&key, &f("client_key_file"))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                FieldError::new(
                    f("client_key_file"),
                    format!("{} does not go with {}: {e}", key.display(), cert.display()),
                )
            })?
        }
    };
    Ok(OriginTls {
        client_config: Arc::new(config),
        server_name,
    })
}

/// The roots used without `ca_file`: Mozilla's list as compiled into
/// `webpki-roots`, not the system store (`rustls-native-certs`). A fresh
/// Debian machine or a slim container image often has no `ca-certificates`
/// package, and without network it cannot get one; with the system store
/// every public origin would then fail with "unknown issuer", while the
/// compiled-in list works everywhere the binary runs. The price is that the
/// list changes with a rebuild, not with the OS; private CAs go in
/// `ca_file` either way.
fn default_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn read_file(path: &Path, field: &str) -> Result<Vec<u8>, FieldError> {
    std::fs::read(path)
        .map_err(|e| FieldError::new(field, format!("cannot read {}: {e}", path.display())))
}

fn read_certs(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, FieldError> {
    let pem = read_file(path, field)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FieldError::new(field, format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(FieldError::new(
            field,
            format!("{} holds no PEM CERTIFICATE block", path.display()),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path, field: &str) -> Result<PrivateKeyDer<'static>, FieldError> {
    let pem = read_file(path, field)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| FieldError::new(field, format!("{}: bad PEM: {e}", path.display())))?
        .ok_or_else(|| {
            FieldError::new(
                field,
                format!("{} holds no PEM PRIVATE KEY block", path.display()),
            )
        })
}

/// One origin's address as configured: `host:port` and `http://host:port`
/// are plaintext, `https://host[:port]` is TLS (port 443 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAddr {
    pub tls: bool,
    pub authority: http::uri::Authority,
}

impl OriginAddr {
    pub fn scheme(&self) -> http::uri::Scheme {
        if self.tls {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        }
    }
}

impl std::fmt::Display for OriginAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.authority)
    }
}

/// Why an entry of a pool's `origins` is refused; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadOrigin {
    #[error("`{text}`: scheme `{scheme}` is not supported; use http:// or https://")]
    Scheme { text: String, scheme: String },
    #[error("`{text}` is not \"host:port\": {reason}")]
    NotHostPort { text: String, reason: String },
    #[error("`{0}`: user info is not allowed in an origin")]
    UserInfo(String),
    #[error("`{text}` needs a port, e.g. \"{bare}:80\"")]
    NoPort { text: String, bare: String },
}

/// Parses one entry of a pool's `origins`.
pub fn parse_origin(text: &str) -> Result<OriginAddr, BadOrigin> {
    let (tls, bare) = match text.split_once("://") {
        None => (false, text),
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        Some((scheme, _)) => {
            return Err(BadOrigin::Scheme {
                text: text.to_string(),
                scheme: scheme.to_string(),
            });
        }
    };
    let bare = bare.trim_end_matches('/');
    let not_host_port = |e: http::uri::InvalidUri| BadOrigin::NotHostPort {
        text: text.to_string(),
        reason: e.to_string(),
    };
    let mut authority: http::uri::Authority = bare.parse().map_err(not_host_port)?;
    if authority.as_str().contains('@') {
        return Err(BadOrigin::UserInfo(text.to_string()));
    }
    if authority.port_u16().is_none() {
        if !tls {
            return Err(BadOrigin::NoPort {
                text: text.to_string(),
                bare: bare.to_string(),
            });
        }
        authority = format!("{bare}:443").parse().map_err(not_host_port)?;
    }
    Ok(OriginAddr { tls, authority })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    fn pool(origins: &str, tls: &str) -> String {
        format!("[[pools]]\nname = \"o\"\norigins = [{origins}]\n{tls}\n[[sites]]\npool = \"o\"\n")
    }

    fn load(dir: &Path, text: &str) -> Result<Config, String> {
        Config::from_toml(&dir.join("edge.toml"), text).map_err(|e| e.to_string())
    }

    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn origin_schemes_and_default_port() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(
            dir.path(),
            &pool(
                r#""https://a.example", "http://b:81", "c:82", "https://d:8443""#,
                "",
            ),
        )
        .unwrap();
        let o = &c.pools[0].origins;
        assert!(o[0].tls && o[0].authority.as_str() == "a.example:443");
        assert!(!o[1].tls && !o[2].tls && o[3].tls);
        assert_eq!(o[3].to_string(), "https://d:8443");
        let tls = c.pools[0].tls.as_ref().expect("default TLS settings");
        assert!(tls.server_name.is_none());
        let err = load(dir.path(), &pool(r#""ftp://x:1""#, "")).unwrap_err();
        assert!(
            err.contains("pools[0].origins") && err.contains("ftp"),
            "{err}"
        );
    }

    #[test]
    fn a_ca_file_is_read_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_pem()).unwrap();
        let text = pool(
            r#""https://10.0.0.1:443""#,
            "tls = { ca_file = \"ca.pem\", server_name = \"origin.internal\" }",
        );
        let c = load(dir.path(), &text).unwrap();
        let tls = c.pools[0].tls.as_ref().unwrap();
        assert_eq!(
            tls.server_name.as_ref().map(|n| n.to_str().into_owned()),
            Some("origin.internal".into())
        );
    }

    #[test]
    fn bad_tls_settings_name_field_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.pem"), "no pem here\n").unwrap();
        std::fs::write(
            dir.path().join("bad.pem"),
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_pem()).unwrap();
        let https = r#""https://o.example:443""#;
        let cases = [
            (
                "tls = { ca_file = \"missing.pem\" }",
                "pools[0].tls.ca_file",
                "missing.pem",
            ),
            (
                "tls = { ca_file = \"empty.pem\" }",
                "pools[0].tls.ca_file",
                "empty.pem",
            ),
            (
                "tls = { ca_file = \"bad.pem\" }",
                "pools[0].tls.ca_file",
                "bad.pem",
            ),
            (
                "tls = { client_key_file = \"ca.pem\" }",
                "pools[0].tls.client_cert_file",
                "without the certificate",
            ),
            (
                "tls = { client_cert_file = \"ca.pem\" }",
                "pools[0].tls.client_key_file",
                "without its private key",
            ),
            (
                "tls = { client_cert_file = \"ca.pem\", client_key_file = \"ca.pem\" }",
                "pools[0].tls.client_key_file",
                "ca.pem",
            ),
            (
                "tls = { server_name = \"not a name\" }",
                "pools[0].tls.server_name",
                "not a name",
            ),
            (
                "tls = { insecure_skip_verify = true }",
                "insecure_skip_verify",
                "",
            ),
        ];
        for (tls, field, detail) in cases {
            let err = load(dir.path(), &pool(https, tls)).unwrap_err();
            assert!(
                err.contains("edge.toml") && err.contains(field) && err.contains(detail),
                "{tls}: {err}"
            );
        }
        let err = load(
            dir.path(),
            &pool(r#""o.example:80""#, "tls = { ca_file = \"ca.pem\" }"),
        )
        .unwrap_err();
        assert!(
            err.contains("pools[0].tls") && err.contains("https://"),
            "{err}"
        );
    }
}
