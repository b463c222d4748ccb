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

use std::time::Duration;

use anyhow::Context;

use crate::up::{DEFAULT_ORIGIN, DEV_TOKEN};

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
        builder(timeout)
            .default_headers(headers)
            .build()
            .context("cannot create an HTTP client")
    }
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
