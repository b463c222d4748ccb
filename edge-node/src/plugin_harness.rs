//! A site's plugin chain run without listeners, cache or origin: the chain
//! ends in a fixed response instead of the cache path. It is the exact path
//! a routed request takes through plugins at the edge (admission, a fresh
//! instance per link, limits, `next` hand-offs), minus HTTP parsing, so the
//! criterion bench (`benches/plugin.rs`) measures instantiate + handle and
//! the cost of each extra link with it.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body};
use crate::cache::Cache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::plugin::link::{Link, LinkFuture};
use crate::plugin::{PluginSlot, RequestFacts, Runtime};
use crate::upstream::Pool;

/// Why a harness could not start.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("the config has no sites[{0}]")]
    NoSite(usize),
    #[error("the config declares no plugins")]
    NoPlugins,
    #[error("cannot open the cache: {0}")]
    Cache(#[source] std::io::Error),
    #[error("plugins: {0}")]
    Plugin(#[from] crate::plugin::RuntimeError),
}

/// The body every chain's last `next` gets.
pub const TERMINAL_BODY: &str = "from the end of the chain\n";

/// One site's plugin chain, ready to handle requests.
pub struct PluginHarness {
    runtime: Arc<Runtime>,
    slots: Vec<Arc<PluginSlot>>,
    facts: RequestFacts,
}

impl PluginHarness {
    /// Compiles `config`'s plugins and takes the chain of `config.sites[site]`.
    pub fn start(config: &Config, site: usize) -> Result<Self, HarnessError> {
        let site = config.sites.get(site).ok_or(HarnessError::NoSite(site))?;
        let metrics = Arc::new(Metrics::new(&[]));
        let cache = Arc::new(Cache::open(&config.cache).map_err(HarnessError::Cache)?);
        let pools: Vec<Arc<Pool>> = config
            .pools
            .iter()
            .map(|p| Pool::new(p.clone(), metrics.clone()))
            .collect();
        let runtime =
            Runtime::start(config, &pools, cache, metrics)?.ok_or(HarnessError::NoPlugins)?;
        let slots = site
            .plugins
            .iter()
            .filter_map(|&i| runtime.slot(&config.plugins[i].name))
            .collect();
        let facts = RequestFacts {
            tls: false,
            client_host: HeaderValue::from_static("harness.invalid"),
            location: runtime.locate([127, 0, 0, 1].into()),
            site_config: Arc::new(site.plugin_config.clone()),
        };
        Ok(Self {
            runtime,
            slots,
            facts,
        })
    }

    /// Runs `req` through the chain and reads the whole response.
    pub async fn handle(&self, req: Request<Bytes>) -> (StatusCode, Bytes) {
        let chain = self
            .runtime
            .chain(&self.slots, &self.facts, Arc::new(Terminal));
        let response = chain.call(req.map(body::full)).await;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, bytes)
    }
}

/// The end of the chain: a fixed 200.
struct Terminal;

impl Link for Terminal {
    fn call(&self, _req: Request<Body>) -> LinkFuture {
        Box::pin(async {
            Response::builder()
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(body::full(TERMINAL_BODY))
                .expect("static response parts are valid")
        })
    }
}
