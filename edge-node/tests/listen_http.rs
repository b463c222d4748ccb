//! `edge_node::listen::serve` over plain TCP: protocols, limits, shutdown.

mod listen_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_node::listen::{LimitKind, Limits};
use listen_support::{
    Hold, PATIENCE, TestServer, eventually, exchange, read_response, read_to_close,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

fn short(limits: Limits) -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(300),
        ..limits
    }
}

#[tokio::test]
async fn serves_http1_and_h2c_with_conn_info() {
    let server = TestServer::start(Limits::default(), None).await;
    let url = format!("http://{}/hello", server.addr);

    let http1 = reqwest::Client::builder().http1_only().build().unwrap();
    let response = http1.get(&url).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    let body = response.text().await.unwrap();
    assert_eq!(
        body,
        format!(
            "path=/hello version=HTTP/1.1 tls=false sni=- peer_ip=127.0.0.1 local_port={}",
            server.addr.port()
        )
    );

    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2c.get(&url).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert!(response.text().await.unwrap().contains("version=HTTP/2.0"));

    assert_eq!(server.metrics.accepted(), 2);
    server.stop().await;
}

#[tokio::test]
async fn oversized_head_gets_431() {
    let server = TestServer::start(Limits::default(), None).await;
    let big = "a".repeat(32 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let response = exchange(server.addr, request.as_bytes()).await;
    assert!(
        response.starts_with("HTTP/1.1 431 "),
        "unexpected response: {response:?}"
    );

    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    let response = exchange(server.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response:?}");

    let metrics = Arc::clone(&server.metrics);
    eventually("two header_too_large hits", || {
        metrics.limit_hits(LimitKind::HeaderTooLarge) == 2
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn partial_head_gets_408_after_header_read_timeout() {
    let server = TestServer::start(short(Limits::default()), None).await;
    let started = Instant::now();
    let response = exchange(server.addr, b"GET /slow HTTP/1.1\r\nHost: t\r\n").await;
    let waited = started.elapsed();
    assert!(
        response.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{response:?}"
    );
    assert!(response.ends_with("request headers not received within 300ms\n"));
    assert!(waited >= Duration::from_millis(300), "408 after {waited:?}");

    // A client that connects and sends nothing is timed out the same way.
    let response = exchange(server.addr, b"").await;
    assert!(response.starts_with("HTTP/1.1 408 "), "{response:?}");

    let metrics = Arc::clone(&server.metrics);
    eventually("two header_timeout hits", || {
        metrics.limit_hits(LimitKind::HeaderTimeout) == 2
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_is_closed_after_idle_timeout_not_header_timeout() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(700),
        ..Limits::default()
    };
    let server = TestServer::start(limits, None).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for path in ["/one", "/two"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response:?}");
        assert!(response.contains(&format!("path={path} ")));
    }
    let idle_from = Instant::now();
    let rest = read_to_close(&mut stream).await;
    let idle_for = idle_from.elapsed();
    assert_eq!(rest, "", "nothing may be sent to an idle connection");
    assert!(
        idle_for >= Duration::from_millis(650),
        "closed after {idle_for:?}, before the idle timeout"
    );

    let metrics = Arc::clone(&server.metrics);
    eventually("an idle_timeout hit", || {
        metrics.limit_hits(LimitKind::IdleTimeout) == 1
    })
    .await;
    assert_eq!(metrics.limit_hits(LimitKind::HeaderTimeout), 0);
    server.stop().await;
}

#[tokio::test]
async fn connection_over_max_connections_gets_503() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let server = TestServer::start(limits, None).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();

    let response = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{response:?}"
    );
    assert!(response.contains("\r\nRetry-After: 1\r\n"));
    assert_eq!(server.metrics.rejected(), 1);

    // The first connection is still served, and closing it frees a slot.
    first
        .write_all(b"GET /first HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut first).await.contains("path=/first "));
    let metrics = Arc::clone(&server.metrics);
    eventually("the first connection to be released", || {
        metrics.open() == 1
    })
    .await;
    let response = exchange(
        server.addr,
        b"GET /again HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.contains("path=/again "), "{response:?}");
    server.stop().await;
}

#[tokio::test]
async fn garbage_gets_400_and_the_server_keeps_serving() {
    let server = TestServer::start(short(Limits::default()), None).await;
    for garbage in [
        &b"\x00\xff\xfe garbage \r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let response = exchange(server.addr, garbage).await;
        assert!(response.starts_with("HTTP/1.1 400 "), "{response:?}");
    }
    // A valid h2c preface followed by junk frames: the h2 stack answers with
    // GOAWAY and closes.
    exchange(
        server.addr,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    )
    .await;
    let response = exchange(
        server.addr,
        b"GET /still-up HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.contains("path=/still-up "), "{response:?}");
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_request_finish() {
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let hold = Hold {
        entered: entered_tx,
        release: Arc::clone(&release),
    };
    let server = TestServer::start_with_hold(Limits::default(), None, Some(hold)).await;
    let addr = server.addr;
    let client =
        tokio::spawn(async move { exchange(addr, b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n").await });
    entered.recv().await.unwrap();

    server.shutdown.cancel();
    let mut serve_task = server.task;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut serve_task)
            .await
            .is_err(),
        "serve returned while a request was in flight"
    );
    release.notify_waiters();

    let response = tokio::time::timeout(PATIENCE, client)
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response:?}");
    assert!(response.contains("path=/hold "));
    tokio::time::timeout(PATIENCE, serve_task)
        .await
        .expect("serve did not return after draining")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn drain_timeout_drops_requests_that_do_not_finish() {
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let hold = Hold {
        entered: entered_tx,
        release: Arc::new(Notify::new()),
    };
    let limits = Limits {
        drain_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let server = TestServer::start_with_hold(limits, None, Some(hold)).await;
    let addr = server.addr;
    let client =
        tokio::spawn(async move { exchange(addr, b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n").await });
    entered.recv().await.unwrap();
    server.stop().await;
    let response = tokio::time::timeout(PATIENCE, client)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response, "", "the held request must be cut off");
}

#[tokio::test]
async fn idle_h2c_connection_is_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let server = TestServer::start(limits, None).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{}/h2", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    response.text().await.unwrap();

    let metrics = Arc::clone(&server.metrics);
    eventually("the idle h2 connection to be closed", || {
        metrics.limit_hits(LimitKind::IdleTimeout) == 1 && metrics.open() == 0
    })
    .await;
    assert_eq!(metrics.limit_hits(LimitKind::HeaderTimeout), 0);
    server.stop().await;
}

#[tokio::test]
async fn oversized_h2_head_is_refused() {
    let server = TestServer::start(Limits::default(), None).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let result = client
        .get(format!("http://{}/big", server.addr))
        .header("x-big", "a".repeat(32 * 1024))
        .send()
        .await;
    match result {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(error) => panic!("expected a 431, got {error:?}"),
    }
    server.stop().await;
}
