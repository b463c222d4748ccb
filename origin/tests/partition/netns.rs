//! The test network: namespaces, veth links, the hub's blackhole rules.
//!
//! Everything happens in namespaces the test creates: the test binary
//! re-executes itself under `unshare --net --mount --pid --kill-child` (a
//! tmpfs on `/run` holds `ip netns` handles and the regions' data, and the
//! PID namespace takes every region process with it, so nothing outlives
//! the run). Without the rights to do so (not root, no
//! CAP_SYS_ADMIN / CAP_NET_ADMIN, no `unshare` or `ip`), the test prints
//! `skipped: <reason>` and passes, unless `WAYPOST_REQUIRE_NETNS=1`.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `#[test]` in `partition.rs`; every re-execution runs only it.
const TEST_NAME: &str = "partitioned_old_leader_cannot_acknowledge_writes";
/// Set on the re-executed test binary inside the fresh namespaces.
const INNER_ENV: &str = "WAYPOST_PARTITION_INNER";
/// Set on a re-executed test binary that only tries one TCP connection.
const PROBE_ENV: &str = "WAYPOST_PARTITION_PROBE";
/// `1`: a missing `unshare`/`ip` or missing rights fail the test.
const REQUIRE_ENV: &str = "WAYPOST_REQUIRE_NETNS";
/// The inner run's exit code when it could not build the test network.
const SKIP_EXIT: i32 = 77;
const UNSHARE: [&str; 5] = ["--net", "--mount", "--pid", "--kill-child", "--mount-proc"];
/// The whole inner run, after which the outer test kills it.
const INNER_LIMIT: Duration = Duration::from_secs(60);

const PORT: u16 = 7070;
pub(super) const REGIONS: [u8; 3] = [1, 2, 3];
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The test's entry point. Outside: check the rights and re-execute inside
/// fresh namespaces. Inside: build the network, then run `scenario`. In a
/// probe: try one TCP connection and exit.
pub(super) fn run_isolated(scenario: impl FnOnce()) {
    if let Ok(target) = std::env::var(PROBE_ENV) {
        probe_main(&target);
    }
    if std::env::var_os(INNER_ENV).is_some() {
        if let Err(e) = build_network() {
            eprintln!("skipped: cannot build the test network: {e}");
            std::process::exit(SKIP_EXIT);
        }
        scenario();
    } else {
        outer_main();
    }
}

// ---------------------------------------------------------------------
// Outside: check the rights, re-execute inside fresh namespaces.

fn outer_main() {
    // Can we create namespaces and links at all? `unshare` and `ip` both
    // have to work for this.
    let preflight = Command::new("unshare")
        .args(UNSHARE)
        .args(["--", "ip", "link", "add", "wp-pre0", "type", "veth"])
        .args(["peer", "name", "wp-pre1"])
        .stdout(Stdio::null())
        .output();
    match preflight {
        Err(e) => return skip(&format!("cannot run `unshare`: {e}")),
        Ok(out) if !out.status.success() => {
            return skip(&format!(
                "`unshare {} -- ip link add ... type veth` failed ({}): {}",
                UNSHARE.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(_) => {}
    }
    let exe = std::env::current_exe().expect("own test binary");
    let started = Instant::now();
    let mut inner = Command::new("unshare")
        .args(UNSHARE)
        .arg("--")
        .arg(&exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, "1")
        .env_remove(PROBE_ENV)
        .spawn()
        .expect("spawn unshare");
    let status = wait_bounded(&mut inner, INNER_LIMIT);
    eprintln!("partition: inner run took {:?}", started.elapsed());
    let Some(status) = status else {
        let _ = inner.kill();
        let _ = inner.wait();
        panic!("the inner run did not finish within {INNER_LIMIT:?}; killed it");
    };
    if status.code() == Some(SKIP_EXIT) {
        return skip("the test network could not be built (reason printed above)");
    }
    assert!(
        status.success(),
        "the test inside the network namespace failed: {status}"
    );
}

fn skip(reason: &str) {
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{REQUIRE_ENV}=1 but the partition test cannot run: {reason}");
    }
    // Straight to fd 2: libtest would swallow `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

/// Waits for `child` at most `limit`; `None` if it is still running.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------
// Probe: one TCP connection attempt from inside a region's namespace.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    Connected,
    TimedOut,
    Failed,
}

fn probe_main(target: &str) -> ! {
    let addr: SocketAddr = target.parse().expect("probe target");
    let code = match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
        Ok(_) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 2,
        Err(_) => 1,
    };
    std::process::exit(code);
}

/// Whether region `from` can open a TCP connection to region `to`.
fn probe(from: u8, to: u8) -> Probe {
    let status = Command::new("ip")
        .args(["netns", "exec", &netns(from)])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--test-threads=1"])
        .env(PROBE_ENV, region_addr(to))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run probe");
    match status.code() {
        Some(0) => Probe::Connected,
        Some(2) => Probe::TimedOut,
        _ => Probe::Failed,
    }
}

/// Runs the probes in parallel and asserts each outcome.
pub(super) fn expect_probes(when: &str, expected: &[(u8, u8, Probe)]) {
    let results: Vec<Probe> = std::thread::scope(|s| {
        let handles: Vec<_> = expected
            .iter()
            .map(|&(from, to, _)| s.spawn(move || probe(from, to)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (&(from, to, want), got) in expected.iter().zip(results) {
        assert_eq!(
            got, want,
            "{when}: TCP from region {from} to region {to} should be {want:?}"
        );
    }
}

pub(super) fn all_pairs(outcome: Probe) -> Vec<(u8, u8, Probe)> {
    let mut pairs = Vec::new();
    for from in REGIONS {
        for to in REGIONS.into_iter().filter(|to| *to != from) {
            pairs.push((from, to, outcome));
        }
    }
    pairs
}

// ---------------------------------------------------------------------
// Inside: the network.

pub(super) fn netns(i: u8) -> String {
    format!("wp-r{i}")
}

fn hub_link(i: u8) -> String {
    format!("wp-h{i}")
}

fn hub_ip(i: u8) -> String {
    format!("10.99.{i}.1")
}

fn region_ip(i: u8) -> String {
    format!("10.99.{i}.2")
}

pub(super) fn region_addr(i: u8) -> String {
    format!("{}:{PORT}", region_ip(i))
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

/// The hub and one namespace per region, each linked to the hub by a veth
/// pair; the hub forwards between them.
fn build_network() -> Result<(), String> {
    ip(&["link", "set", "lo", "up"])?;
    // Our own mount namespace: `ip netns` handles and the regions' data
    // live on this tmpfs and disappear with it.
    run("mount", &["-t", "tmpfs", "waypost-partition", "/run"])?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| format!("cannot enable forwarding in the hub namespace: {e}"))?;
    for i in REGIONS {
        let (ns, link) = (netns(i), hub_link(i));
        ip(&["netns", "add", &ns])?;
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["addr", "add", &format!("{}/24", hub_ip(i)), "dev", &link])?;
        ip(&["link", "set", &link, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let own = format!("{}/24", region_ip(i));
        ip(&["-n", &ns, "addr", "add", &own, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "route", "add", "default", "via", &hub_ip(i)])?;
    }
    Ok(())
}

/// Adds (`"add"`) or removes (`"del"`) the hub's rules that drop every
/// packet between `leader` and the other regions, both directions.
pub(super) fn partition(op: &str, leader: u8) {
    for peer in REGIONS.into_iter().filter(|p| *p != leader) {
        for (from, to) in [(leader, peer), (peer, leader)] {
            let (from, to) = (region_ip(from), region_ip(to));
            ip(&[
                "rule",
                op,
                "from",
                &from,
                "to",
                &to,
                "blackhole",
                "pref",
                "100",
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
