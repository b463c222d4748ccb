//! `[[plugins]]`: each plugin's file, the limits its requests run under,
//! and what it is granted beyond its own request.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use service_base::config_file::FieldError;

use super::PoolConfig;
use super::raw::RawPlugin;

/// Most plugin instances alive at once across plugins, the sum of their
/// `max_concurrency`: the instance pool is sized from that sum (twice it,
/// for a version swap with requests still on the old one), so a guest can
/// never find the pool empty while its own cap allows it to run.
pub const MAX_TOTAL_CONCURRENCY: usize = 10_000;

/// One plugin and the limits every request it handles runs under.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    pub file: PathBuf,
    /// Wall-clock deadline per request (epoch interruption).
    pub timeout: Duration,
    /// Linear memory cap per instance.
    pub memory: u64,
    /// Requests running at once; more wait in a queue of `max_queue`.
    pub max_concurrency: usize,
    pub max_queue: usize,
    pub max_response_bytes: u64,
    pub grants: Arc<Grants>,
}

/// What a plugin may reach besides its own request and the next link:
/// nothing unless the operator lists it (deny by default, as Spin does for
/// key-value stores and outbound hosts), so one plugin cannot read another
/// plugin's KV data, call an origin pool it was not meant to, or purge the
/// cache of every site.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// KV namespaces it may read and write (`waypost:edge/kv`).
    pub kv_namespaces: BTreeSet<String>,
    /// Origin pools it may send requests to by name (`http://<pool>/…`).
    pub backends: BTreeSet<String>,
    /// Whether it may purge this edge's cache (`waypost:edge/purge`).
    pub purge: bool,
    /// Queues it may send to (`waypost:edge/queue`).
    pub queues: BTreeSet<String>,
    /// Asset path prefixes it may read and write (`waypost:edge/assets`).
    pub assets: Vec<String>,
}

impl Grants {
    /// Why `plugin` may not use KV namespace `namespace`, if it may not.
    pub fn refuse_kv(&self, plugin: &str, namespace: &str) -> Option<String> {
        (!self.kv_namespaces.contains(namespace)).then(|| {
            format!(
                "plugin `{plugin}` is not granted KV namespace `{namespace}`; \
                 add it to `kv_namespaces` of its [[plugins]] entry"
            )
        })
    }

    /// Why `plugin` may not send requests to pool `backend`, if it may not.
    pub fn refuse_backend(&self, plugin: &str, backend: &str) -> Option<String> {
        (!self.backends.contains(backend)).then(|| {
            format!(
                "plugin `{plugin}` is not granted backend `{backend}`; only `next` and \
                 the pools in `backends` of its [[plugins]] entry are reachable"
            )
        })
    }

    /// Why `plugin` may not send to queue `queue`, if it may not.
    pub fn refuse_queue(&self, plugin: &str, queue: &str) -> Option<String> {
        (!self.queues.contains(queue)).then(|| {
            format!(
                "plugin `{plugin}` is not granted queue `{queue}`; add it to `queues` of \
                 its [[plugins]] (or [[consumers]]) entry"
            )
        })
    }

    /// Why `plugin` may not read or write asset `path`, if it may not.
    pub fn refuse_asset(&self, plugin: &str, path: &str) -> Option<String> {
        (!self
            .assets
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str())))
        .then(|| {
            format!(
                "plugin `{plugin}` is not granted asset path `{path}`; add a prefix of it to \
                 `assets` of its [[plugins]] (or [[consumers]]) entry"
            )
        })
    }

    /// Why `plugin` may not purge, if it may not.
    pub fn refuse_purge(&self, plugin: &str) -> Option<String> {
        (!self.purge).then(|| {
            format!("plugin `{plugin}` may not purge; set `purge = true` in its [[plugins]] entry")
        })
    }
}

pub(super) fn validate(
    raw: Vec<RawPlugin>,
    resolve: &impl Fn(PathBuf) -> PathBuf,
    pools: &[PoolConfig],
) -> Result<Vec<PluginConfig>, FieldError> {
    let mut out: Vec<PluginConfig> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let field = |f: &str| format!("plugins[{i}].{f}");
        // The registry's rule: an edge can only fetch a plugin the origin
        // could have stored.
        if let Err(e) = waypost_api::PluginName::parse(&p.name) {
            return Err(FieldError::new(field("name"), e.to_string()));
        }
        if out.iter().any(|q| q.name == p.name) {
            return Err(FieldError::new(
                field("name"),
                format!("plugin `{}` is defined twice", p.name),
            ));
        }
        if p.timeout.is_zero() || p.max_concurrency == 0 {
            return Err(FieldError::new(
                field("timeout"),
                "`timeout` and `max_concurrency` must be above zero",
            ));
        }
        if p.memory.0 < (1 << 20) {
            return Err(FieldError::new(field("memory"), "must be at least 1MiB"));
        }
        let total: usize = out.iter().map(|q| q.max_concurrency).sum::<usize>() + p.max_concurrency;
        if total > MAX_TOTAL_CONCURRENCY {
            return Err(FieldError::new(
                field("max_concurrency"),
                format!(
                    "the plugins' max_concurrency add up to {total}, over the \
                     {MAX_TOTAL_CONCURRENCY} instances the edge pre-allocates slots for"
                ),
            ));
        }
        let grants = grants(
            &field,
            GrantLists {
                kv_namespaces: p.kv_namespaces,
                assets: p.assets,
                queues: p.queues,
                backends: p.backends,
                purge: p.purge,
            },
            pools,
        )?;
        out.push(PluginConfig {
            name: p.name,
            file: resolve(p.file),
            timeout: p.timeout,
            memory: p.memory.0,
            max_concurrency: p.max_concurrency,
            max_queue: p.max_queue,
            max_response_bytes: p.max_response_bytes.0,
            grants,
        });
    }
    Ok(out)
}

/// The grant fields of a `[[plugins]]` or `[[consumers]]` entry.
pub(super) struct GrantLists {
    pub kv_namespaces: Vec<String>,
    pub assets: Vec<String>,
    pub queues: Vec<String>,
    pub backends: Vec<String>,
    pub purge: bool,
}

/// Checks grant lists (`field` names the entry's fields in errors).
pub(super) fn grants(
    field: &impl Fn(&str) -> String,
    lists: GrantLists,
    pools: &[PoolConfig],
) -> Result<Arc<Grants>, FieldError> {
    if let Some(b) = lists
        .backends
        .iter()
        .find(|b| !pools.iter().any(|q| q.name == **b))
    {
        return Err(FieldError::new(
            field("backends"),
            format!("no pool named `{b}`"),
        ));
    }
    if let Some(e) = lists
        .kv_namespaces
        .iter()
        .find_map(|ns| waypost_api::Namespace::parse(ns).err())
    {
        return Err(FieldError::new(field("kv_namespaces"), e.to_string()));
    }
    if let Some(e) = lists
        .queues
        .iter()
        .find_map(|q| waypost_api::QueueName::parse(q).err())
    {
        return Err(FieldError::new(field("queues"), e.to_string()));
    }
    if let Some(prefix) = lists
        .assets
        .iter()
        .find(|p| p.is_empty() || p.starts_with('/') || p.chars().any(char::is_control))
    {
        return Err(FieldError::new(
            field("assets"),
            format!(
                "{prefix:?} is not an asset path prefix: no leading `/` (`photos/` grants \
                 /assets/photos/...), not empty, no control characters"
            ),
        ));
    }
    Ok(Arc::new(Grants {
        assets: lists.assets,
        kv_namespaces: lists.kv_namespaces.into_iter().collect(),
        backends: lists.backends.into_iter().collect(),
        purge: lists.purge,
        queues: lists.queues.into_iter().collect(),
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn with_plugin(grants: &str) -> Result<Config, String> {
        let text = format!(
            "[[pools]]\nname = \"o\"\norigins = [\"127.0.0.1:7070\"]\n\
             [[sites]]\npool = \"o\"\n\
             [[plugins]]\nname = \"p\"\nfile = \"p.wasm\"\n{grants}\n"
        );
        Config::from_toml(Path::new("edge.toml"), &text).map_err(|e| e.to_string())
    }

    #[test]
    fn grants_are_empty_unless_listed() {
        let c = with_plugin("").unwrap();
        let g = &c.plugins[0].grants;
        assert!(g.refuse_kv("p", "counters").is_some());
        assert!(g.refuse_backend("p", "o").is_some());
        assert!(g.refuse_purge("p").is_some());

        let c = with_plugin("kv_namespaces = [\"counters\"]\nbackends = [\"o\"]\npurge = true")
            .unwrap();
        let g = &c.plugins[0].grants;
        assert_eq!(g.refuse_kv("p", "counters"), None);
        assert!(g.refuse_kv("p", "sessions").is_some());
        assert_eq!(g.refuse_backend("p", "o"), None);
        assert_eq!(g.refuse_purge("p"), None);
    }

    #[test]
    fn a_grant_of_an_unknown_pool_names_the_field() {
        let err = with_plugin("backends = [\"api\"]").unwrap_err();
        assert!(
            err.contains("edge.toml") && err.contains("plugins[0].backends") && err.contains("api"),
            "{err}"
        );
    }
}
