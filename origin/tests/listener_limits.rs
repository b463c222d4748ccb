//! The origin's listener limits on the wire: a request head that does not
//! arrive in time gets 408, an idle keep-alive connection is closed, a
//! connection over the cap gets 503, and with `[peer]` the regions' routes
//! are served only on the peer listener.

mod common;

use std::time::{Duration, Instant};

use common::{Origin, TOKEN};
use origin::config::PeerListener;
use origin::listen::Limits;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the server sends until it closes, or what arrived by `limit`.
async fn read_until_closed(conn: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(limit, conn.read_to_end(&mut got))
        .await
        .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

fn short(limits: &mut Limits) {
    limits.header_read_timeout = Duration::from_millis(300);
    limits.idle_timeout = Duration::from_millis(500);
}

#[tokio::test]
async fn a_slow_request_head_gets_408_and_the_close() {
    let o = Origin::start_with(|c| short(&mut c.limits)).await;
    let mut conn = TcpStream::connect(o.server.local_addr()).await.unwrap();
    let started = Instant::now();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: o")
        .await
        .unwrap();
    let (reply, closed) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    assert!(closed, "still open after 5 s: {reply:?}");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let metrics = o
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "origin_connection_limits_total{listener=\"public\",kind=\"header_timeout\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let o = Origin::start_with(|c| short(&mut c.limits)).await;
    let mut conn = TcpStream::connect(o.server.local_addr()).await.unwrap();
    // Longer than the header timeout in total, but each head is quick:
    // only the idle timer may close a keep-alive connection between them.
    for _ in 0..3 {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: o\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    assert!(closed);
    let idle = started.elapsed();
    assert!(idle < Duration::from_secs(2), "closed after {idle:?}");
}

#[tokio::test]
async fn connections_over_the_cap_get_503() {
    let o = Origin::start_with(|c| c.limits.max_connections = 2).await;
    let addr = o.server.local_addr();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: o\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(conn);
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    let (reply, closed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(closed);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply:?}");
    assert!(reply.contains("Retry-After: 1"), "{reply:?}");
    drop(held);
}

#[tokio::test]
async fn with_a_peer_listener_each_side_serves_its_own_routes() {
    let o = Origin::start_with(|c| {
        c.peer = Some(PeerListener {
            listen: "127.0.0.1:0".parse().unwrap(),
            limits: Limits::PEER,
            tls: None,
        });
    })
    .await;
    let peer = format!("http://{}", o.server.peer_addr().unwrap());
    let resp = o.put("/kv/n/k", "v").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let read_index = |base: &str| {
        o.client
            .get(format!("{base}/internal/raft/read-index"))
            .bearer_auth(TOKEN)
            .send()
    };
    assert_eq!(
        read_index(&o.base).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(read_index(&peer).await.unwrap().status(), StatusCode::OK);
    let kv = o.client.get(format!("{peer}/kv/n/k")).send().await.unwrap();
    assert_eq!(kv.status(), StatusCode::NOT_FOUND);
    let cluster: serde_json::Value = o
        .client
        .get(format!("{peer}/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cluster["members"][0]["addr"],
        o.server.peer_addr().unwrap().to_string()
    );
}
