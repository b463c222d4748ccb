//! Uploads are bounded by `max_upload_bytes`: over it, with or without a
//! Content-Length, the answer is 413 naming the setting and nothing is
//! stored.

mod common;

use common::Origin;
use futures::stream;
use reqwest::StatusCode;

const LIMIT: u64 = 1000;

async fn origin() -> Origin {
    Origin::start_with(|c| c.max_upload_bytes = LIMIT).await
}

async fn assert_refused(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = resp.text().await.unwrap();
    assert!(text.contains("max_upload_bytes = 1000"), "{text}");
}

/// A body of `len` bytes sent in chunks, without a Content-Length.
fn unannounced(len: usize) -> reqwest::Body {
    let chunks = (0..len.div_ceil(100)).map(|i| {
        let n = 100.min(len - i * 100);
        Ok::<_, std::io::Error>(vec![b'x'; n])
    });
    reqwest::Body::wrap_stream(stream::iter(chunks.collect::<Vec<_>>()))
}

#[tokio::test]
async fn an_asset_over_the_limit_gets_413_naming_it() {
    let o = origin().await;
    let resp = o
        .put("/assets/big.bin", vec![b'x'; 1001])
        .send()
        .await
        .unwrap();
    assert_refused(resp).await;
    let resp = o
        .put("/assets/big.bin", unannounced(5000))
        .send()
        .await
        .unwrap();
    assert_refused(resp).await;
    let resp = o.get("/assets/big.bin").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let resp = o
        .put("/assets/ok.bin", vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = o
        .put("/assets/ok2.bin", unannounced(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_plugin_over_the_limit_gets_413() {
    let o = origin().await;
    let mut wasm = b"\0asm".to_vec();
    wasm.resize(2000, 0);
    let resp = o.put("/plugins/big", wasm).send().await.unwrap();
    assert_refused(resp).await;
    let resp = o.get("/plugins/big").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
