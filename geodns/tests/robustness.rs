//! Bad input never kills the server: malformed packets, bogus EDNS, bad
//! ECS (FORMERR as RFC 7871 requires), unknown classes and opcodes; bad
//! configs are refused with the field named, and a bad reload keeps the
//! old configuration serving.

mod support;

use std::time::Duration;

use geodns::Config;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use support::{
    TestServer, class, config_text, eventually, query, udp_exchange, udp_raw, with_raw_ecs,
};

const WAIT: Duration = Duration::from_secs(2);

async fn rcode_of(t: &TestServer, message: &Message) -> ResponseCode {
    udp_exchange(t.addr, "127.0.0.1", message, WAIT)
        .await
        .expect("a reply")
        .metadata
        .response_code
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_ecs_is_formerr() {
    let t = TestServer::start(&config_text("")).await;
    let q = || query("cdn.waypost.test.", RecordType::A);
    // family 1, source /24, scope 0, 3 address bytes: fine.
    assert_eq!(
        rcode_of(&t, &with_raw_ecs(q(), vec![0, 1, 24, 0, 216, 160, 83])).await,
        ResponseCode::NoError
    );
    // Non-zero scope in a query.
    assert_eq!(
        rcode_of(&t, &with_raw_ecs(q(), vec![0, 1, 24, 8, 216, 160, 83])).await,
        ResponseCode::FormErr
    );
    // Address bits set beyond the source prefix.
    assert_eq!(
        rcode_of(&t, &with_raw_ecs(q(), vec![0, 1, 20, 0, 216, 160, 83])).await,
        ResponseCode::FormErr
    );
    // Unknown family.
    assert_eq!(
        rcode_of(&t, &with_raw_ecs(q(), vec![0, 9, 24, 0, 1, 2, 3])).await,
        ResponseCode::FormErr
    );
    // More ADDRESS octets than SOURCE PREFIX-LENGTH needs (RFC 7871 §6).
    assert_eq!(
        rcode_of(&t, &with_raw_ecs(q(), vec![0, 1, 24, 0, 216, 160, 83, 0])).await,
        ResponseCode::FormErr
    );
    assert_eq!(
        rcode_of(&t, &with_raw_ecs(q(), vec![0, 1, 0, 0, 0])).await,
        ResponseCode::FormErr
    );
    // Fewer than it needs.
    assert_eq!(
        rcode_of(&t, &with_raw_ecs(q(), vec![0, 1, 24, 0, 216, 160])).await,
        ResponseCode::FormErr
    );
    // Source prefix longer than the family allows.
    assert_eq!(
        rcode_of(&t, &with_raw_ecs(q(), vec![0, 1, 33, 0, 1, 2, 3, 4, 5])).await,
        ResponseCode::FormErr
    );
    // Still serving.
    assert_eq!(rcode_of(&t, &q()).await, ResponseCode::NoError);
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_queries_get_error_codes() {
    let t = TestServer::start(&config_text("")).await;
    let chaos = class(query("static.waypost.test.", RecordType::TXT), DNSClass::CH);
    assert_eq!(rcode_of(&t, &chaos).await, ResponseCode::Refused);
    for op_code in [OpCode::Notify, OpCode::Status, OpCode::Unknown(3)] {
        let mut odd = query("waypost.test.", RecordType::SOA);
        odd.metadata.op_code = op_code;
        odd.metadata.recursion_desired = true;
        odd.metadata.checking_disabled = true;
        let reply = udp_exchange(t.addr, "127.0.0.1", &odd, WAIT)
            .await
            .expect("a reply");
        assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
        let m = reply.metadata;
        assert!(
            !(m.recursion_desired || m.checking_disabled || m.authoritative || m.truncation),
            "NOTIMP echoes no flag of the query: {m:?}"
        );
    }
    assert_eq!(
        rcode_of(&t, &query("waypost.test.", RecordType::AXFR)).await,
        ResponseCode::Refused
    );
    let mut v1 = query("waypost.test.", RecordType::SOA);
    v1.edns.as_mut().unwrap().set_version(1);
    // BADVERS and BADSIG share code 16; hickory decodes it as BADSIG.
    assert_eq!(u16::from(rcode_of(&t, &v1).await), 16);
    let mut two = query("waypost.test.", RecordType::SOA);
    two.add_query(query("static.waypost.test.", RecordType::A).queries[0].clone());
    assert_eq!(rcode_of(&t, &two).await, ResponseCode::FormErr);
    // An unknown EDNS option is ignored.
    let mut bogus = query("static.waypost.test.", RecordType::A);
    bogus.edns.as_mut().unwrap().options_mut().insert(
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(65001, vec![1, 2, 3]),
    );
    assert_eq!(rcode_of(&t, &bogus).await, ResponseCode::NoError);
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_does_not_kill_the_server() {
    let t = TestServer::start(&config_text("")).await;
    let good = query("static.waypost.test.", RecordType::A)
        .to_vec()
        .unwrap();
    let mut packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 3],
        good[..good.len() / 2].to_vec(),
        vec![0xab; 512],
    ];
    // Header claims 1 question, then 200 one-byte labels with no end.
    let mut labels = good[..12].to_vec();
    for _ in 0..200 {
        labels.extend_from_slice(&[1, b'a']);
    }
    packets.push(labels);
    // A compression pointer loop.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    packets.push(looped);
    for packet in &packets {
        if let Some(reply) = udp_raw(t.addr, "127.0.0.1", packet, Duration::from_millis(300)).await
        {
            let reply = Message::from_vec(&reply).expect("a reply is a valid message");
            assert_ne!(reply.metadata.response_code, ResponseCode::NoError);
        }
    }
    // Garbage on TCP too: a length prefix announcing more than is sent.
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(t.server.tcp_addrs()[0])
            .await
            .unwrap();
        s.write_all(&[0x10, 0x00, 1, 2, 3]).await.unwrap();
    }
    assert_eq!(
        t.dig(&["static.waypost.test", "A"]).answer_data(),
        ["192.0.2.10"]
    );
    assert_eq!(
        t.dig(&["static.waypost.test", "A", "+tcp"]).answer_data(),
        ["192.0.2.10"]
    );
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_on_file_change_and_bad_reload_keeps_serving() {
    let t = TestServer::start(&config_text("")).await;
    let text = config_text("").replace("192.0.2.10", "192.0.2.99");
    std::fs::write(&t.config_path, &text).unwrap();
    eventually(Duration::from_secs(5), async || {
        t.dig(&["static.waypost.test", "A"]).answer_data() == ["192.0.2.99"]
    })
    .await
    .expect("file change picked up");

    std::fs::write(
        &t.config_path,
        text.replace(r#"region = "ap""#, r#"region = "mars""#),
    )
    .unwrap();
    let err = t.server.reload().await.unwrap_err().to_string();
    assert!(
        err.contains("geoip.overrides[2].region") && err.contains("mars"),
        "{err}"
    );
    assert_eq!(
        t.dig(&["static.waypost.test", "A"]).answer_data(),
        ["192.0.2.99"]
    );
    assert!(
        t.server
            .metrics_text()
            .contains("geodns_reloads_total{result=\"error\"}")
    );
    t.server.shutdown().await;
}

#[test]
fn invalid_configs_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.mmdb"), support::test_database()).unwrap();
    let path = dir.path().join("geo.toml");
    let base = config_text("");
    let cases = [
        (
            base.replace(r#"regions = ["w"]"#, r#"regions = ["nowhere"]"#),
            "zones[0].geo[1].regions",
        ),
        (
            base.replace("10.1.0.0/16", "10.1.0.0/99"),
            "geoip.overrides[2].cidr",
        ),
        (base.replace("test.mmdb", "missing.mmdb"), "geoip.database"),
        // A health URL on another host than the endpoint, not declared so.
        (
            config_text(", health = \"http://127.0.0.9:9080/healthz\""),
            "regions.eu.endpoints[0].health",
        ),
        (
            config_text(", health = \"http://edge.example.net/healthz\""),
            "health_on_other_host = true",
        ),
        (
            base.replace("192.0.2.10", "not-an-ip"),
            "zones[0].records[5].value",
        ),
        (
            base.replace("query_log = true", "query_log = true\nbogus = 1"),
            "bogus",
        ),
        // A geo name at the apex would replace SOA and NS.
        (
            base.replace(r#"name = "cdn", regions"#, r#"name = "@", regions"#),
            "zones[0].geo[0].name",
        ),
        // A CNAME beside other data, named by the later record.
        (
            base.replace(
                r#"{ name = "static", type = "AAAA""#,
                r#"{ name = "www", type = "AAAA""#,
            ),
            "zones[0].records[6]`: `www.waypost.test.` has a CNAME and other records (zones[0].records[4])",
        ),
        // A CNAME at the apex.
        (
            base.replace(
                r#"{ name = "outside", type = "CNAME""#,
                r#"{ name = "@", type = "CNAME""#,
            ),
            "zones[0].records[8]",
        ),
    ];
    for (text, field) in cases {
        let err = Config::parse(&path, &text).unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
        assert!(err.contains("geo.toml"), "{err}");
    }
}
