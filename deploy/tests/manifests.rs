//! The deployment files under `deploy/` cannot rot: every example and
//! Kubernetes config is loaded with the servers' own config loaders (the
//! same validation the binaries run at startup), the three-region set is
//! checked for what makes it one platform, and the systemd units and
//! Kubernetes manifests go through `systemd-analyze verify` and
//! `kubectl kustomize` where those tools exist.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory for one test (this crate has no tempfile).
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("waypost-manifests-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every `.toml` under `dir`, recursively, sorted.
fn tomls(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(tomls(&path));
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

/// geodns checks at load time that the MaxMind database exists; the
/// examples name one next to the config, so each is loaded from a copy
/// beside a placeholder file.
fn load_geodns(path: &Path) -> geodns::Config {
    let dir = scratch(&format!("geodns-{}", path.parent().map_or("", name)));
    let copy = dir.join(name(path));
    std::fs::copy(path, &copy).unwrap();
    std::fs::write(dir.join("GeoLite2-City.mmdb"), b"").unwrap();
    let config = geodns::Config::load(&copy).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::remove_dir_all(dir).unwrap();
    config
}

/// The certificates the configs name, made with the real `waypost cert`
/// (the command the examples tell operators to run) from one CA: region
/// `n`'s files in `<dir>/region-n/` under the names the configs use.
fn issue_certs(dir: &Path) {
    for n in 1..=3 {
        let out = Command::new(env!("CARGO_BIN_EXE_waypost"))
            .args(["cert", "--node", &n.to_string(), "--ip", "127.0.0.1"])
            .args(["--name", &format!("origin-{n}.waypost.internal")])
            .arg("--data-dir")
            .arg(dir.join("ca"))
            .arg("--out")
            .arg(dir.join(format!("region-{n}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A copy of `path` in `dir` whose TLS files (`/etc/waypost/tls/` in the
/// examples, `/etc/waypost-tls/` in Kubernetes) are region `node`'s in
/// `dir` (see [`issue_certs`]).
fn with_certs(path: &Path, dir: &Path, node: u64) -> PathBuf {
    let certs = format!("{}/region-{node}/", dir.display());
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("/etc/waypost/tls/", &certs)
        .replace("/etc/waypost-tls/", &certs);
    let copy = dir.join(format!("{node}-{}", name(path)));
    std::fs::write(&copy, text).unwrap();
    copy
}

/// An origin config, with its TLS files loaded as the origin loads them
/// at start (the peer certificate must carry the config's node id).
fn load_origin(path: &Path, certs: &Path) -> origin::Config {
    let node = origin::Config::load(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .cluster
        .map_or(1, |c| c.node_id);
    let config = origin::Config::load(&with_certs(path, certs, node)).unwrap();
    if let Some(files) = config.tls.clone() {
        origin::public_tls::PublicTls::load(files)
            .unwrap_or_else(|e| panic!("{}: [tls]: {e}", path.display()));
    }
    if let Some(files) = config.peer.as_ref().and_then(|p| p.tls.clone()) {
        origin::peer_tls::PeerTls::load(files, node)
            .unwrap_or_else(|e| panic!("{}: [peer]: {e}", path.display()));
    }
    config
}

fn load_edge(path: &Path, certs: &Path) -> edge_node::Config {
    edge_node::Config::load(&with_certs(path, certs, 1)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_config_loads() {
    let certs = scratch("certs");
    issue_certs(&certs);
    let mut loaded = 0;
    for dir in ["examples", "k8s"] {
        for path in tomls(&deploy_dir().join(dir)) {
            let file = name(&path);
            if file.starts_with("origin") {
                let config = load_origin(&path, &certs);
                assert!(config.tls.is_some(), "{}: the API is HTTPS", path.display());
                if let Some(peer) = config.peer {
                    assert!(peer.tls.is_some(), "{}: peers on mTLS", path.display());
                }
            } else if file.starts_with("edge") {
                let config = load_edge(&path, &certs);
                for pool in &config.pools {
                    assert!(
                        pool.origins.iter().all(|o| o.tls),
                        "{}: pool {} reaches its origins over HTTPS",
                        path.display(),
                        pool.name
                    );
                }
            } else if file.starts_with("geodns") {
                load_geodns(&path);
            } else {
                panic!("{}: no loader for this kind of file", path.display());
            }
            loaded += 1;
        }
    }
    // one-region: 3; three-regions: 7; k8s: 3 regions x 2 + geodns.
    assert_eq!(loaded, 17, "a config example was added or lost");
    std::fs::remove_dir_all(certs).unwrap();
}

#[test]
fn three_region_examples_form_one_platform() {
    let dir = deploy_dir().join("examples/three-regions");
    let certs = scratch("certs-3");
    issue_certs(&certs);
    let mut members = None;
    for n in 1..=3u64 {
        let origin = load_origin(&dir.join(format!("origin-{n}.toml")), &certs);
        let cluster = origin.cluster.expect("[cluster] section");
        assert_eq!(cluster.node_id, n, "origin-{n}.toml is member {n}");
        assert_eq!(cluster.members.len(), 3);
        // Every region must found the group with the same member list.
        assert!(
            members.as_ref().is_none_or(|m| *m == cluster.members),
            "origin-{n}.toml lists other members"
        );
        members = Some(cluster.members);

        let edge = load_edge(&dir.join(format!("edge-{n}.toml")), &certs);
        let names: Vec<&str> = edge.pools[0]
            .regions
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names.len(), 3, "edge-{n}.toml lists every region");
        assert_eq!(
            names[0],
            format!("region-{n}"),
            "edge-{n}.toml: own region first"
        );
        assert!(edge.feed.is_some(), "edge-{n}.toml follows the change feed");
    }
    assert_eq!(load_geodns(&dir.join("geodns.toml")).regions.len(), 3);
    std::fs::remove_dir_all(certs).unwrap();
}

#[test]
fn systemd_units_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = scratch("systemd");
    // verify refuses a unit whose ExecStart binary is missing, and the
    // binaries are not installed here: stand-ins let it check the units'
    // own directives, which is what is under test.
    for bin in ["origin", "edge-node", "geodns", "waypost"] {
        std::os::unix::fs::symlink("/bin/true", dir.join(bin)).unwrap();
    }
    let mut units = Vec::new();
    for entry in std::fs::read_dir(deploy_dir().join("systemd")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if name(&path).ends_with(".timer") {
            assert!(text.contains("Persistent=true"), "{}", path.display());
            let copy = dir.join(name(&path));
            std::fs::write(&copy, text).unwrap();
            units.push(copy);
            continue;
        }
        // A unit that reads tokens refuses to start without its env file.
        assert!(
            !text.contains("EnvironmentFile=-"),
            "{} starts without its env file",
            path.display()
        );
        for needed in [
            "ExecStart=/usr/local/bin/",
            "Restart=on-failure",
            "LimitNOFILE=",
            "ProtectSystem=strict",
            "DynamicUser=yes",
        ] {
            assert!(text.contains(needed), "{} lacks {needed}", path.display());
        }
        let copy = dir.join(name(&path));
        let text = text.replace("/usr/local/bin/", &format!("{}/", dir.display()));
        std::fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    assert_eq!(units.len(), 5, "origin, edge, geodns, backup and its timer");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown or misspelt directives are only warnings: refuse those too.
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn kubernetes_regions_build() {
    let probe = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    // The Secrets are generated from token files operators create (never
    // committed): build from a copy with stand-ins.
    let copy = scratch("k8s");
    let cp = Command::new("cp")
        .arg("-r")
        .arg(deploy_dir().join("k8s"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    for t in ["write", "read", "edge-admin"] {
        std::fs::write(
            copy.join("k8s/base/tokens").join(t),
            format!("stand-in-{t}"),
        )
        .unwrap();
    }
    for f in ["ca.pem", "ca.key"] {
        std::fs::write(copy.join("k8s/base/ca").join(f), "stand-in").unwrap();
    }
    for n in 1..=3 {
        let dir = copy.join(format!("k8s/region-{n}"));
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .unwrap();
        let yaml = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for kind in [
            "StatefulSet",
            "Deployment",
            "Service",
            "ConfigMap",
            "Secret",
        ] {
            assert!(
                yaml.contains(&format!("kind: {kind}\n")),
                "region-{n}: no {kind}"
            );
        }
        assert!(
            yaml.contains(&format!("node_id = {n}")),
            "region-{n}'s origin config"
        );
        assert!(
            yaml.contains("volumeClaimTemplates"),
            "the origin keeps a volume"
        );
        assert!(yaml.contains("kind: NetworkPolicy\n"), "region-{n}");
        // TLS on every hop: cert-manager issues the origin's certificates
        // from the cluster CA, which the edges trust.
        assert_eq!(yaml.matches("kind: Certificate\n").count(), 2, "region-{n}");
        assert!(yaml.contains("kind: Issuer\n"), "region-{n}");
        assert!(
            yaml.contains(&format!("- waypost-node://{n}\n")),
            "region-{n}: the peer certificate carries its node id"
        );
        assert!(
            !yaml.contains("http://origin"),
            "region-{n}: an origin reached in plaintext"
        );
        assert_eq!(
            yaml.matches("image: ").count(),
            yaml.matches("limits: { memory: ").count() + yaml.matches("limits:\n").count(),
            "region-{n}: every container has a memory limit"
        );
        // The peers component: what is exposed between regions is limited
        // to their address ranges.
        assert_eq!(
            yaml.matches("type: LoadBalancer").count(),
            yaml.matches("loadBalancerSourceRanges").count() + 2,
            "region-{n}: only the edge and geodns are open to everyone"
        );
        assert_eq!(
            yaml.contains("kind: CronJob\n"),
            n == 1,
            "backups run in region 1"
        );
    }
    // Without the explicit peers component nothing but the public edge and
    // geodns gets a load balancer.
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(copy.join("k8s/base"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = String::from_utf8_lossy(&out.stdout);
    let exposed: Vec<&str> = base
        .split("\n---\n")
        .filter(|doc| doc.contains("type: LoadBalancer"))
        .filter_map(|doc| doc.lines().find_map(|l| l.strip_prefix("  name: ")))
        .collect();
    assert_eq!(exposed, ["edge", "geodns"], "{base}");
    std::fs::remove_dir_all(copy).unwrap();
}

/// The compose file mounts the three-region examples; a renamed example
/// must not leave it pointing at nothing. (Running it needs a Docker
/// daemon, which these tests do not assume.)
#[test]
fn compose_mounts_existing_examples() {
    let text = std::fs::read_to_string(deploy_dir().join("compose.yaml")).unwrap();
    let mounts: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ./"))
        .map(|m| m.split(':').next().unwrap())
        .collect();
    assert_eq!(mounts.len(), 7, "{mounts:?}");
    for mount in mounts {
        assert!(
            deploy_dir().join(mount).is_file(),
            "compose.yaml mounts {mount}"
        );
    }
}
