//! The example plugins in a local platform: built on first use (they are
//! wasm32-wasip2 components in the `plugins/` workspace) and put in front
//! of two paths of every edge.
//!
//! Each edge gets its own copy in its region's data directory: an edge
//! writes a version published through the origin to the plugin's file (so
//! a restart keeps it), which must never overwrite the build output in the
//! source tree, nor another region's file.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::DEV_TOKEN;

/// The queue the photo uploads feed.
pub const PHOTO_QUEUE: &str = "photos";

/// The plugins the quick start shows (the last one a queue consumer).
const SHOWN: [&str; 4] = ["hello", "security-headers", "photo-upload", "thumbnailer"];

/// The token `PUT /photos/<name>` takes at the local platform's edges.
/// Local use only.
pub const DEV_UPLOAD_TOKEN: &str = "waypost-dev-upload-token";

/// Where the example plugins are built, once they are.
fn built_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/target/wasm32-wasip2/release"
    ));
    SHOWN
        .iter()
        .all(|p| dir.join(format!("{p}.wasm")).is_file())
        .then_some(dir)
}

/// Builds the example plugins if needed; without the wasm32-wasip2
/// target the platform starts without them and says how to add them.
pub fn ensure() -> Option<PathBuf> {
    if let Some(dir) = built_dir() {
        return Some(dir);
    }
    eprintln!("      building the example plugins (wasm32-wasip2) ...");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/Cargo.toml");
    let built =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
                manifest,
                "--target-dir",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/target"),
            ])
            .status()
            .is_ok_and(|s| s.success());
    if !built {
        eprintln!(
            "      plugins not built: run `rustup target add wasm32-wasip2` and start again to see them"
        );
    }
    built_dir()
}

/// Copies the built plugins into `region_dir/plugins` and returns the
/// sites that put them in front of the origin: `/hello` answered by a
/// plugin, `/assets/static/` through the security-headers middleware and
/// then the cache, `/photos/` taking uploads that the `thumbnailer`
/// consumer (in every region) turns into a thumbnail and a sepia version. The copies are refreshed at every start; an edge
/// following the feed then installs any version published since. The
/// compile cache is shared by the regions' edges, so only the first one
/// compiles.
pub fn sites(built: &Path, region_dir: &Path, compile_cache: &Path) -> anyhow::Result<String> {
    let dir = region_dir.join("plugins");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in SHOWN {
        let file = format!("{name}.wasm");
        std::fs::copy(built.join(&file), dir.join(&file))
            .with_context(|| format!("copying {file} into {}", dir.display()))?;
    }
    Ok(format!(
        r#"[[sites]]
hosts = ["*"]
path_prefix = "/hello"
pool = "origin"
plugins = ["hello"]
[[sites]]
hosts = ["*"]
path_prefix = "/assets/static/"
pool = "origin"
plugins = ["security-headers"]
[[plugins]]
name = "hello"
file = "{dir}/hello.wasm"
[[sites]]
hosts = ["*"]
path_prefix = "/photos/"
pool = "origin"
plugins = ["photo-upload"]
plugin_config = {{ upload_token = "{DEV_UPLOAD_TOKEN}" }}
[[plugins]]
name = "security-headers"
file = "{dir}/security-headers.wasm"
[[plugins]]
name = "photo-upload"
file = "{dir}/photo-upload.wasm"
assets = ["photos/"]
queues = ["{PHOTO_QUEUE}"]
[[consumers]]
name = "thumbnailer"
file = "{dir}/thumbnailer.wasm"
queue = "{PHOTO_QUEUE}"
assets = ["photos/"]
[plugin_runtime]
compile_cache_dir = "{cache}"
kv_pool = "origin"
kv_token = "{DEV_TOKEN}"
"#,
        dir = dir.display(),
        cache = compile_cache.display(),
    ))
}
