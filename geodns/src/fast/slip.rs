//! The reply a rate-limited query may get instead of its answer: the header
//! with TC set, the question as the client sent it, no records, and an OPT
//! record when the query had one (RFC 6891 §7: a truncated reply keeps its
//! OPT), so the client retries over TCP. Built from the raw bytes: no
//! decoding beyond the question, as BIND and Knot do.

/// Our payload size in the OPT record (the DNS flag day's 1232).
const PAYLOAD: u16 = 1232;
const HEADER: usize = 12;
/// A minimal OPT record: root owner, type 41, payload, no flags, no data.
const OPT_LEN: usize = 11;

/// Writes the truncated reply to `query` into `out`; `None` for anything
/// that is not a plain one-question QUERY (those are dropped instead).
pub fn truncated(query: &[u8], out: &mut [u8]) -> Option<usize> {
    let header = query.get(..HEADER)?;
    let qr = header[2] & 0x80 != 0;
    let opcode = (header[2] >> 3) & 0x0f;
    let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    if qr || opcode != 0 || count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return None;
    }
    // The question: uncompressed labels, then type and class.
    let mut pos = HEADER;
    loop {
        let len = usize::from(*query.get(pos)?);
        if len > 63 || pos - HEADER + 1 + len > 255 {
            return None;
        }
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    let question_end = pos + 4;
    let question = query.get(HEADER..question_end)?;
    // An OPT of version 0 is answered with ours; any other additional
    // record (or EDNS version) gets no slip.
    let opt = match count(10) {
        0 => None,
        _ => {
            let rr = query.get(question_end..question_end + OPT_LEN)?;
            if rr[0] != 0 || rr[1..3] != [0, 41] || rr[6] != 0 {
                return None;
            }
            // The DO bit is echoed, as the full reply would.
            Some(rr[7] & 0x80)
        }
    };
    let len = HEADER + question.len() + opt.map_or(0, |_| OPT_LEN);
    let out = out.get_mut(..len)?;
    out[..2].copy_from_slice(&header[..2]);
    // QR, opcode QUERY, TC, and RD as asked; CD as asked; RCODE 0.
    out[2] = 0x80 | 0x02 | (header[2] & 0x01);
    out[3] = header[3] & 0x10;
    out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
    out[HEADER..HEADER + question.len()].copy_from_slice(question);
    if let Some(dnssec_ok) = opt {
        let rr = &mut out[HEADER + question.len()..];
        rr[..3].copy_from_slice(&[0, 0, 41]);
        rr[3..5].copy_from_slice(&PAYLOAD.to_be_bytes());
        rr[5..].copy_from_slice(&[0, 0, dnssec_ok, 0, 0, 0]);
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    fn query(edns: bool) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            Name::from_ascii("WwW.Example.test.").unwrap(),
            RecordType::AAAA,
        ));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            e.set_dnssec_ok(true);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn a_slip_is_a_truncated_reply_with_the_question_and_opt() {
        for edns in [false, true] {
            let mut out = [0u8; 512];
            let n = truncated(&query(edns), &mut out).expect("a plain query slips");
            let reply = Message::from_vec(&out[..n]).expect("a valid message");
            assert_eq!(reply.metadata.id, 0x1234);
            assert_eq!(reply.metadata.message_type, MessageType::Response);
            assert!(reply.metadata.truncation && reply.metadata.recursion_desired);
            assert!(reply.answers.is_empty() && reply.authorities.is_empty());
            let q = &reply.queries[0];
            assert_eq!(q.name().to_string(), "WwW.Example.test.");
            assert_eq!(q.query_type(), RecordType::AAAA);
            assert_eq!(reply.edns.is_some(), edns);
            if let Some(e) = &reply.edns {
                assert_eq!(e.max_payload(), PAYLOAD);
                assert!(e.flags().dnssec_ok);
            }
        }
    }

    #[test]
    fn anything_but_a_plain_query_gets_no_slip() {
        let mut out = [0u8; 512];
        let good = query(false);
        let mut response = good.clone();
        response[2] |= 0x80;
        let mut notify = good.clone();
        notify[2] |= 4 << 3;
        let mut compressed = good[..HEADER].to_vec();
        compressed.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        for bad in [
            &good[..5],
            &good[..good.len() - 1],
            &response,
            &notify,
            &compressed,
        ] {
            assert_eq!(truncated(bad, &mut out), None, "{bad:?}");
        }
    }
}
