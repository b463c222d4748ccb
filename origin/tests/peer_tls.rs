//! Mutual TLS between regions: only a certificate from the cluster's peer
//! CA that names a node gets past the handshake, a Raft RPC must come
//! from the node its certificate names, tokens never reach `/internal/*`,
//! certificates reload without a restart, and a three-region cluster
//! replicates, elects and loses nothing across a leader kill on it.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{Adjust, Cluster};
use common::pki::{Ca, Leaf, client};
use common::{Origin, TOKEN};
use origin::config::PeerListener;
use origin::{Config, Server};
use reqwest::StatusCode;

fn leaf<'a>(node: Option<u64>, names: &'a [&'a str]) -> Leaf<'a> {
    Leaf {
        node,
        names,
        expired: false,
    }
}

async fn single(ca: &Ca, dir: &std::path::Path) -> Origin {
    let files = ca.write(dir, "node-1", &leaf(Some(1), &["127.0.0.1"]));
    Origin::start_with(|c| {
        c.peer = Some(PeerListener {
            listen: "127.0.0.1:0".parse().unwrap(),
            limits: origin::listen::Limits::PEER,
            tls: Some(files),
        });
    })
    .await
}

fn peer_url(o: &Origin, path: &str) -> String {
    format!("https://{}{path}", o.server.peer_addr().unwrap())
}

#[tokio::test]
async fn only_a_peer_certificate_from_the_cluster_ca_gets_past_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("peer CA");
    let other = Ca::new("someone else's CA");
    let o = single(&ca, dir.path()).await;
    let url = peer_url(&o, "/internal/raft/read-index");

    let good = client(&ca, &ca, &leaf(Some(2), &[]));
    let answer = good.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    let refused = [
        ("another CA", client(&other, &ca, &leaf(Some(2), &[]))),
        (
            "no node id",
            client(&ca, &ca, &leaf(None, &["edge.example"])),
        ),
        (
            "expired",
            client(
                &ca,
                &ca,
                &Leaf {
                    node: Some(2),
                    names: &[],
                    expired: true,
                },
            ),
        ),
    ];
    for (what, stranger) in refused {
        let sent = stranger.get(&url).bearer_auth(TOKEN).send().await;
        assert!(sent.is_err(), "{what}: {sent:?}");
    }
    let no_cert = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    assert!(no_cert.get(&url).bearer_auth(TOKEN).send().await.is_err());
    let plaintext = url.replacen("https://", "http://", 1);
    let sent = reqwest::Client::new()
        .get(&plaintext)
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(sent.is_err(), "plaintext: {sent:?}");
    let failures = o
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        failures.contains("origin_tls_handshake_failures_total{listener=\"peer\"} 5"),
        "{failures}"
    );
    o.server.shutdown().await;
}

#[tokio::test]
async fn raft_rpcs_come_from_the_node_the_certificate_names_and_tokens_stay_out() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("peer CA");
    let o = single(&ca, dir.path()).await;
    let node2 = client(&ca, &ca, &leaf(Some(2), &[]));
    let vote = |from: u64| {
        serde_json::json!({
            "vote": {"leader_id": {"term": 1000, "node_id": from}, "committed": false},
            "last_log_id": null
        })
    };
    let url = peer_url(&o, "/internal/raft/vote");
    let forged = node2.post(&url).json(&vote(3)).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let reason = forged.text().await.unwrap();
    assert!(
        reason.contains("node 3") && reason.contains("node 2"),
        "{reason}"
    );
    let own = node2.post(&url).json(&vote(2)).send().await.unwrap();
    assert_eq!(
        own.status(),
        StatusCode::OK,
        "{}",
        own.text().await.unwrap()
    );

    // A peer certificate is not an operator credential...
    let members = peer_url(&o, "/cluster/members");
    let add = node2
        .post(&members)
        .json(&serde_json::json!({"id": 5, "addr": "127.0.0.1:1"}));
    assert_eq!(add.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let kv = node2
        .put(peer_url(&o, "/kv/ns/k"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(kv.status(), StatusCode::NOT_FOUND);
    // ... and operator tokens do not reach /internal/* on the public port.
    let public = o
        .client
        .get(o.url("/internal/raft/read-index"))
        .bearer_auth(TOKEN);
    assert_eq!(public.send().await.unwrap().status(), StatusCode::NOT_FOUND);
    o.server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_for_another_node_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("peer CA");
    let files = ca.write(dir.path(), "node-2", &leaf(Some(2), &["127.0.0.1"]));
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(data.path(), TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.peer = Some(PeerListener {
        listen: "127.0.0.1:0".parse().unwrap(),
        limits: origin::listen::Limits::PEER,
        tls: Some(files),
    });
    let msg = Server::start(config).await.unwrap_err().to_string();
    assert!(
        msg.contains("peer.cert_file") && msg.contains("node-2.pem") && msg.contains("node 2"),
        "{msg}"
    );
}

fn expiry(metrics: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("origin_peer_certificate_expiry_seconds "))
        .expect("expiry metric")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_new_ca_and_certificate_take_effect_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = Ca::new("old peer CA");
    let o = single(&old, dir.path()).await;
    let metrics = || async {
        o.get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = expiry(&metrics().await);
    assert!(before > 365 * 86400, "{before}");
    let url = peer_url(&o, "/internal/raft/read-index");

    let new = Ca::new("new peer CA");
    let (cert, key) = new.issue(&leaf(Some(1), &["127.0.0.1"]));
    std::fs::write(dir.path().join("node-1.key"), key).unwrap();
    std::fs::write(dir.path().join("node-1.pem"), cert).unwrap();
    std::fs::write(dir.path().join("ca.pem"), new.pem()).unwrap();
    let from_new = client(&new, &new, &leaf(Some(2), &[]));
    let deadline = Instant::now() + Duration::from_secs(15);
    while from_new.get(&url).send().await.is_err() {
        assert!(Instant::now() < deadline, "the new CA was not loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let from_old = client(&old, &old, &leaf(Some(2), &[]));
    assert!(from_old.get(&url).send().await.is_err());
    assert!(expiry(&metrics().await) > 0);
    o.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_regions_replicate_elect_and_lose_nothing_over_mutual_tls() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Arc::new(Ca::new("peer CA"));
    let dir = pki.path().to_path_buf();
    let adjust: Adjust = Arc::new(move |c: &mut Config| {
        let id = c.cluster.as_ref().unwrap().node_id;
        let ip = c.listen.ip().to_string();
        let files = ca.write(&dir, &format!("node-{id}"), &leaf(Some(id), &[&ip]));
        c.peer.as_mut().unwrap().tls = Some(files);
    });
    let mut c = Cluster::start_with(3, true, Some(adjust)).await;

    // An upload is pushed to a majority over mTLS before it is acknowledged.
    let put = c
        .client
        .put(c.url(1, "/assets/site.css"))
        .bearer_auth(TOKEN)
        .body("body { color: teal }")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let mut acked = BTreeSet::new();
    for n in 0..30 {
        let key = format!("k{n:03}");
        let sent = c.put_kv(n % 3, "log", &key, "v").await.unwrap();
        assert!(sent.status().is_success(), "{key}: {}", sent.status());
        acked.insert(key);
    }
    let old_leader = c.leader().unwrap();
    let killed_at = Instant::now();
    c.kill(old_leader).await;
    let new_leader = c
        .wait_for_leader(Some(old_leader), Duration::from_secs(5))
        .await;
    let failover = killed_at.elapsed();
    assert!(
        failover < Duration::from_secs(5),
        "new leader after {failover:?}"
    );
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old_leader).collect();
    for n in 30..60 {
        let key = format!("k{n:03}");
        let sent = c.put_kv(survivors[n % 2], "log", &key, "v").await.unwrap();
        assert!(sent.status().is_success(), "{key}: {}", sent.status());
        acked.insert(key);
    }
    for &i in &survivors {
        let present: BTreeSet<String> = c.kv_keys(i, "log", true).await.into_iter().collect();
        assert_eq!(present, acked, "region {i}");
        let asset = c
            .client
            .get(c.url(i, "/assets/site.css"))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.text().await.unwrap(), "body { color: teal }");
    }
    c.restart(old_leader).await;
    let commit = c
        .server(new_leader)
        .replica()
        .raft
        .metrics()
        .borrow()
        .last_applied
        .unwrap()
        .index;
    c.wait_applied(old_leader, commit, Duration::from_secs(10))
        .await;
    let present: BTreeSet<String> = c
        .kv_keys(old_leader, "log", false)
        .await
        .into_iter()
        .collect();
    assert_eq!(present, acked, "the restarted region");
    assert!(expiry(&c.metrics(0).await) > 0);
    c.shutdown().await;
}

#[tokio::test]
async fn raft_refuses_an_answer_from_another_node_than_the_one_it_called() {
    use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
    use origin::peer_tls::PeerTls;
    use origin::peers::http::PeerAuth;

    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("peer CA");
    let o = single(&ca, dir.path()).await;
    let mine = ca.write(dir.path(), "node-2", &leaf(Some(2), &[]));
    let http = PeerAuth::Tls(PeerTls::load(mine, 2).unwrap()).client(reqwest::Client::builder());
    let mut network = origin::raft::network::Network::new(http);
    let addr = o.server.peer_addr().unwrap().to_string();
    let option = RPCOption::new(Duration::from_secs(5));
    let vote = || openraft::raft::VoteRequest::new(openraft::Vote::new(1000, 2), None);
    // Node 1 answers at its address: what Raft asked for.
    let mut to_1 = network
        .new_client(1, &openraft::BasicNode::new(&addr))
        .await;
    to_1.vote(vote(), option.clone()).await.unwrap();
    // The same address believed to be node 3's: the answer is refused.
    let mut to_3 = network
        .new_client(3, &openraft::BasicNode::new(&addr))
        .await;
    let refused = to_3.vote(vote(), option).await.unwrap_err().to_string();
    assert!(refused.contains("node 1, not node 3"), "{refused}");
    o.server.shutdown().await;
}
