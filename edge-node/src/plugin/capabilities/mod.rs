//! The `waypost:edge` host capabilities, bound from `sdk/wit/edge.wit` (the
//! same file the SDK generates guest bindings from). One module per
//! capability; each implements the generated `Host` trait on the per-request
//! [`EdgeCtx`].

mod assets;
mod config;
mod geo;
mod kv;
mod log;
mod purge;
mod queue;

use std::sync::Arc;

pub use geo::{GeoDb, unknown as unknown_location};
pub use kv::{KvClient, OriginCallError};

use crate::cache::Cache;
use crate::config::Grants;

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "waypost:edge/imports",
    imports: { default: async },
});

pub use waypost::edge::geo::Location;

/// What the capabilities need for one request.
pub struct EdgeCtx {
    pub plugin: Arc<str>,
    pub version: Arc<str>,
    pub location: Location,
    pub site_config: Arc<std::collections::HashMap<String, String>>,
    pub kv: Option<Arc<KvClient>>,
    pub cache: Arc<Cache>,
    /// What this plugin may use of KV and purge.
    pub grants: Arc<Grants>,
}

/// Adds every capability to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut EdgeCtx,
) -> wasmtime::Result<()> {
    Imports::add_to_linker::<T, wasmtime::component::HasSelf<EdgeCtx>>(linker, get)
}
