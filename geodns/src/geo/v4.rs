//! IPv4 placement in one or two cache lines.
//!
//! A geo query costs about as much as its cache misses: the full table's
//! 16-byte range starts, bisected, then its class array, are four or five
//! misses per client from a spread of subnets (perf put `GeoMap::place` at
//! half of geodns's user-space time with 200,000 distinct /24s). Here each
//! IPv4 /16 has its own short run of 8-byte entries (the low 16 bits of a
//! range start, clamped to the /16, and the range's class) next to each
//! other, so a lookup reads the /16's slot and one or two lines of entries.

use super::{Key, widest_prefix};

/// The ranges of the full table as they meet each IPv4 /16.
#[derive(Debug)]
pub(super) struct V4Index {
    /// Indexed by /16 (65,537 slots: slot `p + 1` ends /16 `p`'s entries).
    slots: Box<[Slot]>,
    entries: Box<[Entry]>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Index of the /16's first entry.
    first: u32,
    /// The scope (IPv4 bits, at most 16) of an address in this /16 when
    /// one range covers all of it: the clamped entries cannot tell it.
    whole: u8,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Start of the range inside the /16 (0 for a range that began before).
    low: u16,
    class: u32,
}

/// A range's class and the ECS scope (IPv4 bits) of one address in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct V4Place {
    pub class: u32,
    pub scope: u32,
}

impl V4Index {
    /// Built from the full table's range starts (ascending, the first 0)
    /// and classes over the key space where IPv4 lives at `base`.
    pub(super) fn build(starts: &[Key], classes: &[u32], base: Key) -> Self {
        let last_of = |i: usize| starts.get(i + 1).map_or(Key::MAX, |next| next - 1);
        let mut slots = Vec::with_capacity((1 << 16) + 1);
        let mut entries = Vec::new();
        let mut i = starts.partition_point(|&s| s <= base) - 1;
        for p in 0..1u128 << 16 {
            let lo = base + (p << 16);
            let hi = lo | 0xffff;
            while last_of(i) < lo {
                i += 1;
            }
            let whole = if last_of(i) >= hi {
                widest_prefix(lo, starts[i], last_of(i)).saturating_sub(96) as u8
            } else {
                16
            };
            slots.push(Slot {
                first: entries.len() as u32,
                whole,
            });
            let mut j = i;
            while j < starts.len() && starts[j] <= hi {
                entries.push(Entry {
                    low: (starts[j].max(lo) - lo) as u16,
                    class: classes[j],
                });
                j += 1;
            }
            // The next /16 starts in the range holding this one's last
            // address.
            i = j - 1;
        }
        slots.push(Slot {
            first: entries.len() as u32,
            whole: 16,
        });
        Self {
            slots: slots.into_boxed_slice(),
            entries: entries.into_boxed_slice(),
        }
    }

    pub(super) fn place(&self, addr: u32) -> V4Place {
        let p = (addr >> 16) as usize;
        let low = addr as u16;
        let (slot, end) = (self.slots[p], self.slots[p + 1].first);
        let run = &self.entries[slot.first as usize..end as usize];
        // run[0].low is 0, so the point is at least 1.
        let j = run.partition_point(|e| e.low <= low) - 1;
        // The same bisection as the full table's, with the /16's 16 bits at
        // the top of a key: exact within the /16, and 0 when one range covers
        // all of it (then the range may reach further, which `whole` knows).
        let top = |bits: u16| u128::from(bits) << 112;
        let first = top(run[j].low);
        let last = run.get(j + 1).map_or(Key::MAX, |e| top(e.low) - 1);
        let scope = match widest_prefix(top(low), first, last) {
            0 => u32::from(slot.whole),
            len => 16 + len,
        };
        V4Place {
            class: run[j].class,
            scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::{V4_BASE, v4_key};
    use std::net::Ipv4Addr;

    /// The full table's answer: a bisection of every start.
    fn reference(starts: &[Key], classes: &[u32], addr: u32) -> V4Place {
        let k = V4_BASE | Key::from(addr);
        let i = starts.partition_point(|&s| s <= k) - 1;
        let last = starts.get(i + 1).map_or(Key::MAX, |n| n - 1);
        V4Place {
            class: classes[i],
            scope: widest_prefix(k, starts[i], last).saturating_sub(96),
        }
    }

    fn check(starts: &[Key], addrs: impl IntoIterator<Item = u32>) {
        let classes: Vec<u32> = (0..starts.len() as u32).collect();
        let index = V4Index::build(starts, &classes, V4_BASE);
        for a in addrs {
            assert_eq!(
                index.place(a),
                reference(starts, &classes, a),
                "{}",
                Ipv4Addr::from(a)
            );
        }
    }

    #[test]
    fn agrees_with_a_bisection_of_the_full_table() {
        let at = |a: [u8; 4]| v4_key(Ipv4Addr::from(a));
        let starts = vec![
            0,
            at([10, 0, 0, 0]),
            at([10, 1, 0, 0]),
            at([10, 1, 2, 0]),
            at([10, 1, 2, 128]),
            at([10, 1, 2, 200]),
            at([10, 3, 0, 1]),
            at([64, 0, 0, 0]),
            at([128, 0, 0, 0]),
            at([255, 255, 255, 0]),
            at([255, 255, 255, 255]) + 1,
        ];
        let edges = starts
            .iter()
            .filter(|&&s| s > V4_BASE && s <= V4_BASE | 0xffff_ffff)
            .flat_map(|&s| [s - 1, s, s + 1])
            .map(|k| k as u32);
        check(&starts, edges.chain([0, 1, u32::MAX, 0x0a02_0909]));
    }

    #[test]
    fn agrees_on_random_tables_and_addresses() {
        for _ in 0..20 {
            let mut starts: Vec<Key> = (0..rand::random_range(1..3000))
                .map(|_| V4_BASE | Key::from(rand::random::<u32>() & !0xff))
                .collect();
            starts.push(0);
            starts.push(0x2001_0db8 << 96);
            starts.sort_unstable();
            starts.dedup();
            check(&starts, (0..2000).map(|_| rand::random::<u32>()));
        }
    }
}
