//! Clients from different places get their region: by EDNS Client Subnet
//! (database and overrides) and by source address on 127.0.0.x; the ECS
//! scope is echoed; weights hold over many queries.

mod support;

use std::time::Duration;

use hickory_proto::rr::RecordType;
use support::{TestServer, config_text, query, udp_exchange};

#[tokio::test(flavor = "multi_thread")]
async fn ecs_picks_the_region_and_echoes_the_scope() {
    let t = TestServer::start(&config_text("")).await;

    // Milton, WA (database) → us; its /24 differs from its neighbours.
    let d = t.dig(&["cdn.waypost.test", "A", "+subnet=216.160.83.0/24"]);
    assert_eq!(d.answer_data(), ["127.0.2.1"], "{}", d.raw);
    assert_eq!(d.ecs.as_deref(), Some("216.160.83.0/24/24"));

    // A longer source prefix inside the same network: scope stays /24.
    let d = t.dig(&["cdn.waypost.test", "A", "+subnet=216.160.83.128/25"]);
    assert_eq!(d.ecs.as_deref(), Some("216.160.83.128/25/24"));

    // London → eu, which is also where unknown clients go, so the scope is
    // wider than the /24 asked for: resolvers may share the answer.
    let d = t.dig(&["cdn.waypost.test", "A", "+subnet=81.2.69.0/24"]);
    assert_eq!(d.answer_data(), ["127.0.1.1"]);
    let scope: u8 = d
        .ecs
        .as_deref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(scope < 24, "{:?}", d.ecs);

    // Tokyo over IPv6 ECS → ap (nearest to Tokyo).
    let d = t.dig(&["cdn.waypost.test", "A", "+subnet=2001:db8:1::/48"]);
    assert_eq!(d.answer_data(), ["127.0.3.1"], "{}", d.raw);
    assert_eq!(d.ecs.as_deref(), Some("2001:db8:1::/48/32"));

    // The same /24 as a v4-mapped IPv6 subnet (family 2): same region,
    // and the scope counts IPv6 bits.
    let mut ecs = vec![0, 2, 120, 0];
    ecs.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 216, 160, 83]);
    let reply = udp_exchange(
        t.addr,
        "127.0.0.1",
        &support::with_raw_ecs(query("cdn.waypost.test.", RecordType::A), ecs),
        Duration::from_secs(2),
    )
    .await
    .expect("reply");
    assert_eq!(reply.answers[0].data.to_string(), "127.0.2.1");
    let echoed = reply.edns.as_ref().and_then(|e| {
        match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet) {
            Some(hickory_proto::rr::rdata::opt::EdnsOption::Subnet(s)) => Some(*s),
            _ => None,
        }
    });
    let echoed = echoed.expect("ECS echoed");
    assert_eq!((echoed.source_prefix(), echoed.scope_prefix()), (120, 120));

    // Override 10.1.0.0/16 → ap, scope /16.
    let d = t.dig(&["cdn.waypost.test", "A", "+subnet=10.1.2.0/24"]);
    assert_eq!(d.answer_data(), ["127.0.3.1"]);
    assert_eq!(d.ecs.as_deref(), Some("10.1.2.0/24/16"));

    // A static name does not depend on the client: scope 0.
    let d = t.dig(&["static.waypost.test", "A", "+subnet=216.160.83.0/24"]);
    assert_eq!(d.ecs.as_deref(), Some("216.160.83.0/24/0"));

    // AAAA of a geo name: the nearest region with IPv6 endpoints (us has
    // none, so Milton goes to eu); NODATA when no region has any.
    let d = t.dig(&["cdn.waypost.test", "AAAA", "+subnet=81.2.69.0/24"]);
    assert_eq!(d.answer_data(), ["fd00::1"]);
    let d = t.dig(&["cdn.waypost.test", "AAAA", "+subnet=216.160.83.0/24"]);
    assert_eq!(d.answer_data(), ["fd00::1"]);
    let d = t.dig(&["weighted.waypost.test", "AAAA"]);
    assert_eq!(d.status, "NOERROR");
    assert!(d.answers.is_empty());
    assert_eq!(d.authority[0].1, "SOA");

    // Geo answers carry the short geo TTL.
    let d = t.dig(&["cdn.waypost.test", "A"]);
    assert_eq!(d.ttls, [30]);
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn source_address_decides_without_ecs() {
    let t = TestServer::start(&config_text("")).await;
    let d = t.dig(&["cdn.waypost.test", "A", "-b", "127.0.0.2", "+noedns"]);
    assert_eq!(d.answer_data(), ["127.0.1.1"], "{}", d.raw);
    let d = t.dig(&["cdn.waypost.test", "A", "-b", "127.0.0.3", "+noedns"]);
    assert_eq!(d.answer_data(), ["127.0.2.1"], "{}", d.raw);
    // ECS with source prefix 0 means "do not use my address": the source
    // address decides and the scope is 0.
    let d = t.dig(&[
        "cdn.waypost.test",
        "A",
        "-b",
        "127.0.0.3",
        "+subnet=0.0.0.0/0",
    ]);
    assert_eq!(d.answer_data(), ["127.0.2.1"], "{}", d.raw);
    assert_eq!(d.ecs.as_deref(), Some("0.0.0.0/0/0"));
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_hold_over_many_queries() {
    let t = TestServer::start(&config_text("")).await;
    let (mut heavy, mut light) = (0, 0);
    for _ in 0..800 {
        let reply = udp_exchange(
            t.addr,
            "127.0.0.1",
            &query("weighted.waypost.test.", RecordType::A),
            Duration::from_secs(2),
        )
        .await
        .expect("reply");
        assert_eq!(reply.answers.len(), 1, "max_answers = 1");
        match reply.answers[0].data.to_string().as_str() {
            "127.0.4.1" => heavy += 1,
            "127.0.4.2" => light += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Weight 3 vs 1: expect 600 vs 200; allow generous randomness.
    assert!((520..=680).contains(&heavy), "heavy {heavy} light {light}");
    t.server.shutdown().await;
}
