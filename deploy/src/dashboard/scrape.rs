//! One reading of every service the dashboard draws: each region's origin
//! (`/cluster`, `/metrics`, with the operator's token) and edge admin
//! listener (`/healthz`, `/metrics`), and geodns (`/metrics`). Counters are
//! kept from the previous reading, so a point carries rates and quantiles
//! over the last interval, as Prometheus' `rate()` would.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use waypost_api::cluster::ClusterStatus;

use super::prom::{self, Sample, quantile};

/// Where one region's services answer (base URLs, no trailing slash).
#[derive(Debug, Clone)]
pub struct RegionTarget {
    pub name: String,
    pub origin: String,
    pub edge_admin: String,
}

#[derive(Debug, Clone)]
pub struct Targets {
    pub regions: Vec<RegionTarget>,
    /// geodns's metrics listener, when there is one.
    pub geodns: Option<String>,
}

/// Cumulative edge counters at one reading.
#[derive(Debug, Clone, Default)]
pub struct EdgeCounters {
    requests: f64,
    hits: f64,
    lookups: f64,
    client_errors: f64,
    server_errors: f64,
    bytes: f64,
    latency: Vec<(f64, f64)>,
    origin_latency: Vec<(f64, f64)>,
    /// Per plugin and version.
    plugins: BTreeMap<(String, String), PluginCounters>,
}

/// Cumulative counters of one plugin version at one reading.
#[derive(Debug, Clone, Default)]
struct PluginCounters {
    requests: f64,
    /// Traps and overloads (not timeouts).
    errors: f64,
    timeouts: f64,
    latency: Vec<(f64, f64)>,
}

/// What one region looked like over the last interval.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RegionPoint {
    pub origin_up: bool,
    pub role: String,
    pub term: u64,
    pub applied_index: u64,
    pub lag: u64,
    pub leader_changes: u64,
    pub edge_up: bool,
    pub requests_per_s: f64,
    pub hit_ratio: Option<f64>,
    pub bytes_out_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub client_errors_per_s: f64,
    pub server_errors_per_s: f64,
    pub origin_fetch_p99_ms: Option<f64>,
    pub plugins: Vec<PluginPoint>,
    pub queues: Vec<QueuePoint>,
    /// geodns answers naming this region, per second.
    pub dns_answers_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginPoint {
    pub plugin: String,
    pub version: String,
    pub requests_per_s: f64,
    pub errors_per_s: f64,
    pub timeouts_per_s: f64,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueuePoint {
    pub queue: String,
    pub ready: f64,
    pub in_flight: f64,
    pub dead: f64,
    pub oldest_age_s: f64,
}

/// geodns as a whole at one reading.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DnsPoint {
    pub up: bool,
    /// (region, endpoint, healthy)
    pub endpoints: Vec<(String, String, bool)>,
}

/// The scraper's memory between readings.
#[derive(Debug, Default)]
pub struct Previous {
    edges: Vec<Option<EdgeCounters>>,
    dns_answers: BTreeMap<String, f64>,
}

pub struct Reading {
    pub regions: Vec<RegionPoint>,
    pub dns: DnsPoint,
}

/// Reads everything once; `interval` is the time since the last reading.
pub async fn read(
    client: &reqwest::Client,
    token: &str,
    targets: &Targets,
    previous: &mut Previous,
    interval: Duration,
) -> Reading {
    let secs = interval.as_secs_f64().max(0.001);
    previous.edges.resize(targets.regions.len(), None);
    let reads = targets
        .regions
        .iter()
        .map(|r| read_region(client, token, r));
    let results = futures::future::join_all(reads).await;
    let mut regions = Vec::new();
    for ((mut point, counters), last) in results.into_iter().zip(previous.edges.iter_mut()) {
        if let (Some(now), Some(before)) = (&counters, last.as_ref()) {
            rates(&mut point, now, before, secs);
        }
        *last = counters;
        regions.push(point);
    }
    let mut dns = DnsPoint::default();
    if let Some(url) = &targets.geodns
        && let Some(samples) = metrics(client, &format!("{url}/metrics"), None).await
    {
        dns.up = true;
        for s in &samples {
            if s.name == "geodns_endpoint_up" {
                dns.endpoints.push((
                    s.label("region").unwrap_or("").to_string(),
                    s.label("endpoint").unwrap_or("").to_string(),
                    s.value >= 1.0,
                ));
            }
        }
        for (target, point) in targets.regions.iter().zip(regions.iter_mut()) {
            let now: f64 = samples
                .iter()
                .filter(|s| s.name == "geodns_geo_answers_total")
                .filter(|s| s.label("region") == Some(target.name.as_str()))
                .map(|s| s.value)
                .sum();
            if let Some(before) = previous.dns_answers.insert(target.name.clone(), now) {
                point.dns_answers_per_s = ((now - before) / secs).max(0.0);
            }
        }
    }
    Reading { regions, dns }
}

async fn read_region(
    client: &reqwest::Client,
    token: &str,
    target: &RegionTarget,
) -> (RegionPoint, Option<EdgeCounters>) {
    let mut point = RegionPoint::default();
    let cluster = async {
        let resp = client
            .get(format!("{}/cluster", target.origin))
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        resp.json::<ClusterStatus>().await.ok()
    };
    let (origin_url, edge_url) = (
        format!("{}/metrics", target.origin),
        format!("{}/metrics", target.edge_admin),
    );
    let origin_metrics = metrics(client, &origin_url, Some(token));
    let edge_health = async {
        client
            .get(format!("{}/healthz", target.edge_admin))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    let edge_metrics = metrics(client, &edge_url, None);
    let (cluster, origin_metrics, edge_up, edge_metrics) =
        tokio::join!(cluster, origin_metrics, edge_health, edge_metrics);
    if let Some(c) = cluster {
        point.origin_up = true;
        point.role = c.role;
        point.term = c.term;
        point.applied_index = c.applied_index;
        point.lag = c.lag;
        point.leader_changes = c.leader_changes;
    }
    point.queues = origin_metrics
        .map(|s: Vec<Sample>| queues(&s))
        .unwrap_or_default();
    point.edge_up = edge_up;
    let counters = edge_metrics
        .filter(|_| edge_up)
        .map(|s: Vec<Sample>| edge_counters(&s));
    (point, counters)
}

async fn metrics(client: &reqwest::Client, url: &str, token: Option<&str>) -> Option<Vec<Sample>> {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let text = req
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    Some(prom::parse(&text))
}

/// Adds `s`'s count to the bucket of its `le` in `buckets` (summing over
/// the other labels).
fn add_bucket(buckets: &mut Vec<(f64, f64)>, s: &Sample) {
    let Some(le) = s.label("le").and_then(|l| l.parse::<f64>().ok()) else {
        return;
    };
    match buckets.iter_mut().find(|(b, _)| *b == le) {
        Some(entry) => entry.1 += s.value,
        None => {
            buckets.push((le, s.value));
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
}

fn edge_counters(samples: &[Sample]) -> EdgeCounters {
    let mut c = EdgeCounters::default();
    for s in samples {
        match s.name.as_str() {
            "waypost_edge_requests_total" => {
                c.requests += s.value;
                match s.label("cache") {
                    Some("Hit" | "Stale" | "Revalidated") => {
                        c.hits += s.value;
                        c.lookups += s.value;
                    }
                    Some("Miss") => c.lookups += s.value,
                    _ => {}
                }
                match s.label("status").and_then(|v| v.as_bytes().first()) {
                    Some(b'4') => c.client_errors += s.value,
                    Some(b'5') => c.server_errors += s.value,
                    _ => {}
                }
            }
            "waypost_edge_body_bytes_sent_total" => c.bytes += s.value,
            "waypost_edge_request_seconds_bucket" => add_bucket(&mut c.latency, s),
            "waypost_edge_origin_response_seconds_bucket" => add_bucket(&mut c.origin_latency, s),
            "waypost_edge_plugin_request_seconds_bucket" => {
                add_bucket(&mut plugin_entry(&mut c, s).latency, s);
            }
            "waypost_edge_plugin_request_seconds_count" => {
                let entry = plugin_entry(&mut c, s);
                entry.requests += s.value;
                match s.label("outcome") {
                    Some("ok") => {}
                    Some("timeout") => entry.timeouts += s.value,
                    _ => entry.errors += s.value,
                }
            }
            _ => {}
        }
    }
    c
}

fn plugin_entry<'a>(c: &'a mut EdgeCounters, s: &Sample) -> &'a mut PluginCounters {
    let key = (
        s.label("plugin").unwrap_or("").to_string(),
        s.label("version").unwrap_or("").to_string(),
    );
    c.plugins.entry(key).or_default()
}

/// Bucket counts of `now` minus `before` (a restarted edge's counters
/// start again: then `now` alone).
fn delta(now: &[(f64, f64)], before: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let d: Vec<(f64, f64)> = now
        .iter()
        .map(|&(le, n)| {
            let b = before.iter().find(|(l, _)| *l == le).map_or(0.0, |x| x.1);
            (le, n - b)
        })
        .collect();
    if d.iter().any(|(_, n)| *n < 0.0) {
        now.to_vec()
    } else {
        d
    }
}

fn rates(point: &mut RegionPoint, now: &EdgeCounters, before: &EdgeCounters, secs: f64) {
    let rate = |n: f64, b: f64| ((n - b) / secs).max(0.0);
    let ms = |v: Option<f64>| v.map(|s| s * 1000.0);
    point.requests_per_s = rate(now.requests, before.requests);
    let lookups = now.lookups - before.lookups;
    point.hit_ratio = (lookups > 0.0).then(|| (now.hits - before.hits) / lookups);
    point.bytes_out_per_s = rate(now.bytes, before.bytes);
    point.client_errors_per_s = rate(now.client_errors, before.client_errors);
    point.server_errors_per_s = rate(now.server_errors, before.server_errors);
    let latency = delta(&now.latency, &before.latency);
    point.p50_ms = ms(quantile(0.5, &latency));
    point.p99_ms = ms(quantile(0.99, &latency));
    point.origin_fetch_p99_ms = ms(quantile(
        0.99,
        &delta(&now.origin_latency, &before.origin_latency),
    ));
    for ((plugin, version), n) in &now.plugins {
        let b = before
            .plugins
            .get(&(plugin.clone(), version.clone()))
            .cloned()
            .unwrap_or_default();
        point.plugins.push(PluginPoint {
            plugin: plugin.clone(),
            version: version.clone(),
            requests_per_s: rate(n.requests, b.requests),
            errors_per_s: rate(n.errors, b.errors),
            timeouts_per_s: rate(n.timeouts, b.timeouts),
            p99_ms: ms(quantile(0.99, &delta(&n.latency, &b.latency))),
        });
    }
}

fn queues(samples: &[Sample]) -> Vec<QueuePoint> {
    let mut by_name: BTreeMap<String, QueuePoint> = BTreeMap::new();
    for s in samples {
        let Some(queue) = s.label("queue") else {
            continue;
        };
        let entry = by_name
            .entry(queue.to_string())
            .or_insert_with(|| QueuePoint {
                queue: queue.to_string(),
                ready: 0.0,
                in_flight: 0.0,
                dead: 0.0,
                oldest_age_s: 0.0,
            });
        match (s.name.as_str(), s.label("state")) {
            ("origin_queue_messages", Some("in_flight")) => entry.in_flight += s.value,
            ("origin_queue_messages", Some("dead")) => entry.dead += s.value,
            ("origin_queue_messages", _) => entry.ready += s.value,
            ("origin_queue_oldest_message_age_seconds", _) => entry.oldest_age_s = s.value,
            _ => {}
        }
    }
    by_name.into_values().collect()
}
