//! Queue consumers: `[[consumers]]` components run in the background, off
//! the request path. Each consumer leases batches from its queue at the
//! origin (long polls), hands each batch to a fresh instance of its
//! component (`waypost:edge/queue-consumer`), and settles every message
//! by the outcome the component returned: ack, or retry after a delay. A
//! trap, a timeout or a missing outcome retries only that batch's
//! messages, with the queue's backoff; the message's attempts count
//! towards its dead letter.
//!
//! Consumers have their own limits (a deadline per call, memory, batches
//! at once) and the grants plugins have (KV, queues, backends, purge).
//! They run on the edge binary because they need exactly its plugin
//! runtime and capabilities; a region that wants separate workers runs
//! an edge with only `[[consumers]]`.

mod origin_api;
mod schedule;
mod world;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, StoreLimitsBuilder, Trap};
use waypost_api::queues::{Delivery as Leased, Receipt, Retry};

use self::origin_api::QueueApi;
use self::world::{Delivery, Outcome, QueueConsumerPre};
use super::capabilities::{self, EdgeCtx, KvClient};
use super::engine::{self, EPOCH_TICK};
use super::hooks::Hooks;
use super::host::HostState;
use super::link::{Link, LinkFuture};
use super::{LoadError, RuntimeError};
use crate::body::{self, Body};
use crate::cache::Cache;
use crate::config::{Config, ConsumerConfig};
use crate::metrics::Metrics;
use crate::upstream::Pool;

/// One compiled consumer.
struct Loaded {
    config: ConsumerConfig,
    version: Arc<str>,
    pre: QueueConsumerPre<HostState>,
}

/// Every consumer of an edge.
pub struct Consumers {
    loaded: Vec<Arc<Loaded>>,
    engine: Engine,
    api: Arc<KvClient>,
    pools: Arc<HashMap<String, Arc<Pool>>>,
    cache: Arc<Cache>,
    metrics: Arc<Metrics>,
}

impl Consumers {
    /// Compiles every `[[consumers]]` component; `None` without any.
    pub fn start(
        config: &Config,
        pools: &[Arc<Pool>],
        cache: Arc<Cache>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Self>, RuntimeError> {
        if config.consumers.is_empty() {
            return Ok(None);
        }
        let rt = &config.plugin_runtime;
        let pool = rt
            .kv_pool
            .expect("validated: consumers need plugin_runtime.kv_pool");
        let max_memory = config.consumers.iter().map(|c| c.memory).max().unwrap_or(0);
        let instances: usize = config.consumers.iter().map(|c| c.concurrency).sum();
        let engine = engine::build(
            max_memory,
            rt.compile_cache_dir.as_deref(),
            2 * instances as u32 + 2,
        )
        .map_err(RuntimeError::Engine)?;
        let linker: Linker<HostState> = engine::linker(&engine).map_err(RuntimeError::Engine)?;
        let mut loaded = Vec::new();
        for c in &config.consumers {
            loaded.push(Arc::new(compile(c, &engine, &linker)?));
        }
        Ok(Some(Self {
            loaded,
            engine,
            api: Arc::new(KvClient::new(
                pools[pool].clone(),
                rt.kv_token.clone(),
                rt.kv_cache_ttl,
            )),
            pools: Arc::new(
                pools
                    .iter()
                    .map(|p| (p.name().to_string(), p.clone()))
                    .collect(),
            ),
            cache,
            metrics,
        }))
    }

    /// Runs every consumer's workers until `stop`.
    pub fn spawn(self, stop: CancellationToken) {
        let this = Arc::new(self);
        for consumer in &this.loaded {
            tracing::info!(consumer = %consumer.config.name, version = %consumer.version, queue = %consumer.config.queue, concurrency = consumer.config.concurrency, "queue consumer started");
            for _ in 0..consumer.config.concurrency {
                tokio::spawn(this.clone().work(consumer.clone(), stop.clone()));
            }
            if let Some(every) = consumer.config.schedule {
                let api = QueueApi {
                    client: this.api.clone(),
                    queue: consumer.config.queue.clone(),
                };
                let name = consumer.config.name.clone();
                tokio::spawn(schedule::run(api, name, every, stop.clone()));
            }
        }
    }

    /// One worker: lease, run, settle, until `stop`.
    async fn work(self: Arc<Self>, consumer: Arc<Loaded>, stop: CancellationToken) {
        let c = &consumer.config;
        let api = QueueApi {
            client: self.api.clone(),
            queue: c.queue.clone(),
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let leased = tokio::select! {
                () = stop.cancelled() => return,
                leased = api.lease(c.batch, c.lease()) => leased,
            };
            let messages = match leased {
                Ok(leased) => {
                    backoff = Duration::from_millis(100);
                    leased.messages
                }
                Err(e) => {
                    tracing::warn!(consumer = %c.name, queue = %c.queue, error = %e, retry_in = ?backoff, "leasing from the origin failed; is the queue declared (`waypost queue create`) and the origin reachable?");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let started = Instant::now();
            let (outcomes, label) = self.run(&consumer, &messages).await;
            self.metrics
                .observe_plugin(&c.name, &consumer.version, label, started.elapsed());
            settle(&api, c, &messages, outcomes).await;
        }
    }

    /// Hands `messages` to a fresh instance; the outcomes (`None` for a
    /// trap or timeout) and the metrics label.
    async fn run(
        &self,
        consumer: &Loaded,
        messages: &[Leased],
    ) -> (Option<Vec<Outcome>>, &'static str) {
        let c = &consumer.config;
        let limits = StoreLimitsBuilder::new()
            .memory_size(c.memory as usize)
            .instances(64)
            .tables(64)
            .memories(8)
            .trap_on_grow_failure(false)
            .build();
        let hooks = Hooks {
            next: Arc::new(NoChain),
            pools: self.pools.clone(),
            plugin: c.name.as_str().into(),
            grants: c.grants.clone(),
            client_host: http::HeaderValue::from_static("consumer"),
        };
        let edge = EdgeCtx {
            plugin: c.name.as_str().into(),
            version: consumer.version.clone(),
            location: capabilities::unknown_location(),
            site_config: Arc::default(),
            kv: Some(self.api.clone()),
            cache: self.cache.clone(),
            grants: c.grants.clone(),
        };
        let mut store = Store::new(&self.engine, HostState::new(hooks, edge, limits));
        store.limiter(|h| &mut h.limits);
        let ticks = (c.timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let deliveries: Vec<Delivery> = messages
            .iter()
            .map(|m| Delivery {
                id: m.receipt.id,
                attempt: m.receipt.attempt,
                body: m.body.clone(),
                enqueued_at_ms: m.enqueued_at_ms,
                ordering_key: m.ordering_key.clone(),
            })
            .collect();
        let queue = c.queue.to_string();
        let call = async {
            let instance = consumer.pre.instantiate_async(&mut store).await?;
            instance
                .waypost_edge_consumer()
                .call_handle(&mut store, &queue, &deliveries)
                .await
        };
        // The epoch deadline stops guest code; the wall-clock one also a
        // guest waiting on a host call.
        match tokio::time::timeout(c.timeout + 2 * EPOCH_TICK, call).await {
            Ok(Ok(outcomes)) => (Some(outcomes), "ok"),
            Ok(Err(e)) if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) => {
                tracing::warn!(consumer = %c.name, version = %consumer.version, timeout = ?c.timeout, messages = messages.len(), "consumer exceeded its deadline; the batch will be retried");
                (None, "timeout")
            }
            Ok(Err(e)) => {
                tracing::warn!(consumer = %c.name, version = %consumer.version, error = %format!("{e:#}"), messages = messages.len(), "consumer failed; the batch will be retried");
                (None, "trap")
            }
            Err(_) => {
                tracing::warn!(consumer = %c.name, version = %consumer.version, timeout = ?c.timeout, "consumer exceeded its deadline waiting for a host call; the batch will be retried");
                (None, "timeout")
            }
        }
    }
}

/// Acks and retries `messages` by `outcomes` (all retried without them).
/// A settle that fails is logged: the lease then ends by itself and the
/// messages come back, so nothing is lost, only delivered again.
async fn settle(
    api: &QueueApi,
    c: &ConsumerConfig,
    messages: &[Leased],
    outcomes: Option<Vec<Outcome>>,
) {
    let outcomes = outcomes.unwrap_or_default();
    if !outcomes.is_empty() && outcomes.len() != messages.len() {
        tracing::warn!(consumer = %c.name, outcomes = outcomes.len(), messages = messages.len(), "consumer returned a different number of outcomes than messages; the ones without an outcome are retried");
    }
    let mut acks: Vec<Receipt> = Vec::new();
    let mut retries: Vec<Retry> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match outcomes.get(i) {
            Some(Outcome::Ack) => acks.push(m.receipt),
            Some(Outcome::Retry(delay_s)) => retries.push(Retry {
                receipt: m.receipt,
                delay_s: *delay_s,
            }),
            None => retries.push(Retry {
                receipt: m.receipt,
                delay_s: None,
            }),
        }
    }
    for (what, result) in [
        ("ack", api.ack(acks).await),
        ("retry", api.retry(retries).await),
    ] {
        if let Err(e) = result {
            tracing::warn!(consumer = %c.name, queue = %c.queue, error = %e, "could not {what} messages; they are delivered again when their lease ends");
        }
    }
}

fn compile(
    c: &ConsumerConfig,
    engine: &Engine,
    linker: &Linker<HostState>,
) -> Result<Loaded, LoadError> {
    let path = c.file.display().to_string();
    let bytes = std::fs::read(&c.file).map_err(|source| LoadError::Read {
        name: c.name.clone(),
        path: path.clone(),
        source,
    })?;
    let component = Component::new(engine, &bytes).map_err(|e| LoadError::Compile {
        name: c.name.clone(),
        path: path.clone(),
        reason: format!("{e:#}"),
    })?;
    let link = |e: wasmtime::Error| LoadError::Link {
        name: c.name.clone(),
        path: path.clone(),
        reason: format!("{e:#} (a consumer is a waypost:edge/queue-consumer component)"),
    };
    let pre =
        QueueConsumerPre::new(linker.instantiate_pre(&component).map_err(link)?).map_err(link)?;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
    Ok(Loaded {
        config: c.clone(),
        version: hex::encode(&digest[..6]).into(),
        pre,
    })
}

/// A consumer's `next`: there is no request to pass on.
struct NoChain;

impl Link for NoChain {
    fn call(&self, _req: Request<Body>) -> LinkFuture {
        Box::pin(async {
            Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(body::full(
                    "a queue consumer has no request chain; call a backend pool by name instead\n",
                ))
                .expect("static response")
        })
    }
}
