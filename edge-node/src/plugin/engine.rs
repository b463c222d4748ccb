//! The one wasmtime engine of an edge: compiled with a disk cache (a restart
//! does not recompile), a pooling allocator (instantiation is a few
//! microseconds), epoch interruption driven by a single ticker thread (a
//! ticker per request collapsed wasmtime's own throughput, wasmtime#11814),
//! and the linker every plugin is checked against at load.

use std::path::Path;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{
    Cache, CacheConfig, Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy,
    PoolingAllocationConfig,
};

use super::capabilities;
use super::host::HostState;
use super::p3;

/// Interval of the epoch ticker; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each memory and table slot kept resident between instances.
const KEEP_RESIDENT: usize = 1 << 20;

/// Slots released to the kernel together, so one madvise/TLB flush covers
/// many requests.
const DECOMMIT_BATCH: usize = 16;

/// `instances`: component instances the pool holds at once across all
/// plugins (see `crate::config::MAX_TOTAL_CONCURRENCY`).
pub fn build(
    max_memory: u64,
    cache_dir: Option<&Path>,
    instances: u32,
) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances * 2)
        .total_memories(instances * 2)
        .total_tables(instances * 2)
        .max_memory_size(max_memory as usize)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_core_instances_per_component(32)
        // Keep the first pages of each slot resident and reset them with
        // memset instead of madvise: per-request instances otherwise spend
        // ~30% of the edge's CPU on page faults and TLB shootdowns.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        // On Linux ≥ 6.7, find the pages an instance dirtied with the
        // PAGEMAP_SCAN ioctl and reset only those, instead of a memset of the
        // whole resident region: a hello request dirties a few pages, and
        // the blind 1 MiB memset was ~40% of its instantiate + handle time.
        .pagemap_scan(Enabled::Auto)
        .decommit_batch_size(DECOMMIT_BATCH);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        // wasi:http 0.3 components use the component model's async ABI.
        .wasm_component_model_async(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 << 10)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if let Some(dir) = cache_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            wasmtime::format_err!("creating compile cache dir {}: {e}", dir.display())
        })?;
        let mut cc = CacheConfig::new();
        cc.with_directory(dir);
        config.cache(Some(Cache::new(cc)?));
    }
    let engine = Engine::new(&config)?;
    spawn_ticker(engine.weak());
    Ok(engine)
}

/// The linker with everything a plugin may import: the WASI interfaces a
/// `wasm32-wasip2` component commonly imports (cli environment and stdio,
/// clocks, random, io), wasi:http, and `waypost:edge` — each of WASI and
/// wasi:http in both its 0.2 and its 0.3 version, so either kind of
/// component loads without a flag.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    p3::add_to_linker(&mut linker)?;
    capabilities::add_to_linker(&mut linker, |h: &mut HostState| &mut h.edge)?;
    Ok(linker)
}

/// Ticks until the engine is dropped.
fn spawn_ticker(engine: EngineWeak) {
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
