//! WebAssembly plugins at the edge: standard wasi:http components run per
//! request on wasmtime, chained per site, with the `waypost:edge` host
//! capabilities. Module map: `engine` (engine, linker, epoch ticker,
//! compile cache), `loaded` (a compiled version, atomic swap, admission),
//! `invoke` (one request in one plugin, limits, failures), `p2`/`p3` (how
//! a wasi:http 0.2 or 0.3 component gets the request), `hooks` (where a
//! guest's outgoing requests go), `link` (chain links), `host` (store
//! state), `capabilities` (`waypost:edge`).

mod capabilities;
mod consumer;
mod engine;
mod handoff;
mod hooks;
mod host;
mod invoke;
pub mod link;
mod loaded;
mod p2;
mod p3;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::{HeaderValue, Request};
use tokio_util::sync::CancellationToken;
use wasmtime::Engine;
use wasmtime::component::Linker;

use self::capabilities::{EdgeCtx, GeoDb, KvClient, Location};
pub use self::consumer::Consumers;
use self::hooks::Hooks;
use self::host::HostState;
use self::link::{Link, LinkFuture};
use self::loaded::LoadedPlugin;
pub use self::loaded::{LoadError, PluginSlot};
use crate::body::Body;
use crate::cache::Cache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::upstream::Pool;

/// Headers the edge sets on the request a chain's first plugin receives
/// (client-supplied values are removed first, so plugins can trust them).
pub use waypost_api::headers::{CLIENT_IP, GEO_COUNTRY, REQUEST_ID};

/// Why the plugin runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("wasm engine: {0:#}")]
    Engine(wasmtime::Error),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("plugin_runtime.geoip_db {path}: {reason}")]
    Geo { path: String, reason: String },
}

/// Every plugin of an edge.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    slots: HashMap<String, Arc<PluginSlot>>,
    geo: Option<GeoDb>,
    kv: Option<Arc<KvClient>>,
    pools: Arc<HashMap<String, Arc<Pool>>>,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
    /// Digests that failed to load, so a broken file is reported once.
    rejected: Mutex<HashMap<String, [u8; 32]>>,
}

impl Runtime {
    /// Compiles every configured plugin; `None` when there are none.
    pub fn start(
        config: &Config,
        pools: &[Arc<Pool>],
        cache: Arc<Cache>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<Self>>, RuntimeError> {
        if config.plugins.is_empty() {
            return Ok(None);
        }
        let rt = &config.plugin_runtime;
        let max_memory = config
            .plugins
            .iter()
            .map(|p| p.memory)
            .max()
            .unwrap_or(64 << 20);
        let cache_dir = rt.compile_cache_dir.clone().or_else(|| {
            config
                .cache
                .disk
                .as_ref()
                .map(|d| d.dir.join("compiled-plugins"))
        });
        // Room for every plugin at its cap, twice (old and new versions
        // overlap while a swap drains).
        let concurrency: usize = config.plugins.iter().map(|p| p.max_concurrency).sum();
        let instances = (2 * concurrency).clamp(16, 2 * crate::config::MAX_TOTAL_CONCURRENCY);
        let engine = engine::build(max_memory, cache_dir.as_deref(), instances as u32)
            .map_err(RuntimeError::Engine)?;
        let linker = engine::linker(&engine).map_err(RuntimeError::Engine)?;
        let mut slots = HashMap::new();
        for p in &config.plugins {
            let bytes = LoadedPlugin::read(p)?;
            let loaded = LoadedPlugin::compile(p, &bytes, &engine, &linker)?;
            tracing::info!(plugin = %p.name, version = %loaded.version, world = loaded.world, "plugin loaded");
            slots.insert(p.name.clone(), Arc::new(PluginSlot::new(loaded)));
        }
        let geo = match &rt.geoip_db {
            Some(path) => Some(GeoDb::open(path).map_err(|e| RuntimeError::Geo {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let kv = rt.kv_pool.map(|i| {
            Arc::new(KvClient::new(
                pools[i].clone(),
                rt.kv_token.clone(),
                rt.kv_cache_ttl,
            ))
        });
        let pools = Arc::new(
            pools
                .iter()
                .map(|p| (p.name().to_string(), p.clone()))
                .collect(),
        );
        Ok(Some(Arc::new(Self {
            engine,
            linker,
            slots,
            geo,
            kv,
            pools,
            cache,
            metrics,
            rejected: Mutex::default(),
        })))
    }

    pub fn slot(&self, name: &str) -> Option<Arc<PluginSlot>> {
        self.slots.get(name).cloned()
    }

    /// Forgets this edge's cached read of a KV key written elsewhere.
    pub async fn forget_kv(&self, namespace: &str, key: &str) {
        if let Some(kv) = &self.kv {
            kv.forget(namespace, key).await;
        }
    }

    /// Whether plugins here read KV, so the change feed's KV events matter.
    pub fn reads_kv(&self) -> bool {
        self.kv.is_some()
    }

    /// Drops every cached KV read (after missed KV events).
    pub fn forget_all_kv(&self) {
        if let Some(kv) = &self.kv {
            kv.forget_all();
        }
    }

    /// Where the client is, looked up once per request.
    pub fn locate(&self, ip: IpAddr) -> Location {
        self.geo
            .as_ref()
            .map_or_else(capabilities::unknown_location, |g| g.locate(ip))
    }

    /// Compiles `bytes` as the new version of `name`, writes it to the
    /// plugin's file (so a restart keeps it) and swaps it in. On error the
    /// old version keeps serving.
    pub async fn upload(self: &Arc<Self>, name: &str, bytes: Vec<u8>) -> Result<String, LoadError> {
        let slot = self.slot(name).ok_or_else(|| LoadError::Read {
            name: name.to_string(),
            path: "-".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no plugin with this name in the edge config",
            ),
        })?;
        let config = slot.current().config.clone();
        let (name, path) = (config.name.clone(), config.file.display().to_string());
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let loaded = LoadedPlugin::compile(&config, &bytes, &this.engine, &this.linker)?;
            let tmp = config.file.with_extension("wasm.upload");
            let io = |source| LoadError::Read { name: config.name.clone(), path: config.file.display().to_string(), source };
            std::fs::write(&tmp, &bytes).map_err(io)?;
            std::fs::rename(&tmp, &config.file).map_err(io)?;
            let version = loaded.version.to_string();
            tracing::info!(plugin = %config.name, version, world = loaded.world, "plugin version uploaded and swapped in");
            slot.swap(loaded);
            Ok(version)
        })
        .await
        // A component that makes the compiler panic fails its own upload
        // (or feed install); the edge and its feed keep running.
        .unwrap_or_else(|join| {
            Err(LoadError::Compile {
                name,
                path,
                reason: format!("the compiler failed on this component: {join}"),
            })
        })
    }

    /// Polls plugin files and swaps in changed versions until `stop`.
    pub fn spawn_watcher(self: &Arc<Self>, interval: std::time::Duration, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let rt = this.clone();
                let _ = tokio::task::spawn_blocking(move || rt.reload_changed()).await;
            }
        });
    }

    fn reload_changed(&self) {
        for slot in self.slots.values() {
            let current = slot.current();
            let config = &current.config;
            let Ok(bytes) = LoadedPlugin::read(config) else {
                continue;
            };
            let digest: [u8; 32] =
                sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes))
                    .into();
            if digest == current.digest {
                continue;
            }
            let mut rejected = self.rejected.lock().expect("rejected lock");
            if rejected.get(&config.name) == Some(&digest) {
                continue;
            }
            match LoadedPlugin::compile(config, &bytes, &self.engine, &self.linker) {
                Ok(loaded) => {
                    tracing::info!(plugin = %config.name, old = %current.version, new = %loaded.version, world = loaded.world, "plugin file changed; new version swapped in");
                    rejected.remove(&config.name);
                    slot.swap(loaded);
                }
                Err(e) => {
                    tracing::error!(plugin = %config.name, version = %current.version, error = %e, "new plugin file rejected; the previous version keeps serving");
                    rejected.insert(config.name.clone(), digest);
                }
            }
        }
    }

    /// The chain for one request: `slots` in order, then `terminal`.
    pub fn chain(
        self: &Arc<Self>,
        slots: &[Arc<PluginSlot>],
        req: &RequestFacts,
        terminal: Arc<dyn Link>,
    ) -> Arc<dyn Link> {
        slots.iter().rev().fold(terminal, |next, slot| {
            Arc::new(PluginLink {
                rt: self.clone(),
                slot: slot.clone(),
                next,
                facts: req.clone(),
            }) as Arc<dyn Link>
        })
    }
}

/// What every link of one request's chain shares.
#[derive(Clone)]
pub struct RequestFacts {
    pub tls: bool,
    pub client_host: HeaderValue,
    pub location: Location,
    pub site_config: Arc<HashMap<String, String>>,
}

struct PluginLink {
    rt: Arc<Runtime>,
    slot: Arc<PluginSlot>,
    next: Arc<dyn Link>,
    facts: RequestFacts,
}

impl Link for PluginLink {
    fn call(&self, req: Request<Body>) -> LinkFuture {
        let (rt, slot, next, facts) = (
            self.rt.clone(),
            self.slot.clone(),
            self.next.clone(),
            self.facts.clone(),
        );
        Box::pin(async move {
            let plugin = slot.current();
            let started = Instant::now();
            let Ok(permit) = slot.admit(plugin.config.max_queue).await else {
                rt.metrics.observe_plugin(
                    &plugin.config.name,
                    &plugin.version,
                    "overloaded",
                    started.elapsed(),
                );
                return invoke::overloaded(&plugin);
            };
            let hooks = Hooks {
                next,
                pools: rt.pools.clone(),
                plugin: plugin.config.name.as_str().into(),
                grants: plugin.config.grants.clone(),
                client_host: facts.client_host.clone(),
            };
            let edge = EdgeCtx {
                plugin: plugin.config.name.as_str().into(),
                version: plugin.version.clone(),
                location: facts.location.clone(),
                site_config: facts.site_config.clone(),
                kv: rt.kv.clone(),
                cache: rt.cache.clone(),
                grants: plugin.config.grants.clone(),
            };
            let (name, version) = (plugin.config.name.clone(), plugin.version.clone());
            let (resp, outcome) = invoke::run(plugin, req, facts.tls, hooks, edge, permit).await;
            rt.metrics
                .observe_plugin(&name, &version, outcome.label(), started.elapsed());
            resp
        })
    }
}
