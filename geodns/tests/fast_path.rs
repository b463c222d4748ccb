//! The UDP fast path answers exactly what the general path answers: every
//! case below is sent to a server with UDP workers and to one without
//! (hickory's own UDP loop), and the replies must be equal byte for byte;
//! the workers' counter says which cases the fast path answered itself,
//! which checks the rule written in `src/fast/mod.rs`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{HealthServer, TestServer, config_text, eventually, udp_raw};

const WAIT: Duration = Duration::from_millis(1500);

/// A query in wire format, built by hand so odd ones are easy to make.
struct Q {
    flags: [u8; 2],
    name: &'static str,
    qtype: u16,
    class: u16,
    /// OPT record (whole) or nothing.
    opt: Option<Vec<u8>>,
    extra_question: bool,
    trailing: &'static [u8],
}

fn q(name: &'static str, qtype: u16) -> Q {
    Q {
        flags: [0x01, 0x20], // RD and AD, as dig sends
        name,
        qtype,
        class: 1,
        opt: Some(opt(1232, 0, &[])),
        extra_question: false,
        trailing: &[],
    }
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// An OPT record: payload size, the TTL field (ext rcode, version, flags)
/// and raw options.
fn opt(payload: u16, ttl: u32, options: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41];
    o.extend_from_slice(&payload.to_be_bytes());
    o.extend_from_slice(&ttl.to_be_bytes());
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

fn option(code: u16, data: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend_from_slice(&(data.len() as u16).to_be_bytes());
    o.extend_from_slice(data);
    o
}

fn ecs(data: &[u8]) -> Option<Vec<u8>> {
    Some(opt(1232, 0, &option(8, data)))
}

impl Q {
    fn bytes(&self, id: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&self.flags);
        let qd: u16 = if self.extra_question { 2 } else { 1 };
        m.extend_from_slice(&qd.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, u8::from(self.opt.is_some())]);
        for _ in 0..qd {
            m.extend_from_slice(&wire_name(self.name));
            m.extend_from_slice(&self.qtype.to_be_bytes());
            m.extend_from_slice(&self.class.to_be_bytes());
        }
        if let Some(opt) = &self.opt {
            m.extend_from_slice(opt);
        }
        m.extend_from_slice(self.trailing);
        m
    }
}

const A: u16 = 1;
const NS: u16 = 2;
const SOA: u16 = 6;
const TXT: u16 = 16;
const MX: u16 = 15;
const AAAA: u16 = 28;
const AXFR: u16 = 252;
const ANY: u16 = 255;

/// (label, query, source address, answered by the fast path)
fn cases() -> Vec<(&'static str, Vec<u8>, &'static str, bool)> {
    let mut cases: Vec<(&'static str, Q, &'static str, bool)> = vec![
        ("static A", q("static.waypost.test", A), "127.0.0.1", true),
        (
            "static AAAA",
            q("static.waypost.test", AAAA),
            "127.0.0.1",
            true,
        ),
        (
            "0x20 static A",
            q("StAtIc.WAYPOST.test", A),
            "127.0.0.1",
            true,
        ),
        ("apex SOA", q("waypost.test", SOA), "127.0.0.1", true),
        ("apex NS", q("waypost.test", NS), "127.0.0.1", true),
        // The SOA's own names compress into the owner name, which in the
        // client's spelling no longer matches them: general path.
        ("0x20 apex SOA", q("WayPost.Test", SOA), "127.0.0.1", false),
        ("apex MX", q("waypost.test", MX), "127.0.0.1", true),
        ("NODATA", q("static.waypost.test", TXT), "127.0.0.1", false),
        (
            "NODATA lower A",
            q("ns1.waypost.test", AAAA),
            "127.0.0.1",
            true,
        ),
        (
            "NODATA 0x20",
            q("NS1.waypost.test", AAAA),
            "127.0.0.1",
            true,
        ),
        ("NXDOMAIN", q("missing.waypost.test", A), "127.0.0.1", false),
        (
            "empty non-terminal",
            q("deep.waypost.test", A),
            "127.0.0.1",
            false,
        ),
        ("ANY", q("waypost.test", ANY), "127.0.0.1", false),
        ("AXFR", q("waypost.test", AXFR), "127.0.0.1", false),
        ("outside", q("example.com", A), "127.0.0.1", false),
        ("CNAME to geo", q("www.waypost.test", A), "127.0.0.3", false),
        ("CNAME out", q("outside.waypost.test", A), "127.0.0.1", true),
        (
            "big TXT truncates",
            q("big.waypost.test", TXT),
            "127.0.0.1",
            false,
        ),
        (
            "geo by source eu",
            q("cdn.waypost.test", A),
            "127.0.0.2",
            true,
        ),
        (
            "geo by source us",
            q("cdn.waypost.test", A),
            "127.0.0.3",
            true,
        ),
        ("geo 0x20", q("CDN.waypost.TEST", A), "127.0.0.3", true),
        ("geo AAAA", q("cdn.waypost.test", AAAA), "127.0.0.1", true),
        (
            "geo AAAA NODATA",
            q("weighted.waypost.test", AAAA),
            "127.0.0.1",
            true,
        ),
        (
            "geo name MX",
            q("weighted.waypost.test", MX),
            "127.0.0.1",
            false,
        ),
    ];
    let with = |label, mut query: Q, edit: &dyn Fn(&mut Q), src, fast| {
        edit(&mut query);
        (label, query, src, fast)
    };
    let geo = || q("cdn.waypost.test", A);
    let more = vec![
        with(
            "ECS us /24",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 24, 0, 216, 160, 83]),
            "127.0.0.1",
            true,
        ),
        with(
            "ECS /25",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 25, 0, 216, 160, 83, 128]),
            "127.0.0.1",
            true,
        ),
        with(
            "ECS eu wide scope",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 24, 0, 81, 2, 69]),
            "127.0.0.1",
            true,
        ),
        with(
            "ECS override /16",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 24, 0, 10, 1, 2]),
            "127.0.0.1",
            true,
        ),
        with(
            "ECS v6",
            geo(),
            &|q| q.opt = ecs(&[0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 1]),
            "127.0.0.1",
            true,
        ),
        with(
            "ECS /0",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 0, 0]),
            "127.0.0.3",
            true,
        ),
        with(
            "ECS on static",
            q("static.waypost.test", A),
            &|q| q.opt = ecs(&[0, 1, 24, 0, 216, 160, 83]),
            "127.0.0.1",
            true,
        ),
        with(
            "ECS extra octet",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 24, 0, 216, 160, 83, 0]),
            "127.0.0.1",
            false,
        ),
        with(
            "ECS missing octet",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 24, 0, 216, 160]),
            "127.0.0.1",
            false,
        ),
        with(
            "ECS bits past prefix",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 20, 0, 216, 160, 83]),
            "127.0.0.1",
            false,
        ),
        with(
            "ECS scope set",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 24, 8, 216, 160, 83]),
            "127.0.0.1",
            false,
        ),
        with(
            "ECS family 3",
            geo(),
            &|q| q.opt = ecs(&[0, 3, 0, 0]),
            "127.0.0.1",
            false,
        ),
        with(
            "ECS prefix 33",
            geo(),
            &|q| q.opt = ecs(&[0, 1, 33, 0, 1, 2, 3, 4, 5]),
            "127.0.0.1",
            false,
        ),
        with(
            "two ECS",
            geo(),
            &|q| {
                let mut o = option(8, &[0, 1, 24, 0, 216, 160, 83]);
                o.extend(option(8, &[0, 1, 24, 0, 81, 2, 69]));
                q.opt = Some(opt(1232, 0, &o));
            },
            "127.0.0.1",
            false,
        ),
        with(
            "cookie",
            geo(),
            &|q| q.opt = Some(opt(1232, 0, &option(10, &[1, 2, 3, 4, 5, 6, 7, 8]))),
            "127.0.0.2",
            true,
        ),
        with(
            "NSID",
            geo(),
            &|q| q.opt = Some(opt(1232, 0, &option(3, &[]))),
            "127.0.0.2",
            false,
        ),
        with(
            "unknown option",
            geo(),
            &|q| q.opt = Some(opt(1232, 0, &option(65001, &[1]))),
            "127.0.0.2",
            false,
        ),
        with(
            "DO bit",
            geo(),
            &|q| q.opt = Some(opt(1232, 0x8000, &[])),
            "127.0.0.2",
            true,
        ),
        with(
            "EDNS Z flag",
            geo(),
            &|q| q.opt = Some(opt(1232, 0x0001, &[])),
            "127.0.0.2",
            false,
        ),
        with(
            "EDNS version 1",
            geo(),
            &|q| q.opt = Some(opt(1232, 0x0001_0000, &[])),
            "127.0.0.2",
            false,
        ),
        with(
            "payload 100",
            geo(),
            &|q| q.opt = Some(opt(100, 0, &[])),
            "127.0.0.2",
            true,
        ),
        with(
            "payload 4096",
            geo(),
            &|q| q.opt = Some(opt(4096, 0, &[])),
            "127.0.0.2",
            true,
        ),
        with("no EDNS", geo(), &|q| q.opt = None, "127.0.0.2", true),
        with(
            "no EDNS static",
            q("static.waypost.test", A),
            &|q| q.opt = None,
            "127.0.0.1",
            true,
        ),
        with("no flags", geo(), &|q| q.flags = [0, 0], "127.0.0.2", true),
        with("CD", geo(), &|q| q.flags = [0x01, 0x10], "127.0.0.2", true),
        with(
            "AA in query",
            geo(),
            &|q| q.flags = [0x05, 0],
            "127.0.0.2",
            false,
        ),
        with(
            "TC in query",
            geo(),
            &|q| q.flags = [0x03, 0],
            "127.0.0.2",
            false,
        ),
        with(
            "RA in query",
            geo(),
            &|q| q.flags = [0x01, 0x80],
            "127.0.0.2",
            false,
        ),
        with(
            "Z in query",
            geo(),
            &|q| q.flags = [0x01, 0x40],
            "127.0.0.2",
            false,
        ),
        with(
            "NOTIFY",
            geo(),
            &|q| q.flags = [0x21, 0x10],
            "127.0.0.2",
            false,
        ),
        with(
            "STATUS",
            geo(),
            &|q| q.flags = [0x11, 0x10],
            "127.0.0.2",
            false,
        ),
        with(
            "opcode 3",
            geo(),
            &|q| q.flags = [0x19, 0x10],
            "127.0.0.2",
            false,
        ),
        with(
            "opcode 15",
            geo(),
            &|q| q.flags = [0x79, 0x10],
            "127.0.0.2",
            false,
        ),
        with("class CH", geo(), &|q| q.class = 3, "127.0.0.2", false),
        with("class ANY", geo(), &|q| q.class = 255, "127.0.0.2", false),
        with(
            "two questions",
            geo(),
            &|q| q.extra_question = true,
            "127.0.0.2",
            false,
        ),
        with(
            "trailing byte",
            geo(),
            &|q| {
                q.opt = None;
                q.trailing = &[0];
            },
            "127.0.0.2",
            false,
        ),
        with(
            "unknown type",
            geo(),
            &|q| q.qtype = 65280,
            "127.0.0.2",
            false,
        ),
    ];
    cases.extend(more);
    let mut out: Vec<_> = cases
        .into_iter()
        .enumerate()
        .map(|(i, (label, query, src, fast))| (label, query.bytes(0x1000 + i as u16), src, fast))
        .collect();
    // A compression pointer in the question (to the header: garbage).
    let mut pointer = q("static.waypost.test", A).bytes(0x2001);
    let name_len = wire_name("static.waypost.test").len();
    pointer.splice(12..12 + name_len, [0xc0, 0x0c]);
    out.push(("pointer in question", pointer, "127.0.0.1", false));
    // A response, a short header, garbage.
    let mut response = q("static.waypost.test", A).bytes(0x2002);
    response[2] |= 0x80;
    out.push(("response", response, "127.0.0.1", false));
    out.push(("short", vec![1, 2, 3], "127.0.0.1", false));
    out.push(("garbage", vec![0xab; 64], "127.0.0.1", false));
    out
}

fn with_threads(text: &str, threads: usize) -> String {
    let text = text.replace(
        "metrics = \"127.0.0.1:0\"",
        &format!("metrics = \"127.0.0.1:0\"\nudp_threads = {threads}"),
    );
    if threads > 0 {
        return text;
    }
    // Rate limiting lives in the UDP workers.
    text.replace("[rate_limit]", "[rate_limit]\nresponses_per_second = 0")
}

/// Sum of `geodns_udp_fast_answers_total` in the server's metrics.
fn fast_answers(t: &TestServer) -> u64 {
    t.server
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("geodns_udp_fast_answers_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn exchange(addr: SocketAddr, src: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    udp_raw(addr, src, bytes, WAIT).await
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_and_general_paths_reply_byte_for_byte() {
    let fast = TestServer::start(&with_threads(&config_text(""), 2)).await;
    let general = TestServer::start(&with_threads(&config_text(""), 0)).await;
    let mut before = fast_answers(&fast);
    let mut fast_count = 0;
    for (label, bytes, src, expect_fast) in cases() {
        let (a, b) = tokio::join!(
            exchange(fast.addr, src, &bytes),
            exchange(general.addr, src, &bytes)
        );
        assert_eq!(
            a, b,
            "{label}: fast path (left) and general path (right) differ"
        );
        let after = fast_answers(&fast);
        assert_eq!(
            after - before,
            u64::from(expect_fast),
            "{label}: answered by the fast path?"
        );
        fast_count += u64::from(expect_fast);
        before = after;
    }
    assert!(fast_count > 20, "the fast path took part: {fast_count}");
    fast.server.shutdown().await;
    general.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_answers_follow_health_and_reloads() {
    let mut health = HealthServer::start().await;
    let text = with_threads(
        &config_text(&format!(
            ", health = \"{}\", health_on_other_host = true",
            health.url()
        )),
        1,
    );
    let t = TestServer::start(&text).await;
    t.wait_checked().await;
    let eu_client = ["cdn.waypost.test", "A", "-b", "127.0.0.2", "+noedns"];
    assert_eq!(t.dig(&eu_client).answer_data(), ["127.0.1.1"]);
    let fast_before = fast_answers(&t);
    health.stop();
    eventually(Duration::from_secs(3), async || {
        t.dig(&eu_client).answer_data() == ["127.0.2.1"]
    })
    .await
    .expect("the fast path moved eu's clients to us");
    assert_eq!(t.dig(&eu_client).ttls, [5], "degraded TTL");
    assert!(fast_answers(&t) > fast_before, "answered by the fast path");

    std::fs::write(&t.config_path, text.replace("192.0.2.10", "192.0.2.77")).unwrap();
    t.server.reload().await.unwrap();
    assert_eq!(
        t.dig(&["static.waypost.test", "A"]).answer_data(),
        ["192.0.2.77"],
        "a reload reaches the prepared answers"
    );
    let metrics = t.server.metrics_text();
    assert!(
        metrics.contains("geodns_queries_total{qtype=\"A\",rcode=\"NOERROR\",transport=\"udp\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("geodns_geo_answers_total{region=\"us\"}"),
        "{metrics}"
    );
    t.server.shutdown().await;
}
