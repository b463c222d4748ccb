//! Conditional requests and byte ranges over the wire.

mod common;

use common::{Origin, header};
use reqwest::StatusCode;

const BODY: &str = "0123456789abcdefghij";

async fn origin_with_asset() -> (Origin, String, String) {
    let o = Origin::start().await;
    let resp = o.put("/assets/r.txt", BODY).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = o.get("/assets/r.txt").send().await.unwrap();
    let etag = header(&resp, "etag").to_string();
    let last_modified = header(&resp, "last-modified").to_string();
    (o, etag, last_modified)
}

#[tokio::test]
async fn if_none_match_gives_304_with_validators() {
    let (o, etag, last_modified) = origin_with_asset().await;
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"zzz\", {etag}"),
        "*".into(),
    ] {
        let resp = o
            .get("/assets/r.txt")
            .header("if-none-match", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{value}");
        assert_eq!(header(&resp, "etag"), etag);
        assert_eq!(header(&resp, "last-modified"), last_modified);
        assert_eq!(
            header(&resp, "cache-control"),
            origin::config::DEFAULT_CACHE_CONTROL
        );
        header(&resp, "date");
    }
    let resp = o
        .get("/assets/r.txt")
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn if_modified_since_gives_304() {
    let (o, _, last_modified) = origin_with_asset().await;
    let resp = o
        .get("/assets/r.txt")
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let resp = o
        .get("/assets/r.txt")
        .header("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn if_none_match_wins_over_if_modified_since() {
    let (o, _, last_modified) = origin_with_asset().await;
    let resp = o
        .get("/assets/r.txt")
        .header("if-none-match", "\"stale\"")
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), BODY);
}

#[tokio::test]
async fn if_match_and_put_if_none_match_star() {
    let (o, etag, _) = origin_with_asset().await;
    let resp = o
        .get("/assets/r.txt")
        .header("if-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    let resp = o
        .get("/assets/r.txt")
        .header("if-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = o
        .put("/assets/r.txt", "new")
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        o.get("/assets/r.txt")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        BODY
    );
}

#[tokio::test]
async fn ranges_three_forms_and_416() {
    let (o, etag, _) = origin_with_asset().await;
    for (range, content_range, body) in [
        ("bytes=2-5", "bytes 2-5/20", "2345"),
        ("bytes=15-", "bytes 15-19/20", "fghij"),
        ("bytes=-3", "bytes 17-19/20", "hij"),
    ] {
        let resp = o
            .get("/assets/r.txt")
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&resp, "content-range"), content_range);
        assert_eq!(header(&resp, "content-length"), body.len().to_string());
        assert_eq!(header(&resp, "etag"), etag);
        assert_eq!(resp.text().await.unwrap(), body);
    }
    let resp = o
        .get("/assets/r.txt")
        .header("range", "bytes=20-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "content-range"), "bytes */20");

    let resp = o
        .get("/assets/r.txt")
        .header("range", "bytes=0-1")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let resp = o
        .get("/assets/r.txt")
        .header("range", "bytes=0-1")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), BODY);
}
