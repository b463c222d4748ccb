//! The real GeoLite2-City database (2018, CC BY-SA 3.0, shipped in PyPI's
//! `maxminddb-geolite2`; fetched with `pip download`, never committed):
//! clients from London, Seattle and Tokyo reach their regions by ECS.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{TestServer, config_text};

/// Downloads the package once per target directory and extracts the
/// database next to it.
fn geolite2_city() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("geolite2");
    let db = dir.join("GeoLite2-City.mmdb");
    if db.is_file() {
        return db;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("pip")
        .args([
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
        ])
        .arg(&dir)
        .arg("maxminddb-geolite2==2018.703")
        .status()
        .expect("pip is installed");
    assert!(
        status.success(),
        "pip download maxminddb-geolite2 failed (needs PyPI access)"
    );
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(dir.join("maxminddb-geolite2-2018.703.tar.gz"))
        .arg("-C")
        .arg(&dir)
        .args(["--wildcards", "*/GeoLite2-City.mmdb"])
        .status()
        .unwrap();
    assert!(status.success());
    let extracted = dir.join("maxminddb-geolite2-2018.703/_maxminddb_geolite2/GeoLite2-City.mmdb");
    std::fs::rename(extracted, &db).unwrap();
    db
}

#[tokio::test(flavor = "multi_thread")]
async fn real_database_sends_clients_to_their_region() {
    let db = geolite2_city();
    let text = config_text("").replace(
        r#"database = "test.mmdb""#,
        &format!("database = {:?}", db.display().to_string()),
    );
    let t = TestServer::start(&text).await;
    for (subnet, want) in [
        ("81.2.69.0/24", "127.0.1.1"),    // London → eu (Frankfurt)
        ("216.160.83.0/24", "127.0.2.1"), // Milton, WA → us (New York)
        ("1.0.16.0/24", "127.0.3.1"),     // Tokyo → ap (Singapore)
        ("2001:200::/32", "127.0.3.1"),   // WIDE, Japan → ap
    ] {
        let d = t.dig(&["cdn.waypost.test", "A", &format!("+subnet={subnet}")]);
        assert_eq!(d.answer_data(), [want], "{subnet}: {}", d.raw);
        let ecs = d.ecs.expect("ECS echoed");
        let scope: u8 = ecs.rsplit('/').next().unwrap().parse().unwrap();
        assert!(scope > 0, "{subnet}: a real scope, got {ecs}");
    }
    t.server.shutdown().await;
}
