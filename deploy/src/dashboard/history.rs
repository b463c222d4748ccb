//! The last hour in memory: per scrape, eight numbers per region in a ring
//! of fixed length (3,600 × regions × ~80 bytes), so the dashboard needs no
//! database and its memory does not grow with queues or plugins; only the
//! newest reading keeps every detail. A restart of the dashboard starts an
//! empty hour; Prometheus (`deploy/monitoring/`) is the long-term store.

use std::collections::VecDeque;

use serde::Serialize;

use super::scrape::{DnsPoint, Reading, RegionPoint};

/// Points kept per region: an hour at one scrape per second.
pub const POINTS: usize = 3600;

#[derive(Debug)]
pub struct History {
    names: Vec<String>,
    /// (seconds since the Unix epoch, the charted figures per region)
    points: VecDeque<(f64, Vec<Series>)>,
    /// The newest reading, whole.
    latest: Option<Vec<RegionPoint>>,
    dns: DnsPoint,
}

/// What `/api/state` answers.
#[derive(Debug, Serialize)]
pub struct State<'a> {
    /// Time of the newest point; pass it back as `since`.
    pub now: f64,
    pub regions: &'a [String],
    /// The newest point of each region (none before the first scrape).
    pub latest: Option<&'a [RegionPoint]>,
    pub dns: &'a DnsPoint,
    /// Points newer than `since`, oldest first: (time, per region:
    /// [req/s, hit ratio, p99 ms, up, bytes out/s, 5xx/s, replication lag,
    /// origin fetch p99 ms]).
    pub series: Vec<(f64, Vec<Series>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series(
    Option<f64>,
    Option<f64>,
    Option<f64>,
    bool,
    Option<f64>,
    Option<f64>,
    Option<u64>,
    Option<f64>,
);

impl History {
    pub fn new(names: Vec<String>) -> Self {
        Self {
            names,
            points: VecDeque::with_capacity(POINTS),
            latest: None,
            dns: DnsPoint::default(),
        }
    }

    pub fn push(&mut self, at: f64, reading: Reading) {
        if self.points.len() == POINTS {
            self.points.pop_front();
        }
        let series = reading.regions.iter().map(Series::of).collect();
        self.points.push_back((at, series));
        self.latest = Some(reading.regions);
        self.dns = reading.dns;
    }

    pub fn state(&self, since: f64) -> State<'_> {
        let series = self
            .points
            .iter()
            .filter(|(t, _)| *t > since)
            .cloned()
            .collect();
        State {
            now: self.points.back().map_or(since, |(t, _)| *t),
            regions: &self.names,
            latest: self.latest.as_deref(),
            dns: &self.dns,
            series,
        }
    }
}

impl Series {
    /// What the charts draw of one region's reading.
    fn of(p: &RegionPoint) -> Self {
        let up = p.edge_up && p.origin_up;
        Series(
            p.edge_up.then_some(p.requests_per_s),
            p.hit_ratio,
            p.p99_ms,
            up,
            p.edge_up.then_some(p.bytes_out_per_s),
            p.edge_up.then_some(p.server_errors_per_s),
            p.origin_up.then_some(p.lag),
            p.origin_fetch_p99_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(rps: f64) -> Reading {
        Reading {
            regions: vec![RegionPoint {
                edge_up: true,
                origin_up: true,
                requests_per_s: rps,
                ..Default::default()
            }],
            dns: DnsPoint::default(),
        }
    }

    #[test]
    fn keeps_an_hour_and_answers_what_is_newer_than_since() {
        let mut h = History::new(vec!["region-1".into()]);
        for i in 0..POINTS + 10 {
            h.push(i as f64, reading(i as f64));
        }
        assert_eq!(h.points.len(), POINTS);
        assert_eq!(h.points.front().unwrap().0, 10.0, "the oldest fell out");
        let state = h.state((POINTS + 7) as f64);
        assert_eq!(state.series.len(), 2);
        assert_eq!(state.now, (POINTS + 9) as f64);
        assert_eq!(state.latest.unwrap()[0].requests_per_s, (POINTS + 9) as f64);
    }
}
