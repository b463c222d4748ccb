//! Commands and Raft RPCs a peer (anyone with the token) can send to
//! `/internal/raft/*`: each is refused before it changes anything, and
//! no read of what it named panics afterwards.

mod common;

use common::{Origin, TOKEN};
use origin::raft::{Command, Refusal};
use origin::store::AssetMeta;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

fn meta(sha256: &str, size: u64, last_modified: u64) -> AssetMeta {
    AssetMeta {
        format: origin::store::meta::FORMAT,
        sha256: sha256.into(),
        size,
        content_type: "text/plain".into(),
        cache_control: None,
        surrogate_keys: vec![],
        last_modified,
    }
}

async fn internal(o: &Origin, rpc: &str, body: serde_json::Value) -> reqwest::Response {
    o.client
        .post(o.url(&format!("/internal/raft/{rpc}")))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn forwarded_put(o: &Origin, path: &str, meta: AssetMeta) -> reqwest::Response {
    let command = Command::PutAsset {
        path: path.into(),
        meta,
        precondition: None,
    };
    internal(o, "write", serde_json::to_value(&command).unwrap()).await
}

#[tokio::test]
async fn forwarded_writes_that_would_break_reads_are_refused() {
    let o = Origin::start().await;
    let quote = format!("{}\"", "a".repeat(63));
    let resp = forwarded_put(&o, "quote.txt", meta(&quote, 1, 1)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("sha256"));
    let resp = forwarded_put(&o, "late.txt", meta(&"b".repeat(64), 1, u64::MAX)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("last_modified"));
    for path in ["/assets/quote.txt", "/assets/late.txt"] {
        let resp = o.get(path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let resp = o.get("/healthz").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_state_machine_refuses_what_skips_the_routes() {
    let o = Origin::start().await;
    let raft = &o.server.replica().raft;
    let quote = format!("{}\"", "a".repeat(63));
    let bad = Command::PutAsset {
        path: "x.txt".into(),
        meta: meta(&quote, 1, 1),
        precondition: None,
    };
    // Straight into the log, as an older leader or a crafted entry would.
    let written = raft.client_write(bad).await.unwrap();
    assert!(
        matches!(written.data.refused, Some(Refusal::Invalid { .. })),
        "{:?}",
        written.data
    );
    assert_eq!(written.data.seq, None);
    let resp = o.get("/assets/x.txt").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_wrong_size_for_a_real_hash_does_not_delete_the_blob() {
    let o = Origin::start().await;
    let body = "the only copy of these bytes";
    let resp = o.put("/assets/a.txt", body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let sha = hex::encode(Sha256::digest(body.as_bytes()));
    let wrong = meta(&sha, body.len() as u64 + 1, 1);
    let resp = forwarded_put(&o, "b.txt", wrong.clone()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Past the route (a blob this region does not hold is not checked
    // there), the state machine still refuses a second size.
    let raft = &o.server.replica().raft;
    let written = raft
        .client_write(Command::PutAsset {
            path: "b.txt".into(),
            meta: wrong,
            precondition: None,
        })
        .await
        .unwrap();
    assert!(written.data.refused.is_some(), "{:?}", written.data);
    let resp = o.get("/assets/b.txt").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = o.get("/assets/a.txt").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), body);
    let metrics = o
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("origin_blob_corrupt_total{kind=\"size\"} 1"),
        "{metrics}"
    );
}

/// Before the bound, an AppendEntries at term `u64::MAX` made this node a
/// follower of "node 99" at that term, and its next election panicked on
/// `term + 1`, stopping Raft for good.
#[tokio::test]
async fn rpcs_at_the_last_term_are_refused_and_the_node_keeps_working() {
    let o = Origin::start().await;
    let last = json!({"leader_id": {"term": u64::MAX, "node_id": 99}, "committed": true});
    let append = json!({"vote": last, "prev_log_id": null, "leader_commit": null, "entries": []});
    let vote = json!({"vote": last, "last_log_id": null});
    for (rpc, body) in [("append", append), ("vote", vote)] {
        let resp = internal(&o, rpc, body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{rpc}");
        assert!(resp.text().await.unwrap().contains("term"), "{rpc}");
    }
    let status = o.server.replica().status();
    assert!(status.term < 100, "term {}", status.term);
    assert_eq!(status.leader, Some(1));
    let resp = o.put("/kv/n/k", "v").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}

/// Before the bound, the second chunk made openraft seek the receive
/// buffer to 1 TiB and grow it there: the process aborted on allocation.
#[tokio::test]
async fn a_snapshot_chunk_past_the_received_bytes_is_refused() {
    let o = Origin::start().await;
    let term = o.server.replica().status().term;
    let chunk = |offset: u64| {
        json!({
            "vote": {"leader_id": {"term": term, "node_id": 1}, "committed": true},
            "meta": {
                "last_log_id": {"leader_id": {"term": term, "node_id": 1}, "index": 1},
                "last_membership": {"log_id": null, "membership": {"configs": [], "nodes": {}}},
                "snapshot_id": "hostile"
            },
            "offset": offset,
            "data": [1, 2, 3],
            "done": false
        })
    };
    let first = internal(&o, "snapshot", chunk(0)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let resp = internal(&o, "snapshot", chunk(1 << 40)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("offset"));
    // Resending what arrived is fine: a chunk may repeat received bytes.
    let again = internal(&o, "snapshot", chunk(3)).await;
    assert_eq!(again.status(), StatusCode::OK);
    let resp = o.get("/healthz").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
