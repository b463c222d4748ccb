//! Reading raw DNS message bytes where a decoded message has lost what we
//! need: hickory decodes an ECS option into an address and forgets how many
//! ADDRESS octets the client sent (RFC 7871 §6 requires exactly as many as
//! SOURCE PREFIX-LENGTH needs), and the fast path reads queries without
//! decoding them at all. Every read is bounds-checked; `None` means the
//! bytes are not what the caller expected.

/// Offset just past the name starting at `pos` (labels or a compression
/// pointer, which ends the name on the wire).
pub fn skip_name(buf: &[u8], mut pos: usize) -> Option<usize> {
    // A name has at most 127 labels; this bounds the loop whatever the input.
    for _ in 0..128 {
        let len = *buf.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            1..=63 => pos += 1 + usize::from(len),
            0xc0..=0xff => {
                buf.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
    None
}

pub fn u16_at(buf: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(pos)?, *buf.get(pos + 1)?]))
}

/// The OPT record of a message, as byte offsets into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptRecord {
    /// Offset of the record's first byte (its root name).
    pub start: usize,
    /// Offset of its RDATA (the options) and the RDATA length.
    pub rdata: usize,
    pub rdlen: usize,
}

/// Finds the first OPT record in the additional section.
pub fn find_opt(buf: &[u8]) -> Option<OptRecord> {
    let count = |i: usize| u16_at(buf, 4 + 2 * i).map(usize::from);
    let (qd, an, ns, ar) = (count(0)?, count(1)?, count(2)?, count(3)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(buf, pos)? + 4;
    }
    for i in 0..an + ns + ar {
        let start = pos;
        pos = skip_name(buf, pos)?;
        let rtype = u16_at(buf, pos)?;
        let rdlen = usize::from(u16_at(buf, pos + 8)?);
        let rdata = pos + 10;
        if rdata + rdlen > buf.len() {
            return None;
        }
        if i >= an + ns && rtype == 41 {
            return Some(OptRecord {
                start,
                rdata,
                rdlen,
            });
        }
        pos = rdata + rdlen;
    }
    None
}

/// The first option with `code` in an OPT record: (offset of its data, length).
pub fn find_option(buf: &[u8], opt: OptRecord, code: u16) -> Option<(usize, usize)> {
    let end = opt.rdata + opt.rdlen;
    let mut pos = opt.rdata;
    while pos + 4 <= end {
        let (c, len) = (u16_at(buf, pos)?, usize::from(u16_at(buf, pos + 2)?));
        if pos + 4 + len > end {
            return None;
        }
        if c == code {
            return Some((pos + 4, len));
        }
        pos += 4 + len;
    }
    None
}

/// EDNS option code of Client Subnet (RFC 7871).
pub const OPTION_ECS: u16 = 8;

/// ADDRESS octets an ECS option must carry for `source_prefix` bits.
pub fn ecs_address_len(source_prefix: u8) -> usize {
    usize::from(source_prefix).div_ceil(8)
}

/// Length of the ECS option's data as sent, when the message has one.
pub fn ecs_option_len(buf: &[u8]) -> Option<usize> {
    let opt = find_opt(buf)?;
    find_option(buf, opt, OPTION_ECS).map(|(_, len)| len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ecs_option_length() {
        // Header: 1 question, 1 additional; question `a.` A IN; OPT with an
        // unknown option then ECS 1/24/0 with four address bytes.
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        m.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        let options = [0, 99, 0, 1, 7, 0, 8, 0, 8, 0, 1, 24, 0, 1, 2, 3, 4];
        m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, options.len() as u8]);
        m.extend_from_slice(&options);
        assert_eq!(ecs_option_len(&m), Some(8));
        // Cut inside the option: not found rather than a panic.
        assert_eq!(ecs_option_len(&m[..m.len() - 2]), None);
        assert_eq!(skip_name(&[0xc0], 0), None);
        assert_eq!(ecs_address_len(0), 0);
        assert_eq!(ecs_address_len(17), 3);
    }
}
