//! Queue consumers on a real origin: the example `tally` component
//! (`plugins/tally`) consumes a queue in the background, writes KV and
//! sends to another queue through its grants; a message it retries or
//! traps on is delivered again only with its own batch and ends in the
//! dead letters after `max_attempts`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{client, edge_toml, plugin_wasm, start_edge_with};

const TOKEN: &str = "queue-token";

struct Origin {
    server: origin::RunningServer,
    http: reqwest::Client,
}

impl Origin {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr())
    }

    async fn declare(&self, name: &str, spec: Value) {
        let r = self
            .http
            .put(self.url(&format!("/queues/{name}")))
            .bearer_auth(TOKEN)
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "declaring {name}");
    }

    async fn send(&self, queue: &str, bodies: &[&str]) {
        let messages: Vec<Value> = bodies.iter().map(|b| json!({ "body": b })).collect();
        let r = self
            .http
            .post(self.url(&format!("/queues/{queue}/messages")))
            .bearer_auth(TOKEN)
            .json(&json!({ "messages": messages }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn stats(&self, queue: &str) -> Value {
        self.http
            .get(self.url(&format!("/queues/{queue}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn kv(&self, key: &str) -> Option<String> {
        let r = self
            .http
            .get(self.url(&format!("/kv/tally/{key}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status() == 200).then_some(r.text().await.unwrap())
    }

    /// Waits until `done` holds for `queue`'s stats, or panics with them.
    async fn wait_for(&self, queue: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stats = self.stats(queue).await;
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "{what}: {stats}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_consumer_works_its_queue_and_retires_poison_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = origin::Config::for_data_dir(dir.path().join("origin"), TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let origin = Origin {
        server: origin::Server::start(config).await.unwrap(),
        http: client(),
    };
    origin
        .declare(
            "words",
            json!({"max_attempts": 3, "visibility_timeout_s": 60}),
        )
        .await;
    origin.declare("tally-done", json!({})).await;

    let wasm = plugin_wasm("tally");
    let toml = format!(
        "{}[plugin_runtime]\nkv_pool = \"main\"\nkv_token = \"{TOKEN}\"\n\
         compile_cache_dir = \"{cache}\"\n\
         [[consumers]]\nname = \"tally\"\nfile = \"{file}\"\nqueue = \"words\"\n\
         batch = 5\nconcurrency = 2\ntimeout = \"1s\"\n\
         kv_namespaces = [\"tally\"]\nqueues = [\"tally-done\"]\n",
        edge_toml(&[origin.server.local_addr()], dir.path(), ""),
        cache = dir.path().join("wasm-cache").display(),
        file = wasm.display(),
    );
    let edge = start_edge_with(&toml, dir.path()).await;

    origin
        .send("words", &["apple banana", "banana cherry", "banana"])
        .await;
    let stats = origin
        .wait_for("words", "three messages acked", |s| s["acked"] == 3)
        .await;
    assert_eq!(
        (stats["depth"].as_u64(), stats["dead_letters"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(origin.kv("banana").await.as_deref(), Some("3"));
    assert_eq!(origin.kv("apple").await.as_deref(), Some("1"));
    // The consumer's own sends, through its `queues` grant.
    let done = origin.stats("tally-done").await;
    assert_eq!(done["depth"], 3, "{done}");

    // A message that traps the instance is retried with the queue's
    // backoff and dies after three attempts; one the consumer retries
    // itself likewise. Messages acked before stay acked.
    origin.send("words", &["trap now"]).await;
    let stats = origin
        .wait_for("words", "the trapping message dead-lettered", |s| {
            s["dead_letters"] == 1
        })
        .await;
    assert_eq!(stats["acked"], 3);
    origin.send("words", &["retry please"]).await;
    let stats = origin
        .wait_for("words", "the retried message dead-lettered", |s| {
            s["dead_letters"] == 2
        })
        .await;
    assert_eq!(
        (stats["acked"].as_u64(), stats["depth"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(
        stats["redeliveries"], 4,
        "two messages, two redeliveries each: {stats}"
    );
    assert_eq!(
        origin.kv("now").await,
        None,
        "the trapping batch wrote nothing"
    );
    // One that runs past the consumer's 1 s deadline, likewise; the
    // worker goes on with the next batch.
    origin.send("words", &["spin forever"]).await;
    let stats = origin
        .wait_for("words", "the spinning message dead-lettered", |s| {
            s["dead_letters"] == 3
        })
        .await;
    assert_eq!(stats["redeliveries"], 6, "{stats}");
    origin.send("words", &["after"]).await;
    origin
        .wait_for("words", "a message after the timeouts acked", |s| {
            s["acked"] == 4
        })
        .await;

    let metrics = client()
        .get(format!("http://{}/metrics", edge.admin_addr()))
        .bearer_auth("test-admin-token-0123456789")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["ok", "trap", "timeout"] {
        let series = format!(",outcome=\"{outcome}\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.contains("{plugin=\"tally\",version=\"") && l.contains(&series)),
            "no tally{series} in the edge's metrics"
        );
    }
    edge.shutdown().await;
    origin.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_ticks_once_per_interval_across_edges() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = origin::Config::for_data_dir(dir.path().join("origin"), TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let origin = Origin {
        server: origin::Server::start(config).await.unwrap(),
        http: client(),
    };
    origin.declare("ticks", json!({})).await;
    let wasm = plugin_wasm("tally");
    let edge_config = |n: usize| {
        let edge_dir = dir.path().join(format!("edge{n}"));
        std::fs::create_dir_all(&edge_dir).unwrap();
        let toml = format!(
            "{}[plugin_runtime]\nkv_pool = \"main\"\nkv_token = \"{TOKEN}\"\n\
             compile_cache_dir = \"{cache}\"\n\
             [[consumers]]\nname = \"tally\"\nfile = \"{file}\"\nqueue = \"ticks\"\n\
             schedule = \"1s\"\nkv_namespaces = [\"tally\"]\n",
            edge_toml(&[origin.server.local_addr()], &edge_dir, ""),
            cache = dir.path().join("wasm-cache").display(),
            file = wasm.display(),
        );
        (toml, edge_dir)
    };
    let (one, one_dir) = edge_config(1);
    let (two, two_dir) = edge_config(2);
    let edges = [
        start_edge_with(&one, &one_dir).await,
        start_edge_with(&two, &two_dir).await,
    ];
    // Ticks are counted by the consumer as one "word" each: its JSON.
    let ticks = || async {
        let listing: Value = origin
            .http
            .get(origin.url("/kv/tally?prefix=%7B%22at_ms%22"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listing["entries"].as_array().cloned().unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while ticks().await.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "fewer than 3 ticks handled: {:?} {}",
            ticks().await,
            origin.stats("ticks").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for edge in edges {
        edge.shutdown().await;
    }
    let handled = ticks().await;
    for entry in &handled {
        assert_eq!(entry["value"], "1", "a tick handled twice: {entry}");
    }
    let stats = origin.stats("ticks").await;
    let sent = stats["sent"].as_u64().unwrap();
    assert_eq!(
        sent,
        handled.len() as u64 + stats["depth"].as_u64().unwrap(),
        "two edges, one tick per second between them: {stats}"
    );
    origin.server.shutdown().await;
}
