//! Where each region of a local platform listens. Region `n` (1-based) gets
//! its own loopback address, the first one's third octet plus `n - 1`
//! (127.0.1.1, 127.0.2.1, 127.0.3.1 by default), and every region uses the
//! same ports on its address, so the URLs differ only in the region number.
//! Tests pass unusual first addresses (127.0.53.7) to stay clear of a
//! platform someone is running by hand.

use std::net::{Ipv4Addr, SocketAddr};

/// The most regions `up` starts: region numbers stay single digits in the
/// printed names, and nine Raft voters are already far past a real setup.
pub const MAX_REGIONS: u8 = 9;

/// The ports every region uses on its own address.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub admin: u16,
    pub origin: u16,
    /// The origins' listener for each other (Raft, forwarded writes).
    pub peer: u16,
}

/// The addresses of every region of one local platform.
#[derive(Debug, Clone)]
pub struct Layout {
    ips: Vec<Ipv4Addr>,
    ports: Ports,
    /// Whether the origins speak HTTPS (the default; `--plaintext` not).
    tls: bool,
}

/// A layout that cannot be laid out on loopback; each names the flag to
/// change.
#[derive(Debug)]
pub enum LayoutError {
    Regions(u8),
    NotLoopback(Ipv4Addr),
    Overflow { first: Ipv4Addr, regions: u8 },
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Regions(n) => write!(f, "--regions must be between 1 and {MAX_REGIONS}, got {n}"),
            Self::NotLoopback(ip) => {
                write!(f, "--ip must be a 127.x.y.z loopback address, got {ip}")
            }
            Self::Overflow { first, regions } => write!(
                f,
                "--ip {first} leaves no room for {regions} regions: region N uses the third \
                 octet + N-1, which must stay below 256; pick a lower third octet"
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

impl Layout {
    /// Lays out `regions` regions starting at `first`.
    pub fn new(first: Ipv4Addr, regions: u8, ports: Ports) -> Result<Self, LayoutError> {
        if !(1..=MAX_REGIONS).contains(&regions) {
            return Err(LayoutError::Regions(regions));
        }
        if !first.is_loopback() {
            return Err(LayoutError::NotLoopback(first));
        }
        let [a, b, c, d] = first.octets();
        let ips = (0..regions)
            .map(|i| c.checked_add(i).map(|c| Ipv4Addr::new(a, b, c, d)))
            .collect::<Option<Vec<_>>>()
            .ok_or(LayoutError::Overflow { first, regions })?;
        Ok(Self {
            ips,
            ports,
            tls: true,
        })
    }

    /// The same layout with the origins on plaintext HTTP.
    pub fn plaintext(self) -> Self {
        Self { tls: false, ..self }
    }

    /// Whether the origins speak HTTPS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// How many regions there are.
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    /// Region numbers (1-based, as printed) with their addresses.
    pub fn regions(&self) -> impl Iterator<Item = (usize, Ipv4Addr)> + '_ {
        self.ips.iter().enumerate().map(|(i, ip)| (i + 1, *ip))
    }

    /// Region `n`'s loopback address.
    pub fn ip(&self, n: usize) -> Ipv4Addr {
        self.ips[n - 1]
    }

    pub fn origin(&self, n: usize) -> SocketAddr {
        SocketAddr::new(self.ip(n).into(), self.ports.origin)
    }

    /// Region `n`'s origin as a URL base (no trailing slash).
    pub fn origin_url(&self, n: usize) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.origin(n))
    }

    /// Where region `n`'s origin listens for the other origins.
    pub fn origin_peer(&self, n: usize) -> SocketAddr {
        SocketAddr::new(self.ip(n).into(), self.ports.peer)
    }

    pub fn edge_http(&self, n: usize) -> SocketAddr {
        SocketAddr::new(self.ip(n).into(), self.ports.http)
    }

    pub fn edge_admin(&self, n: usize) -> SocketAddr {
        SocketAddr::new(self.ip(n).into(), self.ports.admin)
    }

    /// The order region `n`'s edge tries origin regions in: its own first,
    /// then the others by number (on loopback every region is as near as
    /// any other).
    pub fn preference(&self, n: usize) -> Vec<usize> {
        std::iter::once(n)
            .chain((1..=self.len()).filter(|&m| m != n))
            .collect()
    }
}

/// The name of region `n` in edge pools and geodns.
pub fn region_name(n: usize) -> String {
    format!("region-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: Ports = Ports {
        http: 8080,
        admin: 9080,
        origin: 7070,
        peer: 7071,
    };

    #[test]
    fn regions_step_through_the_third_octet() {
        let l = Layout::new(Ipv4Addr::new(127, 0, 53, 7), 3, PORTS).unwrap();
        let ips: Vec<_> = l.regions().map(|(_, ip)| ip.to_string()).collect();
        assert_eq!(ips, ["127.0.53.7", "127.0.54.7", "127.0.55.7"]);
        assert_eq!(l.origin(2).to_string(), "127.0.54.7:7070");
        assert_eq!(l.origin_url(2), "https://127.0.54.7:7070");
        assert_eq!(l.origin_peer(2).to_string(), "127.0.54.7:7071");
        assert_eq!(
            l.clone().plaintext().origin_url(1),
            "http://127.0.53.7:7070"
        );
        assert_eq!(l.preference(2), [2, 1, 3]);
        assert_eq!(l.preference(1), [1, 2, 3]);
    }

    #[test]
    fn bad_layouts_say_which_flag_to_change() {
        let at = |ip: [u8; 4], n| Layout::new(Ipv4Addr::from(ip), n, PORTS).unwrap_err();
        assert!(matches!(at([127, 0, 1, 1], 0), LayoutError::Regions(0)));
        assert!(matches!(at([127, 0, 1, 1], 10), LayoutError::Regions(10)));
        assert!(matches!(at([10, 0, 1, 1], 3), LayoutError::NotLoopback(_)));
        let overflow = at([127, 0, 254, 1], 3).to_string();
        assert!(overflow.contains("third octet"), "{overflow}");
        assert!(Layout::new(Ipv4Addr::new(127, 0, 255, 1), 1, PORTS).is_ok());
    }
}
