//! `waypost purge`: cluster-wide through the origin (a purge event in the
//! change feed, which every edge following the feed applies, in every
//! region), or on one edge through its admin API (`--admin`), for edges
//! that do not follow a feed.

use std::time::Duration;

use waypost_api::writes::{Accepted, PurgeRequest};

use super::{OriginArgs, client, send, success};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  waypost purge --key demo                       # every edge, every region\n  waypost purge --path /assets/hello.txt --soft  # mark stale everywhere\n  waypost purge --admin http://127.0.1.1:9080 --url http://cdn.example.com/logo.svg"
)]
pub struct PurgeArgs {
    #[command(flatten)]
    origin: OriginArgs,
    /// Purge on this one edge's admin API instead of cluster-wide.
    #[arg(long, value_name = "URL", conflicts_with = "paths")]
    admin: Option<String>,
    /// Surrogate key to purge (repeatable).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// URL path to purge on every host, e.g. /assets/logo.svg (repeatable;
    /// cluster-wide mode).
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    /// Absolute URL to purge, every variant (with --admin).
    #[arg(long, value_name = "URL", requires = "admin")]
    url: Option<String>,
    /// Mark stale instead of removing (revalidated on next use).
    #[arg(long)]
    soft: bool,
}

pub async fn run(args: PurgeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.keys.is_empty() || !args.paths.is_empty() || args.url.is_some(),
        "nothing to purge: give --key and/or --path (or --url with --admin)"
    );
    match &args.admin {
        Some(admin) => on_edge(&args, admin).await,
        None => cluster_wide(&args).await,
    }
}

async fn cluster_wide(args: &PurgeArgs) -> anyhow::Result<()> {
    let body = PurgeRequest {
        paths: args.paths.clone(),
        surrogate_keys: args.keys.clone(),
        soft: args.soft,
    };
    let req = args
        .origin
        .client(Duration::from_secs(30))?
        .post(args.origin.url("/purge"))
        .bearer_auth(&args.origin.token)
        .json(&body);
    let resp = send(req, "the origin").await?;
    let answer: Accepted = success(resp, "purge").await?.json().await?;
    let seq = answer.seq.map_or("-".to_string(), |s| s.to_string());
    println!("purge recorded at feed seq {seq}; every edge that follows the feed applies it");
    Ok(())
}

async fn on_edge(args: &PurgeArgs, admin: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.keys.len() + usize::from(args.url.is_some()) == 1,
        "an edge's admin API purges one --url or one --key per request; run once for each"
    );
    let mut query = vec![];
    if let Some(u) = &args.url {
        query.push(("url", u.as_str()));
    }
    if let Some(k) = args.keys.first() {
        query.push(("key", k.as_str()));
    }
    if args.soft {
        query.push(("soft", "true"));
    }
    let req = client(Duration::from_secs(30))?
        .post(format!("{}/purge", admin.trim_end_matches('/')))
        .query(&query)
        .bearer_auth(&args.origin.token);
    let resp = send(req, "the edge admin API").await?;
    let text = success(resp, "purge").await?.text().await?;
    println!("{}", text.trim());
    Ok(())
}
