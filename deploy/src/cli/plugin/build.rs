//! `waypost plugin build`: `cargo build --target wasm32-wasip2` on a
//! plugin crate, reading cargo's JSON messages to find the component it
//! wrote (wherever the crate's target directory is).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The plugin crate's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Build without optimisations (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
}

/// Builds the crate and returns the path of the .wasm it produced.
pub fn run(args: &BuildArgs) -> anyhow::Result<PathBuf> {
    let manifest = args.dir.join("Cargo.toml");
    anyhow::ensure!(
        manifest.is_file(),
        "no Cargo.toml in {}; create a plugin with `waypost plugin new <name>`",
        args.dir.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--target", "wasm32-wasip2"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdout(Stdio::piped());
    if !args.debug {
        cmd.arg("--release");
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {cargo}; is Rust installed?"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut wasm = None;
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(path) = artifact(&line?) {
            wasm = Some(path);
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(
        status.success(),
        "cargo build failed ({status}); if it cannot find `core` or `std`, add the target with \
         `rustup target add wasm32-wasip2`"
    );
    wasm.with_context(|| {
        format!(
            "cargo built {} but no .wasm came out: is it a binary crate (src/main.rs)?",
            manifest.display()
        )
    })
}

/// The `.wasm` executable a `compiler-artifact` message names, if any.
fn artifact(line: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" {
        return None;
    }
    let path = Path::new(msg["executable"].as_str()?);
    (path.extension()? == "wasm").then(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_wasm_artifact() {
        let line =
            r#"{"reason":"compiler-artifact","executable":"/t/wasm32-wasip2/release/x.wasm"}"#;
        assert_eq!(
            super::artifact(line).unwrap().to_str(),
            Some("/t/wasm32-wasip2/release/x.wasm")
        );
        let lib = r#"{"reason":"compiler-artifact","executable":null}"#;
        assert!(super::artifact(lib).is_none());
        assert!(super::artifact(r#"{"reason":"build-finished"}"#).is_none());
    }
}
