//! Connections per client: one address (an IPv6 client by its /64, which
//! one subscriber usually holds whole) may keep at most
//! `max_connections_per_client` open, so a single host cannot take every
//! slot of `max_connections` and starve everyone else.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The open-connection count of every client that has one.
#[derive(Debug, Default)]
pub(crate) struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Held while a connection is open; gives its slot back when dropped.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    table: Arc<PerClient>,
    client: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().expect("per-client lock");
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// The address connections are counted under.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl PerClient {
    /// A slot for one more connection from `ip`, or `None` when it already
    /// has `max` open.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let client = client_of(ip);
        let mut open = self.open.lock().expect("per-client lock");
        let n = open.entry(client).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: Arc::clone(self),
            client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_client_and_frees_slots_on_drop() {
        let t = Arc::new(PerClient::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = t.admit(a, 2).unwrap();
        let _s2 = t.admit(a, 2).unwrap();
        assert!(t.admit(a, 2).is_none());
        assert!(t.admit(b, 2).is_some(), "another client is not affected");
        drop(s1);
        assert!(t.admit(a, 2).is_some());
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let t = Arc::new(PerClient::default());
        let _s = t.admit("2001:db8:1:2::1".parse().unwrap(), 1).unwrap();
        assert!(t.admit("2001:db8:1:2::ffff".parse().unwrap(), 1).is_none());
        assert!(t.admit("2001:db8:1:3::1".parse().unwrap(), 1).is_some());
        let _m = t.admit("::ffff:192.0.2.9".parse().unwrap(), 1).unwrap();
        assert!(t.admit("192.0.2.9".parse().unwrap(), 1).is_none());
    }
}
