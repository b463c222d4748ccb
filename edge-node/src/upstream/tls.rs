//! HTTPS to origins: the pool's connector, and what a TLS failure means to
//! the operator.
//!
//! Every pool gets hyper-rustls' `HttpsConnector` around hyper-util's
//! `HttpConnector`, whether or not it has `https://` origins: the URI's
//! scheme decides per connection (plaintext origins are untouched), and one
//! connector type keeps the pool and its health checks on one client.
//! ALPN offers h2 and http/1.1; an origin that picks h2 gets one
//! multiplexed connection, the legacy client's pooling otherwise stays as
//! it was. Certificates are checked against the host in the origin's
//! address, or the pool's `tls.server_name`.

use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{CertificateError, Error as TlsError};

use super::capped::{Capped, Caps};
use crate::config::PoolConfig;

pub type Connector = HttpsConnector<Capped<HttpConnector>>;

/// The connector for `config`'s origins, its connections capped by `caps`.
pub fn connector(config: &PoolConfig, caps: std::sync::Arc<Caps>) -> Connector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    // `https://` URIs are handed to the TLS layer, which needs the TCP
    // connection from here.
    http.enforce_http(false);
    let http = Capped::new(http, caps);
    let Some(tls) = &config.tls else {
        // No https:// origin: a TLS config that is never used (default
        // roots are not even loaded).
        let plain = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        return hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(plain)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
    };
    // `with_tls_config` takes the config by value and sets ALPN on it; the
    // clone shares the resumption store (an `Arc` inside), so sessions are
    // still resumed across the pool's connections.
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls.client_config).clone())
        .https_or_http();
    let builder = match &tls.server_name {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name.clone())),
        None => builder,
    };
    builder.enable_all_versions().wrap_connector(http)
}

/// A TLS failure found in an error's source chain, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// rustls' reason ("certificate not valid for name …", "unknown issuer").
    pub reason: String,
    /// What the operator can do about it.
    pub hint: &'static str,
}

/// The TLS failure behind `e`, if a rustls error is in its source chain.
/// hyper-rustls hands a failed handshake over as an `io::Error` around
/// tokio-rustls' `io::Error` around the rustls error, and `source()` of an
/// `io::Error` reports its inner error's source, skipping the inner error
/// itself, so those wrappers are opened here.
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = find_tls(err, 0) {
            return Some(explain(tls));
        }
        cur = err.source();
    }
    None
}

fn find_tls<'a>(err: &'a (dyn std::error::Error + 'static), depth: u8) -> Option<&'a TlsError> {
    if depth > 4 {
        return None;
    }
    if let Some(tls) = err.downcast_ref::<TlsError>() {
        return Some(tls);
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        let inner: &'a (dyn std::error::Error + 'static) = io.get_ref()?;
        return find_tls(inner, depth + 1);
    }
    None
}

fn explain(e: &TlsError) -> TlsFailure {
    let hint = match e {
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the origin's certificate does not name the host in its address; fix the \
                 origin's certificate, or set the pool's `tls.server_name` to a name it carries"
            }
            // BadSignature: signed by a CA with the name of a trusted one.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the origin's certificate is not signed by a trusted CA; point the pool's \
                 `tls.ca_file` at the CA that issued it (without it, only public CAs are trusted)"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the origin's certificate has expired; renew it on the origin"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the origin's certificate is not valid yet; check the clocks of the edge and the \
                 origin"
            }
            _ => "the origin's certificate was refused; check it against the pool's `tls.ca_file`",
        },
        TlsError::AlertReceived(rustls::AlertDescription::CertificateRequired)
        | TlsError::AlertReceived(rustls::AlertDescription::BadCertificate)
        | TlsError::AlertReceived(rustls::AlertDescription::UnknownCA)
        | TlsError::AlertReceived(rustls::AlertDescription::HandshakeFailure) => {
            "the origin refused the handshake, typically because it requires a client \
             certificate the edge did not send or does not trust; set the pool's \
             `tls.client_cert_file` and `tls.client_key_file` to one the origin accepts"
        }
        TlsError::NoApplicationProtocol => {
            "the origin speaks neither h2 nor http/1.1 over TLS; check its ALPN settings"
        }
        _ => {
            "the TLS handshake with the origin failed; check that the origin serves TLS on \
             this port (or use http:// for a plaintext origin)"
        }
    };
    TlsFailure {
        reason: e.to_string(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let inner = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let failure = tls_failure(&io).expect("found");
        assert!(failure.reason.contains("UnknownIssuer"), "{failure:?}");
        assert!(failure.hint.contains("tls.ca_file"));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_failure(&plain), None);
        // As hyper-util's client gets it from hyper-rustls: io in io.
        let inner = TlsError::InvalidCertificate(CertificateError::NotValidForName);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let outer = Outer(std::io::Error::other(io));
        let failure = tls_failure(&outer).expect("found through the box");
        assert!(failure.hint.contains("tls.server_name"), "{failure:?}");
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_missing_client_certificate_points_at_the_client_cert_fields() {
        let e = TlsError::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert!(explain(&e).hint.contains("client_cert_file"));
    }
}
