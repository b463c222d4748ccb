//! Answers prepared in wire format for every (name, type) the fast path
//! may answer, built from one snapshot and one health state by the same
//! code the general path runs (`Zones::resolve`, `geo_answer`) and encoded
//! by hickory, so the bytes are the general path's bytes. A query patches
//! in its ID, flags, question and OPT.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncoder};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

use super::counters::counter_index;
use super::query::{FastQuery, KEY_LEN};
use crate::answer::geo_answer;
use crate::state::Snapshot;

/// Largest UDP reply (the general path's `MAX_UDP_PAYLOAD`).
const MAX_UDP_PAYLOAD: u16 = 1232;

/// The answers of one snapshot in one health state.
#[derive(Debug)]
pub struct Table {
    pub snapshot: Arc<Snapshot>,
    /// The health generation the answers were built from.
    pub generation: u64,
    /// foldhash: one lookup per query, keyed by zone names only.
    entries: foldhash::HashMap<Box<[u8]>, Entry>,
}

#[derive(Debug)]
enum Entry {
    Static(Prepared),
    Geo(GeoEntry),
}

#[derive(Debug)]
struct GeoEntry {
    /// The geo name's candidate regions (the `GeoMap` key).
    regions: Vec<usize>,
    /// Indexed by region: what that region answers when it is first.
    by_region: Vec<Choice>,
    fail_open: Prepared,
}

#[derive(Debug)]
enum Choice {
    /// No healthy endpoint of the asked family: try the next region.
    NotServing,
    /// More healthy endpoints than `max_answers`: a weighted random draw,
    /// left to the general path.
    Drawn,
    Ready(Prepared),
}

/// Everything after the question, and the header fields that go with it.
/// Compression pointers in it point after the question, whose length is
/// the same in every spelling.
#[derive(Debug)]
pub struct Prepared {
    body: Box<[u8]>,
    answers: u16,
    authorities: u16,
    rcode: u8,
    /// The body fits a question in any case (0x20 randomisation) once the
    /// client's spelling is copied to `name_at`: records owned by the name
    /// carry its spelling, and no other name is compressed into it.
    case_free: bool,
    /// Offsets in `body` where the question name is written in full.
    name_at: Box<[u16]>,
    /// Into the per-thread query counters.
    pub counter: usize,
    /// Region index for `geo_answers` (the number of regions for
    /// `fail-open`), `None` for static names.
    pub region: Option<usize>,
    /// Counted in `geo_fail_open`: every endpoint, no region healthy.
    pub fail_open: bool,
}

/// What a query gets: its prepared answer and the ECS scope to echo.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'t> {
    pub prepared: &'t Prepared,
    pub scope: u8,
}

impl Table {
    pub fn build(snapshot: Arc<Snapshot>) -> Self {
        let generation = snapshot.health.generation();
        let mut entries = foldhash::HashMap::default();
        for zone in snapshot.zones.iter() {
            for (name, types, geo) in zone.names() {
                let mut wanted = vec![RecordType::A, RecordType::AAAA];
                wanted.extend(types);
                wanted.sort_unstable_by_key(|t| u16::from(*t));
                wanted.dedup();
                for qtype in wanted {
                    let entry = if geo && matches!(qtype, RecordType::A | RecordType::AAAA) {
                        geo_entry(&snapshot, &name, qtype).map(Entry::Geo)
                    } else {
                        static_entry(&snapshot, &name, qtype).map(Entry::Static)
                    };
                    if let Some(entry) = entry {
                        entries.insert(key(&name, qtype), entry);
                    }
                }
            }
        }
        Self {
            snapshot,
            generation,
            entries,
        }
    }

    /// The answer for `q` from `client` (its source address), if the
    /// fast path has one.
    pub fn answer(
        &self,
        q: &FastQuery,
        lower: &[u8; KEY_LEN],
        client: IpAddr,
    ) -> Option<Answer<'_>> {
        let key_len = q.name_len + 2;
        let entry = self.entries.get(&lower[..key_len])?;
        let answer = match entry {
            Entry::Static(prepared) => Answer { prepared, scope: 0 },
            Entry::Geo(geo) => {
                let ecs = q.edns.and_then(|e| e.ecs);
                let addr = match ecs {
                    Some(e) if e.source > 0 => e.addr,
                    _ => client,
                };
                let placement = self.snapshot.geo.place(&geo.regions, addr);
                let prepared = match placement {
                    Some(p) => first_serving(geo, p.order.iter().map(|&r| usize::from(r)))?,
                    None => first_serving(geo, geo.regions.iter().copied())?,
                };
                let scope = match (placement, ecs) {
                    (Some(p), Some(e)) if e.source > 0 => p.scope,
                    _ => 0,
                };
                Answer { prepared, scope }
            }
        };
        (!q.mixed_case || answer.prepared.case_free).then_some(answer)
    }
}

/// The first region in `order` that serves, its answer; `None` when that
/// answer is a weighted draw.
fn first_serving(geo: &GeoEntry, order: impl Iterator<Item = usize>) -> Option<&Prepared> {
    for r in order {
        match &geo.by_region[r] {
            Choice::NotServing => continue,
            Choice::Drawn => return None,
            Choice::Ready(p) => return Some(p),
        }
    }
    Some(&geo.fail_open)
}

/// Writes the reply to `q` (datagram `query`) into `out`; `None` when it
/// would not fit the client's payload size (the general path truncates).
pub fn write_reply(
    q: &FastQuery,
    query: &[u8],
    answer: Answer<'_>,
    out: &mut [u8],
) -> Option<usize> {
    let p = answer.prepared;
    let limit = q
        .edns
        .map_or(512, |e| usize::from(e.payload.clamp(512, MAX_UDP_PAYLOAD)));
    let question = &query[12..q.question_end];
    let mut ecs_octets = [0u8; 16];
    let ecs = q.edns.and_then(|e| e.ecs);
    let ecs_len = ecs.map(|e| e.address_octets(&mut ecs_octets));
    let opt_len = match (q.edns, ecs_len) {
        (None, _) => 0,
        (Some(_), None) => 11,
        (Some(_), Some(n)) => 11 + 8 + n,
    };
    let len = 12 + question.len() + p.body.len() + opt_len;
    if len > limit || len > out.len() {
        return None;
    }
    out[..2].copy_from_slice(&q.id);
    out[2] = 0x84 | q.rd;
    out[3] = q.cd | p.rcode;
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..8].copy_from_slice(&p.answers.to_be_bytes());
    out[8..10].copy_from_slice(&p.authorities.to_be_bytes());
    out[10..12].copy_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
    let mut pos = 12;
    out[pos..pos + question.len()].copy_from_slice(question);
    pos += question.len();
    out[pos..pos + p.body.len()].copy_from_slice(&p.body);
    if q.mixed_case {
        let name = &question[..q.name_len];
        for &at in &p.name_at {
            let at = pos + usize::from(at);
            out[at..at + name.len()].copy_from_slice(name);
        }
    }
    pos += p.body.len();
    if let Some(edns) = q.edns {
        let payload = edns.payload.clamp(512, MAX_UDP_PAYLOAD);
        out[pos..pos + 3].copy_from_slice(&[0, 0, 41]);
        out[pos + 3..pos + 5].copy_from_slice(&payload.to_be_bytes());
        out[pos + 5..pos + 9].fill(0);
        let rdlen = (opt_len - 11) as u16;
        out[pos + 9..pos + 11].copy_from_slice(&rdlen.to_be_bytes());
        pos += 11;
        if let (Some(e), Some(n)) = (ecs, ecs_len) {
            out[pos..pos + 2].copy_from_slice(&8u16.to_be_bytes());
            out[pos + 2..pos + 4].copy_from_slice(&((4 + n) as u16).to_be_bytes());
            out[pos + 4..pos + 6].copy_from_slice(&e.family.to_be_bytes());
            out[pos + 6] = e.source;
            out[pos + 7] = answer.scope;
            out[pos + 8..pos + 8 + n].copy_from_slice(&ecs_octets[..n]);
            pos += 8 + n;
        }
    }
    Some(pos)
}

fn key(name: &Name, qtype: RecordType) -> Box<[u8]> {
    let mut key = name_wire(name);
    key.extend_from_slice(&u16::from(qtype).to_be_bytes());
    key.into_boxed_slice()
}

fn name_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

fn upper(name: &Name) -> Option<Name> {
    Name::from_ascii(name.to_ascii().to_ascii_uppercase()).ok()
}

/// A static answer, unless the general path would do more than look it
/// up (a CNAME into a geo name, REFUSED).
fn static_entry(snapshot: &Snapshot, name: &Name, qtype: RecordType) -> Option<Prepared> {
    let encode = |spelling: &Name| {
        let resolution = snapshot.zones.resolve(spelling, qtype);
        if resolution.zone.is_none() || resolution.geo.is_some() {
            return None;
        }
        let soa = resolution.negative_soa().cloned();
        encode(
            spelling,
            qtype,
            resolution.rcode,
            &resolution.answers,
            soa.as_ref(),
        )
    };
    let (lower, upper) = (encode(name)?, encode(&upper(name)?)?);
    Some(prepared(lower, upper, qtype, None, false))
}

fn geo_entry(snapshot: &Snapshot, name: &Name, qtype: RecordType) -> Option<GeoEntry> {
    let regions = &snapshot.config.regions;
    let upper_name = upper(name)?;
    // One region first in the order, or none (failing open).
    let encode_for = |spelling: &Name, first: Option<usize>| {
        let resolution = snapshot.zones.resolve(spelling, qtype);
        let hit = resolution.geo.as_ref()?;
        if !resolution.answers.is_empty() {
            return None;
        }
        let order: Vec<u16> = first.map(|r| r as u16).into_iter().collect();
        let answer = geo_answer(hit, &order, regions, &snapshot.health);
        let soa = answer.records.is_empty().then(|| hit.zone.soa().clone());
        let bytes = encode(
            spelling,
            qtype,
            resolution.rcode,
            &answer.records,
            soa.as_ref(),
        )?;
        Some((
            bytes,
            answer.region,
            answer.candidates,
            hit.zone.config.max_answers,
        ))
    };
    let (lower, _, _, _) = encode_for(name, None)?;
    let (upper, _, _, _) = encode_for(&upper_name, None)?;
    let with_records = lower.answers > 0;
    let fail_open = prepared(lower, upper, qtype, Some(regions.len()), with_records);
    let geo_regions = snapshot.zones.resolve(name, qtype).geo?.geo.regions.clone();
    let mut by_region: Vec<Choice> = (0..regions.len()).map(|_| Choice::NotServing).collect();
    for &r in &geo_regions {
        let (lower, region, candidates, max) = encode_for(name, Some(r))?;
        by_region[r] = if region != Some(r) {
            Choice::NotServing
        } else if candidates > max {
            Choice::Drawn
        } else {
            let (upper, _, _, _) = encode_for(&upper_name, Some(r))?;
            Choice::Ready(prepared(lower, upper, qtype, Some(r), false))
        };
    }
    Some(GeoEntry {
        regions: geo_regions,
        by_region,
        fail_open,
    })
}

/// The encoded message and the header fields of a reply.
struct Encoded {
    bytes: Vec<u8>,
    question_end: usize,
    answers: u16,
    authorities: u16,
    rcode: ResponseCode,
}

/// Encodes like the general path: hickory's response builder over the
/// question as raw bytes (hickory copies the question verbatim and never
/// compresses later names against it).
fn encode(
    name: &Name,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: &[Record],
    soa: Option<&Record>,
) -> Option<Encoded> {
    let mut question = name_wire(name);
    question.extend_from_slice(&u16::from(qtype).to_be_bytes());
    question.extend_from_slice(&1u16.to_be_bytes());
    let queries = Queries::read(&mut BinDecoder::new(&question), 1).ok()?;
    let mut metadata = Metadata::new(0, MessageType::Response, OpCode::Query);
    metadata.authoritative = true;
    metadata.response_code = rcode;
    let response = MessageResponseBuilder::new(&queries, None).build(
        metadata,
        answers.iter(),
        std::iter::empty(),
        soa,
        std::iter::empty(),
    );
    let mut bytes = Vec::with_capacity(512);
    response
        .destructive_emit(&mut BinEncoder::new(&mut bytes))
        .ok()?;
    Some(Encoded {
        question_end: 12 + question.len(),
        answers: u16::try_from(answers.len()).ok()?,
        authorities: u16::from(soa.is_some()),
        rcode,
        bytes,
    })
}

fn prepared(
    lower: Encoded,
    upper: Encoded,
    qtype: RecordType,
    region: Option<usize>,
    fail_open: bool,
) -> Prepared {
    let body = &lower.bytes[lower.question_end..];
    let (case_free, name_at) = spelled_names(&lower, &upper);
    Prepared {
        case_free,
        name_at,
        body: body.into(),
        answers: lower.answers,
        authorities: lower.authorities,
        rcode: lower.rcode.low(),
        counter: counter_index(qtype, lower.rcode),
        region,
        fail_open,
    }
}

/// Where the lower-case encoding writes the lower-case name and the
/// upper-case one the upper-case name, and whether those are the only
/// differences between the two bodies.
fn spelled_names(lower: &Encoded, upper: &Encoded) -> (bool, Box<[u16]>) {
    let (lb, ub) = (
        &lower.bytes[lower.question_end..],
        &upper.bytes[upper.question_end..],
    );
    let (ln, un) = (
        &lower.bytes[12..lower.question_end - 4],
        &upper.bytes[12..upper.question_end - 4],
    );
    if lb.len() != ub.len() {
        return (false, Box::new([]));
    }
    let mut at = Vec::new();
    let mut patched = lb.to_vec();
    let mut i = 0;
    while i + ln.len() <= lb.len() {
        if &lb[i..i + ln.len()] == ln && &ub[i..i + un.len()] == un {
            patched[i..i + un.len()].copy_from_slice(un);
            at.push(i as u16);
            i += ln.len();
        } else {
            i += 1;
        }
    }
    (patched == ub, at.into_boxed_slice())
}
