//! The endpoints a geo name answers with for one client: the healthy
//! endpoints of the first region in the client's order that has healthy
//! endpoints of the asked family, chosen by
//! weight when there are more than fit, or every endpoint when no region is
//! healthy (failing open beats sending everyone nowhere).

use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::config::{Endpoint, Region};
use crate::health::Health;
use crate::zone::GeoHit;

/// What a geo name resolved to.
#[derive(Debug)]
pub struct GeoAnswer {
    pub records: Vec<Record>,
    /// The region that answered; `None` when failing open.
    pub region: Option<usize>,
    /// Endpoints `records` were drawn from: above the zone's `max_answers`
    /// the draw is random, so the answer cannot be prepared in advance.
    pub candidates: usize,
}

/// Builds the answer for `hit` given the client's best-first region order.
pub fn geo_answer(
    hit: &GeoHit<'_>,
    order: &[u16],
    regions: &[Region],
    health: &Health,
) -> GeoAnswer {
    let zone = &hit.zone.config;
    let mut ttl = hit.geo.ttl.unwrap_or(zone.geo_ttl);
    if !health.all_up(&hit.geo.regions) {
        ttl = ttl.min(zone.degraded_ttl);
    }
    let wanted = |e: &Endpoint| match hit.qtype {
        RecordType::A => e.address.is_ipv4(),
        RecordType::AAAA => e.address.is_ipv6(),
        _ => true,
    };

    // A region counts as up for this question when it has a healthy
    // endpoint of the asked family: an IPv4 client is not sent to a region
    // whose only live endpoints are IPv6.
    let serves = |r: usize| {
        regions[r]
            .endpoints
            .iter()
            .enumerate()
            .any(|(e, endpoint)| wanted(endpoint) && health.endpoint_up(r, e))
    };
    let chosen = order.iter().map(|&r| usize::from(r)).find(|&r| serves(r));
    let candidates: Vec<&Endpoint> = match chosen {
        Some(r) => regions[r]
            .endpoints
            .iter()
            .enumerate()
            .filter(|(e, endpoint)| health.endpoint_up(r, *e) && wanted(endpoint))
            .map(|(_, endpoint)| endpoint)
            .collect(),
        None => hit
            .geo
            .regions
            .iter()
            .flat_map(|&r| regions[r].endpoints.iter())
            .filter(|e| wanted(e))
            .collect(),
    };
    let count = candidates.len();
    let picked = if chosen.is_some() {
        pick_weighted(candidates, zone.max_answers)
    } else {
        candidates
    };
    let records = picked
        .into_iter()
        .map(|e| {
            let rdata = match e.address {
                IpAddr::V4(a) => RData::A(A(a)),
                IpAddr::V6(a) => RData::AAAA(AAAA(a)),
            };
            Record::from_rdata(hit.name.clone(), ttl, rdata)
        })
        .collect();
    GeoAnswer {
        records,
        region: chosen,
        candidates: count,
    }
}

/// Up to `n` endpoints, each drawn with probability proportional to its
/// weight (Efraimidis–Spirakis: the `n` largest `u^(1/w)`).
fn pick_weighted(mut candidates: Vec<&Endpoint>, n: usize) -> Vec<&Endpoint> {
    if candidates.len() <= n {
        return candidates;
    }
    let mut keyed: Vec<(f64, &Endpoint)> = candidates
        .drain(..)
        .map(|e| (rand::random::<f64>().powf(1.0 / f64::from(e.weight)), e))
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().take(n).map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_hold() {
        let heavy = Endpoint {
            address: "192.0.2.1".parse().unwrap(),
            weight: 3,
            health: None,
        };
        let light = Endpoint {
            address: "192.0.2.2".parse().unwrap(),
            weight: 1,
            health: None,
        };
        let mut heavy_first = 0;
        for _ in 0..4000 {
            let picked = pick_weighted(vec![&heavy, &light], 1);
            if picked[0].weight == 3 {
                heavy_first += 1;
            }
        }
        assert!((2800..3200).contains(&heavy_first), "{heavy_first}");
    }
}
