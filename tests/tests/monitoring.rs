//! `deploy/monitoring/`: `promtool` accepts the Prometheus config and the
//! alerting rules, and every metric the rules and the Grafana dashboard
//! use is one a running platform (`waypost up`) really exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use waypost_e2e::Proc;

const READ_TOKEN: &str = "waypost-dev-read-token";

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

/// Whether promtool runs here; under CI its absence is a failure.
fn promtool() -> bool {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing (Debian package `prometheus`; .ci/run installs it)"
        );
        eprintln!(
            "SKIPPED: promtool not installed (apt install prometheus); not checking deploy/monitoring"
        );
    }
    found
}

fn promtool_ok(args: &[&str]) {
    let out = Command::new("promtool").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_config_and_the_rules() {
    if !promtool() {
        return;
    }
    // As deployed: the token file the config names exists.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("waypost-read-token");
    std::fs::write(&token, READ_TOKEN).unwrap();
    let config = std::fs::read_to_string(monitoring_dir().join("prometheus.yml")).unwrap();
    assert!(config.contains("/etc/prometheus/waypost-read-token"));
    // The token goes to the origins over HTTPS only, checked against the
    // cluster's CA (`waypost up` and the shipped configs serve [tls]).
    assert!(
        config.contains(
            "scheme: https\n    tls_config:\n      ca_file: /etc/prometheus/waypost-ca.pem"
        ),
        "the origin job scrapes over HTTPS with the cluster CA"
    );
    let config = config.replace(
        "/etc/prometheus/waypost-read-token",
        token.to_str().unwrap(),
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        monitoring_dir().join("alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    promtool_ok(&[
        "check",
        "config",
        dir.path().join("prometheus.yml").to_str().unwrap(),
    ]);
    promtool_ok(&[
        "check",
        "rules",
        dir.path().join("alerts.yml").to_str().unwrap(),
    ]);
}

/// The sample names a Prometheus text exposes, from its `# TYPE` lines (a
/// family without samples yet still counts).
fn exported(text: &str, into: &mut BTreeSet<String>) {
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#") || words.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                into.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    into.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                into.insert(name.to_string());
            }
        }
    }
}

/// Metric names of our services that `text` (rules, dashboard) uses.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["origin_", "waypost_edge_", "geodns_"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix) {
            let start = from + at;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |e| start + e);
            if boundary {
                names.insert(text[start..end].to_string());
            }
            from = end;
        }
    }
    names
}

/// GETs `url`, trusting the platform's local CA at `ca_file`.
fn get(url: &str, token: Option<&str>, ca_file: &std::path::Path) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file).unwrap()).unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(ca)
            .build()
            .unwrap()
            .get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        resp.text().await.unwrap()
    })
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _up = Proc::start(
        "waypost",
        &[
            "up",
            "--ip",
            "127.0.91.1",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        3,
    )
    .unwrap();
    let ca = data.join("tls").join("ca.pem");
    let mut names = BTreeSet::new();
    exported(
        &get("https://127.0.91.1:7070/metrics", Some(READ_TOKEN), &ca),
        &mut names,
    );
    exported(
        &get("http://127.0.91.1:9080/metrics", None, &ca),
        &mut names,
    );
    exported(
        &get("http://127.0.91.1:9153/metrics", None, &ca),
        &mut names,
    );
    for family in [
        "origin_http_requests_total",
        "waypost_edge_requests_total",
        "geodns_queries_total",
    ] {
        assert!(names.contains(family), "{family} not scraped: {names:?}");
    }
    let rules = std::fs::read_to_string(monitoring_dir().join("alerts.yml")).unwrap();
    let dashboard =
        std::fs::read_to_string(monitoring_dir().join("grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = parsed["panels"].as_array().unwrap();
    assert!(
        panels.len() >= 10,
        "the dashboard has {} panels",
        panels.len()
    );
    for (what, text) in [
        ("alerts.yml", &rules),
        ("grafana-dashboard.json", &dashboard),
    ] {
        let used = referenced(text);
        assert!(used.len() >= 8, "{what} uses only {used:?}");
        let unknown: Vec<_> = used.difference(&names).collect();
        assert!(
            unknown.is_empty(),
            "{what} uses metrics no service exports: {unknown:?}"
        );
    }
}
