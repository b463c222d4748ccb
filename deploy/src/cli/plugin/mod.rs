//! `waypost plugin new|build|publish`: from an empty directory to a plugin
//! version every edge installs. `new` scaffolds a crate on the SDK, `build`
//! compiles it to a wasi:http component, `publish` stores it in the
//! origin's registry, whose change feed tells every edge declaring a plugin
//! of that name to install it.

mod build;
mod scaffold;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use waypost_api::writes::StoredPlugin;

use super::{OriginArgs, send, success};

#[derive(clap::Args, Debug)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(clap::Subcommand, Debug)]
enum PluginCommand {
    /// Create a plugin crate (on the Waypost SDK) in a new directory.
    New(scaffold::NewArgs),
    /// Build a plugin crate for wasm32-wasip2 and print the .wasm path.
    Build(build::BuildArgs),
    /// Publish a .wasm as plugin NAME: every edge that declares a plugin
    /// of that name installs it (through the origin's change feed).
    Publish(PublishArgs),
}

#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    #[command(flatten)]
    origin: OriginArgs,
    /// The plugin's name as edges declare it (`[[plugins]] name`).
    name: String,
    /// The component, e.g. from `waypost plugin build`.
    file: PathBuf,
}

pub async fn run(args: PluginArgs) -> anyhow::Result<()> {
    match args.command {
        PluginCommand::New(a) => scaffold::run(&a),
        PluginCommand::Build(a) => build::run(&a).map(|wasm| println!("{}", wasm.display())),
        PluginCommand::Publish(a) => publish(a).await,
    }
}

/// The first bytes of every wasm binary.
const WASM_MAGIC: &[u8] = b"\0asm";

async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    anyhow::ensure!(
        bytes.starts_with(WASM_MAGIC),
        "{} is not a wasm file; build one with `waypost plugin build`",
        args.file.display()
    );
    let o = &args.origin;
    let req = o
        .client(Duration::from_secs(120))?
        .put(o.url(&format!("/plugins/{}", args.name)))
        .bearer_auth(&o.token)
        .header("content-type", "application/wasm")
        .body(bytes);
    let resp = send(req, "the origin").await?;
    let stored: StoredPlugin = success(resp, "publishing the plugin").await?.json().await?;
    println!(
        "published {} sha256 {} ({} bytes) at feed seq {}",
        stored.name,
        stored.sha256,
        stored.size,
        stored.seq.map_or("-".to_string(), |s| s.to_string())
    );
    println!(
        "edges that declare a plugin named `{}` install it from the feed",
        args.name
    );
    Ok(())
}
