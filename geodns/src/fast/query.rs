//! Reading a query under the fast path's rule (the module doc of
//! `fast` spells it out). Anything the rule does not plainly allow is
//! `None`, and the datagram goes to the general path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{OPTION_ECS, ecs_address_len, u16_at};

/// EDNS COOKIE (RFC 7873): read and ignored, as the general path does.
const OPTION_COOKIE: u16 = 10;

/// Longest name on the wire (RFC 1035 §3.1).
pub const MAX_NAME: usize = 255;

/// The lookup key: the lower-cased wire name, then the type.
pub const KEY_LEN: usize = MAX_NAME + 2;

/// A query the fast path may answer, as offsets into its datagram.
#[derive(Debug, Clone, Copy)]
pub struct FastQuery {
    pub id: [u8; 2],
    /// The RD and CD bits of the query, in their places in the flag bytes.
    pub rd: u8,
    pub cd: u8,
    /// The question (name, type, class) is `buf[12..question_end]`.
    pub question_end: usize,
    /// The name, lower-cased, is `key[..name_len]`, followed by the type.
    pub name_len: usize,
    /// Whether the client's spelling differs from `lower`.
    pub mixed_case: bool,
    pub qtype: u16,
    pub edns: Option<Edns>,
}

#[derive(Debug, Clone, Copy)]
pub struct Edns {
    /// The client's UDP payload size.
    pub payload: u16,
    pub ecs: Option<Ecs>,
}

/// A well-formed Client Subnet option (RFC 7871 §6 and §7.1.2).
#[derive(Debug, Clone, Copy)]
pub struct Ecs {
    pub family: u16,
    pub source: u8,
    /// The address, zero beyond the source prefix.
    pub addr: IpAddr,
}

impl Ecs {
    /// The ADDRESS octets as they go back on the wire.
    pub fn address_octets(&self, out: &mut [u8; 16]) -> usize {
        match self.addr {
            IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
        }
        ecs_address_len(self.source)
    }
}

/// Reads `buf` under the rule; `lower` receives the lookup key.
pub fn parse(buf: &[u8], lower: &mut [u8; KEY_LEN]) -> Option<FastQuery> {
    if buf.len() < 12 {
        return None;
    }
    let (flags, low) = (buf[2], buf[3]);
    // QR=0, OPCODE=QUERY, AA=0, TC=0 (RD free); RA=0, Z=0, RCODE=0 (AD
    // and CD free: dig sets AD in every query).
    if flags & 0xfe != 0 || low & 0xcf != 0 {
        return None;
    }
    let counts = [u16_at(buf, 4)?, u16_at(buf, 6)?, u16_at(buf, 8)?];
    let additional = u16_at(buf, 10)?;
    if counts != [1, 0, 0] || additional > 1 {
        return None;
    }
    let mut pos = 12;
    let mut mixed_case = false;
    loop {
        let len = usize::from(*buf.get(pos)?);
        // Labels only: compression pointers and extended labels go to the
        // general path.
        if len > 63 || pos - 12 + 1 + len > MAX_NAME {
            return None;
        }
        lower[pos - 12] = len as u8;
        for i in 1..=len {
            let b = *buf.get(pos + i)?;
            mixed_case |= b.is_ascii_uppercase();
            lower[pos - 12 + i] = b.to_ascii_lowercase();
        }
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    let name_len = pos - 12;
    let qtype = u16_at(buf, pos)?;
    lower[name_len..name_len + 2].copy_from_slice(&qtype.to_be_bytes());
    if u16_at(buf, pos + 2)? != 1 {
        return None;
    }
    let question_end = pos + 4;
    let edns = if additional == 1 {
        Some(parse_opt(buf, question_end)?)
    } else if buf.len() == question_end {
        None
    } else {
        return None;
    };
    Some(FastQuery {
        id: [buf[0], buf[1]],
        rd: flags & 0x01,
        cd: low & 0x10,
        question_end,
        name_len,
        mixed_case,
        qtype,
        edns,
    })
}

/// An OPT record that ends the datagram: root name, version 0, no
/// extended RCODE, no flag but DO, options ECS (once, valid) and COOKIE.
fn parse_opt(buf: &[u8], at: usize) -> Option<Edns> {
    if *buf.get(at)? != 0 || u16_at(buf, at + 1)? != 41 {
        return None;
    }
    let payload = u16_at(buf, at + 3)?;
    let (high, low) = (u16_at(buf, at + 5)?, u16_at(buf, at + 7)?);
    if high != 0 || low & 0x7fff != 0 {
        return None;
    }
    let rdlen = usize::from(u16_at(buf, at + 9)?);
    let mut pos = at + 11;
    if pos + rdlen != buf.len() {
        return None;
    }
    let mut ecs = None;
    while pos < buf.len() {
        let code = u16_at(buf, pos)?;
        let len = usize::from(u16_at(buf, pos + 2)?);
        let data = buf.get(pos + 4..pos + 4 + len)?;
        match code {
            OPTION_ECS if ecs.is_none() => ecs = Some(parse_ecs(data)?),
            OPTION_COOKIE => {}
            _ => return None,
        }
        pos += 4 + len;
    }
    Some(Edns { payload, ecs })
}

fn parse_ecs(data: &[u8]) -> Option<Ecs> {
    let family = u16_at(data, 0)?;
    let (source, scope) = (*data.get(2)?, *data.get(3)?);
    let octets = data.get(4..)?;
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source > max || scope != 0 || octets.len() != ecs_address_len(source) {
        return None;
    }
    let mut full = [0u8; 16];
    full[..octets.len()].copy_from_slice(octets);
    // No address bits beyond the source prefix.
    if let Some(&last) = octets.last()
        && source % 8 != 0
        && last & (0xff >> (source % 8)) != 0
    {
        return None;
    }
    let addr = if family == 1 {
        IpAddr::V4(Ipv4Addr::new(full[0], full[1], full[2], full[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(full))
    };
    Some(Ecs {
        family,
        source,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(flags: [u8; 2], opt: &[u8]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, flags[0], flags[1], 0, 1, 0, 0, 0, 0, 0];
        m.push(u8::from(!opt.is_empty()));
        m.extend_from_slice(&[3, b'C', b'd', b'n', 1, b't', 0, 0, 1, 0, 1]);
        m.extend_from_slice(opt);
        m
    }

    fn opt(options: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 0, 41, 4, 0xd0, 0, 0, 0, 0];
        o.extend_from_slice(&(options.len() as u16).to_be_bytes());
        o.extend_from_slice(options);
        o
    }

    #[test]
    fn the_rule() {
        let mut lower = [0; KEY_LEN];
        let q = parse(&query([0x01, 0x30], &[]), &mut lower).expect("RD, AD, CD");
        assert_eq!(&lower[..q.name_len], b"\x03cdn\x01t\x00");
        assert!(q.mixed_case);
        assert_eq!((q.rd, q.cd, q.qtype), (1, 0x10, 1));
        // Opcode, AA, TC, RA, Z, rcode: general path.
        for flags in [
            [0x08, 0],
            [0x04, 0],
            [0x02, 0],
            [0, 0x80],
            [0, 0x40],
            [0, 1],
        ] {
            assert!(parse(&query(flags, &[]), &mut lower).is_none(), "{flags:?}");
        }
        let ecs = |bytes: &[u8]| {
            let mut o = vec![0, 8, 0, bytes.len() as u8];
            o.extend_from_slice(bytes);
            opt(&o)
        };
        let q = parse(
            &query([0, 0], &ecs(&[0, 1, 20, 0, 10, 1, 0x20])),
            &mut lower,
        )
        .unwrap();
        assert_eq!(q.edns.unwrap().ecs.unwrap().addr.to_string(), "10.1.32.0");
        for bad in [
            &[0, 1, 20, 0, 10, 1, 0x21][..], // bits beyond the prefix
            &[0, 1, 24, 0, 10, 1, 2, 0],     // an octet too many
            &[0, 1, 24, 0, 10, 1],           // one too few
            &[0, 1, 24, 4, 10, 1, 2],        // scope in a query
            &[0, 3, 0, 0],                   // unknown family
            &[0, 1, 33, 0, 1, 2, 3, 4, 5],   // prefix too long
        ] {
            assert!(
                parse(&query([0, 0], &ecs(bad)), &mut lower).is_none(),
                "{bad:?}"
            );
        }
        // COOKIE is ignored; NSID or anything else is not ours.
        assert!(
            parse(
                &query([0, 0], &opt(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])),
                &mut lower
            )
            .is_some()
        );
        assert!(parse(&query([0, 0], &opt(&[0, 3, 0, 0])), &mut lower).is_none());
        // Trailing bytes after the question.
        let mut trailing = query([0, 0], &[]);
        trailing.push(0);
        assert!(parse(&trailing, &mut lower).is_none());
    }
}
