//! The real binaries, started as processes: origin and edge together, the
//! way an operator runs them, and `waypost up --check` as the README's quick
//! start runs it (three regions, and one).

use std::time::Duration;

use waypost_e2e::{Proc, bin_dir, start_edge, wait_healthy};

const TOKEN: &str = "e2e-test-token-0123456789";

fn start_origin(dir: &std::path::Path) -> Proc {
    let data = dir.join("origin");
    Proc::start(
        "origin",
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--token",
            TOKEN,
        ],
        1,
    )
    .unwrap()
}

#[tokio::test]
async fn origin_and_edge_binaries_serve_cache_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let mut origin = start_origin(dir.path());
    let origin_url = origin.addrs[0].clone();
    wait_healthy(&format!("{origin_url}/healthz"), Duration::from_secs(10)).unwrap();
    let edge = start_edge(
        dir.path(),
        "edge",
        "127.0.0.1",
        origin_url.trim_start_matches("http://"),
        TOKEN,
    );
    let (edge_url, admin_url) = (edge.addrs[0].clone(), edge.addrs[1].clone());
    wait_healthy(&format!("{admin_url}/healthz"), Duration::from_secs(10)).unwrap();

    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let put = c
        .put(format!("{origin_url}/assets/site/logo.svg"))
        .bearer_auth(TOKEN)
        .header("cache-control", "public, max-age=600")
        .header("surrogate-key", "brand")
        .body("<svg/>")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let get = || {
        let c = c.clone();
        let u = format!("{edge_url}/assets/site/logo.svg");
        async move {
            let r = c.get(u).send().await.unwrap();
            let cs = r.headers()["cache-status"].to_str().unwrap().to_string();
            let etag = r.headers()["etag"].to_str().unwrap().to_string();
            (cs, etag, r.text().await.unwrap())
        }
    };
    let (cs, etag, body) = get().await;
    assert!(cs.contains("fwd=uri-miss"), "{cs}");
    assert_eq!(body, "<svg/>");
    assert_eq!(
        etag.len(),
        66,
        "the origin's sha256 ETag passes through: {etag}"
    );
    let (cs, _, _) = get().await;
    assert!(cs.starts_with("waypost; hit"), "{cs}");

    // Purge by surrogate key, then the next request misses again.
    let purged = c
        .post(format!("{admin_url}/purge?key=brand"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    let (cs, _, _) = get().await;
    assert!(cs.contains("fwd=uri-miss"), "{cs}");

    // With the origin process killed, cached content keeps being served.
    origin.kill();
    let (cs, _, body) = get().await;
    assert!(cs.starts_with("waypost; hit"), "{cs}");
    assert_eq!(body, "<svg/>");
    let metrics = c
        .get(format!("{admin_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("waypost_edge_requests_total{status=\"200\",cache=\"Hit\"} 2"),
        "{metrics}"
    );
}

/// Runs `waypost up --check` on data dir `data` with `args`.
fn run_up_check(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin_dir().join("waypost"))
        .args(["up", "--check", "--data-dir"])
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs `waypost up --check` with `args` on a fresh data dir and returns
/// its stdout, failing the test (with both outputs) if it did not succeed.
fn up_check(dir: &std::path::Path, args: &[&str]) -> String {
    let out = run_up_check(&dir.join("data"), args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn quick_start_command_shows_three_regions_working() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = up_check(dir.path(), &["--ip", "127.0.53.7"]);
    let expected = [
        // A miss, then a hit, at region 1's edge.
        "first GET /assets/hello.txt -> 200 OK  Cache-Status: waypost; fwd=uri-miss; stored",
        "second GET /assets/hello.txt -> 200 OK  Cache-Status: waypost; hit",
        // Uploaded through region 1's origin, served by the third region.
        "/assets/index.html uploaded via region 1, served by region 3's edge (127.0.55.7:8080) -> 200 OK",
        "GET /hello -> plugin `hello` answered: Hello from Waypost!",
        "security-headers plugin added Strict-Transport-Security: max-age=",
        // The photo case: answered at once, the thumbnail made by a queue
        // consumer and served by another region's edge.
        "PUT /photos/demo -> 202 Accepted",
        "GET /assets/photos/thumbnails/demo.png at region 3's edge -> 256x171 thumbnail",
        "Waypost is up (3 region(s)",
        "region 2  edge http://127.0.54.7:8080  admin http://127.0.54.7:9080  origin https://127.0.54.7:7070",
        "TLS       origins and the links between them use the local CA ",
        "curl -i http://127.0.53.7:8080/assets/hello.txt",
        "curl -i http://127.0.55.7:8080/assets/hello.txt",
        "dig @127.0.53.7 -p 5353 cdn.waypost.test A",
        "dig @127.0.53.7 -p 5353 cdn.waypost.test A +subnet=127.0.55.0/24",
        "waypost status --origin https://127.0.53.7:7070 --ca-file ",
        "dashboard http://127.0.53.7:9900/",
    ];
    for line in expected {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

#[test]
fn quick_start_runs_one_region_too() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = up_check(dir.path(), &["--ip", "127.0.57.7", "--regions", "1"]);
    assert!(stdout.contains("Waypost is up (1 region(s)"), "{stdout}");
    assert!(
        stdout.contains("second GET /assets/hello.txt -> 200 OK  Cache-Status: waypost; hit"),
        "{stdout}"
    );
    assert!(!stdout.contains("region 2"), "{stdout}");
    assert!(!stdout.contains("served by region"), "{stdout}");

    // That data dir's Raft log has one member: three regions on it would
    // wait for peers forever, so `up` refuses at once and says why.
    let started = std::time::Instant::now();
    let out = run_up_check(&dir.path().join("data"), &["--ip", "127.0.57.7"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("was created for other regions (members 127.0.57.7:7071)"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn quick_start_refuses_bad_layouts_before_starting() {
    let out = std::process::Command::new(bin_dir().join("waypost"))
        .args(["up", "--check", "--ip", "127.0.254.1", "--regions", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("third octet"), "{stderr}");
}
