//! Graceful shutdown: a download in flight finishes, new connections fail.

mod common;

use common::Origin;
use futures::StreamExt;
use reqwest::StatusCode;

#[tokio::test]
async fn shutdown_drains_in_flight_download() {
    let o = Origin::start().await;
    let size = 16 * 1024 * 1024;
    let resp = o
        .put("/assets/drain.bin", vec![7u8; size])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    let resp = o.get("/assets/drain.bin").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().len();

    let addr = o.server.local_addr();
    let shutdown = tokio::spawn(o.server.shutdown());
    while let Some(piece) = body.next().await {
        received += piece.unwrap().len();
    }
    assert_eq!(received, size);
    shutdown.await.unwrap();

    let refused = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "server still accepting after shutdown");
}
