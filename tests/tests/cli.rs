//! The `waypost` commands against a real platform: `waypost up` started as
//! a process (three regions on 127.0.71-73.1), then `kv`, `purge` (through
//! the origin and on one edge), `status`, `plugin new|build|publish`,
//! `region add|remove` with a fourth origin process, and `dig` against its
//! geodns; finally `up` must stop cleanly on SIGTERM. Readiness is polled,
//! never slept on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use waypost_e2e::{Proc, bin_dir};

const TOKEN: &str = "waypost-dev-token";
const ORIGIN: &str = "https://127.0.71.1:7070";

/// The local CA of the platform under test (`<data dir>/tls/ca.pem`),
/// which the commands are told to trust as an operator would.
static CA_FILE: OnceLock<PathBuf> = OnceLock::new();

/// `waypost args...` against region 1's origin, trusting the local CA.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin_dir().join("waypost"));
    cmd.args(args)
        .env("WAYPOST_ORIGIN", ORIGIN)
        .env(
            "WAYPOST_CA_FILE",
            CA_FILE.get().expect("the platform started"),
        )
        .env_remove("WAYPOST_TOKEN")
        .env("RUST_BACKTRACE", "0");
    cmd
}

fn waypost(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

/// A client that trusts the local CA, as a browser told to would.
fn client() -> reqwest::Client {
    let pem = std::fs::read(CA_FILE.get().expect("the platform started")).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// stdout of a command that must succeed.
fn ok(args: &[&str]) -> String {
    let out = waypost(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "waypost {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// stderr of a command that must fail.
fn fails(args: &[&str]) -> String {
    let out = waypost(args);
    assert!(!out.status.success(), "waypost {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` until it returns `Some`, up to `limit`.
fn eventually<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A GET's `Cache-Status` and body, through `curl`-free blocking HTTP.
fn get(url: &str) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = client().get(url).send().await.unwrap();
        let cs = r
            .headers()
            .get("cache-status")
            .map_or("", |v| v.to_str().unwrap())
            .to_string();
        (cs, r.text().await.unwrap())
    })
}

#[test]
fn commands_operate_a_running_platform() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    CA_FILE.set(data.join("tls").join("ca.pem")).unwrap();
    // Returns once `up` printed the three region lines: it has started
    // everything and shown the demo by then.
    let mut up = Proc::start(
        "waypost",
        &[
            "up",
            "--ip",
            "127.0.71.1",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        3,
    )
    .unwrap();

    kv_round_trip();
    queue_round_trip();
    public_edge_serves_no_private_data();
    purges_reach_other_regions();
    status_shows_the_cluster();
    geodns_answers_per_region();
    plugin_from_scaffold_to_every_region(dir.path());
    region_add_and_remove(dir.path());

    // SIGTERM (what `kill` and service managers send) stops it cleanly.
    let pid = up.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = eventually(
        "waypost up exits on SIGTERM",
        Duration::from_secs(20),
        || up.child.try_wait().unwrap(),
    );
    assert!(status.success(), "{status}");
}

/// `waypost queue`: declare, send (one and a batch from stdin), pull and
/// ack, stats, dead letters and replay, pause, and a clear refusal.
fn queue_round_trip() {
    assert_eq!(
        ok(&["queue", "create", "jobs", "--max-attempts", "1"]),
        "created queue jobs\n"
    );
    assert!(ok(&["queue", "send", "jobs", "first"]).starts_with("sent 1"));
    let mut child = command(&["queue", "send", "jobs", "-"])
        .env("WAYPOST_ORIGIN", "https://127.0.72.1:7070")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"second\nthird\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sent 2\nsent 3\n");
    let pulled = ok(&["queue", "pull", "jobs", "--max", "2", "--ack"]);
    assert!(
        pulled.contains("\"body\":\"first\"") && pulled.contains("acked 2"),
        "{pulled}"
    );
    let stats: serde_json::Value = serde_json::from_str(&ok(&["queue", "stats", "jobs"])).unwrap();
    assert_eq!(
        (stats["depth"].as_u64(), stats["acked"].as_u64()),
        (Some(1), Some(2))
    );
    // Pulled and never acked with max_attempts = 1: its lease ends and
    // it is retired to the dead letters, where a replay brings it back.
    let leased = ok(&["queue", "pull", "jobs"]);
    let delivery: serde_json::Value = serde_json::from_str(leased.trim()).unwrap();
    let receipt = format!(
        "{}:{}",
        delivery["receipt"]["id"], delivery["receipt"]["attempt"]
    );
    let nack_body = serde_json::json!({"retries": [{"receipt": delivery["receipt"]}]});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = client()
            .post(format!("{ORIGIN}/queues/jobs/nack"))
            .bearer_auth(TOKEN)
            .json(&nack_body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    assert!(ok(&["queue", "dlq", "jobs"]).contains("\"body\":\"third\""));
    let stale = ok(&["queue", "ack", "jobs", &receipt]);
    assert!(stale.contains("stale"), "{stale}");
    assert_eq!(
        ok(&["queue", "replay", "jobs"]),
        "replayed 1 dead letter(s) into jobs\n"
    );
    assert!(ok(&["queue", "list"]).contains("jobs\t1\t1\t0\t0\t0"));
    ok(&["queue", "pause", "jobs"]);
    assert_eq!(
        ok(&["queue", "pull", "jobs"]),
        "",
        "paused: nothing delivered"
    );
    ok(&["queue", "resume", "jobs"]);
    let err = fails(&["queue", "send", "nope", "x"]);
    assert!(err.contains("404") && err.contains("nope"), "{err}");
    let err = fails(&["queue", "create", "Bad_Name"]);
    assert!(err.contains("queue name"), "{err}");
}

fn kv_round_trip() {
    let via2 = ["--origin", "https://127.0.72.1:7070"];
    let put = ok(&[
        "kv", "put", "demo", "greeting", "hi there", via2[0], via2[1],
    ]);
    assert!(put.starts_with("created demo/greeting (feed seq "), "{put}");
    let put = ok(&["kv", "put", "demo", "greeting", "hi again"]);
    assert!(put.starts_with("updated demo/greeting"), "{put}");
    // A strongly consistent read at region 3 sees the write made at 1.
    let get = ok(&[
        "kv",
        "get",
        "demo",
        "greeting",
        "--strong",
        "--origin",
        "https://127.0.73.1:7070",
    ]);
    assert_eq!(get, "hi again\n");
    ok(&["kv", "put", "demo", "a/b c", "spaced"]);
    assert_eq!(
        ok(&["kv", "list", "demo"]),
        "a/b c\tspaced\ngreeting\thi again\n"
    );
    assert_eq!(
        ok(&["kv", "list", "demo", "--prefix", "gr"]),
        "greeting\thi again\n"
    );
    assert!(ok(&["kv", "delete", "demo", "greeting"]).starts_with("deleted demo/greeting"));
    let err = fails(&["kv", "get", "demo", "greeting", "--strong"]);
    assert!(err.contains("404"), "{err}");
    let err = fails(&["kv", "put", "demo", "k", "v", "--token", "wrong"]);
    assert!(
        err.contains("401") && err.contains("WAYPOST_TOKEN"),
        "{err}"
    );
    let err = fails(&[
        "kv",
        "get",
        "demo",
        "k",
        "--origin",
        "https://127.0.79.1:7070",
    ]);
    assert!(
        err.contains("cannot reach the origin") && err.contains("--origin"),
        "{err}"
    );
}

/// Issue 9: a stranger who reaches an edge (or an origin) of `up` reads
/// no KV value, feed, cluster state, plugin or metrics; assets still serve.
fn public_edge_serves_no_private_data() {
    ok(&["kv", "put", "sessions", "user42", "top-secret-value"]);
    let status_of = |url: &str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = client().get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    for base in [
        "http://127.0.71.1:8080",
        "http://127.0.72.1:8080",
        "https://127.0.71.1:7070",
    ] {
        for path in [
            "/kv/sessions/user42",
            "/kv/sessions",
            "/events?after=0",
            "/cluster",
            "/plugins",
            "/plugins/hello",
            "/metrics",
        ] {
            let (status, body) = status_of(&format!("{base}{path}"));
            assert!(
                status == 404 || status == 401,
                "{base}{path} answered {status}: {body}"
            );
            assert!(!body.contains("top-secret-value"), "{base}{path}: {body}");
        }
    }
    let (status, _) = status_of("http://127.0.72.1:8080/assets/hello.txt");
    assert_eq!(status, 200, "assets stay public");
}

fn purges_reach_other_regions() {
    // Cached at region 3's edge...
    let url3 = "http://127.0.73.1:8080/assets/hello.txt";
    get(url3);
    assert!(get(url3).0.contains("hit"), "cached at region 3");
    // ...purged through region 1's origin: region 3's edge applies it from
    // the change feed.
    let out = ok(&["purge", "--key", "demo"]);
    assert!(out.starts_with("purge recorded at feed seq"), "{out}");
    eventually(
        "the purge reaches region 3's edge",
        Duration::from_secs(10),
        || get(url3).0.contains("fwd=").then_some(()),
    );

    // On one edge through its admin API: done when the command returns.
    let url2 = "http://127.0.72.1:8080/assets/hello.txt";
    get(url2);
    assert!(get(url2).0.contains("hit"));
    let out = ok(&["purge", "--admin", "http://127.0.72.1:9080", "--url", url2]);
    assert!(out.contains("\"purged\":1"), "{out}");
    assert!(get(url2).0.contains("fwd=uri-miss"));
    let err = fails(&["purge"]);
    assert!(err.contains("nothing to purge"), "{err}");
}

fn status_shows_the_cluster() {
    let out = ok(&["status", "--edge", "http://127.0.72.1:9080"]);
    assert!(out.contains("origin cluster: leader region "), "{out}");
    assert!(out.contains("voters 1,2,3, learners none"), "{out}");
    for n in 1..=3 {
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no row for region {n}:\n{out}"));
        // The members' addresses are their peer listeners (mutual TLS).
        assert!(row.contains(&format!("127.0.7{n}.1:7071")), "{row}");
        assert!(row.contains("voter") && row.contains(" ok "), "{row}");
    }
    assert!(out.contains("edge http://127.0.72.1:9080: 200 OK"), "{out}");
    assert!(out.contains("hit ratio"), "{out}");

    // `waypost status | head -1`: the reader is gone before anything is
    // printed (the command asks the origin first). The command ends like
    // other Unix tools (SIGPIPE), not with a panic.
    let mut child = Command::new(bin_dir().join("waypost"))
        .arg("status")
        .env("WAYPOST_ORIGIN", ORIGIN)
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn geodns_answers_per_region() {
    if Command::new("dig").arg("-v").output().is_err() {
        eprintln!("skipped the GeoDNS check: dig is not installed");
        return;
    }
    let dig = |extra: &[&str]| {
        let out = Command::new("dig")
            .args([
                "@127.0.71.1",
                "-p",
                "5353",
                "cdn.waypost.test",
                "A",
                "+short",
            ])
            .args(extra)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(dig(&[]), "127.0.71.1");
    assert_eq!(dig(&["+subnet=127.0.73.0/24"]), "127.0.73.1");
}

fn plugin_from_scaffold_to_every_region(dir: &Path) {
    let crate_dir = dir.join("shout");
    let dir_arg = crate_dir.to_str().unwrap();
    let out = ok(&["plugin", "new", "shout", "--dir", dir_arg]);
    assert!(out.contains("created plugin `shout`"), "{out}");
    let err = fails(&["plugin", "new", "Shout", "--dir", dir_arg]);
    assert!(err.contains("not a plugin name"), "{err}");

    // A debug build is enough here; the target dir is kept beside the
    // workspace's so reruns do not rebuild the SDK's dependencies.
    let target = bin_dir().parent().unwrap().join("e2e-plugin-new");
    let out = Command::new(bin_dir().join("waypost"))
        .args(["plugin", "build", dir_arg, "--debug"])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let wasm = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && wasm.ends_with("shout.wasm"),
        "{wasm}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Published as `hello`, the name every edge of `up` declares. Edges
    // write it to their copy of the plugin, never to the source tree's.
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/hello.wasm");
    let example_before = std::fs::read(&example).unwrap();
    let out = ok(&["plugin", "publish", "hello", &wasm]);
    assert!(out.starts_with("published hello sha256 "), "{out}");
    for n in 1..=3 {
        let url = format!("http://127.0.7{n}.1:8080/hello");
        eventually(
            &format!("region {n}'s edge runs it"),
            Duration::from_secs(30),
            || get(&url).1.starts_with("Hello from shout!").then_some(()),
        );
    }
    assert!(
        std::fs::read(&example).unwrap() == example_before,
        "the example plugin was overwritten"
    );
    let out = ok(&["status"]);
    assert!(out.contains("published plugins: hello ("), "{out}");
    let err = fails(&["plugin", "publish", "hello", "/etc/hostname"]);
    assert!(err.contains("not a wasm file"), "{err}");
}

/// The runtime membership drill: a fourth origin process joins as a
/// learner, becomes a voter, and is removed again.
fn region_add_and_remove(dir: &Path) {
    // The fourth origin's certificates come from the platform's CA, as
    // `waypost cert` prints them for its config.
    let data = CA_FILE.get().unwrap().parent().unwrap().parent().unwrap();
    let tls = ok(&[
        "cert",
        "--node",
        "4",
        "--ip",
        "127.0.74.1",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(
        tls.contains("[peer]\nlisten = \"127.0.74.1:7071\""),
        "{tls}"
    );
    let addr = format!("127.0.74.1:{}", waypost_e2e::free_port("127.0.74.1"));
    let config = dir.join("origin-4.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{addr}\"\ndata_dir = \"{}\"\ntoken = \"{TOKEN}\"\n{tls}\n[cluster]\nnode_id = 4\n\
             members = [{{ id = 1, addr = \"127.0.71.1:7071\" }}, {{ id = 2, addr = \"127.0.72.1:7071\" }}, \
             {{ id = 3, addr = \"127.0.73.1:7071\" }}, {{ id = 4, addr = \"127.0.74.1:7071\" }}]\n",
            dir.join("origin-4").display()
        ),
    )
    .unwrap();
    let fourth = Proc::start("origin", &["--config", config.to_str().unwrap()], 1).unwrap();
    let out = ok(&["region", "add", "--id", "4", "--addr", "127.0.74.1:7071"]);
    assert!(out.contains("voters [1,2,3,4]"), "{out}");
    // Caught up: it serves, over HTTPS, what was written before it joined.
    let origin4 = format!("https://{addr}");
    eventually("region 4 serves the KV", Duration::from_secs(10), || {
        let out = waypost(&["kv", "list", "demo", "--origin", &origin4]);
        (out.status.success() && String::from_utf8_lossy(&out.stdout).contains("a/b c\tspaced"))
            .then_some(())
    });

    let out = ok(&["region", "remove", "4"]);
    assert!(out.contains("voters [1,2,3]"), "{out}");
    drop(fourth);
    let err = fails(&["region", "remove", "9"]);
    assert!(err.contains("no member 9"), "{err}");
}
