//! Client address → ordered regions, compiled once per load.
//!
//! The database's networks and the config's CIDR overrides are turned into
//! one sorted table of address ranges per distinct region list, each range
//! carrying the full best-first region order for its clients; adjacent
//! ranges with the same order are merged. A lookup is a binary search, and
//! the widest prefix around the client inside its range is the ECS scope we
//! can honestly announce: every address in it gets the same order, so the
//! same answer whatever the health state.

mod db;
mod rank;
mod v4;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::config::Config;
pub use db::DbError;
use db::host_mask;
pub use rank::{Location, great_circle_km};
use v4::V4Index;

/// An address as a 128-bit key; IPv4 lives at `::ffff:0:0/96`.
pub type Key = u128;

const V4_BASE: Key = 0xffff_u128 << 32;

pub fn v4_key(addr: Ipv4Addr) -> Key {
    V4_BASE | Key::from(u32::from(addr))
}

pub fn key(addr: IpAddr) -> Key {
    match addr {
        IpAddr::V4(a) => v4_key(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4_key(v4),
            None => u128::from(a),
        },
    }
}

/// Region orders for every region list a geo name uses.
#[derive(Debug)]
pub struct GeoMap {
    /// Looked up on every geo query, hence foldhash (its keys come from
    /// the config, not from clients).
    tables: foldhash::HashMap<Vec<usize>, Table>,
}

/// The answer for one client: best-first region indexes and the ECS scope.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'m> {
    pub order: &'m [u16],
    /// Prefix length (in the client's own family) that shares this order.
    pub scope: u8,
}

#[derive(Debug)]
struct Table {
    /// Range starts, ascending, the first one 0; a range ends where the
    /// next begins.
    starts: Vec<Key>,
    /// Class of each range: an index into `orders`.
    classes: Vec<u32>,
    orders: Vec<Vec<u16>>,
    /// The same ranges for IPv4 clients, laid out per /16.
    v4: V4Index,
}

impl GeoMap {
    /// Compiles the database (if any) and the overrides for every geo name.
    pub fn build(config: &Config) -> Result<Self, DbError> {
        let networks = match &config.geoip.database {
            Some(path) => db::read(path)?,
            None => db::Networks::default(),
        };
        let mut tables = foldhash::HashMap::default();
        for zone in &config.zones {
            for geo in &zone.geo {
                if !tables.contains_key(&geo.regions) {
                    let table = Table::build(&networks, config, &geo.regions);
                    tables.insert(geo.regions.clone(), table);
                }
            }
        }
        Ok(Self { tables })
    }

    /// Where `addr` (already truncated to the ECS source prefix) belongs
    /// for a geo name over `regions`.
    pub fn place(&self, regions: &[usize], addr: IpAddr) -> Option<Placement<'_>> {
        let table = self.tables.get(regions)?;
        if let IpAddr::V4(a) = addr {
            let place = table.v4.place(u32::from(a));
            return Some(Placement {
                order: &table.orders[place.class as usize],
                scope: place.scope as u8,
            });
        }
        // An IPv6 subnet (a v4-mapped one too: RFC 7871 §6 counts SCOPE in
        // the FAMILY's address bits).
        let k = key(addr);
        let i = table.starts.partition_point(|&s| s <= k) - 1;
        let first = table.starts[i];
        let last = table.starts.get(i + 1).map_or(Key::MAX, |next| next - 1);
        Some(Placement {
            order: &table.orders[table.classes[i] as usize],
            scope: widest_prefix(k, first, last) as u8,
        })
    }
}

/// The shortest prefix length whose network around `k` fits in
/// `first..=last`; fitting is monotonic in the length, so bisect.
fn widest_prefix(k: Key, first: Key, last: Key) -> u32 {
    let fits = |len: u32| {
        let net = k & !host_mask(len);
        net >= first && (net | host_mask(len)) <= last
    };
    let (mut lo, mut hi) = (0u32, 128u32);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fits(mid) { hi = mid } else { lo = mid + 1 }
    }
    lo
}

impl Table {
    fn build(networks: &db::Networks, config: &Config, candidates: &[usize]) -> Self {
        let mut interner = HashMap::<Vec<u16>, u32>::new();
        let mut orders = Vec::new();
        let mut class_of = |order: Vec<u16>| -> u32 {
            *interner.entry(order.clone()).or_insert_with(|| {
                orders.push(order);
                (orders.len() - 1) as u32
            })
        };
        let unknown = class_of(rank::rank(
            &Location::default(),
            candidates,
            &config.regions,
        ));
        let location_class: Vec<u32> = networks
            .locations
            .iter()
            .map(|l| class_of(rank::rank(l, candidates, &config.regions)))
            .collect();

        // Breakpoints (start, class) covering the whole key space.
        let mut points: Vec<(Key, u32)> = vec![(0, unknown)];
        for &(first, last, location) in &networks.ranges {
            push_range(
                &mut points,
                first,
                last,
                location_class[location as usize],
                unknown,
            );
        }
        let mut overrides = config.geoip.overrides.clone();
        overrides
            .sort_by_key(|(net, _)| net.prefix_len() + if net.addr().is_ipv4() { 96 } else { 0 });
        for (net, region) in overrides {
            let r = &config.regions[region];
            let location = Location {
                coordinates: Some((r.latitude, r.longitude)),
                region: Some(region),
                ..Location::default()
            };
            let class = class_of(rank::rank(&location, candidates, &config.regions));
            let first = key(net.network());
            let len = u32::from(net.prefix_len()) + if net.addr().is_ipv4() { 96 } else { 0 };
            overlay(&mut points, first, first | host_mask(len), class);
        }
        points.dedup_by(|next, prev| next.1 == prev.1);
        let (starts, classes): (Vec<Key>, Vec<u32>) = points.into_iter().unzip();
        let v4 = V4Index::build(&starts, &classes, V4_BASE);
        Self {
            starts,
            classes,
            orders,
            v4,
        }
    }
}

/// Appends a range that starts at or after every range pushed so far.
fn push_range(points: &mut Vec<(Key, u32)>, first: Key, last: Key, class: u32, gap: u32) {
    match points.last_mut() {
        Some(p) if p.0 == first => p.1 = class,
        _ => points.push((first, class)),
    }
    if last < Key::MAX {
        points.push((last + 1, gap));
    }
}

/// Sets `first..=last` to `class`, keeping what lies around it.
fn overlay(points: &mut Vec<(Key, u32)>, first: Key, last: Key, class: u32) {
    let class_at =
        |points: &[(Key, u32)], k: Key| points[points.partition_point(|p| p.0 <= k) - 1].1;
    let after = (last < Key::MAX).then(|| (last + 1, class_at(points, last + 1)));
    points.retain(|p| p.0 < first || p.0 > last);
    let at = points.partition_point(|p| p.0 < first);
    points.insert(at, (first, class));
    if let Some((start, old)) = after
        && points.get(at + 1).is_none_or(|p| p.0 != start)
    {
        points.insert(at + 1, (start, old));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_splits_and_restores() {
        let mut points = vec![(0, 0)];
        push_range(&mut points, 100, 199, 1, 0);
        overlay(&mut points, 120, 129, 2);
        assert_eq!(points, vec![(0, 0), (100, 1), (120, 2), (130, 1), (200, 0)]);
        overlay(&mut points, 0, Key::MAX, 3);
        assert_eq!(points, vec![(0, 3)]);
    }

    #[test]
    fn widest_prefix_inside_range() {
        let base = v4_key(Ipv4Addr::new(10, 0, 0, 0));
        let k = v4_key(Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(widest_prefix(k, base, base | host_mask(104)), 104);
        assert_eq!(widest_prefix(k, base + 1, base | host_mask(104)), 112);
    }
}
