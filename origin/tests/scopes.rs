//! Scoped tokens: `read` cannot write, `write` cannot reach `/internal/*`
//! or membership, several tokens per scope work, and editing the tokens
//! file takes effect without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{Origin, TOKEN};
use reqwest::StatusCode;

const READ_A: &str = "edge-read-token-aaaaaaaa";
const READ_B: &str = "edge-read-token-bbbbbbbb";
const WRITE: &str = "ci-write-token-cccccccc";
const ADMIN: &str = "ops-admin-token-dddddddd";

async fn start(tokens: &str) -> (Origin, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, tokens).unwrap();
    let origin = Origin::start_with(|c| c.tokens_file = Some(file)).await;
    (origin, dir)
}

fn all_tokens() -> String {
    format!("read {READ_A}\nread {READ_B}\nwrite {WRITE}\nadmin {ADMIN}\n")
}

async fn status(request: reqwest::RequestBuilder) -> (StatusCode, String) {
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_read_token_cannot_write_and_unknown_tokens_are_401() {
    let (o, _dir) = start(&all_tokens()).await;
    let (code, reason) = status(
        o.client
            .put(o.url("/kv/ns/k"))
            .bearer_auth(READ_A)
            .body("v"),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{reason}");
    assert!(
        reason.contains("`read`") && reason.contains("`write`"),
        "{reason}"
    );
    let (code, _) = status(
        o.client
            .put(o.url("/assets/a.txt"))
            .bearer_auth(READ_B)
            .body("x"),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = status(
        o.client
            .put(o.url("/kv/ns/k"))
            .bearer_auth("not-a-token-at-all")
            .body("v"),
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = status(o.client.get(o.url("/kv/ns/k")).header("authorization", "")).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // write implies read, admin implies write.
    let (code, _) = status(o.client.put(o.url("/kv/ns/k")).bearer_auth(WRITE).body("v")).await;
    assert!(code.is_success(), "{code}");
    let (code, _) = status(o.client.put(o.url("/kv/ns/k")).bearer_auth(ADMIN).body("w")).await;
    assert!(code.is_success(), "{code}");
    for token in [READ_A, READ_B, WRITE, ADMIN] {
        let (code, body) = status(o.client.get(o.url("/kv/ns/k")).bearer_auth(token)).await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "w"), "{token}");
    }
}

#[tokio::test]
async fn write_and_file_admin_tokens_never_reach_internal_and_write_cannot_change_membership() {
    let (o, _dir) = start(&all_tokens()).await;
    for token in [WRITE, ADMIN] {
        let (code, reason) = status(
            o.client
                .post(o.url("/internal/raft/vote"))
                .bearer_auth(token)
                .body("{}"),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{token}: {reason}");
        assert!(reason.contains("peer traffic"), "{reason}");
        let (code, _) = status(
            o.client
                .get(o.url("/internal/raft/read-index"))
                .bearer_auth(token),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
    }
    let member = r#"{"id": 7, "addr": "127.0.0.1:1"}"#;
    let (code, reason) = status(
        o.client
            .post(o.url("/cluster/members"))
            .bearer_auth(WRITE)
            .body(member),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{reason}");
    assert!(reason.contains("`admin`"), "{reason}");
    let (code, _) = status(
        o.client
            .delete(o.url("/cluster/members/9"))
            .bearer_auth(WRITE),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // An admin token gets past authorisation (and then 404: no member 9),
    // as does the cluster token.
    for token in [ADMIN, TOKEN] {
        let (code, reason) = status(
            o.client
                .delete(o.url("/cluster/members/9"))
                .bearer_auth(token),
        )
        .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{reason}");
    }
}

#[tokio::test]
async fn removing_a_token_from_the_file_takes_effect_without_restart() {
    let (o, dir) = start(&all_tokens()).await;
    let read = |token: &'static str| o.client.get(o.url("/cluster")).bearer_auth(token);
    assert_eq!(status(read(READ_A)).await.0, StatusCode::OK);
    assert_eq!(status(read(READ_B)).await.0, StatusCode::OK);
    // Rotate: READ_A leaves, READ_B stays. Written beside and renamed, as
    // deploy tools do, so no reload sees half a file.
    let next = dir.path().join("tokens.next");
    std::fs::write(&next, format!("read {READ_B}\nwrite {WRITE}\n")).unwrap();
    std::fs::rename(&next, dir.path().join("tokens")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(read(READ_A)).await.0 != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "the removed token still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(read(READ_B)).await.0, StatusCode::OK);
    assert_eq!(status(read(ADMIN)).await.0, StatusCode::UNAUTHORIZED);
    // A broken edit keeps the tokens in force.
    std::fs::write(dir.path().join("tokens"), "root oops\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(read(READ_B)).await.0, StatusCode::OK);
}
