//! Choosing a certificate by SNI.
//!
//! The names a certificate answers for are read from its own subjectAltName
//! DNS entries rather than configured beside it, so a renewed certificate
//! that adds or drops a name takes effect on reload without a config change
//! and a certificate can never be served for a name it does not cover.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;

/// One loaded certificate, the DNS names it covers, and when it expires.
#[derive(Clone, Debug)]
pub(crate) struct NamedCert {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) names: Vec<String>,
    /// The leaf's notAfter, in seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// The certificate file, as configured (the metrics' label).
    pub(crate) file: String,
}

/// The subjectAltName DNS names of an end-entity certificate, lowercased,
/// and its notAfter (seconds since the Unix epoch).
pub(crate) fn leaf_facts(
    cert: &CertificateDer<'_>,
) -> Result<(Vec<String>, i64), x509_parser::nom::Err<x509_parser::error::X509Error>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())?;
    let not_after = parsed.validity().not_after.timestamp();
    let Some(san) = parsed
        .subject_alternative_name()
        .map_err(x509_parser::nom::Err::Failure)?
    else {
        return Ok((Vec::new(), not_after));
    };
    let names = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(normalize(dns)),
            _ => None,
        })
        .collect();
    Ok((names, not_after))
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// An immutable snapshot of all certificates with their name index.
///
/// Exact names win over wildcards; among equals the certificate listed
/// first in the settings wins. A wildcard `*.example.com` covers exactly one
/// extra label (`a.example.com`, not `example.com` or `a.b.example.com`),
/// as browsers do.
#[derive(Debug)]
pub(crate) struct CertStore {
    certs: Vec<NamedCert>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
}

impl CertStore {
    /// Indexes `certs`; the first is the default. `certs` must not be empty.
    pub(crate) fn new(certs: Vec<NamedCert>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (index, cert) in certs.iter().enumerate() {
            for name in &cert.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert(index),
                    None => exact.entry(name.clone()).or_insert(index),
                };
            }
        }
        Self {
            certs,
            exact,
            wildcard,
        }
    }

    pub(crate) fn certs(&self) -> &[NamedCert] {
        &self.certs
    }

    /// The certificate for `server_name`, or the default.
    pub(crate) fn pick(&self, server_name: Option<&str>) -> Option<&NamedCert> {
        let matched = server_name.and_then(|name| {
            let name = normalize(name);
            self.exact.get(&name).copied().or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent).copied()
            })
        });
        self.certs.get(matched.unwrap_or(0))
    }
}

/// rustls' view of the current [`CertStore`]; reloads swap the snapshot.
pub(crate) struct SniResolver {
    current: RwLock<Arc<CertStore>>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl SniResolver {
    pub(crate) fn new(store: CertStore) -> Self {
        Self {
            current: RwLock::new(Arc::new(store)),
        }
    }

    /// The snapshot in use now.
    pub(crate) fn snapshot(&self) -> Arc<CertStore> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Atomically replaces the snapshot; handshakes already past certificate
    /// selection keep the one they picked.
    pub(crate) fn swap(&self, store: CertStore) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(store);
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.snapshot()
            .pick(client_hello.server_name())
            .map(|cert| Arc::clone(&cert.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> NamedCert {
        let generated = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let der = generated.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(generated.key_pair.serialize_der().into());
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(vec![der.clone()], key, &provider).unwrap();
        let (names, not_after) = leaf_facts(&der).unwrap();
        NamedCert {
            key: Arc::new(key),
            file: format!("{}.pem", names[0]),
            names,
            not_after,
        }
    }

    fn first_name(store: &CertStore, sni: Option<&str>) -> String {
        store.pick(sni).unwrap().names[0].clone()
    }

    #[test]
    fn reads_san_dns_names_and_expiry() {
        let cert = named(&["A.Test", "*.b.test"]);
        assert_eq!(cert.names, vec!["a.test", "*.b.test"]);
        // rcgen's default validity ends in 4096.
        assert!(cert.not_after > 4_000_000_000, "{}", cert.not_after);
    }

    #[test]
    fn exact_beats_wildcard_and_first_is_default() {
        let store = CertStore::new(vec![
            named(&["default.test"]),
            named(&["*.example.com"]),
            named(&["www.example.com"]),
        ]);
        assert_eq!(
            first_name(&store, Some("www.example.com")),
            "www.example.com"
        );
        assert_eq!(first_name(&store, Some("img.example.com")), "*.example.com");
        assert_eq!(
            first_name(&store, Some("IMG.Example.com.")),
            "*.example.com"
        );
        assert_eq!(first_name(&store, Some("example.com")), "default.test");
        assert_eq!(first_name(&store, Some("a.b.example.com")), "default.test");
        assert_eq!(first_name(&store, None), "default.test");
    }
}
