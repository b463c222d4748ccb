//! The listeners' security settings: `[tls]` (the certificates the public
//! HTTPS listener, and the admin listener with `admin.tls`, serve) and
//! `[admin]` (where the admin API listens, its token, and what off
//! loopback needs).

use std::net::SocketAddr;
use std::path::PathBuf;

use service_base::config_file::FieldError;

use super::raw::{RawAdmin, RawTls};
use crate::listen::{CertSpec, TlsSettings};

/// The admin listener: health, metrics and purge.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Bearer token required for purges; purge is refused when unset.
    pub token: Option<String>,
    /// `admin.tls`: served over TLS with the certificates of `[tls]`.
    pub tls: bool,
    /// `admin.allow_insecure`: a plaintext listener off loopback and a
    /// placeholder token were explicitly allowed.
    pub allow_insecure: bool,
}

/// `[tls]`, which `listen.https` and `admin.tls` need and which is useless
/// without either.
pub(super) fn tls(
    https: Option<SocketAddr>,
    admin_tls: bool,
    raw: Option<RawTls>,
    resolve: &impl Fn(PathBuf) -> PathBuf,
) -> Result<Option<TlsSettings>, FieldError> {
    let needed = https.is_some() || admin_tls;
    let Some(raw) = raw else {
        return match (https.is_some(), admin_tls) {
            (true, _) => Err(FieldError::new(
                "tls",
                "`listen.https` is set but there is no [tls] section with certificates",
            )),
            (false, true) => Err(FieldError::new(
                "tls",
                "`admin.tls` is set but there is no [tls] section with certificates",
            )),
            (false, false) => Ok(None),
        };
    };
    if !needed {
        return Err(FieldError::new(
            "listen.https",
            "[tls] is configured but neither `listen.https` nor `admin.tls` is set",
        ));
    }
    if raw.certificates.is_empty() {
        return Err(FieldError::new(
            "tls.certificates",
            "at least one certificate is needed",
        ));
    }
    Ok(Some(TlsSettings {
        certificates: raw
            .certificates
            .into_iter()
            .map(|c| CertSpec {
                cert: resolve(c.cert),
                key: resolve(c.key),
            })
            .collect(),
        reload_interval: raw.reload_interval,
    }))
}

pub(super) fn admin(raw: RawAdmin) -> Result<AdminConfig, FieldError> {
    if raw.token.as_deref() == Some("") {
        return Err(FieldError::new(
            "admin.token",
            "must not be empty; remove it to disable purge",
        ));
    }
    if !raw.allow_insecure {
        check_admin_exposure(raw.listen, raw.tls, raw.token.as_deref())?;
    }
    Ok(AdminConfig {
        listen: raw.listen,
        token: raw.token,
        tls: raw.tls,
        allow_insecure: raw.allow_insecure,
    })
}

/// The admin API answers purges and plugin uploads: in plaintext off
/// loopback it would carry its token across the network in clear, so
/// that needs `admin.tls` (or `admin.allow_insecure = true` for a
/// private, firewalled network); and a token copied from the docs opens
/// it to everyone who read them, TLS or not.
pub fn check_admin_exposure(
    listen: SocketAddr,
    tls: bool,
    token: Option<&str>,
) -> Result<(), FieldError> {
    if !listen.ip().is_loopback() && !tls {
        return Err(FieldError::new(
            "admin.listen",
            format!(
                "{listen} is not a loopback address and the admin API is plaintext; \
                 bind 127.0.0.1, set `admin.tls = true` (served with the [tls] \
                 certificates), or set `admin.allow_insecure = true` if only a private, \
                 firewalled network reaches it"
            ),
        ));
    }
    if let Some(reason) = token.and_then(service_base::secrets::weakness) {
        return Err(FieldError::new("admin.token", reason));
    }
    Ok(())
}
