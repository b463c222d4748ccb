//! A real S3-compatible server for tests: s3s-fs (installed by `.ci/run`
//! with `cargo install s3s-fs`) serving a temporary directory on a free
//! loopback port, killed on drop. Without the binary, [`S3Server::start`]
//! answers `None` and says so; under CI (`CI` set) its absence is a
//! failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "waypost-test";
pub const SECRET_KEY: &str = "waypost-test-secret";
/// The bucket every server here starts with.
pub const BUCKET: &str = "waypost";

pub struct S3Server {
    child: Child,
    pub endpoint: String,
    root: tempfile::TempDir,
}

impl S3Server {
    /// Starts one, or `None` (with a message naming `test`) when s3s-fs is
    /// not installed outside CI.
    pub fn start(test: &str) -> Option<Self> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "s3s-fs is not installed but CI must run {test} (.ci/run installs it)"
            );
            eprintln!(
                "SKIPPED {test}: s3s-fs not found; install it with \
                 `cargo install s3s-fs --version 0.14.1 --features binary --locked`"
            );
            return None;
        };
        let root = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(root.path().join(BUCKET)).expect("the bucket directory");
        // s3s-fs takes a fixed port: reserve a free one, release it, pass it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting s3s-fs");
        // Ready when it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not start listening within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        })
    }

    /// The directory holding the bucket's objects as files
    /// (`<bucket_dir>/<key>`), for checking or damaging them.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.path().join(BUCKET)
    }

    /// The `AWS_*` variables a client needs to reach this server.
    pub fn env(&self) -> [(&'static str, String); 4] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let installed = home.join("bin").join("s3s-fs");
    if installed.exists() {
        return Some(installed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| Path::exists(p))
    })
}
