//! A region that lost its disk must not come back under its old id: with
//! an empty log it would vote as if it remembered, and a leader could be
//! elected without acknowledged writes. It refuses to start, naming the
//! way back (remove the id, add the region under a new one), which works.
//! When no other region answers at its start, it cannot tell: it founds
//! nothing, refuses every vote, and stops its Raft node once a region
//! that knows its id answers.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_region_alone_neither_founds_nor_votes_then_stops_when_the_cluster_answers() {
    let mut c = Cluster::start(3).await;
    let resp = c.put_kv(0, "n", "w", "acknowledged").await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    for i in 0..3 {
        wait_registered(&c, i, 3).await;
    }
    // The two followers: one loses its disk, the other will need an
    // election to lead (a restarted leader resumes its own term).
    let leader = c.leader().expect("a leader");
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (wiped, other) = (followers[0], followers[1]);

    // Every region goes down; the wiped one comes back first, with nobody
    // to ask.
    for i in 0..3 {
        c.kill(i).await;
    }
    c.wipe(wiped);
    c.try_restart(wiped)
        .await
        .expect("with no peer answering it starts, founding nothing");
    let raft = c.server(wiped).replica().raft.clone();
    assert!(
        raft.metrics().borrow().last_log_index.is_none(),
        "it founded a cluster of its own"
    );
    // A candidate asks for its vote: refused.
    let candidate = other as u64 + 1;
    let vote = openraft::raft::VoteRequest {
        vote: openraft::Vote::new(7, candidate),
        last_log_id: Some(openraft::LogId::new(
            openraft::CommittedLeaderId::new(1, candidate),
            3,
        )),
    };
    let refused = c.server(wiped).replica().receive_vote(vote).await;
    assert!(
        matches!(refused, Err(origin::raft::intake::BadRpc::BlankVoter)),
        "{refused:?}"
    );

    // The other follower (which remembers) comes back: it cannot lead
    // without a second vote, and it answers the wiped region's probe with
    // that region's registered incarnation: the wiped region stops Raft.
    c.restart(other).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while raft.metrics().borrow().state != openraft::ServerState::Shutdown {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the wiped region's Raft node still runs: {:?}",
            raft.metrics().borrow()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(raft.metrics().borrow().last_log_index.is_none());
    let m = c.server(other).replica().raft.metrics().borrow().clone();
    assert!(
        m.state != openraft::ServerState::Leader && m.current_leader != Some(candidate),
        "a follower led with the vote of a region that lost its disk: {m:?}"
    );
    c.shutdown().await;
}
