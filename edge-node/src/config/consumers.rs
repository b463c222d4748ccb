//! `[[consumers]]`: wasm components that consume queues in the background,
//! with their own limits (a longer deadline and more memory than a
//! request's) and the same grants as plugins.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use service_base::config_file::FieldError;
use waypost_api::QueueName;
use waypost_api::queues::{MAX_BATCH, MAX_VISIBILITY_S};

use super::PoolConfig;
use super::plugins::{GrantLists, Grants, grants};
use super::raw::RawConsumer;

/// Most batches one consumer handles at once.
pub const MAX_CONSUMER_CONCURRENCY: usize = 64;

/// One consumer of one queue.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub name: String,
    pub file: PathBuf,
    pub queue: QueueName,
    /// Most messages per call.
    pub batch: usize,
    /// Calls running at once, each with its own lease.
    pub concurrency: usize,
    /// Deadline of one call; the lease is this plus a margin, so a call
    /// that runs to its deadline is settled before its messages reappear.
    pub timeout: Duration,
    pub memory: u64,
    /// Ticks sent to `queue` at every multiple of this (wall clock).
    pub schedule: Option<Duration>,
    pub grants: Arc<Grants>,
}

impl ConsumerConfig {
    /// The visibility timeout its leases ask for.
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(30)
    }
}

pub(super) fn validate(
    raw: Vec<RawConsumer>,
    resolve: &impl Fn(PathBuf) -> PathBuf,
    pools: &[PoolConfig],
    origin_api: bool,
) -> Result<Vec<ConsumerConfig>, FieldError> {
    let mut out: Vec<ConsumerConfig> = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let field = |f: &str| format!("consumers[{i}].{f}");
        if !origin_api {
            return Err(FieldError::new(
                field("queue"),
                "consumers lease from the origin's queue API through the pool named by \
                 `plugin_runtime.kv_pool` (with `plugin_runtime.kv_token`); set it",
            ));
        }
        if let Err(e) = waypost_api::PluginName::parse(&c.name) {
            return Err(FieldError::new(field("name"), e.to_string()));
        }
        if out.iter().any(|o| o.name == c.name) {
            return Err(FieldError::new(
                field("name"),
                format!("consumer `{}` is defined twice", c.name),
            ));
        }
        let queue = QueueName::parse(&c.queue)
            .map_err(|e| FieldError::new(field("queue"), e.to_string()))?;
        if !(1..=MAX_BATCH).contains(&c.batch) {
            return Err(FieldError::new(
                field("batch"),
                format!("must be 1 to {MAX_BATCH}"),
            ));
        }
        if !(1..=MAX_CONSUMER_CONCURRENCY).contains(&c.concurrency) {
            return Err(FieldError::new(
                field("concurrency"),
                format!("must be 1 to {MAX_CONSUMER_CONCURRENCY}"),
            ));
        }
        let longest = Duration::from_secs(MAX_VISIBILITY_S - 30);
        if c.timeout.is_zero() || c.timeout > longest {
            return Err(FieldError::new(
                field("timeout"),
                format!("must be above zero and at most {longest:?}"),
            ));
        }
        if c.memory.0 < (1 << 20) {
            return Err(FieldError::new(field("memory"), "must be at least 1MiB"));
        }
        if c.schedule
            .is_some_and(|s| s < Duration::from_secs(1) || s.subsec_nanos() != 0)
        {
            return Err(FieldError::new(
                field("schedule"),
                "must be whole seconds, at least 1s (e.g. \"5m\")",
            ));
        }
        let grants = grants(
            &field,
            GrantLists {
                kv_namespaces: c.kv_namespaces,
                assets: c.assets,
                queues: c.queues,
                backends: c.backends,
                purge: c.purge,
            },
            pools,
        )?;
        out.push(ConsumerConfig {
            name: c.name,
            file: resolve(c.file),
            queue,
            batch: c.batch,
            concurrency: c.concurrency,
            timeout: c.timeout,
            memory: c.memory.0,
            schedule: c.schedule,
            grants,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn with(consumer: &str, runtime: &str) -> Result<Config, String> {
        let text = format!(
            "[[pools]]\nname = \"o\"\norigins = [\"127.0.0.1:7070\"]\n\
             [[sites]]\npool = \"o\"\n{runtime}\n\
             [[consumers]]\nname = \"w\"\nfile = \"w.wasm\"\n{consumer}\n"
        );
        Config::from_toml(Path::new("edge.toml"), &text).map_err(|e| e.to_string())
    }

    const RUNTIME: &str = "[plugin_runtime]\nkv_pool = \"o\"\nkv_token = \"t\"";

    #[test]
    fn a_consumer_takes_defaults_and_grants() {
        let c = with("queue = \"jobs\"\nqueues = [\"next\"]", RUNTIME).unwrap();
        let w = &c.consumers[0];
        assert_eq!((w.queue.as_str(), w.batch, w.concurrency), ("jobs", 10, 1));
        assert_eq!(w.grants.refuse_queue("w", "next"), None);
        assert!(w.grants.refuse_kv("w", "any").is_some());
    }

    #[test]
    fn bad_consumers_name_the_field() {
        let cases = [
            ("queue = \"Jobs\"", RUNTIME, "consumers[0].queue"),
            ("queue = \"jobs\"\nbatch = 0", RUNTIME, "consumers[0].batch"),
            (
                "queue = \"jobs\"\nqueues = [\"a b\"]",
                RUNTIME,
                "consumers[0].queues",
            ),
            ("queue = \"jobs\"", "", "kv_pool"),
            (
                "queue = \"jobs\"\nschedule = \"500ms\"",
                RUNTIME,
                "consumers[0].schedule",
            ),
        ];
        for (consumer, runtime, field) in cases {
            let err = with(consumer, runtime).unwrap_err();
            assert!(err.contains(field) && err.contains("edge.toml"), "{err}");
        }
    }
}
