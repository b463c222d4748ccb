//! `waypost plugin new`: a plugin crate that builds on its own. It depends
//! on the SDK by path (this checkout's `sdk/` unless `--sdk` or
//! `WAYPOST_SDK` names another), is its own workspace (so creating it
//! inside another project does not make cargo look for a parent
//! workspace), and starts from the example plugins' Cargo.lock, so it
//! builds with the dependency versions the SDK is tested with, offline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use waypost_api::PluginName;

#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The plugin's name: 1 to 64 of a-z, 0-9 and `-` (it is the crate,
    /// the .wasm and the name edges declare).
    name: String,
    /// Where to create it; `./<name>` by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The Waypost SDK crate's directory.
    #[arg(long, env = "WAYPOST_SDK", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk"))]
    sdk: PathBuf,
}

pub fn run(args: &NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let sdk = args
        .sdk
        .canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file());
    let sdk = sdk.with_context(|| {
        format!(
            "no SDK crate at {}; pass --sdk <path to waypost's sdk/> (or set WAYPOST_SDK)",
            args.sdk.display()
        )
    })?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    anyhow::ensure!(
        !dir.exists(),
        "{} already exists; pick another --dir or remove it",
        dir.display()
    );
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    write(&dir.join("Cargo.toml"), &manifest(&args.name, &sdk))?;
    write(&dir.join("src/main.rs"), &main_rs(&args.name))?;
    write(&dir.join(".gitignore"), "/target\n")?;
    if let Some(lock) = sdk.parent().map(|p| p.join("plugins/Cargo.lock")) {
        // Best effort: without it cargo resolves the newest versions.
        let _ = std::fs::copy(lock, dir.join("Cargo.lock"));
    }
    println!("created plugin `{}` in {}", args.name, dir.display());
    println!("next: waypost plugin build {}", dir.display());
    println!(
        "then: waypost plugin publish {} <the .wasm it prints>",
        args.name
    );
    Ok(())
}

/// The origin's rule for plugin names (a DNS label), checked here so the
/// crate can be published under its own name.
/// The registry's rule ([`PluginName`]), plus a leading letter: the name
/// also becomes a Rust crate name.
fn check_name(name: &str) -> anyhow::Result<()> {
    PluginName::parse(name).map_err(|e| anyhow::anyhow!("`{name}` is not a plugin name: {e}"))?;
    anyhow::ensure!(
        !name.starts_with(|c: char| c.is_ascii_digit()),
        "`{name}` is not a plugin name here: it also names a Rust crate, so start it with a letter"
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn manifest(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
waypost-sdk = {{ path = "{sdk}" }}

# A workspace of its own: builds the same wherever this directory lives.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1
# A panic aborts, which in wasm is a trap: the edge fails that request.
panic = "abort"
"#,
        sdk = sdk.display()
    )
}

fn main_rs(name: &str) -> String {
    format!(
        r#"//! `{name}`: a Waypost edge plugin (a wasi:http component).
//!
//! It answers every request itself. To act as middleware instead, send
//! the request on to `http://next/<path>` with `waypost_sdk::next` and
//! change the response; `waypost_sdk::{{kv, geo, config, purge, log}}` are
//! the edge's capabilities.

use waypost_sdk::{{Body, Request, Response, Result, StatusCode}};

#[waypost_sdk::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {{
    let body = format!("Hello from {name}!\n{{}}\n", request.uri().path());
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-plugin", "{name}")
        .body(body.into())?)
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_follow_the_registry_rule() {
        for ok in ["hello", "geo-2", "a"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Hello", "-x", "x-", "a_b", "1st", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
