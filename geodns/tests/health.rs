//! Health checks move traffic: a region whose health endpoint stops is
//! dropped from answers after `fall` failed checks and returns after `rise`
//! good ones; the TTL shrinks meanwhile; with no healthy region every
//! endpoint is returned.

mod support;

use std::time::Duration;

use support::{HealthServer, TestServer, config_text, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn dead_region_fails_over_and_comes_back() {
    let mut health = HealthServer::start().await;
    let t = TestServer::start(&config_text(&format!(", health = \"{}\"", health.url()))).await;
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
                r#"{{ address = "127.0.4.2", weight = 1, health = "{}" }}"#,
                health.url()
            ),
        )
        .replace(
            r#"{ address = "127.0.4.1", weight = 3 }"#,
            &format!(
                r#"{{ address = "127.0.4.1", weight = 3, health = "{}" }}"#,
                health.url()
            ),
        );
    let t = TestServer::start(&text).await;
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
    let t = TestServer::start(&config_text(&format!(", health = \"{}\"", redirect.url()))).await;
    let eu_client = ["cdn.waypost.test", "A", "-b", "127.0.0.2", "+noedns"];
    eventually(Duration::from_secs(2), async || {
        t.dig(&eu_client).answer_data() == ["127.0.2.1"]
    })
    .await
    .expect("eu is down: its health check is redirected");
    t.server.shutdown().await;
}
