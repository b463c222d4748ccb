//! A minimal MaxMind DB writer (format 2.0, IPv6 tree, 24-bit records) so
//! tests build their own City-style database instead of shipping one.
//! Prefixes must not nest; IPv4 networks go under `::/96` as MaxMind does.

use std::net::IpAddr;

/// One network and where it is.
pub struct Entry {
    pub network: ipnet::IpNet,
    pub latitude: f64,
    pub longitude: f64,
    pub country: &'static str,
    pub continent: &'static str,
}

#[derive(Clone, Copy)]
enum Slot {
    Empty,
    Node(usize),
    Data(usize),
}

pub fn write(entries: &[Entry]) -> Vec<u8> {
    let mut nodes: Vec<[Slot; 2]> = vec![[Slot::Empty; 2]];
    let mut data = Vec::new();
    for entry in entries {
        let offset = data.len();
        encode_record(&mut data, entry);
        let (bits, len) = match entry.network.network() {
            IpAddr::V4(a) => (
                u128::from(u32::from(a)),
                96 + u32::from(entry.network.prefix_len()),
            ),
            IpAddr::V6(a) => (u128::from(a), u32::from(entry.network.prefix_len())),
        };
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == len {
                nodes[node][bit] = Slot::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Slot::Node(n) => n,
                    _ => {
                        nodes.push([Slot::Empty; 2]);
                        let n = nodes.len() - 1;
                        nodes[node][bit] = Slot::Node(n);
                        n
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for slot in node {
            let value = match *slot {
                Slot::Empty => count,
                Slot::Node(n) => n,
                Slot::Data(offset) => count + 16 + offset,
            };
            out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
    map_header(&mut out, 9);
    string(&mut out, "node_count");
    uint32(&mut out, count as u32);
    string(&mut out, "record_size");
    uint16(&mut out, 24);
    string(&mut out, "ip_version");
    uint16(&mut out, 6);
    string(&mut out, "database_type");
    string(&mut out, "GeoIP2-City");
    string(&mut out, "languages");
    out.extend_from_slice(&[0, 4]); // empty array (extended type 11)
    string(&mut out, "binary_format_major_version");
    uint16(&mut out, 2);
    string(&mut out, "binary_format_minor_version");
    uint16(&mut out, 0);
    string(&mut out, "build_epoch");
    out.extend_from_slice(&[8, 2]); // uint64 (extended type 9), 8 bytes
    out.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    string(&mut out, "description");
    map_header(&mut out, 0);
    out
}

fn encode_record(out: &mut Vec<u8>, e: &Entry) {
    map_header(out, 3);
    string(out, "location");
    map_header(out, 2);
    string(out, "latitude");
    double(out, e.latitude);
    string(out, "longitude");
    double(out, e.longitude);
    string(out, "country");
    map_header(out, 1);
    string(out, "iso_code");
    string(out, e.country);
    string(out, "continent");
    map_header(out, 1);
    string(out, "code");
    string(out, e.continent);
}

fn map_header(out: &mut Vec<u8>, pairs: u8) {
    assert!(pairs < 29);
    out.push((7 << 5) | pairs);
}

fn string(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 29);
    out.push((2 << 5) | s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn double(out: &mut Vec<u8>, v: f64) {
    out.push((3 << 5) | 8);
    out.extend_from_slice(&v.to_be_bytes());
}

fn uint16(out: &mut Vec<u8>, v: u16) {
    out.push((5 << 5) | 2);
    out.extend_from_slice(&v.to_be_bytes());
}

fn uint32(out: &mut Vec<u8>, v: u32) {
    out.push((6 << 5) | 4);
    out.extend_from_slice(&v.to_be_bytes());
}
