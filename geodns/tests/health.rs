//! Health checks move traffic: a region whose health endpoint stops is
//! dropped from answers after `fall` failed checks and returns after `rise`
//! good ones; the TTL shrinks meanwhile; with no healthy region every
//! endpoint is returned.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::{HealthServer, TestServer, config_text, eventually, query, udp_exchange};

#[tokio::test(flavor = "multi_thread")]
async fn dead_region_fails_over_and_comes_back() {
    let mut health = HealthServer::start().await;
    let t = TestServer::start(&config_text(&format!(
        ", health = \"{}\", health_on_other_host = true",
        health.url()
    )))
    .await;
    t.wait_checked().await;
    let eu_client = ["cdn.waypost.test", "A", "-b", "127.0.0.2", "+noedns"];
    // eu is first for this client and healthy: it answers with the long TTL.
    let d = t.dig(&eu_client);
    assert_eq!(d.answer_data(), ["127.0.1.1"]);
    assert_eq!(d.ttls, [30]);

    health.stop();
    // Interval 100 ms, fall 2: gone well within 2 s.
    let took = eventually(Duration::from_secs(2), async || {
        t.dig(&eu_client).answer_data() == ["127.0.2.1"]
    })
    .await
    .expect("eu dropped from answers after its health endpoint stopped");
    eprintln!("failover after {took:?}");
    // The next-nearest region (us) answers, with the degraded TTL.
    assert_eq!(t.dig(&eu_client).ttls, [5]);
    let metrics = t.server.metrics_text();
    assert!(
        metrics.contains("geodns_endpoint_up{region=\"eu\",endpoint=\"127.0.1.1\"} 0"),
        "{metrics}"
    );
    // One change of health so far: the first check is not one.
    assert!(
        metrics.contains("geodns_health_changes_total{region=\"eu\",endpoint=\"127.0.1.1\"} 1"),
        "{metrics}"
    );

    health.restart().await;
    eventually(Duration::from_secs(2), async || {
        t.dig(&eu_client).answer_data() == ["127.0.1.1"]
    })
    .await
    .expect("eu back after rise");
    assert_eq!(t.dig(&eu_client).ttls, [30]);
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_healthy_region_answers_with_every_endpoint() {
    let mut health = HealthServer::start().await;
    let text = config_text("")
        .replace(r#"regions = ["w"]"#, r#"regions = ["w"], ttl = 20"#)
        .replace(
            r#"{ address = "127.0.4.2", weight = 1 }"#,
            &format!(
                r#"{{ address = "127.0.4.2", weight = 1, health = "{}", health_on_other_host = true }}"#,
                health.url()
            ),
        )
        .replace(
            r#"{ address = "127.0.4.1", weight = 3 }"#,
            &format!(
                r#"{{ address = "127.0.4.1", weight = 3, health = "{}", health_on_other_host = true }}"#,
                health.url()
            ),
        );
    let t = TestServer::start(&text).await;
    t.wait_checked().await;
    assert_eq!(t.dig(&["weighted.waypost.test", "A"]).answers.len(), 1);
    health.stop();
    eventually(Duration::from_secs(2), async || {
        t.dig(&["weighted.waypost.test", "A"]).answers.len() == 2
    })
    .await
    .expect("fail open: both endpoints");
    assert!(
        t.server
            .metrics_text()
            .contains("geodns_geo_fail_open_total")
    );
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_not_healthy() {
    // The health URL answers 302 to a page that answers 200: a login page
    // or a parking page is not the edge being up.
    let healthy = HealthServer::start().await;
    let redirect = HealthServer::redirecting(healthy.url()).await;
    let t = TestServer::start(&config_text(&format!(
        ", health = \"{}\", health_on_other_host = true",
        redirect.url()
    )))
    .await;
    t.wait_checked().await;
    let metrics = t.server.metrics_text();
    assert!(
        metrics.contains("geodns_endpoint_up{region=\"eu\",endpoint=\"127.0.1.1\"} 0"),
        "checked and down: {metrics}"
    );
    let eu_client = ["cdn.waypost.test", "A", "-b", "127.0.0.2", "+noedns"];
    eventually(Duration::from_secs(2), async || {
        t.dig(&eu_client).answer_data() == ["127.0.2.1"]
    })
    .await
    .expect("eu is down: its health check is redirected");
    t.server.shutdown().await;
}

/// Every query the server counted (all transports, types and codes).
fn queries_counted(t: &TestServer) -> u64 {
    t.server
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("geodns_queries_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Two threads sending geo queries to `server` as fast as they can until
/// `stop` (replies are left unread: the kernel drops them, as it would for
/// a client that has gone).
fn flood(server: SocketAddr, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let bytes = query("cdn.waypost.test.", RecordType::A).to_vec().unwrap();
    (0..2)
        .map(|_| {
            let (stop, bytes) = (stop.clone(), bytes.clone());
            std::thread::spawn(move || {
                let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = socket.send_to(&bytes, server);
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_happens_while_the_server_is_flooded() {
    let mut health = HealthServer::start().await;
    let t = TestServer::start(&config_text(&format!(
        ", health = \"{}\", health_on_other_host = true",
        health.url()
    )))
    .await;
    t.wait_checked().await;
    let eu_client = ["cdn.waypost.test", "A", "-b", "127.0.0.2", "+noedns"];
    assert_eq!(t.dig(&eu_client).answer_data(), ["127.0.1.1"]);

    let stop = Arc::new(AtomicBool::new(false));
    let flooders = flood(t.addr, &stop);
    // The flood is on when the server has counted thousands of its queries.
    let start = queries_counted(&t);
    eventually(Duration::from_secs(10), async || {
        queries_counted(&t) > start + 5_000
    })
    .await
    .expect("the flood reaches the server");

    let before = queries_counted(&t);
    let stopped = Instant::now();
    health.stop();
    // Interval 100 ms, fall 2: the same bound as on an idle server, with
    // room for a loaded two-core machine. The probe waits 200 ms for its
    // answer: the flood fills the sockets' queues, so a probe may be lost
    // like any client's query, and is then asked again.
    let probe = query("cdn.waypost.test.", RecordType::A);
    let took = eventually(Duration::from_secs(3), async || {
        let reply = udp_exchange(t.addr, "127.0.0.2", &probe, Duration::from_millis(200)).await;
        reply.is_some_and(|r| r.answers.len() == 1 && r.answers[0].data.to_string() == "127.0.2.1")
    })
    .await
    .expect("eu dropped from answers under load after its health endpoint stopped");
    let during = queries_counted(&t) - before;
    let rate = during as f64 / stopped.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    eprintln!("failover after {took:?} under {rate:.0} queries/s");
    assert!(
        during > 1_000,
        "the server was not under load: {during} queries"
    );
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_is_not_answered_before_its_first_check_passes() {
    // A health URL that accepts connections and never answers, checked
    // with a 5 s timeout: eu stays unknown for those seconds.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/healthz", silent.local_addr().unwrap());
    let text = config_text(&format!(
        ", health = \"{url}\", health_on_other_host = true"
    ))
    .replace("timeout = \"200ms\"", "timeout = \"5s\"");
    let t = TestServer::start(&text).await;
    let eu_client = ["cdn.waypost.test", "A", "-b", "127.0.0.2", "+noedns"];
    let d = t.dig(&eu_client);
    assert_eq!(
        d.answer_data(),
        ["127.0.2.1"],
        "an unchecked endpoint is not answered"
    );
    assert_eq!(d.ttls, [5], "the short TTL while health is unknown");
    assert!(
        !t.server
            .metrics_text()
            .contains("geodns_endpoint_up{region=\"eu\""),
        "no health is known yet"
    );
    drop(silent);
    t.server.shutdown().await;
}
