//! Authoritative behaviour checked with real clients: `dig`, `kdig` and
//! hickory-resolver against the real server.

mod support;

use support::{TestServer, config_text};

#[tokio::test(flavor = "multi_thread")]
async fn answers_like_an_authoritative_server() {
    let t = TestServer::start(&config_text("")).await;

    let d = t.dig(&["static.waypost.test", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.flags.contains(&"aa".to_owned()), "{}", d.raw);
    assert_eq!(d.answer_data(), ["192.0.2.10"]);

    // Case-insensitive, and the answer keeps the client's spelling.
    let d = t.dig(&["StAtIc.WAYPOST.test", "AAAA"]);
    assert_eq!(d.answer_data(), ["2001:db8::10"]);
    assert_eq!(d.answers[0].0, "StAtIc.WAYPOST.test.");

    // NODATA: NOERROR, no answer, SOA in authority.
    let d = t.dig(&["static.waypost.test", "TXT"]);
    assert_eq!(d.status, "NOERROR");
    assert!(d.answers.is_empty());
    assert_eq!(d.authority[0].1, "SOA", "{}", d.raw);

    // NXDOMAIN with the SOA; an empty non-terminal is NODATA.
    let d = t.dig(&["missing.waypost.test", "A"]);
    assert_eq!(d.status, "NXDOMAIN");
    assert_eq!(d.authority[0].1, "SOA");
    assert!(d.flags.contains(&"aa".to_owned()));
    let d = t.dig(&["deep.waypost.test", "A"]);
    assert_eq!(d.status, "NOERROR");
    assert!(d.answers.is_empty());

    // Outside our zones: REFUSED, not authoritative.
    let d = t.dig(&["example.com", "A"]);
    assert_eq!(d.status, "REFUSED");
    assert!(!d.flags.contains(&"aa".to_owned()));

    // CNAME into a geo name is followed; CNAME out of the zone is not.
    let d = t.dig(&["www.waypost.test", "A", "-b", "127.0.0.3"]);
    assert_eq!(d.answers[0].1, "CNAME");
    assert_eq!(d.answers[1].2, "127.0.2.1");
    let d = t.dig(&["outside.waypost.test", "A"]);
    assert_eq!(d.answers.len(), 1);
    assert_eq!(d.answers[0].2, "example.com.");

    // Apex records, MX, CAA; ANY gets one RRset (RFC 8482), on UDP and
    // TCP alike.
    let d = t.dig(&["waypost.test", "SOA"]);
    assert_eq!(d.answers[0].1, "SOA");
    let d = t.dig(&["waypost.test", "NS"]);
    assert_eq!(d.answer_data(), ["ns1.waypost.test."]);
    let d = t.dig(&["waypost.test", "MX"]);
    assert_eq!(d.answer_data(), ["10 mail.waypost.test."]);
    let d = t.dig(&["waypost.test", "CAA"]);
    assert_eq!(d.answers[0].1, "CAA");
    for transport in ["+notcp", "+tcp"] {
        let d = t.dig(&["waypost.test", "ANY", transport]);
        let types: Vec<&str> = d.answers.iter().map(|a| a.1.as_str()).collect();
        assert_eq!(types, ["SOA"], "{}", d.raw);
        let d = t.dig(&["cdn.waypost.test", "ANY", transport, "-b", "127.0.0.3"]);
        assert_eq!(d.answer_data(), ["127.0.2.1"], "{}", d.raw);
    }

    // Over TCP too.
    let d = t.dig(&["static.waypost.test", "A", "+tcp"]);
    assert_eq!(d.answer_data(), ["192.0.2.10"]);

    // Without EDNS there is no OPT in the reply.
    let d = t.dig(&["static.waypost.test", "A", "+noedns"]);
    assert_eq!(d.status, "NOERROR");
    assert!(!d.raw.contains("OPT PSEUDOSECTION"), "{}", d.raw);
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_answers_truncate_over_udp_and_fit_over_tcp() {
    let t = TestServer::start(&config_text("")).await;
    let udp = t.dig(&["big.waypost.test", "TXT", "+ignore", "+bufsize=1232"]);
    assert!(udp.flags.contains(&"tc".to_owned()), "{}", udp.raw);
    let tcp = t.dig(&["big.waypost.test", "TXT", "+tcp"]);
    assert_eq!(tcp.answers.len(), 12, "{}", tcp.raw);
    // dig's default retries a truncated answer over TCP.
    let fallback = t.dig(&["big.waypost.test", "TXT"]);
    assert_eq!(fallback.answers.len(), 12);
    // A truncated reply keeps its OPT record, whatever room the last
    // record that fitted left (every payload size over one record's span).
    for payload in 512..760u16 {
        let mut q = support::query("big.waypost.test.", hickory_proto::rr::RecordType::TXT);
        q.edns.as_mut().unwrap().set_max_payload(payload);
        let reply =
            support::udp_exchange(t.addr, "127.0.0.1", &q, std::time::Duration::from_secs(2))
                .await
                .expect("a reply");
        assert!(reply.metadata.truncation, "{payload}");
        assert_eq!(
            reply.edns.as_ref().map(|e| e.max_payload()),
            Some(payload),
            "OPT kept at payload {payload}"
        );
    }
    // No EDNS: 512 bytes.
    let plain = t.dig(&["big.waypost.test", "TXT", "+ignore", "+noedns"]);
    assert!(plain.flags.contains(&"tc".to_owned()));
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kdig_sees_the_same_answers() {
    let t = TestServer::start(&config_text("")).await;
    let output = std::process::Command::new("kdig")
        .arg(format!("@{}", t.addr.ip()))
        .args([
            "-p",
            &t.addr.port().to_string(),
            "+subnet=216.160.83.0/24",
            "cdn.waypost.test",
            "A",
        ])
        .output()
        .expect("kdig is installed (Debian package knot-dnsutils; .ci/run installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("NOERROR"), "{text}");
    assert!(text.contains("127.0.2.1"), "{text}");
    assert!(text.contains("216.160.83.0/24/24"), "scope echoed: {text}");
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hickory_resolver_resolves_geo_and_static_names() {
    use hickory_proto::rr::RecordType;
    use hickory_resolver::Resolver;
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;

    let t = TestServer::start(&config_text("")).await;
    let mut ns = NameServerConfig::udp_and_tcp(t.addr.ip());
    for c in &mut ns.connections {
        c.port = t.addr.port();
    }
    let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
    let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .build()
        .unwrap();
    let ips: Vec<_> = resolver
        .lookup_ip("static.waypost.test.")
        .await
        .unwrap()
        .iter()
        .collect();
    assert!(ips.contains(&"192.0.2.10".parse().unwrap()), "{ips:?}");
    // The resolver queries from 127.0.0.1, which no override or database
    // entry covers: the first configured region answers.
    let v4 = resolver
        .lookup("cdn.waypost.test.", RecordType::A)
        .await
        .unwrap();
    let v4: Vec<String> = v4.answers().iter().map(|r| r.data.to_string()).collect();
    assert_eq!(v4, ["127.0.1.1"]);
    let missing = resolver.lookup_ip("missing.waypost.test.").await;
    assert!(missing.is_err());
    t.server.shutdown().await;
}
