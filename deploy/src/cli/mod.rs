//! The commands that talk to running services: the origin's HTTP API (any
//! region; writes are forwarded to the Raft leader) and edges' admin APIs.
//! Shared here: where to find them, the token, and errors that say what
//! failed and what to try.

pub mod backup;
pub mod failover;
pub mod kv;
pub mod plugin;
pub mod purge;
pub mod queue;
pub mod region;
pub mod status;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::up::{DEFAULT_DATA_DIR, DEFAULT_ORIGIN, DEV_TOKEN};

/// Which origin to talk to and the token for writes.
#[derive(clap::Args, Debug, Clone)]
pub struct OriginArgs {
    /// Any region's origin; writes are forwarded to the Raft leader.
    /// Defaults to region 1 of `waypost up`.
    #[arg(long, global = true, env = "WAYPOST_ORIGIN", default_value = DEFAULT_ORIGIN, value_name = "URL")]
    pub origin: String,
    /// Bearer token for writes: the origin's `token` (with `purge --admin`,
    /// the edge's `admin.token`). `waypost up` uses the dev token for both.
    #[arg(
        long,
        global = true,
        env = "WAYPOST_TOKEN",
        default_value = DEV_TOKEN,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub token: String,
    /// PEM file of CA certificates to trust for an `https://` origin, on
    /// top of the built-in public roots (for an origin whose `[tls]`
    /// certificate comes from a private CA). Without it, `waypost up`'s CA
    /// in `./.waypost/tls/ca.pem` is trusted when that file exists.
    #[arg(long, global = true, env = "WAYPOST_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl OriginArgs {
    /// The origin's URL for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin.trim_end_matches('/'))
    }
}

impl OriginArgs {
    /// A client for the origin that presents the token on every request:
    /// besides writes, the origin's reads of KV, cluster state, plugins and
    /// metrics need a credential (only assets and `/healthz` are public).
    /// Edges get a plain [`client`]: the token is the origin's.
    pub fn client(&self, timeout: Duration) -> anyhow::Result<reqwest::Client> {
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.token))
            .context("the token does not fit an Authorization header")?;
        auth.set_sensitive(true);
        let headers =
            reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, auth)]);
        let mut builder = builder(timeout).default_headers(headers);
        if let Some(path) = self.ca_file.clone().or_else(default_ca_file) {
            for ca in read_cas(&path)? {
                builder = builder.add_root_certificate(ca);
            }
        }
        builder.build().context("cannot create an HTTP client")
    }
}

/// `waypost up`'s CA in the default data dir under the working directory,
/// if there is one.
pub fn default_ca_file() -> Option<PathBuf> {
    let path = Path::new(DEFAULT_DATA_DIR)
        .join(crate::up::tls::TLS_DIR)
        .join(crate::up::tls::CA_FILE);
    path.is_file().then_some(path)
}

/// The certificates in the PEM file `path`; an error names it.
pub(crate) fn read_cas(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("--ca-file: cannot read {}", path.display()))?;
    let cas = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("--ca-file: {} is not PEM certificates", path.display()))?;
    if cas.is_empty() {
        anyhow::bail!(
            "--ca-file: {} holds no PEM CERTIFICATE block",
            path.display()
        );
    }
    Ok(cas)
}

/// The HTTP client every command uses: no proxy (the services are usually
/// on loopback or a private network) and a bound on each request.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    builder(timeout)
        .build()
        .context("cannot create an HTTP client")
}

fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy().timeout(timeout)
}

/// Sends `req`; a failure to connect names the service and how to point
/// the command elsewhere.
pub async fn send(req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<reqwest::Response> {
    req.send().await.map_err(|e| {
        let url = e.url().map_or_else(String::new, |u| format!(" at {u}"));
        // reqwest's own message hides the cause (refused, timed out, DNS).
        let mut cause = String::new();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            cause = format!(": {s}");
            source = s.source();
        }
        if cause.contains("certificate") {
            return anyhow::anyhow!(
                "cannot reach {what}{url}{cause}. Trust its CA with --ca-file or WAYPOST_CA_FILE \
                 (`waypost up` keeps its own in <data dir>/tls/ca.pem)"
            );
        }
        anyhow::anyhow!(
            "cannot reach {what}{url}{cause}. Is it running (`waypost up`)? Point the command \
             at it with --origin or WAYPOST_ORIGIN (--admin for an edge)"
        )
    })
}

/// `resp` if it succeeded; otherwise an error with the status, the
/// server's reason and, for a refused token, how to pass the right one.
pub async fn success(resp: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let reason = resp.text().await.unwrap_or_default();
    let hint = match status.as_u16() {
        401 | 403 => ": pass the right token with --token or WAYPOST_TOKEN",
        503 => ": the cluster may have no leader (`waypost status` shows it); retry shortly",
        _ => "",
    };
    anyhow::bail!("{what} failed ({status}){hint}: {}", reason.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(origin: &str, ca_file: Option<PathBuf>) -> OriginArgs {
        OriginArgs {
            origin: origin.to_string(),
            token: DEV_TOKEN.into(),
            ca_file,
        }
    }

    /// A CA and a certificate for 127.0.0.1 it signed, as PEM files.
    fn pki(dir: &Path) -> origin::public_tls::ServerTlsFiles {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("origin.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("origin.key"), key.serialize_pem()).unwrap();
        origin::public_tls::ServerTlsFiles {
            cert_file: dir.join("origin.pem"),
            key_file: dir.join("origin.key"),
        }
    }

    #[tokio::test]
    async fn a_ca_file_lets_the_cli_reach_an_https_origin() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = origin::Config::for_data_dir(dir.path().join("data"), DEV_TOKEN);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.tls = Some(pki(dir.path()));
        let server = origin::Server::start(config).await.unwrap();
        let base = format!("https://{}", server.local_addr());
        let timeout = Duration::from_secs(5);

        let trusting = args(&base, Some(dir.path().join("ca.pem")));
        let answer = trusting
            .client(timeout)
            .unwrap()
            .get(trusting.url("/cluster"));
        assert!(answer.send().await.unwrap().status().is_success());
        let untrusting = args(&base, None);
        let answer = untrusting
            .client(timeout)
            .unwrap()
            .get(untrusting.url("/cluster"));
        assert!(answer.send().await.is_err());
        let missing = args(&base, Some(dir.path().join("missing.pem")));
        let msg = format!("{:#}", missing.client(timeout).unwrap_err());
        assert!(
            msg.contains("--ca-file") && msg.contains("missing.pem"),
            "{msg}"
        );
        std::fs::write(dir.path().join("empty.pem"), "no pem\n").unwrap();
        let empty = args(&base, Some(dir.path().join("empty.pem")));
        let msg = format!("{:#}", empty.client(timeout).unwrap_err());
        assert!(msg.contains("empty.pem"), "{msg}");
        server.shutdown().await;
    }
}
