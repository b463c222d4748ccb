//! `waypost kv`: the replicated key-value store plugins read and write
//! (`/kv/{namespace}/{key}` at the origin). Reads are served by the region
//! asked unless `--strong` makes it confirm with the leader first.

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use reqwest::Url;
use waypost_api::kv::Listing;

use super::{OriginArgs, send, success};

#[derive(clap::Args, Debug)]
pub struct KvArgs {
    #[command(flatten)]
    origin: OriginArgs,
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KvCommand {
    /// Print a key's value.
    Get {
        namespace: String,
        key: String,
        /// Read through the leader: sees every acknowledged write.
        #[arg(long)]
        strong: bool,
    },
    /// Set a key (UTF-8 text; `-` reads the value from stdin).
    Put {
        namespace: String,
        key: String,
        value: String,
    },
    /// Delete a key.
    Delete { namespace: String, key: String },
    /// List keys and values in a namespace, in key order.
    List {
        namespace: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Read through the leader.
        #[arg(long)]
        strong: bool,
    },
}

pub async fn run(args: KvArgs) -> anyhow::Result<()> {
    let http = args.origin.client(Duration::from_secs(30))?;
    let o = &args.origin;
    match args.command {
        KvCommand::Get {
            namespace,
            key,
            strong,
        } => {
            let mut url = kv_url(o, &namespace, Some(&key))?;
            if strong {
                url.query_pairs_mut().append_pair("consistency", "strong");
            }
            let resp = send(http.get(url), "the origin").await?;
            let value = success(resp, &format!("reading {namespace}/{key}"))
                .await?
                .text()
                .await?;
            if value.ends_with('\n') {
                print!("{value}");
            } else {
                println!("{value}");
            }
        }
        KvCommand::Put {
            namespace,
            key,
            value,
        } => {
            let value = if value == "-" {
                let mut v = String::new();
                std::io::stdin()
                    .read_to_string(&mut v)
                    .context("reading the value from stdin")?;
                v
            } else {
                value
            };
            let req = http
                .put(kv_url(o, &namespace, Some(&key))?)
                .bearer_auth(&o.token)
                .body(value);
            let resp = success(send(req, "the origin").await?, "kv put").await?;
            let verb = if resp.status() == 201 {
                "created"
            } else {
                "updated"
            };
            println!("{verb} {namespace}/{key}{}", seq(&resp));
        }
        KvCommand::Delete { namespace, key } => {
            let req = http
                .delete(kv_url(o, &namespace, Some(&key))?)
                .bearer_auth(&o.token);
            let resp = success(send(req, "the origin").await?, "kv delete").await?;
            println!("deleted {namespace}/{key}{}", seq(&resp));
        }
        KvCommand::List {
            namespace,
            prefix,
            strong,
        } => list(&http, o, &namespace, &prefix, strong).await?,
    }
    Ok(())
}

/// Prints every entry, following `truncated` pages.
async fn list(
    http: &reqwest::Client,
    o: &OriginArgs,
    ns: &str,
    prefix: &str,
    strong: bool,
) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let mut url = kv_url(o, ns, None)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("prefix", prefix);
            if let Some(a) = &after {
                q.append_pair("after", a);
            }
            if strong {
                q.append_pair("consistency", "strong");
            }
        }
        let resp = success(send(http.get(url), "the origin").await?, "kv list").await?;
        let page: Listing = resp.json().await.context("the origin's listing")?;
        for e in &page.entries {
            println!("{}\t{}", e.key, e.value);
        }
        match page.entries.last() {
            Some(last) if page.truncated => after = Some(last.key.clone()),
            _ => return Ok(()),
        }
    }
}

/// `/kv/{ns}[/{key}]` with both segments percent-encoded.
fn kv_url(o: &OriginArgs, ns: &str, key: Option<&str>) -> anyhow::Result<Url> {
    let mut url = Url::parse(&o.url("/kv"))
        .with_context(|| format!("--origin {} is not a URL like http://host:7070", o.origin))?;
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--origin {} cannot take a path", o.origin))?;
        segments.push(ns);
        if let Some(key) = key {
            segments.push(key);
        }
    }
    Ok(url)
}

/// `, feed seq N` from the write's answer, when the origin sent it.
fn seq(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(waypost_api::headers::SEQ)
        .and_then(|v| v.to_str().ok())
        .map_or_else(String::new, |s| format!(" (feed seq {s})"))
}
