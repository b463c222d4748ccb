//! The real `origin` binary: config errors and the readiness line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn bad_config_file_exits_nonzero_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("origin-bad.toml");
    std::fs::write(&file, "data_dir = \"/tmp/x\"\ntoken = \"\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_origin"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("origin-bad.toml"), "{stderr}");
    assert!(stderr.contains("`token`"), "{stderr}");
    assert!(stderr.starts_with("origin: config "), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn prints_the_listen_line_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_origin"))
        .args(["--listen", "127.0.0.1:0", "--token", "t", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("origin listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    // SIGTERM drains and exits cleanly.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success());
}
