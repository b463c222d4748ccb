//! Counters that cost a relaxed add on the worker's own cache lines per
//! query: each worker thread has its own, and a scrape of `/metrics` folds
//! them (swap to zero, add to the shared families) into the same metric
//! names the general path counts in, with `transport="udp"`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::config::Config;
use crate::handler::{rcode_label, type_label};
use crate::metrics::{ActionLabels, Metrics, QueryLabels, RegionLabels};

/// The `qtype` label values, as `handler::type_label` gives them.
const QTYPES: [&str; 13] = [
    "A", "AAAA", "CNAME", "NS", "SOA", "TXT", "MX", "CAA", "SRV", "PTR", "ANY", "HTTPS", "OTHER",
];
/// The fast path answers nothing but these.
const RCODES: [ResponseCode; 2] = [ResponseCode::NoError, ResponseCode::NXDomain];

/// Where a (type, rcode) pair is counted.
pub fn counter_index(qtype: RecordType, rcode: ResponseCode) -> usize {
    let label = type_label(qtype);
    let t = QTYPES
        .iter()
        .position(|&l| l == label)
        .unwrap_or(QTYPES.len() - 1);
    let r = RCODES.iter().position(|&c| c == rcode).unwrap_or(0);
    t * RCODES.len() + r
}

/// One worker thread's counts since the last scrape.
#[derive(Debug)]
pub struct WorkerCounters {
    queries: [AtomicU64; QTYPES.len() * RCODES.len()],
    fail_open: AtomicU64,
    /// Rate-limited replies: sent truncated, dropped.
    limited: [AtomicU64; 2],
    /// Geo answers per region of the configuration the worker serves.
    regions: ArcSwap<RegionHits>,
}

#[derive(Debug)]
pub struct RegionHits {
    names: Vec<String>,
    hits: Box<[AtomicU64]>,
}

impl RegionHits {
    /// One counter per region and a last one for `fail-open`, the label
    /// the general path uses.
    pub fn new(config: &Config) -> Self {
        let mut names: Vec<String> = config.regions.iter().map(|r| r.name.clone()).collect();
        names.push("fail-open".to_owned());
        Self {
            hits: names.iter().map(|_| AtomicU64::new(0)).collect(),
            names,
        }
    }

    pub fn hit(&self, region: usize) {
        self.hits[region].fetch_add(1, Ordering::Relaxed);
    }

    fn fold(&self, metrics: &Metrics) {
        for (name, hits) in self.names.iter().zip(&self.hits) {
            let n = hits.swap(0, Ordering::Relaxed);
            if n > 0 {
                metrics
                    .answers
                    .get_or_create(&RegionLabels {
                        region: name.clone(),
                    })
                    .inc_by(n);
            }
        }
    }
}

impl WorkerCounters {
    pub fn new(config: &Config) -> Self {
        Self {
            queries: std::array::from_fn(|_| AtomicU64::new(0)),
            fail_open: AtomicU64::new(0),
            limited: [AtomicU64::new(0), AtomicU64::new(0)],
            regions: ArcSwap::from_pointee(RegionHits::new(config)),
        }
    }

    pub fn query(&self, index: usize) {
        self.queries[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn fail_open(&self) {
        self.fail_open.fetch_add(1, Ordering::Relaxed);
    }

    /// One reply over its prefix's rate, sent truncated or dropped.
    pub fn limited(&self, slipped: bool) {
        self.limited[usize::from(!slipped)].fetch_add(1, Ordering::Relaxed);
    }

    /// The region counters for a new configuration; the old ones are
    /// folded so no count is lost or given to a renamed region.
    pub fn switch_regions(&self, config: &Config, metrics: &Metrics) -> Arc<RegionHits> {
        let new = Arc::new(RegionHits::new(config));
        self.regions.swap(new.clone()).fold(metrics);
        new
    }

    pub fn fold(&self, metrics: &Metrics) {
        for (i, count) in self.queries.iter().enumerate() {
            let n = count.swap(0, Ordering::Relaxed);
            if n > 0 {
                metrics.fast_answers.inc_by(n);
                metrics
                    .queries
                    .get_or_create(&QueryLabels {
                        qtype: QTYPES[i / RCODES.len()],
                        rcode: rcode_label(RCODES[i % RCODES.len()]),
                        transport: "udp",
                    })
                    .inc_by(n);
            }
        }
        metrics
            .fail_open
            .inc_by(self.fail_open.swap(0, Ordering::Relaxed));
        for (action, count) in ["slipped", "dropped"].into_iter().zip(&self.limited) {
            let n = count.swap(0, Ordering::Relaxed);
            if n > 0 {
                metrics
                    .rate_limited
                    .get_or_create(&ActionLabels { action })
                    .inc_by(n);
            }
        }
        self.regions.load().fold(metrics);
    }
}
