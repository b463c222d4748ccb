//! GeoDNS on the open internet (issue 16 item 10): response rate limiting
//! with slip to TC, TCP connection caps overall and per client, timeouts a
//! client cannot extend forever, and accept() backing off when the process
//! is out of file descriptors. Every load loop here is bounded in count.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use support::{TestServer, config_text, eventually, query, udp_exchange};

/// The value of the first sample whose line starts with `prefix`.
fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn limited_config(rate: &str, listen: &str) -> String {
    config_text("")
        .replace(
            "[rate_limit]\nexempt = [\"127.0.0.0/8\"]",
            &format!("[rate_limit]\n{rate}\nexempt = [\"127.0.0.1/32\"]"),
        )
        .replace(
            "metrics = \"127.0.0.1:0\"",
            &format!("metrics = \"127.0.0.1:0\"\n{listen}"),
        )
}

/// A TCP connection from `source`.
async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(server).await.unwrap()
}

/// One query over `stream`, its reply if one came within `wait`.
async fn tcp_query(stream: &mut TcpStream, message: &Message, wait: Duration) -> Option<Message> {
    let bytes = message.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.ok()?;
    let read = async {
        let len = stream.read_u16().await.ok()?;
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await.ok()?;
        Message::from_vec(&buf).ok()
    };
    tokio::time::timeout(wait, read).await.ok()?
}

/// The next length-prefixed reply on `stream`, if one comes within 5 s.
async fn read_reply(stream: &mut TcpStream) -> Option<Message> {
    let read = async {
        let len = stream.read_u16().await.ok()?;
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await.ok()?;
        Message::from_vec(&buf).ok()
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()?
}

/// Whether the server closed `stream` (EOF) within `wait`.
async fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_from_one_prefix_is_limited_and_slips_to_tc_while_tcp_and_others_are_answered() {
    let t = TestServer::start(&limited_config("responses_per_second = 20\nslip = 2", "")).await;
    let flood = std::sync::Arc::new(UdpSocket::bind("127.0.9.9:0").await.unwrap());
    // Replies are read while the flood is sent, so none is lost to a full
    // receive buffer here.
    let receiver = tokio::spawn({
        let flood = flood.clone();
        async move {
            let (mut answered, mut truncated) = (0usize, 0usize);
            let mut buf = vec![0u8; 4096];
            while let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(500), flood.recv_from(&mut buf)).await
            {
                let reply = Message::from_vec(&buf[..n]).expect("a valid reply");
                if reply.metadata.truncation {
                    assert!(reply.answers.is_empty(), "a slip carries no records");
                    assert!(reply.edns.is_some(), "a slip keeps the OPT record");
                    assert_eq!(reply.queries[0].name().to_string(), "cdn.waypost.test.");
                    truncated += 1;
                } else {
                    assert_eq!(reply.answers.len(), 1);
                    answered += 1;
                }
            }
            (answered, truncated)
        }
    });
    let bytes = query("cdn.waypost.test.", RecordType::A).to_vec().unwrap();
    const SENT: usize = 300;
    for _ in 0..SENT {
        flood.send_to(&bytes, t.addr).await.unwrap();
    }
    let (answered, truncated) = receiver.await.unwrap();
    // 20 per second; the flood may straddle one window boundary.
    assert!(
        (20..=40).contains(&answered),
        "answered {answered} of {SENT}"
    );
    // Every 2nd limited reply slips, the others are dropped.
    assert!(truncated >= 60, "{truncated} truncated");
    assert!(answered + truncated < SENT - 60, "{answered} + {truncated}");

    // The flooded prefix still gets answers over TCP, another prefix and
    // an exempt address over UDP.
    let mut tcp = connect_from("127.0.9.9", t.server.tcp_addrs()[0]).await;
    let reply = tcp_query(
        &mut tcp,
        &query("cdn.waypost.test.", RecordType::A),
        Duration::from_secs(2),
    )
    .await
    .expect("TCP is not rate limited");
    assert_eq!(reply.answers.len(), 1);
    for source in ["127.0.10.1", "127.0.0.1"] {
        let reply = udp_exchange(
            t.addr,
            source,
            &query("cdn.waypost.test.", RecordType::A),
            Duration::from_secs(2),
        )
        .await
        .unwrap_or_else(|| panic!("{source} is answered"));
        assert!(!reply.metadata.truncation, "{source}");
    }
    let text = t.server.metrics_text();
    let slipped = metric(&text, "geodns_rate_limited_total{action=\"slipped\"}");
    assert!(slipped >= truncated as u64, "{text}");
    assert!(
        metric(&text, "geodns_rate_limited_total{action=\"dropped\"}") >= 60,
        "{text}"
    );
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_connections_are_capped_per_client_and_overall_and_idle_ones_make_room() {
    let t = TestServer::start(&limited_config(
        "",
        "tcp_max_connections = 4\ntcp_max_per_client = 2\ntcp_timeout = \"1500ms\"",
    ))
    .await;
    let server = t.server.tcp_addrs()[0];
    // Two idle connections from one client; a third from it is closed at
    // once, counted as per_client.
    let mut held = vec![
        connect_from("127.0.9.1", server).await,
        connect_from("127.0.9.1", server).await,
    ];
    let mut third = connect_from("127.0.9.1", server).await;
    assert!(closed_by_server(&mut third, Duration::from_secs(1)).await);
    let text = t.server.metrics_text();
    assert_eq!(
        metric(
            &text,
            "geodns_tcp_limit_closed_total{reason=\"per_client\"}"
        ),
        1,
        "{text}"
    );

    // Two more clients fill the cap; a fifth connection waits in the
    // backlog until an idle one is closed, then gets its answer.
    held.push(connect_from("127.0.9.2", server).await);
    held.push(connect_from("127.0.9.2", server).await);
    let ready = eventually(Duration::from_secs(5), async || {
        metric(&t.server.metrics_text(), "geodns_tcp_connections ") == 4
    })
    .await;
    assert!(ready.is_some(), "four connections are open");
    let mut waiting = connect_from("127.0.9.3", server).await;
    let reply = tcp_query(
        &mut waiting,
        &query("static.waypost.test.", RecordType::A),
        Duration::from_secs(10),
    )
    .await
    .expect("answered once an idle connection made room");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let idle = metric(
        &t.server.metrics_text(),
        "geodns_tcp_limit_closed_total{reason=\"idle\"}",
    );
    assert!(idle >= 1, "the answer waited for an idle close");
    for mut stream in held {
        assert!(closed_by_server(&mut stream, Duration::from_secs(5)).await);
    }
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_query_is_cut_and_busy_connections_end_at_their_lifetime() {
    let t = TestServer::start(&limited_config(
        "",
        "tcp_timeout = \"1s\"\ntcp_io_timeout = \"300ms\"\ntcp_max_lifetime = \"2s\"",
    ))
    .await;
    let server = t.server.tcp_addrs()[0];
    // Slowloris: the first byte of a length, then nothing.
    let mut slow = connect_from("127.0.9.4", server).await;
    slow.write_all(&[0]).await.unwrap();
    assert!(closed_by_server(&mut slow, Duration::from_secs(3)).await);
    let text = t.server.metrics_text();
    assert_eq!(
        metric(&text, "geodns_tcp_limit_closed_total{reason=\"io\"}"),
        1,
        "{text}"
    );

    // A query every 300 ms never lets the idle timeout fire; the lifetime
    // ends the connection anyway.
    let mut busy = connect_from("127.0.9.5", server).await;
    let mut answered = 0;
    for _ in 0..40 {
        match tcp_query(
            &mut busy,
            &query("static.waypost.test.", RecordType::A),
            Duration::from_secs(2),
        )
        .await
        {
            Some(_) => answered += 1,
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(answered >= 2, "answered {answered}");
    assert!(answered < 40, "the connection outlived its lifetime");
    let text = t.server.metrics_text();
    assert_eq!(
        metric(&text, "geodns_tcp_limit_closed_total{reason=\"lifetime\"}"),
        1,
        "{text}"
    );
    t.server.shutdown().await;
}

/// Runs the real binary with 64 file descriptors, holds enough TCP
/// connections to exhaust them, and checks that accept() pauses instead
/// of spinning, and that the server serves again once they close.
#[tokio::test(flavor = "multi_thread")]
async fn out_of_file_descriptors_pauses_accepts_and_recovers() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "prlimit (util-linux) is required under CI"
        );
        eprintln!("skipped: prlimit is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.mmdb"), support::test_database()).unwrap();
    let config = dir.path().join("geo.toml");
    std::fs::write(&config, config_text("").replace("query_log = true", "")).unwrap();
    let mut child = Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg(env!("CARGO_BIN_EXE_geodns"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut tcp, mut metrics) = (None, None);
    let mut line = String::new();
    while tcp.is_none() || metrics.is_none() {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "geodns exited");
        if let Some(rest) = line.trim().split(" tcp://").nth(1) {
            tcp = Some(rest.parse::<SocketAddr>().unwrap());
        }
        if let Some(rest) = line.trim().strip_prefix("geodns metrics on http://") {
            metrics = Some(rest.parse::<SocketAddr>().unwrap());
        }
    }
    let (tcp, metrics) = (tcp.unwrap(), metrics.unwrap());
    // The warning is the sign that accept() failed; wait for it.
    let (warned_tx, warned) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("TCP accept failed") {
                let _ = warned_tx.send(());
            }
        }
    });
    let mut held = Vec::new();
    for i in 0..100 {
        held.push(connect_from(&format!("127.0.{}.{}", 20 + i / 10, 1 + i % 10), tcp).await);
    }
    tokio::task::spawn_blocking(move || warned.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("accept() ran out of file descriptors");
    // Held out of descriptors for a second: a busy loop would fail
    // thousands of times, a doubling pause up to 1 s a handful.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(held);
    let mut served = None;
    eventually(Duration::from_secs(10), async || {
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(tcp)).await
        else {
            return false;
        };
        served = tcp_query(
            &mut s,
            &query("static.waypost.test.", RecordType::A),
            Duration::from_secs(1),
        )
        .await;
        served.is_some()
    })
    .await;
    assert!(
        served.is_some(),
        "TCP is served again once descriptors are free"
    );
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors = metric(&text, "geodns_tcp_accept_errors_total");
    assert!((1..=20).contains(&errors), "accept errors {errors}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_tcp_queries_are_all_answered_in_order_even_around_one_without_reply() {
    let t = TestServer::start(&config_text("")).await;
    let mut stream = connect_from("127.0.0.1", t.server.tcp_addrs()[0]).await;
    // Three queries in one write; the middle one is too short for a DNS
    // header and gets no reply, which must not hold back the third's.
    let mut burst = Vec::new();
    let mut ids = Vec::new();
    for (i, name) in ["static.waypost.test.", "cdn.waypost.test."]
        .iter()
        .enumerate()
    {
        let mut q = query(name, RecordType::A);
        q.metadata.id = 100 + i as u16;
        ids.push(q.metadata.id);
        let bytes = q.to_vec().unwrap();
        burst.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        burst.extend_from_slice(&bytes);
        if i == 0 {
            burst.extend_from_slice(&[0, 3, 1, 2, 3]);
        }
    }
    stream.write_all(&burst).await.unwrap();
    for id in ids {
        let reply = read_reply(&mut stream)
            .await
            .expect("every answerable query in the burst is answered");
        assert_eq!(reply.metadata.id, id);
        assert_eq!(reply.answers.len(), 1);
    }
    // A query, then an empty message that ends the connection: the
    // query's answer still arrives before the close.
    let mut stream = connect_from("127.0.0.1", t.server.tcp_addrs()[0]).await;
    let q = query("static.waypost.test.", RecordType::A)
        .to_vec()
        .unwrap();
    let mut burst = (q.len() as u16).to_be_bytes().to_vec();
    burst.extend_from_slice(&q);
    burst.extend_from_slice(&[0, 0]);
    stream.write_all(&burst).await.unwrap();
    let reply = read_reply(&mut stream)
        .await
        .expect("the answer before the end");
    assert_eq!(reply.answers.len(), 1);
    t.server.shutdown().await;
}
