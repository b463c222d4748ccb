//! Conditional writes are compare-and-set: of 16 writers racing with the
//! same precondition, spread over three regions, exactly one wins and the
//! others get 412, and the stored value is the winner's.

mod common;

use std::time::Duration;

use common::TOKEN;
use common::cluster::Cluster;
use futures::future::join_all;
use reqwest::StatusCode;

const RACERS: usize = 16;

/// Sends `RACERS` PUTs of distinct bodies (named after `round`) to `path`
/// with `header`, round robin over the regions; returns each racer's
/// status and body. Bodies differ between rounds too: the entity tag is
/// the content's hash, so rewriting the current bytes keeps the tag and a
/// second compare-and-set on it would rightly succeed.
async fn race(
    c: &Cluster,
    round: &str,
    path: &str,
    header: (&str, &str),
) -> Vec<(StatusCode, String)> {
    let puts = (0..RACERS).map(|i| {
        let body = format!("{round} racer {i}");
        let request = c
            .client
            .put(c.url(i % c.len(), path))
            .bearer_auth(TOKEN)
            .header(header.0, header.1)
            .body(body.clone());
        async move { (request.send().await.unwrap().status(), body) }
    });
    join_all(puts).await
}

/// The one winner's body; every other racer got 412.
fn one_winner(results: &[(StatusCode, String)], won: StatusCode) -> String {
    let winners: Vec<_> = results.iter().filter(|(s, _)| *s == won).collect();
    let lost = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(lost, RACERS - 1, "{results:?}");
    winners[0].1.clone()
}

async fn read(c: &Cluster, path: &str) -> reqwest::Response {
    let url = format!("{}?consistency=strong", c.url(0, path));
    c.client.get(url).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_racers_one_winner() {
    let c = Cluster::start(3).await;

    let results = race(&c, "create", "/assets/once.txt", ("if-none-match", "*")).await;
    let winner = one_winner(&results, StatusCode::CREATED);
    let stored = read(&c, "/assets/once.txt").await.text().await.unwrap();
    assert_eq!(stored, winner);

    let results = race(&c, "create", "/kv/race/once", ("if-none-match", "*")).await;
    let winner = one_winner(&results, StatusCode::CREATED);
    let resp = read(&c, "/kv/race/once").await;
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(resp.text().await.unwrap(), winner);

    // Everyone read the same version; one compare-and-set may replace it.
    let results = race(&c, "replace", "/kv/race/once", ("if-match", &etag)).await;
    let winner = one_winner(&results, StatusCode::NO_CONTENT);
    let resp = read(&c, "/kv/race/once").await;
    assert_ne!(resp.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(resp.text().await.unwrap(), winner);

    let stale = c
        .client
        .delete(c.url(1, "/kv/race/once"))
        .bearer_auth(TOKEN)
        .header("if-match", &etag)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    c.shutdown().await;
}
