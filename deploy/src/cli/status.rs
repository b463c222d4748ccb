//! `waypost status`: the origin cluster as the leader sees it (members,
//! voters and learners, each region's health and how far it lags), the
//! published plugin versions, and, for each edge admin URL given, its
//! health and cache hit ratio.

use std::time::Duration;

use waypost_api::cluster::{ClusterStatus, Health};
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
    let asked = args.origin.url("/cluster");
    let resp = send(http.get(&asked), "the origin").await?;
    let mut cluster: ClusterStatus = success(resp, "GET /cluster").await?.json().await?;
    // Replication lag per member is only known to the leader.
    if let Some(leader) = cluster.leader_addr.clone()
        && !cluster.is_leader()
        && let Ok(Ok(view)) = http
            .get(format!("http://{leader}/cluster"))
            .send()
            .await
            .map(|r| r.error_for_status())
        && let Ok(view) = view.json().await
    {
        cluster = view;
    }
    print_cluster(&http, &cluster).await;
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

async fn print_cluster(http: &reqwest::Client, c: &ClusterStatus) {
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
    for m in &c.members {
        let (health, role, applied) = member_health(http, &m.addr).await;
        let lag = m.replication_lag.map_or("-".to_string(), |l| l.to_string());
        println!(
            "  {:<7} {:<22} {:<8} {:<12} {:<9} {:>8} {:>11}",
            m.id,
            m.addr,
            if m.voter { "voter" } else { "learner" },
            health,
            role,
            applied,
            lag
        );
    }
}

/// A member's own `/healthz` verdict and role, and its `/cluster` applied
/// index; `unreachable` when it does not answer.
async fn member_health(http: &reqwest::Client, addr: &str) -> (String, String, String) {
    let health: Option<Health> = match http.get(format!("http://{addr}/healthz")).send().await {
        Ok(r) => r.json().await.ok(),
        Err(_) => return ("unreachable".into(), "-".into(), "-".into()),
    };
    let applied = match http.get(format!("http://{addr}/cluster")).send().await {
        Ok(r) => r
            .json::<ClusterStatus>()
            .await
            .map_or("?".to_string(), |c| c.applied_index.to_string()),
        Err(_) => "-".into(),
    };
    let Some(health) = health else {
        return ("?".into(), "?".into(), applied);
    };
    let status = match health.lag {
        Some(lag) if lag > 0 => format!("{}({lag})", health.status.as_str()),
        _ => health.status.as_str().to_string(),
    };
    (status, health.role, applied)
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
