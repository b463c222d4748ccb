//! A plugin version ready to serve (compiled and pre-instantiated once), and
//! the slot that swaps versions atomically: requests in flight keep the
//! `Arc` of the version they started on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::handler::ProxyPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre as ProxyPreP2;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use super::host::HostState;
use crate::config::PluginConfig;

/// Why a plugin version could not be loaded; the old version (if any)
/// keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{name}`: cannot read {path}: {source}")]
    Read {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin `{name}` ({path}) is not a valid component: {reason}")]
    Compile {
        name: String,
        path: String,
        reason: String,
    },
    #[error("plugin `{name}` ({path}) cannot run here: {reason}")]
    Link {
        name: String,
        path: String,
        reason: String,
    },
}

pub struct LoadedPlugin {
    pub config: PluginConfig,
    /// Short content hash of the component file.
    pub version: Arc<str>,
    pub digest: [u8; 32],
    /// A wasi:http 0.2 `proxy` or 0.3 `service`/`middleware` component,
    /// told apart by its exports.
    pub pre: ProxyPre<HostState>,
    /// Which world, for logs.
    pub world: &'static str,
}

impl LoadedPlugin {
    /// Compiles `bytes` (the cache makes a known version cheap) and checks
    /// every import against the linker, so a missing import is reported
    /// now, by name, rather than on the first request.
    pub fn compile(
        config: &PluginConfig,
        bytes: &[u8],
        engine: &Engine,
        linker: &Linker<HostState>,
    ) -> Result<Self, LoadError> {
        let path = config.file.display().to_string();
        let name = config.name.clone();
        let component = Component::new(engine, bytes).map_err(|e| LoadError::Compile {
            name: name.clone(),
            path: path.clone(),
            reason: format!("{e:#}"),
        })?;
        let link_err = |e: wasmtime::Error| LoadError::Link {
            name: name.clone(),
            path: path.clone(),
            reason: format!("{e:#}"),
        };
        let instance_pre = linker.instantiate_pre(&component).map_err(link_err)?;
        // As `wasmtime serve`: a component exporting wasi:http/handler@0.3
        // is a 0.3 one, otherwise it must export the 0.2 incoming-handler.
        let (pre, world) = match ServicePre::new(instance_pre.clone()) {
            Ok(pre) if imports_handler(&component, engine) => {
                (ProxyPre::P3(pre), "wasi:http 0.3 middleware")
            }
            Ok(pre) => (ProxyPre::P3(pre), "wasi:http 0.3 service"),
            Err(_) => {
                let pre = ProxyPreP2::new(instance_pre).map_err(|e| LoadError::Link {
                    name: name.clone(),
                    path: path.clone(),
                    reason: format!("it exports neither wasi:http/handler@0.3 nor wasi:http/incoming-handler@0.2 (not a wasi:http service or proxy component): {e:#}"),
                })?;
                (ProxyPre::P2(pre), "wasi:http 0.2 proxy")
            }
        };
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        Ok(Self {
            config: config.clone(),
            version: hex::encode(&digest[..6]).into(),
            digest,
            pre,
            world,
        })
    }

    pub fn engine(&self) -> &Engine {
        match &self.pre {
            ProxyPre::P2(pre) => pre.engine(),
            ProxyPre::P3(pre) => pre.engine(),
        }
    }

    pub fn read(config: &PluginConfig) -> Result<Vec<u8>, LoadError> {
        std::fs::read(&config.file).map_err(|source| LoadError::Read {
            name: config.name.clone(),
            path: config.file.display().to_string(),
            source,
        })
    }
}

/// Whether the component imports `wasi:http/handler` (the `middleware`
/// world), which the edge binds to the next link of the chain.
fn imports_handler(component: &Component, engine: &Engine) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/handler@0.3"))
}

/// The current version of one plugin plus its admission control.
pub struct PluginSlot {
    current: ArcSwap<LoadedPlugin>,
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Why a request was not admitted.
#[derive(Debug)]
pub struct Overloaded;

impl PluginSlot {
    pub fn new(plugin: LoadedPlugin) -> Self {
        let running = Arc::new(Semaphore::new(plugin.config.max_concurrency));
        Self {
            current: ArcSwap::from_pointee(plugin),
            running,
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn current(&self) -> Arc<LoadedPlugin> {
        self.current.load_full()
    }

    pub fn swap(&self, plugin: LoadedPlugin) {
        self.current.store(Arc::new(plugin));
    }

    /// Waits for a concurrency slot; refuses at once when the queue of
    /// waiting requests is full, so a slow plugin sheds load instead of
    /// piling up memory.
    pub async fn admit(&self, max_queue: usize) -> Result<OwnedSemaphorePermit, Overloaded> {
        if let Ok(p) = self.running.clone().try_acquire_owned() {
            return Ok(p);
        }
        let _queued = Queued::join(&self.waiting, max_queue)?;
        self.running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Overloaded)
    }
}

/// A place in a plugin's queue, given back when dropped: a request whose
/// client goes away while it waits (an HTTP/2 stream reset drops its
/// future) must not keep counting against the queue.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize, max_queue: usize) -> Result<Self, Overloaded> {
        let place = Self(waiting);
        if waiting.fetch_add(1, Ordering::AcqRel) >= max_queue {
            return Err(Overloaded);
        }
        Ok(place)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_in_the_queue_is_given_back_when_its_request_goes_away() {
        let waiting = AtomicUsize::new(0);
        let first = Queued::join(&waiting, 1).expect("room for one");
        assert!(Queued::join(&waiting, 1).is_err(), "queue of one is full");
        drop(first);
        assert!(
            Queued::join(&waiting, 1).is_ok(),
            "the place was given back"
        );
        assert_eq!(waiting.load(Ordering::Acquire), 0);
    }
}
