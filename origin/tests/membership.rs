//! Regions added and removed at runtime: a new region waits to be added
//! instead of founding its own group, catches up, votes and serves reads;
//! after a removal the smaller group's majority keeps committing; bad
//! requests are refused with the reason.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::{Origin, TOKEN};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn status(c: &Cluster, i: usize) -> Value {
    let resp = c.client.get(c.url(i, "/cluster")).send().await.unwrap();
    resp.json().await.unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

async fn add(c: &Cluster, via: usize, member: Value) -> reqwest::Response {
    c.client
        .post(c.url(via, "/cluster/members"))
        .bearer_auth(TOKEN)
        .json(&member)
        .send()
        .await
        .unwrap()
}

async fn remove(c: &Cluster, via: usize, id: &str) -> reqwest::Response {
    c.client
        .delete(c.url(via, &format!("/cluster/members/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

async fn get_kv(c: &Cluster, i: usize, key: &str) -> String {
    let url = c.url(i, &format!("/kv/ns/{key}?consistency=strong"));
    let resp = c.client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{key} on region {i}");
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_a_fourth_region_then_remove_one() {
    let mut c = Cluster::start(3).await;
    assert_eq!(
        c.put_kv(0, "ns", "before", "1").await.unwrap().status(),
        StatusCode::CREATED
    );

    // The new region does not know a leader until it is added.
    let leader = c.leader().unwrap();
    let new = c.add_region().await;
    let waiting = status(&c, new).await;
    assert!(
        waiting["members"].as_array().unwrap().is_empty(),
        "{waiting}"
    );
    assert_eq!(
        waiting["leader"],
        Value::Null,
        "the new region founded its own group"
    );
    let health = c.client.get(c.url(new, "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Sent to a follower: forwarded to the leader like a write.
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let member = json!({"id": new + 1, "addr": c.addr(new).to_string()});
    let resp = add(&c, follower, member).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    let after: Value = resp.json().await.unwrap();
    assert_eq!(ids(&after["voters"]), [1, 2, 3, 4]);
    assert!(after["learners"].as_array().unwrap().is_empty());

    assert!(
        c.put_kv(1, "ns", "after-add", "2")
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert_eq!(get_kv(&c, new, "before").await, "1");
    assert_eq!(get_kv(&c, new, "after-add").await, "2");
    assert_eq!(ids(&status(&c, new).await["voters"]), [1, 2, 3, 4]);

    // Remove a region other than the leader and the new one, via the new
    // region (forwarded again).
    let leader = c.wait_for_leader(None, Duration::from_secs(5)).await;
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let resp = remove(&c, new, &(victim + 1).to_string()).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    let remaining: Vec<u64> = (0..4)
        .filter(|i| *i != victim)
        .map(|i| i as u64 + 1)
        .collect();
    assert_eq!(ids(&status(&c, leader).await["voters"]), remaining);
    c.kill(victim).await;

    // Three voters now: with one more down, two of three still commit
    // (two of the old four would not have been a majority).
    let other = (0..4)
        .find(|i| *i != victim && *i != leader && *i != new)
        .unwrap();
    c.kill(other).await;
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        c.put_kv(new, "ns", "after-remove", "3"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(get_kv(&c, leader, "after-remove").await, "3");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_membership_requests_get_reasons() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().unwrap();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let cases = [
        (
            json!({"id": 9, "addr": "nope"}),
            StatusCode::BAD_REQUEST,
            "host:port",
        ),
        (
            json!({"id": 0, "addr": "127.0.0.1:9"}),
            StatusCode::BAD_REQUEST,
            "start at 1",
        ),
        (json!({"id": 9}), StatusCode::BAD_REQUEST, "addr"),
        (
            json!({"id": 2, "addr": "127.0.0.1:9"}),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            json!({"id": 9, "addr": c.addr(follower).to_string()}),
            StatusCode::CONFLICT,
            "already the address",
        ),
        (
            json!({"id": 9, "addr": "127.0.0.1:1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot reach",
        ),
        (
            // A running origin that is not member 9.
            json!({"id": 9, "addr": "placeholder"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "is member 1, not 9",
        ),
    ];
    let other = Origin::start().await;
    for (mut member, code, reason) in cases {
        if member["addr"] == "placeholder" {
            member["addr"] = json!(other.server.local_addr().to_string());
        }
        let resp = add(&c, follower, member.clone()).await;
        assert_eq!(resp.status(), code, "{member}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(reason), "{member}: {text}");
    }
    let resp = c
        .client
        .post(c.url(0, "/cluster/members"))
        .json(&json!({"id": 9, "addr": "127.0.0.1:9"}))
        .send()
        .await
        .unwrap();
    // The harness client's read token is valid but not `admin`.
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let resp = remove(&c, follower, "42").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.text().await.unwrap().contains("no member 42"));
    assert_eq!(
        remove(&c, leader, "x").await.status(),
        StatusCode::BAD_REQUEST
    );

    // With one voter down, removing another would leave two voters of
    // which only the leader answers.
    let down = follower;
    let target = (0..3).find(|i| *i != leader && *i != down).unwrap();
    c.kill(down).await;
    let resp = remove(&c, leader, &(target + 1).to_string()).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("answer now"));
    assert_eq!(ids(&status(&c, leader).await["voters"]), [1, 2, 3]);
    c.shutdown().await;

    // A group of one keeps its last voter.
    let resp = other
        .client
        .delete(other.url("/cluster/members/1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("last voter"));
}
