//! TLS on the origin's public listener: clients that trust its CA get
//! the API over HTTPS (h2 or HTTP/1.1), plaintext and untrusting clients
//! get nothing, and a bad `[tls]` file is refused at start naming it.

mod common;

use common::pki::{Ca, Leaf};
use common::{Origin, READ_TOKEN, TOKEN};
use origin::public_tls::ServerTlsFiles;
use origin::{Config, Server};
use reqwest::StatusCode;

fn files(ca: &Ca, dir: &std::path::Path) -> ServerTlsFiles {
    let (cert, key) = ca.issue(&Leaf {
        node: None,
        names: &["127.0.0.1", "localhost"],
        expired: false,
    });
    std::fs::write(dir.join("origin.pem"), cert).unwrap();
    std::fs::write(dir.join("origin.key"), key).unwrap();
    ServerTlsFiles {
        cert_file: dir.join("origin.pem"),
        key_file: dir.join("origin.key"),
    }
}

#[tokio::test]
async fn the_api_is_served_over_https_to_clients_that_trust_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("origin CA");
    let tls = files(&ca, dir.path());
    let o = Origin::start_with(|c| c.tls = Some(tls)).await;
    let base = format!("https://{}", o.server.local_addr());
    let trusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let put = trusting
        .put(format!("{base}/kv/ns/k"))
        .bearer_auth(TOKEN)
        .body("v")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let get = trusting
        .get(format!("{base}/kv/ns/k"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(get.version(), reqwest::Version::HTTP_2, "ALPN h2");
    assert_eq!(get.text().await.unwrap(), "v");
    let healthz = trusting
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    // Its expiry is exported (rcgen's default validity ends in 4096).
    let metrics = trusting
        .get(format!("{base}/metrics"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let left: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("origin_tls_certificate_expiry_seconds "))
        .unwrap_or_else(|| panic!("no expiry gauge in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(left > 50 * 365 * 86400, "{left}");

    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
    let plaintext = reqwest::Client::new()
        .get(format!("http://{}/healthz", o.server.local_addr()))
        .send()
        .await;
    assert!(plaintext.is_err(), "{plaintext:?}");
    o.server.shutdown().await;
}

#[tokio::test]
async fn a_bad_tls_file_is_refused_at_start_naming_field_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("origin CA");
    let mut tls = files(&ca, dir.path());
    let other = Ca::new("other");
    let (_, wrong_key) = other.issue(&Leaf {
        node: None,
        names: &["localhost"],
        expired: false,
    });
    std::fs::write(dir.path().join("wrong.key"), wrong_key).unwrap();
    let data = tempfile::tempdir().unwrap();
    let start = |tls: ServerTlsFiles| {
        let mut config = Config::for_data_dir(data.path(), TOKEN);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.tls = Some(tls);
        Server::start(config)
    };
    tls.key_file = dir.path().join("wrong.key");
    let msg = start(tls.clone()).await.unwrap_err().to_string();
    assert!(
        msg.contains("tls.key_file") && msg.contains("wrong.key"),
        "{msg}"
    );
    tls.cert_file = dir.path().join("missing.pem");
    let msg = start(tls).await.unwrap_err().to_string();
    assert!(
        msg.contains("tls.cert_file") && msg.contains("missing.pem"),
        "{msg}"
    );
}
