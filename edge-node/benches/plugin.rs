//! One request through plugins in-process, without HTTP: a fresh instance
//! plus the handler for `hello` (wasi:http 0.2, built with the SDK) and
//! `hello-p3` (0.3), and chains of one and three `security-headers` links
//! (each calls `next`) ending in a fixed response, whose difference is the
//! cost of a link. Run: `cargo bench -p edge-node --bench plugin`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use edge_node::Config;
use edge_node::plugin_harness::{PluginHarness, TERMINAL_BODY};
use http::Request;

fn harness(dir: &Path, plugins: &[(&str, &Path)], chain: &[&str]) -> PluginHarness {
    // The pool is never contacted: every chain ends in the harness's
    // fixed response.
    let unused_origin = "127.0.0.1:9".parse().unwrap();
    let toml = support::plugin_edge_toml(unused_origin, dir, plugins, chain, "", "");
    let config = Config::from_toml(&dir.join("edge.toml"), &toml).expect("valid bench config");
    PluginHarness::start(&config, 0).expect("plugins load")
}

fn request() -> Request<Bytes> {
    Request::get("http://bench.invalid/page")
        .body(Bytes::new())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (hello, hello_p3, sec) = (
        support::plugin_wasm("hello"),
        support::plugin_wasm("hello_p3"),
        support::plugin_wasm("security-headers"),
    );
    let cases: [(&str, PluginHarness, &str); 4] = [
        (
            "hello (0.2, SDK)",
            harness(dir.path(), &[("hello", &hello)], &["hello"]),
            "Hello from Waypost!",
        ),
        (
            "hello-p3 (0.3)",
            harness(dir.path(), &[("hello", &hello_p3)], &["hello"]),
            "Hello from Waypost (wasi:http 0.3)!",
        ),
        (
            "chain of 1 security-headers",
            harness(dir.path(), &[("s1", &sec)], &["s1"]),
            TERMINAL_BODY,
        ),
        (
            "chain of 3 security-headers",
            harness(
                dir.path(),
                &[("s1", &sec), ("s2", &sec), ("s3", &sec)],
                &["s1", "s2", "s3"],
            ),
            TERMINAL_BODY,
        ),
    ];
    let mut group = c.benchmark_group("plugin instantiate + handle");
    for (name, h, expected) in &cases {
        let (status, body) = rt.block_on(h.handle(request()));
        assert_eq!(status, 200, "{name}: {body:?}");
        assert!(
            String::from_utf8_lossy(&body).starts_with(expected),
            "{name}: {body:?}"
        );
        group.bench_function(*name, |b| b.iter(|| rt.block_on(h.handle(request()))));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
