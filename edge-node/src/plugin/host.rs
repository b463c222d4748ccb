//! Per-request store state: WASI (no preopens, no network, no inherited
//! stdio), wasi:http with our hooks, `waypost:edge` context and the store
//! limits that cap the instance's memory.

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::capabilities::EdgeCtx;
use super::hooks::Hooks;

/// Resources (streams, fields, bodies) one request may hold at once.
const MAX_RESOURCES: usize = 10_000;

pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
    pub limits: StoreLimits,
    pub edge: EdgeCtx,
}

impl HostState {
    pub fn new(hooks: Hooks, edge: EdgeCtx, limits: StoreLimits) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let wasi = WasiCtx::builder()
            .env("WAYPOST_PLUGIN", &*edge.plugin)
            .env("WAYPOST_PLUGIN_VERSION", &*edge.version)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table,
            hooks,
            limits,
            edge,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
