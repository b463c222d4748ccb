//! hickory's `RequestHandler` for our zones. hickory's `Catalog` builds the
//! reply's EDNS itself and never echoes Client Subnet, so we answer here and
//! attach our own OPT record carrying the ECS scope.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

use crate::answer::geo_answer;
use crate::metrics::{Metrics, QueryLabels, RegionLabels};
use crate::state::Snapshot;
use crate::wire;

/// Largest UDP reply we send whatever the client offers: the DNS flag day
/// 2020 size that avoids IP fragmentation.
const MAX_UDP_PAYLOAD: u16 = 1232;

#[derive(Debug, Clone)]
pub struct Handler {
    pub state: Arc<ArcSwap<Snapshot>>,
    pub metrics: Arc<Metrics>,
}

/// Everything decided about one reply before it is encoded.
struct Reply {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    soa: Option<Record>,
    /// ECS to echo, with our scope filled in.
    ecs: Option<ClientSubnet>,
    region: Option<String>,
}

impl Reply {
    fn error(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            soa: None,
            ecs: None,
            region: None,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let snapshot = self.state.load();
        let reply = decide(&snapshot, request, &self.metrics);

        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.rcode;
        metadata.authoritative = reply.authoritative;
        if reply.rcode == ResponseCode::NotImp {
            // We did not understand the request, so none of its flags are
            // echoed (hickory copies RD and CD).
            metadata.recursion_desired = false;
            metadata.checking_disabled = false;
        }
        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns.set_version(0);
            if let Some(ecs) = &reply.ecs {
                edns.options_mut().insert(EdnsOption::Subnet(*ecs));
            }
            edns
        });
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        // hickory truncates by dropping whatever no longer fits, the OPT
        // record included; a reply that does not fit is sent as TC with
        // no records but its OPT instead (as BIND and Knot do), so the
        // client still sees our EDNS and retries over TCP.
        let limit = match (request.protocol(), &edns) {
            (Protocol::Udp, Some(edns)) => usize::from(edns.max_payload()),
            (Protocol::Udp, None) => 512,
            _ => usize::MAX,
        };
        let empty: &[Record] = &[];
        let (answers, soa) = if limit < usize::MAX
            && encoded_len(&request.queries, edns.as_ref(), metadata, &reply) > limit
        {
            metadata.truncation = true;
            (empty, None)
        } else {
            (&reply.answers[..], reply.soa.as_ref())
        };
        let response = builder.build(
            metadata,
            answers.iter(),
            std::iter::empty(),
            soa,
            std::iter::empty(),
        );
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "cannot send reply");
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        };
        self.record(&snapshot, request, &reply, started);
        info
    }
}

impl Handler {
    fn record(&self, snapshot: &Snapshot, request: &Request, reply: &Reply, started: Instant) {
        let query = request.queries.queries().first();
        let qtype = query.map_or("NONE", |q| type_label(q.query_type()));
        self.metrics
            .queries
            .get_or_create(&QueryLabels {
                qtype,
                rcode: rcode_label(reply.rcode),
                transport: match request.protocol() {
                    Protocol::Udp => "udp",
                    _ => "tcp",
                },
            })
            .inc();
        if let Some(region) = &reply.region {
            self.metrics
                .answers
                .get_or_create(&RegionLabels {
                    region: region.clone(),
                })
                .inc();
        }
        self.metrics
            .latency
            .observe(started.elapsed().as_secs_f64());
        if snapshot.config.query_log {
            tracing::info!(
                target: "geodns::query",
                src = %request.src(),
                name = %query.map(|q| q.name().to_string()).unwrap_or_default(),
                qtype,
                rcode = rcode_label(reply.rcode),
                ecs = %reply.ecs.as_ref().map(|e| format!("{}/{}/{}", e.addr(), e.source_prefix(), e.scope_prefix())).unwrap_or_default(),
                region = reply.region.as_deref().unwrap_or(""),
                answers = reply.answers.len(),
            );
        }
    }
}

/// Bytes `reply` takes on the wire without a size limit.
fn encoded_len(queries: &Queries, edns: Option<&Edns>, metadata: Metadata, reply: &Reply) -> usize {
    let mut builder = MessageResponseBuilder::new(queries, None);
    if let Some(edns) = edns {
        builder.edns(edns);
    }
    let response = builder.build(
        metadata,
        reply.answers.iter(),
        std::iter::empty(),
        reply.soa.iter(),
        std::iter::empty(),
    );
    let mut bytes = Vec::with_capacity(1024);
    let mut encoder = BinEncoder::new(&mut bytes);
    // An encoding error is sent as SERVFAIL by hickory anyway; counting it
    // as too long only changes which error the client sees.
    match response.destructive_emit(&mut encoder) {
        Ok(_) => bytes.len(),
        Err(_) => usize::MAX,
    }
}

/// The whole decision for one request, without I/O.
fn decide(snapshot: &Snapshot, request: &Request, metrics: &Metrics) -> Reply {
    if request.metadata.op_code != OpCode::Query {
        return Reply::error(ResponseCode::NotImp);
    }
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Reply::error(ResponseCode::BADVERS);
    }
    let [query] = request.queries.queries() else {
        return Reply::error(ResponseCode::FormErr);
    };
    let ecs = match client_subnet(request) {
        Ok(ecs) => ecs,
        Err(()) => return Reply::error(ResponseCode::FormErr),
    };
    let qtype = query.query_type();
    if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
        return Reply::error(ResponseCode::Refused);
    }
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Reply::error(ResponseCode::Refused);
    }

    let resolution = snapshot.zones.resolve(query.original().name(), qtype);
    let Some(_) = resolution.zone else {
        return Reply::error(ResponseCode::Refused);
    };
    let mut reply = Reply {
        rcode: resolution.rcode,
        authoritative: true,
        soa: resolution.negative_soa().cloned(),
        answers: resolution.answers,
        // Answers that do not depend on the client are valid for any
        // subnet: scope 0.
        ecs: ecs
            .as_ref()
            .map(|e| ClientSubnet::new(e.addr(), e.source_prefix(), 0)),
        region: None,
    };
    if let Some(hit) = resolution.geo {
        let client = match &ecs {
            Some(e) if e.source_prefix() > 0 => e.addr(),
            _ => request.src().ip(),
        };
        let regions = &snapshot.config.regions;
        let placement = snapshot.geo.place(&hit.geo.regions, client);
        let fallback: Vec<u16> = hit.geo.regions.iter().map(|&r| r as u16).collect();
        let order = placement.map_or(&fallback[..], |p| p.order);
        let answer = geo_answer(&hit, order, regions, &snapshot.health);
        if answer.region.is_none() && !answer.records.is_empty() {
            // Logged on the first and then every thousandth such answer, so
            // an outage is visible without a line per query.
            if metrics.fail_open.inc().is_multiple_of(1000) {
                tracing::warn!(name = %hit.name, "no healthy region: answering with every endpoint");
            }
        }
        if let (Some(echo), Some(p), Some(e)) = (reply.ecs.as_mut(), placement, &ecs)
            && e.source_prefix() > 0
        {
            echo.set_scope_prefix(p.scope);
        }
        reply.region = Some(
            answer
                .region
                .map_or_else(|| "fail-open".to_owned(), |r| regions[r].name.clone()),
        );
        reply.answers.extend(answer.records);
        if reply.answers.is_empty() {
            reply.soa = Some(hit.zone.soa().clone());
        }
    }
    reply
}

/// The request's ECS option, checked as RFC 7871 §7.1.2 requires: a scope
/// in a query, address bits beyond the source prefix or more ADDRESS
/// octets than the prefix needs (§6; hickory reads the ones it needs and
/// ignores the rest, so the raw length is checked) are FORMERR. (Unknown
/// families, over-long prefixes and missing octets already fail decoding,
/// which hickory answers with FORMERR.)
fn client_subnet(request: &Request) -> Result<Option<ClientSubnet>, ()> {
    let Some(EdnsOption::Subnet(ecs)) = request
        .edns
        .as_ref()
        .and_then(|e| e.option(EdnsCode::Subnet))
    else {
        return Ok(None);
    };
    let prefix = u32::from(ecs.source_prefix());
    let extra_bits = match ecs.addr() {
        IpAddr::V4(a) => prefix < 32 && u32::from(a) & (u32::MAX >> prefix) != 0,
        IpAddr::V6(a) => prefix < 128 && u128::from(a) & (u128::MAX >> prefix) != 0,
    };
    let sent_len = wire::ecs_option_len(request.as_slice());
    let wanted_len = 4 + wire::ecs_address_len(ecs.source_prefix());
    if ecs.scope_prefix() != 0 || extra_bits || sent_len != Some(wanted_len) {
        return Err(());
    }
    Ok(Some(*ecs))
}

pub(crate) fn type_label(t: RecordType) -> &'static str {
    match t {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::CNAME => "CNAME",
        RecordType::NS => "NS",
        RecordType::SOA => "SOA",
        RecordType::TXT => "TXT",
        RecordType::MX => "MX",
        RecordType::CAA => "CAA",
        RecordType::SRV => "SRV",
        RecordType::PTR => "PTR",
        RecordType::ANY => "ANY",
        RecordType::HTTPS => "HTTPS",
        _ => "OTHER",
    }
}

pub(crate) fn rcode_label(r: ResponseCode) -> &'static str {
    match r {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "OTHER",
    }
}
