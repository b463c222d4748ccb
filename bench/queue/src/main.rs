//! Load driver of `bench/queue.sh`: P producers send N messages of SIZE
//! bytes in batches of B, C consumers lease batches of B and ack them, the
//! same way against both systems:
//!
//! - `waypost`: `POST /queues/<q>/messages` (one replicated write per
//!   batch, dedup ids so a retried batch is not enqueued twice), `POST
//!   /queues/<q>/lease` (long poll) and `POST /queues/<q>/ack` (one
//!   replicated write per batch); clients spread over the origins;
//! - `jetstream`: B async publishes with `Nats-Msg-Id` then their acks, a
//!   durable pull consumer with explicit acks, `fetch` of B and an ack per
//!   message; clients spread over the servers.
//!
//! Prints one line of `key=value` figures: `msgs_per_s` (N / time until
//! every message was delivered and acked), `producer_p99_ms` (per batch),
//! `redeliveries`, `lost_acked_sends` (acknowledged sends never
//! delivered), `max_delivery_gap_s`, and with `--kill-leader-at` the
//! moment the leader was killed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use serde_json::{Value, json};

#[derive(Parser, Clone)]
struct Args {
    system: System,
    /// Comma-separated: origin base URLs, or NATS server URLs.
    #[arg(long)]
    servers: String,
    #[arg(long, default_value = "bench")]
    queue: String,
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    #[arg(long, default_value_t = 4)]
    producers: usize,
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    #[arg(long, default_value = "bench-token")]
    token: String,
    /// Kill the leader once this fraction of messages was sent
    /// (waypost only): runs `--kill-hook <leader address>`.
    #[arg(long)]
    kill_leader_at: Option<f64>,
    #[arg(long)]
    kill_hook: Option<String>,
    #[arg(long, default_value_t = 120)]
    time_limit_s: u64,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum System {
    Waypost,
    Jetstream,
}

/// What producers and consumers saw.
#[derive(Default)]
struct Ledger {
    sent: HashSet<String>,
    delivered: HashSet<String>,
    deliveries: usize,
    batch_latencies: Vec<Duration>,
    delivery_times: Vec<Instant>,
}

struct Shared {
    args: Args,
    servers: Vec<String>,
    ledger: Mutex<Ledger>,
    sent_count: AtomicUsize,
    done: AtomicBool,
}

fn body(key: &str, size: usize) -> String {
    let mut b = format!("{key} ");
    b.extend(std::iter::repeat_n('x', size.saturating_sub(b.len())));
    b
}

fn key_of(body: &str) -> String {
    body.split(' ').next().unwrap_or_default().to_string()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let servers: Vec<String> = args.servers.split(',').map(str::to_string).collect();
    let shared = Arc::new(Shared {
        args: args.clone(),
        servers,
        ledger: Mutex::default(),
        sent_count: AtomicUsize::new(0),
        done: AtomicBool::new(false),
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    match args.system {
        System::Waypost => {
            let http = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(64)
                .build()?;
            for p in 0..args.producers {
                tasks.push(tokio::spawn(waypost_producer(
                    shared.clone(),
                    http.clone(),
                    p,
                )));
            }
            for c in 0..args.consumers {
                tasks.push(tokio::spawn(waypost_consumer(
                    shared.clone(),
                    http.clone(),
                    c,
                )));
            }
            if let Some(at) = args.kill_leader_at {
                tasks.push(tokio::spawn(kill_leader(shared.clone(), http.clone(), at)));
            }
        }
        System::Jetstream => {
            let js = jetstream_setup(&shared).await?;
            for p in 0..args.producers {
                let js = js[p % js.len()].clone();
                tasks.push(tokio::spawn(jetstream_producer(shared.clone(), js, p)));
            }
            for c in 0..args.consumers {
                let js = js[c % js.len()].clone();
                tasks.push(tokio::spawn(jetstream_consumer(shared.clone(), js)));
            }
        }
    }
    let limit = Duration::from_secs(args.time_limit_s);
    loop {
        let (sent_all, delivered_all) = {
            let l = shared.ledger.lock().unwrap();
            (
                l.sent.len() == args.messages,
                l.sent.is_subset(&l.delivered),
            )
        };
        if sent_all && delivered_all {
            break;
        }
        if started.elapsed() > limit {
            eprintln!("time limit reached before every message was delivered");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shared.done.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    report(&shared, elapsed);
    Ok(())
}

fn report(shared: &Shared, elapsed: Duration) {
    let mut l = shared.ledger.lock().unwrap();
    l.batch_latencies.sort();
    let p99 = l
        .batch_latencies
        .get(l.batch_latencies.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    l.delivery_times.sort();
    let gap = l
        .delivery_times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let lost = l.sent.difference(&l.delivered).count();
    println!(
        "msgs_per_s={:.0} elapsed_s={:.2} producer_p99_ms={:.1} sent={} delivered={} redeliveries={} lost_acked_sends={lost} max_delivery_gap_s={:.2}",
        l.delivered.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        p99.as_secs_f64() * 1000.0,
        l.sent.len(),
        l.delivered.len(),
        l.deliveries.saturating_sub(l.delivered.len()),
        gap.as_secs_f64(),
    );
}

/// This producer's share of the messages, as batches of keys.
fn batches(shared: &Shared, p: usize) -> Vec<Vec<String>> {
    let a = &shared.args;
    let mine: Vec<String> = (0..a.messages)
        .filter(|i| i % a.producers == p)
        .map(|i| format!("m{i}"))
        .collect();
    mine.chunks(a.batch).map(<[String]>::to_vec).collect()
}

fn record_sent(shared: &Shared, keys: &[String], latency: Duration) {
    let mut l = shared.ledger.lock().unwrap();
    l.sent.extend(keys.iter().cloned());
    l.batch_latencies.push(latency);
    shared.sent_count.fetch_add(keys.len(), Ordering::Relaxed);
}

fn record_delivered(shared: &Shared, keys: impl IntoIterator<Item = String>) {
    let now = Instant::now();
    let mut l = shared.ledger.lock().unwrap();
    for k in keys {
        l.deliveries += 1;
        l.delivery_times.push(now);
        l.delivered.insert(k);
    }
}

async fn waypost_producer(shared: Arc<Shared>, http: reqwest::Client, p: usize) {
    let a = &shared.args;
    for (b, keys) in batches(&shared, p).into_iter().enumerate() {
        let messages: Vec<Value> = keys
            .iter()
            .map(|k| json!({"body": body(k, a.size), "dedup_id": k}))
            .collect();
        let payload = json!({ "messages": messages });
        let t0 = Instant::now();
        for attempt in 0.. {
            let server = &shared.servers[(p + b + attempt) % shared.servers.len()];
            let resp = http
                .post(format!("{server}/queues/{}/messages", a.queue))
                .bearer_auth(&a.token)
                .json(&payload)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        record_sent(&shared, &keys, t0.elapsed());
    }
}

async fn waypost_consumer(shared: Arc<Shared>, http: reqwest::Client, c: usize) {
    let a = &shared.args;
    let mut turn = c;
    let mut lease_no = 0u64;
    while !shared.done.load(Ordering::Relaxed) {
        lease_no += 1;
        // A lease whose answer is lost is asked again under its id, at the
        // next origin: the same messages come back instead of staying
        // hidden for the visibility timeout.
        let request =
            json!({"max": a.batch, "wait_s": 1, "request_id": format!("c{c}-{lease_no}")});
        let leased: Value = loop {
            let server = &shared.servers[turn % shared.servers.len()];
            let leased = http
                .post(format!("{server}/queues/{}/lease", a.queue))
                .bearer_auth(&a.token)
                .json(&request)
                .send()
                .await;
            match leased {
                Ok(r) if r.status().is_success() => break r.json().await.unwrap_or_default(),
                _ if shared.done.load(Ordering::Relaxed) => return,
                _ => {
                    turn += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let Some(messages) = leased["messages"].as_array().filter(|m| !m.is_empty()) else {
            continue;
        };
        let receipts: Vec<Value> = messages.iter().map(|m| m["receipt"].clone()).collect();
        let keys: Vec<String> = messages
            .iter()
            .map(|m| key_of(m["body"].as_str().unwrap_or_default()))
            .collect();
        for attempt in 0..50 {
            let server = &shared.servers[(turn + attempt) % shared.servers.len()];
            let acked = http
                .post(format!("{server}/queues/{}/ack", a.queue))
                .bearer_auth(&a.token)
                .json(&json!({ "receipts": receipts }))
                .send()
                .await;
            if acked.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        record_delivered(&shared, keys);
    }
}

/// Kills the leader (through the hook) once `at` of the messages were sent.
async fn kill_leader(shared: Arc<Shared>, http: reqwest::Client, at: f64) {
    let a = &shared.args;
    let threshold = (a.messages as f64 * at) as usize;
    while shared.sent_count.load(Ordering::Relaxed) < threshold {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let Ok(leader) = leader_addr(&shared, &http).await else {
        eprintln!("could not find the leader to kill");
        return;
    };
    let hook = a.kill_hook.clone().unwrap_or_default();
    let killed = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{hook} {leader}"))
        .status()
        .await;
    eprintln!("killed the leader at {leader}: {killed:?}");
}

async fn leader_addr(shared: &Shared, http: &reqwest::Client) -> anyhow::Result<String> {
    for server in &shared.servers {
        let Ok(resp) = http
            .get(format!("{server}/cluster"))
            .bearer_auth(&shared.args.token)
            .send()
            .await
        else {
            continue;
        };
        let status: Value = resp.json().await?;
        let leader = status["leader"].as_u64().context("no leader")?;
        let members = status["members"].as_array().context("no members")?;
        let addr = members
            .iter()
            .find(|m| m["id"].as_u64() == Some(leader))
            .and_then(|m| m["addr"].as_str())
            .context("leader not among the members")?;
        return Ok(addr.to_string());
    }
    bail!("no origin answered /cluster")
}

async fn jetstream_setup(shared: &Shared) -> anyhow::Result<Vec<async_nats::jetstream::Context>> {
    use async_nats::jetstream::{self, stream};
    let mut contexts = Vec::new();
    for server in &shared.servers {
        let client = async_nats::connect(server.as_str())
            .await
            .with_context(|| format!("connecting to {server}"))?;
        contexts.push(jetstream::new(client));
    }
    let js = &contexts[0];
    let _ = js.delete_stream(&shared.args.queue).await;
    let stream = js
        .create_stream(stream::Config {
            name: shared.args.queue.clone(),
            subjects: vec![format!("{}.jobs", shared.args.queue)],
            storage: stream::StorageType::File,
            num_replicas: shared.servers.len().min(3),
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .context("creating the stream")?;
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("workers".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .context("creating the consumer")?;
    Ok(contexts)
}

async fn jetstream_producer(shared: Arc<Shared>, js: async_nats::jetstream::Context, p: usize) {
    let a = &shared.args;
    let subject = format!("{}.jobs", a.queue);
    for keys in batches(&shared, p) {
        let t0 = Instant::now();
        let mut acks = Vec::with_capacity(keys.len());
        for k in &keys {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", k.as_str());
            match js
                .publish_with_headers(subject.clone(), headers, body(k, a.size).into())
                .await
            {
                Ok(ack) => acks.push(ack),
                Err(e) => eprintln!("publish: {e}"),
            }
        }
        let results = futures::future::join_all(acks.into_iter().map(|a| a.into_future())).await;
        if results.iter().all(Result::is_ok) {
            record_sent(&shared, &keys, t0.elapsed());
        } else {
            eprintln!("a publish was not acknowledged");
        }
    }
}

async fn jetstream_consumer(shared: Arc<Shared>, js: async_nats::jetstream::Context) {
    use async_nats::jetstream::consumer::PullConsumer;
    let a = &shared.args;
    let Ok(stream) = js.get_stream(&a.queue).await else {
        eprintln!("no stream");
        return;
    };
    let Ok(consumer): Result<PullConsumer, _> = stream.get_consumer("workers").await else {
        eprintln!("no consumer");
        return;
    };
    while !shared.done.load(Ordering::Relaxed) {
        let Ok(mut batch) = consumer
            .fetch()
            .max_messages(a.batch)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut keys = Vec::new();
        while let Some(Ok(message)) = batch.next().await {
            keys.push(key_of(&String::from_utf8_lossy(&message.payload)));
            let _ = message.ack().await;
        }
        record_delivered(&shared, keys);
    }
}
