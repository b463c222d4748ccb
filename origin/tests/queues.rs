//! Durable queues through the origin's HTTP API: the whole lifecycle on
//! one origin (declare, send, lease, ack, nack, dead letters, replay,
//! pause, long polls, bad input), then three regions with the leader killed
//! while producers send and consumers ack: no acknowledged send is lost,
//! every message is acked exactly once, nothing reaches the dead letters.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Origin, TOKEN};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn post(o: &Origin, path: &str, body: Value) -> (StatusCode, Value) {
    post_at(&o.client, &o.url(path), body).await
}

async fn get(o: &Origin, path: &str) -> Value {
    let resp = o.get(path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    resp.json().await.unwrap()
}

async fn declare(o: &Origin, name: &str, spec: Value) -> StatusCode {
    let resp = o
        .client
        .put(o.url(&format!("/queues/{name}")))
        .bearer_auth(TOKEN)
        .json(&spec)
        .send()
        .await
        .unwrap();
    resp.status()
}

fn receipts(leased: &Value) -> Vec<Value> {
    leased["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["receipt"].clone())
        .collect()
}

#[tokio::test]
async fn send_lease_ack_and_retry_through_the_api() {
    let o = Origin::start().await;
    assert_eq!(declare(&o, "jobs", json!({})).await, StatusCode::CREATED);
    assert_eq!(
        declare(&o, "jobs", json!({"max_attempts": 2})).await,
        StatusCode::OK,
        "a second declare updates"
    );
    let messages: Vec<Value> = (0..5)
        .map(|i| json!({"body": format!("job {i}")}))
        .collect();
    let (status, sent) = post(&o, "/queues/jobs/messages", json!({ "messages": messages })).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let ids: Vec<u64> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);

    let (_, leased) = post(&o, "/queues/jobs/lease", json!({"max": 3})).await;
    let got: Vec<&str> = leased["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["job 0", "job 1", "job 2"]);
    let stats = get(&o, "/queues/jobs").await;
    assert_eq!(
        (stats["depth"].as_u64(), stats["in_flight"].as_u64()),
        (Some(5), Some(3))
    );

    let r = receipts(&leased);
    let (_, acked) = post(&o, "/queues/jobs/ack", json!({"receipts": [r[0], r[1]]})).await;
    assert_eq!(acked["settled"], json!([1, 2]));
    let (_, again) = post(&o, "/queues/jobs/ack", json!({"receipts": [r[0]]})).await;
    assert_eq!(
        (&again["settled"], &again["stale"]),
        (&json!([1]), &json!([])),
        "a retried ack of one delivery answers the same settlement"
    );
    assert_eq!(get(&o, "/queues/jobs").await["acked"], json!(2));

    // Message 3 fails twice (max_attempts = 2): the second nack retires it.
    let retry = json!({"retries": [{"receipt": r[2], "delay_s": 0}]});
    let (_, nacked) = post(&o, "/queues/jobs/nack", retry).await;
    assert_eq!(nacked["settled"], json!([3]));
    // Due order: 4 and 5 were due before 3's retry.
    let (_, leased) = post(&o, "/queues/jobs/lease", json!({"max": 10})).await;
    let ids: Vec<u64> = receipts(&leased)
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [4, 5, 3]);
    let r3 = &receipts(&leased)[2];
    assert_eq!(r3["attempt"].as_u64(), Some(2));
    let (_, nacked) = post(
        &o,
        "/queues/jobs/nack",
        json!({"retries": [{"receipt": r3}]}),
    )
    .await;
    assert_eq!(nacked["dead_lettered"], json!([3]));
    let dlq = get(&o, "/queues/jobs/dlq").await;
    assert_eq!(dlq["messages"][0]["body"], "job 2");
    let (status, moved) = post(&o, "/queues/jobs/dlq/replay", json!({})).await;
    assert_eq!((status, moved["count"].as_u64()), (StatusCode::OK, Some(1)));
    let peek = get(&o, "/queues/jobs/messages").await;
    let bodies: Vec<&str> = peek["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["job 3", "job 4", "job 2"],
        "the replay is a new message"
    );
    let r = receipts(&leased);
    post(&o, "/queues/jobs/ack", json!({"receipts": [r[0], r[1]]})).await;

    // Paused: sends are accepted, leases find nothing.
    assert_eq!(
        post(&o, "/queues/jobs/pause", json!(null)).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, none) = post(&o, "/queues/jobs/lease", json!({"max": 10})).await;
    assert_eq!(none["messages"], json!([]));
    post(&o, "/queues/jobs/resume", json!(null)).await;
    let (_, all) = post(&o, "/queues/jobs/lease", json!({"max": 10})).await;
    assert_eq!(all["messages"][0]["body"], "job 2");
    assert_eq!(all["messages"].as_array().unwrap().len(), 1);
    let listing = get(&o, "/queues").await;
    assert_eq!(listing["queues"][0]["name"], "jobs");
    let metrics = o
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "origin_queue_messages{queue=\"jobs\",state=\"in_flight\"} 1",
        "origin_queue_messages{queue=\"jobs\",state=\"dead\"} 0",
        "origin_queue_oldest_message_age_seconds{queue=\"jobs\"}",
    ] {
        assert!(metrics.contains(series), "no {series} in\n{metrics}");
    }
    let resp = o
        .client
        .delete(o.url("/queues/jobs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let metrics = o
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("queue=\"jobs\""),
        "a deleted queue's series stay"
    );
}

#[tokio::test]
async fn a_long_poll_wakes_when_a_message_arrives() {
    let o = Arc::new(Origin::start().await);
    declare(&o, "wake", json!({})).await;
    let poller = {
        let o = o.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let (_, leased) = post(&o, "/queues/wake/lease", json!({"max": 1, "wait_s": 10})).await;
            (leased, started.elapsed())
        })
    };
    // The poll is parked: nothing is due, so it proposed nothing.
    let stats = get(&o, "/queues/wake").await;
    assert_eq!(stats["in_flight"], 0);
    post(
        &o,
        "/queues/wake/messages",
        json!({"messages": [{"body": "hi"}]}),
    )
    .await;
    let (leased, waited) = poller.await.unwrap();
    assert_eq!(leased["messages"][0]["body"], "hi");
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
    // An empty wait ends with no message, not an error.
    let (status, empty) = post(&o, "/queues/wake/lease", json!({"wait_s": 1})).await;
    assert_eq!(
        (status, empty["messages"].clone()),
        (StatusCode::OK, json!([]))
    );
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field() {
    let o = Origin::start().await;
    declare(&o, "q", json!({})).await;
    let cases = [
        (
            "/queues/nope/messages",
            json!({"messages": [{"body": "x"}]}),
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            "/queues/q/messages",
            json!({"messages": [{"body": "x"}, {"body": "y", "delay_s": -1}]}),
            StatusCode::BAD_REQUEST,
            "messages[1].delay_s",
        ),
        (
            "/queues/q/messages",
            json!({"messages": [{"body": "x", "delay_s": 99_999_999}]}),
            StatusCode::BAD_REQUEST,
            "messages[0].delay_s",
        ),
        (
            "/queues/q/messages",
            json!({"messages": vec![json!({"body": "x"}); 1001]}),
            StatusCode::BAD_REQUEST,
            "`messages` holds 1001",
        ),
        (
            "/queues/q/messages",
            json!({"mesages": []}),
            StatusCode::BAD_REQUEST,
            "mesages",
        ),
        (
            "/queues/q/lease",
            json!({"max": 0}),
            StatusCode::BAD_REQUEST,
            "`max`",
        ),
        (
            "/queues/q/lease",
            json!({"wait_s": 60}),
            StatusCode::BAD_REQUEST,
            "`wait_s`",
        ),
        (
            "/queues/Bad_Name/messages",
            json!({"messages": []}),
            StatusCode::BAD_REQUEST,
            "queue name",
        ),
    ];
    for (path, body, want, mentions) in cases {
        let (status, answer) = post(&o, path, body).await;
        let text = answer.to_string();
        assert_eq!(status, want, "{path}: {text}");
        assert!(
            text.contains(mentions),
            "{path}: {text} should name {mentions}"
        );
    }
    let bad_json = o
        .client
        .post(o.url("/queues/q/messages"))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        declare(&o, "q", json!({"max_attempts": 0})).await,
        StatusCode::BAD_REQUEST
    );
    // Writes need a write token; the read token (the harness default)
    // only reads: 403 (valid, too narrow), not 401.
    let denied = o
        .client
        .post(o.url("/queues/q/messages"))
        .json(&json!({"messages": [{"body": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let anonymous = reqwest::get(o.url("/queues")).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_full_queue_refuses_the_send_with_429() {
    let o = Origin::start().await;
    declare(&o, "small", json!({"max_messages": 2})).await;
    let two = json!({"messages": [{"body": "a"}, {"body": "b"}]});
    assert_eq!(
        post(&o, "/queues/small/messages", two.clone()).await.0,
        StatusCode::OK
    );
    let (status, answer) = post(&o, "/queues/small/messages", two).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.to_string().contains("max_messages"), "{answer}");
    assert_eq!(get(&o, "/queues/small").await["depth"], 2);
}

/// What the producers and consumers of the failover drill saw.
#[derive(Default)]
struct Ledger {
    /// Ids of messages whose send was acknowledged.
    sent: BTreeSet<u64>,
    /// Id → how many acks of it the origin confirmed as settled.
    acked: BTreeMap<u64, u32>,
    delivered: BTreeSet<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_loses_no_acknowledged_send_and_acks_each_message_once() {
    let mut c = Cluster::start(3).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    let spec = json!({"visibility_timeout_s": 3, "max_attempts": 100});
    let resp = http
        .put(c.url(0, "/queues/drill"))
        .bearer_auth(TOKEN)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let urls: Vec<String> = (0..3).map(|i| c.url(i, "")).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let batches = 60;
    let per_batch = 20;

    // Two producers, each sending its batches to the regions in turn,
    // retrying a batch (same dedup ids) until one answer acknowledges it.
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let (http, urls, ledger) = (http.clone(), urls.clone(), ledger.clone());
            tokio::spawn(async move {
                for b in 0..batches / 2 {
                    let messages: Vec<Value> = (0..per_batch)
                        .map(|m| {
                            json!({"body": format!("p{p} b{b} m{m}"), "dedup_id": format!("{p}-{b}-{m}")})
                        })
                        .collect();
                    let body = json!({ "messages": messages });
                    for attempt in 0.. {
                        let url = format!("{}/queues/drill/messages", urls[(b + attempt) % 3]);
                        let answer = http.post(url).bearer_auth(TOKEN).json(&body).send().await;
                        let Ok(resp) = answer else { continue };
                        if resp.status() != StatusCode::OK {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        let sent: Value = resp.json().await.unwrap();
                        let mut l = ledger.lock().unwrap();
                        for m in sent["messages"].as_array().unwrap() {
                            l.sent.insert(m["id"].as_u64().unwrap());
                        }
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumers: Vec<_> = (0..3)
        .map(|i| {
            let (http, urls, ledger, done) =
                (http.clone(), urls.clone(), ledger.clone(), done.clone());
            tokio::spawn(async move {
                let mut turn = i;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    turn += 1;
                    let base = &urls[turn % 3];
                    let lease = http
                        .post(format!("{base}/queues/drill/lease"))
                        .bearer_auth(TOKEN)
                        .json(&json!({"max": 50, "wait_s": 1}))
                        .send()
                        .await;
                    let Ok(resp) = lease else { continue };
                    if resp.status() != StatusCode::OK {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    let leased: Value = resp.json().await.unwrap();
                    let r = receipts(&leased);
                    if r.is_empty() {
                        continue;
                    }
                    {
                        let mut l = ledger.lock().unwrap();
                        for receipt in &r {
                            l.delivered.insert(receipt["id"].as_u64().unwrap());
                        }
                    }
                    // Ack until an answer arrives; a lost answer's retry
                    // answers the same settlement, never a second one.
                    for attempt in 0..20 {
                        let url = format!("{}/queues/drill/ack", urls[(turn + attempt) % 3]);
                        let ack = http
                            .post(url)
                            .bearer_auth(TOKEN)
                            .json(&json!({ "receipts": r }))
                            .send()
                            .await;
                        let Ok(resp) = ack else { continue };
                        if resp.status() != StatusCode::OK {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        let settled: Value = resp.json().await.unwrap();
                        let mut l = ledger.lock().unwrap();
                        for id in settled["settled"].as_array().unwrap() {
                            *l.acked.entry(id.as_u64().unwrap()).or_default() += 1;
                        }
                        break;
                    }
                }
            })
        })
        .collect();

    // Kill the leader once a third of the batches are in.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger.lock().unwrap().sent.len() < batches * per_batch / 3 {
        assert!(Instant::now() < deadline, "producers made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = c.leader().expect("a leader");
    c.kill(leader).await;
    c.wait_for_leader(Some(leader), Duration::from_secs(5))
        .await;
    for p in producers {
        p.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (sent, acked, delivered) = {
            let l = ledger.lock().unwrap();
            (
                l.sent.clone(),
                l.acked.keys().copied().collect::<BTreeSet<_>>(),
                l.delivered.clone(),
            )
        };
        if sent.is_subset(&acked) {
            break;
        }
        // Whether the missing ones were ever leased tells a lost send from
        // a lost settlement.
        let missing: Vec<u64> = sent.difference(&acked).copied().collect();
        assert!(
            Instant::now() < deadline,
            "{} acknowledged sends never acked, e.g. {:?}; {} of them were delivered",
            missing.len(),
            &missing[..missing.len().min(5)],
            missing.iter().filter(|id| delivered.contains(id)).count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for consumer in consumers {
        consumer.await.unwrap();
    }
    {
        let l = ledger.lock().unwrap();
        assert_eq!(
            l.sent.len(),
            batches * per_batch,
            "dedup ids kept retried batches single"
        );
        assert!(l.sent.is_subset(&l.delivered));
        let twice: Vec<_> = l.acked.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "settled more than once: {twice:?}");
    }
    let survivor = (0..3).find(|i| c.is_up(*i)).unwrap();
    let stats: Value = c
        .client
        .get(c.url(survivor, "/queues/drill"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (stats["depth"].as_u64(), stats["dead_letters"].as_u64()),
        (Some(0), Some(0)),
        "{stats}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_bodies_live_as_blobs_and_come_back_whole_in_every_region() {
    let c = Cluster::start(3).await;
    let http = reqwest::Client::new();
    let resp = http
        .put(c.url(0, "/queues/big"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    // 3 MiB of text with characters JSON escapes, and a small message.
    let big: String = (0..3 * 1024 * 1024)
        .map(|i| ['a', '"', 'é', '\n', 'z'][i % 5])
        .collect();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(big.as_bytes()));
    let send = json!({"messages": [{"body": big}, {"body": "small"}]});
    let resp = http
        .post(c.url(1, "/queues/big/messages"))
        .bearer_auth(TOKEN)
        .json(&send)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );

    // The replicated state holds the reference, not the body.
    let state: Value = http
        .get(c.url(0, "/backup/state"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queue = &state["queues"][0];
    assert_eq!(queue["messages"], json!(["small"]), "{queue}");
    assert_eq!(
        queue["large_messages"],
        json!([{"sha256": sha, "size": big.len()}])
    );

    // Every region answers a peek with the whole body (fetching the blob
    // from a peer if it has no copy yet).
    for i in 0..3 {
        let page: Value = http
            .get(c.url(i, "/queues/big/messages"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            page["messages"][0]["body"].as_str(),
            Some(big.as_str()),
            "region {i}"
        );
        assert!(page["messages"][0].get("blob").is_none(), "region {i}");
    }
    let (status, leased) = post_at(&http, &c.url(2, "/queues/big/lease"), json!({"max": 10})).await;
    assert_eq!(status, StatusCode::OK);
    let bodies: Vec<&str> = leased["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, [big.as_str(), "small"]);

    // Only the origin makes references; past MAX_BODY is refused.
    let forged = json!({"messages": [{"body": "", "blob": {"sha256": sha, "size": 3}}]});
    let (status, answer) = post_at(&http, &c.url(0, "/queues/big/messages"), forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.to_string().contains("messages[0].blob"), "{answer}");
    let huge = "x".repeat(waypost_api::queues::MAX_BODY + 1);
    let (status, answer) = post_at(
        &http,
        &c.url(0, "/queues/big/messages"),
        json!({"messages": [{"body": huge}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer.to_string().contains("messages[0].body"), "{answer}");
}

async fn post_at(http: &reqwest::Client, url: &str, body: Value) -> (StatusCode, Value) {
    let resp = http
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
