//! A region that lost its disk must not come back under its old id: with
//! an empty log it would vote as if it remembered, and a leader could be
//! elected without acknowledged writes. It refuses to start, naming the
//! way back (remove the id, add the region under a new one), which works.

mod common;

use std::time::Duration;

use common::TOKEN;
use common::cluster::Cluster;
use reqwest::StatusCode;

/// Waits until region `i` sees an incarnation registered for every region.
async fn wait_registered(c: &Cluster, i: usize, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.server(i).replica().status().incarnations.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "incarnations not registered: {:?}",
            c.server(i).replica().status().incarnations
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_region_refuses_its_old_id_and_rejoins_under_a_new_one() {
    let mut c = Cluster::start(3).await;
    let resp = c.put_kv(0, "n", "w", "acknowledged").await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    wait_registered(&c, 0, 3).await;

    let wiped = 2;
    c.kill(wiped).await;
    c.wipe(wiped);
    for attempt in 0..2 {
        let refused = c.try_restart(wiped).await.unwrap_err().to_string();
        assert!(refused.contains("empty"), "attempt {attempt}: {refused}");
        assert!(
            refused.contains("DELETE /cluster/members/3"),
            "attempt {attempt}: {refused}"
        );
    }
    assert!(!c.is_up(wiped));

    // The two others still commit; the old id goes, a new one joins.
    let resp = c.put_kv(0, "n", "after", "v").await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let removed = c
        .client
        .delete(c.url(0, "/cluster/members/3"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        removed.status(),
        StatusCode::OK,
        "{}",
        removed.text().await.unwrap()
    );
    let fresh = c.add_region().await;
    let added = c
        .client
        .post(c.url(0, "/cluster/members"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"id": fresh + 1, "addr": c.addr(fresh).to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        added.status(),
        StatusCode::OK,
        "{}",
        added.text().await.unwrap()
    );
    let read = c
        .client
        .get(c.url(fresh, "/kv/n/w?consistency=strong"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.text().await.unwrap(), "acknowledged");
    c.shutdown().await;
}
