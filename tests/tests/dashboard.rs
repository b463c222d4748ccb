//! The live dashboard in a real browser: three origin processes and three
//! edges, `waypost dashboard` over them, and headless Chromium driven by
//! chromedriver over WebDriver. It logs in with the operator's token,
//! sees the three regions, sees region 1's hit ratio move after traffic,
//! and sees region 3 turn red once its processes are killed. Screenshots
//! land in the test's output directory (`CARGO_TARGET_TMPDIR`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use waypost_e2e::{Proc, free_port, start_edge, start_origin_cluster};

const TOKEN: &str = "e2e-dashboard-token-0123456789";
const IPS: [&str; 3] = ["127.0.61.1", "127.0.62.1", "127.0.63.1"];

/// Whether Chromium and chromedriver are here; under CI their absence is
/// a failure (.ci/run installs them).
fn browser() -> bool {
    let found = ["chromium", "chromedriver"]
        .iter()
        .all(|b| Command::new(b).arg("--version").output().is_ok());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromedriver are missing (Debian packages chromium, chromium-driver)"
        );
        eprintln!("SKIPPED: chromium/chromedriver not installed; not testing the dashboard");
    }
    found
}

/// A WebDriver session on a chromedriver this test started.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
}

impl Browser {
    fn start() -> Self {
        let port = free_port("127.0.0.1");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http
            .get(format!("{base}/status"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_none_or(|v| v["value"]["ready"] != true)
        {
            assert!(Instant::now() < deadline, "chromedriver never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1100"]
            }
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"))
            .to_string();
        Self {
            driver,
            base,
            session,
            http,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), &url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let resp: Value = req.send().unwrap().json().unwrap();
        assert!(resp["value"]["error"].is_null(), "WebDriver {path}: {resp}");
        resp["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }));
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": js, "args": []}),
        )
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.call(reqwest::Method::GET, "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Polls `js` (which returns a value) until `ok` accepts it.
    fn until(&self, what: &str, js: &str, ok: impl Fn(&Value) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let v = self.script(js);
            if ok(&v) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{what}: still {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `[[name, state, hit ratio text], ...]` of the region cards.
const REGIONS_JS: &str = "return Array.from(document.querySelectorAll('.region')).map(e => \
     [e.dataset.region, e.dataset.state, e.querySelector('[data-field=hit_ratio]').textContent]);";

#[test]
fn the_dashboard_shows_regions_traffic_and_a_region_going_down_in_a_browser() {
    if !browser() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (regions, mut origins) = start_origin_cluster(dir.path(), IPS, TOKEN);
    let mut edges: Vec<Proc> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            start_edge(
                dir.path(),
                &format!("edge{}", i + 1),
                IPS[i],
                &r.addr,
                TOKEN,
            )
        })
        .collect();
    let mut args = vec![
        "dashboard".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    for (i, (r, e)) in regions.iter().zip(&edges).enumerate() {
        args.push("--region".into());
        args.push(format!("region-{}=http://{},{}", i + 1, r.addr, e.addrs[1]));
    }
    args.extend(["--token".into(), TOKEN.into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dashboard = Proc::start("waypost", &args, 1).unwrap();
    let url = dashboard.addrs[0].trim_end_matches('/').to_string();

    let browser = Browser::start();
    browser.go(&format!("{url}/"));
    // Not logged in: the login page, and a wrong token keeps it.
    let field = browser.element("#token");
    browser.call(
        reqwest::Method::POST,
        &format!("/element/{field}/value"),
        json!({"text": "not-the-token"}),
    );
    let button = browser.element("#login");
    browser.call(
        reqwest::Method::POST,
        &format!("/element/{button}/click"),
        json!({}),
    );
    // The click posts the form; the answer is a new page, read once loaded.
    browser.until(
        "the wrong token is refused on the login page",
        "return document.getElementById('message').textContent;",
        |v| {
            v.as_str()
                .unwrap_or("")
                .contains("not the operator's token")
        },
    );
    let field = browser.element("#token");
    browser.call(
        reqwest::Method::POST,
        &format!("/element/{field}/value"),
        json!({"text": TOKEN}),
    );
    let button = browser.element("#login");
    browser.call(
        reqwest::Method::POST,
        &format!("/element/{button}/click"),
        json!({}),
    );

    browser.until("three regions, all up", REGIONS_JS, |v| {
        v.as_array().is_some_and(|rs| {
            rs.len() == 3
                && rs
                    .iter()
                    .enumerate()
                    .all(|(i, r)| r[0] == format!("region-{}", i + 1).as_str() && r[1] == "up")
        })
    });

    // Traffic through region 1's edge: one miss, then hits.
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let put = http
        .put(format!("http://{}/assets/dash.txt", regions[0].addr))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .header("cache-control", "max-age=600")
        .body("dashboard traffic")
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let edge1 = &edges[0].addrs[0];
    let hits_until = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        for _ in 0..20 {
            let r = http.get(format!("{edge1}/assets/dash.txt")).send().unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
        let v = browser.script(REGIONS_JS);
        let hit = v[0][2].as_str().unwrap_or("").to_string();
        if hit.ends_with('%') && !hit.starts_with("0.0") {
            break hit;
        }
        assert!(
            Instant::now() < hits_until,
            "region 1's hit ratio never moved: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("region 1 hit ratio after traffic: {moved}");
    browser.screenshot("dashboard-up.png");

    // Region 3 goes down: its card turns red.
    edges[2].kill();
    origins[2].kill();
    let took = browser.until("region 3 drawn down", REGIONS_JS, |v| {
        v[2][1] == "down" && v[0][1] == "up" && v[1][1] == "up"
    });
    eprintln!("region 3 drawn red {took:?} after its processes were killed");
    let color = browser.script(
        "return getComputedStyle(document.querySelector('[data-region=\"region-3\"]')).borderLeftColor;",
    );
    assert_eq!(color, "rgb(248, 81, 73)", "drawn red");
    browser.screenshot("dashboard-region-down.png");
}
