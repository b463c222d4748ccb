//! `waypost status`: the origin cluster as the leader sees it (members,
//! voters and learners, each region's health and how far it lags), the
//! published plugin versions, and, for each edge admin URL given, its
//! health and cache hit ratio.

use std::time::Duration;

use waypost_api::cluster::{ClusterStatus, MemberHealth};
use waypost_api::writes::PluginListing;

use super::{OriginArgs, client, send, success};

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    origin: OriginArgs,
    /// An edge's admin URL (repeatable), e.g. http://127.0.1.1:9080.
    #[arg(long = "edge", value_name = "URL")]
    edges: Vec<String>,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let http = args.origin.client(Duration::from_secs(5))?;
    let resp = send(http.get(args.origin.url("/cluster")), "the origin").await?;
    let cluster: ClusterStatus = success(resp, "GET /cluster").await?.json().await?;
    // The members as the cluster reaches them: their addresses are the
    // links between regions, which take only the cluster's certificates.
    let resp = send(http.get(args.origin.url("/cluster/health")), "the origin").await?;
    let members: Vec<MemberHealth> = success(resp, "GET /cluster/health").await?.json().await?;
    print_cluster(&cluster, &members);
    print_plugins(&http, &args.origin).await;
    let plain = client(Duration::from_secs(5))?;
    for edge in &args.edges {
        print_edge(&plain, edge).await;
    }
    Ok(())
}

fn ids(list: &[u64]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    let list: Vec<String> = list.iter().map(u64::to_string).collect();
    list.join(",")
}

fn print_cluster(c: &ClusterStatus, members: &[MemberHealth]) {
    let leader = match (c.leader, &c.leader_addr) {
        (Some(id), Some(addr)) => format!("region {id} ({addr})"),
        _ => "NONE (no majority answering?)".into(),
    };
    println!(
        "origin cluster: leader {leader}, term {}, voters {}, learners {}",
        c.term,
        ids(&c.voters),
        ids(&c.learners)
    );
    println!(
        "  {:<7} {:<22} {:<8} {:<12} {:<9} {:>8} {:>11}",
        "region", "origin", "member", "health", "role", "applied", "repl. lag"
    );
    for m in members {
        let (health, role) = match &m.health {
            None => ("unreachable".to_string(), "-".to_string()),
            Some(h) => match h.lag {
                Some(lag) if lag > 0 => (format!("{}({lag})", h.status.as_str()), h.role.clone()),
                _ => (h.status.as_str().to_string(), h.role.clone()),
            },
        };
        let dash = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "  {:<7} {:<22} {:<8} {:<12} {:<9} {:>8} {:>11}",
            m.id,
            m.addr,
            if m.voter { "voter" } else { "learner" },
            health,
            role,
            dash(m.applied_index),
            dash(m.replication_lag)
        );
    }
}

async fn print_plugins(http: &reqwest::Client, origin: &OriginArgs) {
    let Ok(resp) = http.get(origin.url("/plugins")).send().await else {
        return;
    };
    let plugins: PluginListing = resp.json().await.unwrap_or_default();
    if plugins.is_empty() {
        println!("published plugins: none");
        return;
    }
    let list: Vec<String> = plugins
        .iter()
        .map(|(name, sha)| format!("{name} ({})", &sha[..sha.len().min(12)]))
        .collect();
    println!("published plugins: {}", list.join(", "));
}

async fn print_edge(http: &reqwest::Client, admin: &str) {
    let base = admin.trim_end_matches('/');
    let health = match http.get(format!("{base}/healthz")).send().await {
        Ok(r) => r.status().to_string(),
        Err(e) => {
            println!("edge {base}: unreachable ({e})");
            return;
        }
    };
    let metrics = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let (hits, total) = hit_counts(&metrics);
    let ratio = if total > 0.0 {
        100.0 * hits / total
    } else {
        0.0
    };
    println!("edge {base}: {health}, {total} requests, hit ratio {ratio:.1}%");
}

/// Cache hits and all requests from an edge's Prometheus text.
fn hit_counts(metrics: &str) -> (f64, f64) {
    let sum = |filter: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("waypost_edge_requests_total") && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            // fold, not sum: an empty f64 sum is -0.0, printed as such.
            .fold(0.0, |a, b| a + b)
    };
    (sum("cache=\"Hit\""), sum(""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hit_ratio_counts_only_request_lines() {
        let text = "# TYPE waypost_edge_requests_total counter\n\
            waypost_edge_requests_total{status=\"200\",cache=\"Hit\"} 3\n\
            waypost_edge_requests_total{status=\"200\",cache=\"Miss\"} 1\n\
            waypost_edge_cache_objects 9\n";
        assert_eq!(super::hit_counts(text), (3.0, 4.0));
    }
}
