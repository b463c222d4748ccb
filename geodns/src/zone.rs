//! Authoritative zone data and lookup, apart from serving: which records
//! answer a question, NXDOMAIN vs NODATA, CNAME chains, REFUSED outside our
//! zones. Geo names are resolved here only as far as "this is geo name N";
//! the endpoints come from `answer`, because they depend on the client.

use std::collections::{HashMap, HashSet};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::config::{GeoName, ZoneConfig};

/// Longest CNAME chain followed inside our zones; longer ones (or loops)
/// stop with what was found so far, as resolvers restart from the last name.
const MAX_CNAME_CHAIN: usize = 8;

/// Every configured zone.
#[derive(Debug)]
pub struct Zones {
    zones: Vec<Zone>,
}

#[derive(Debug)]
pub struct Zone {
    pub origin: LowerName,
    soa: Record,
    pub config: ZoneConfig,
    nodes: HashMap<LowerName, Node>,
    /// Names that exist only because something lives below them (empty
    /// non-terminals): they answer NODATA, not NXDOMAIN.
    ancestors: HashSet<LowerName>,
}

#[derive(Debug)]
enum Node {
    Static(Vec<Record>),
    /// Index into the zone's `config.geo`.
    Geo(usize),
}

/// The zone-level answer to one question.
#[derive(Debug)]
pub struct Resolution<'z> {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    /// A geo name reached (directly or through a CNAME) whose endpoints of
    /// the asked type still have to be added for this client.
    pub geo: Option<GeoHit<'z>>,
    /// The zone that answered; absent when REFUSED.
    pub zone: Option<&'z Zone>,
}

#[derive(Debug, Clone)]
pub struct GeoHit<'z> {
    pub geo: &'z GeoName,
    pub zone: &'z Zone,
    pub qtype: RecordType,
    /// The geo name as reached: the client's spelling or a CNAME target.
    pub name: Name,
}

impl<'z> Resolution<'z> {
    /// The SOA for the authority section of NXDOMAIN and NODATA answers.
    pub fn negative_soa(&self) -> Option<&'z Record> {
        let zone = self.zone?;
        (self.answers.is_empty() && self.geo.is_none()).then_some(&zone.soa)
    }
}

impl Zones {
    pub fn new(configs: &[ZoneConfig]) -> Self {
        Self {
            zones: configs.iter().map(Zone::new).collect(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }

    /// Answers `qtype` for `qname`; `qname` keeps the client's spelling so
    /// answers echo its case (resolvers using 0x20 randomisation check it).
    pub fn resolve(&self, qname: &Name, qtype: RecordType) -> Resolution<'_> {
        let lower = LowerName::new(qname);
        let Some(zone) = self
            .zones
            .iter()
            .filter(|z| z.origin.zone_of(&lower))
            .max_by_key(|z| z.origin.num_labels())
        else {
            return Resolution {
                rcode: ResponseCode::Refused,
                answers: Vec::new(),
                geo: None,
                zone: None,
            };
        };
        zone.resolve(qname.clone(), lower, qtype)
    }
}

impl Zone {
    /// The zone's SOA, for the authority section of negative answers.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// Every name that holds data, with the types it holds and whether it
    /// is a geo name: what the fast path prepares answers for.
    pub fn names(&self) -> impl Iterator<Item = (Name, Vec<RecordType>, bool)> + '_ {
        self.nodes.iter().map(|(name, node)| match node {
            Node::Static(records) => {
                let mut types: Vec<RecordType> = records.iter().map(Record::record_type).collect();
                types.sort_unstable_by_key(|t| u16::from(*t));
                types.dedup();
                (Name::from(name.clone()), types, false)
            }
            Node::Geo(_) => (Name::from(name.clone()), Vec::new(), true),
        })
    }

    fn new(config: &ZoneConfig) -> Self {
        let origin = config.origin.clone();
        let soa = Record::from_rdata(
            origin.clone(),
            config.minimum,
            RData::SOA(SOA::new(
                config.nameservers[0].clone(),
                config.rname.clone(),
                config.serial,
                config.refresh,
                config.retry,
                config.expire,
                config.minimum,
            )),
        );
        let mut nodes: HashMap<LowerName, Node> = HashMap::new();
        let mut apex = vec![soa.clone()];
        apex.extend(
            config.nameservers.iter().map(|ns| {
                Record::from_rdata(origin.clone(), config.ttl, RData::NS(NS(ns.clone())))
            }),
        );
        nodes.insert(LowerName::new(&origin), Node::Static(apex));
        for record in &config.records {
            if let Node::Static(records) = nodes
                .entry(LowerName::new(&record.name))
                .or_insert_with(|| Node::Static(Vec::new()))
            {
                records.push(record.clone());
            }
        }
        for (i, geo) in config.geo.iter().enumerate() {
            nodes.insert(LowerName::new(&geo.name), Node::Geo(i));
        }
        let origin_lower = LowerName::new(&origin);
        let mut ancestors = HashSet::new();
        for name in nodes.keys() {
            let mut parent = name.base_name();
            while origin_lower.zone_of(&parent) && parent != origin_lower {
                ancestors.insert(parent.clone());
                parent = parent.base_name();
            }
        }
        Self {
            origin: origin_lower,
            soa,
            config: config.clone(),
            nodes,
            ancestors,
        }
    }

    fn resolve(&self, mut name: Name, mut lower: LowerName, qtype: RecordType) -> Resolution<'_> {
        let mut answers = Vec::new();
        for _ in 0..MAX_CNAME_CHAIN {
            let Some(node) = self.nodes.get(&lower) else {
                // Empty non-terminals are NODATA; a missing name stays
                // NXDOMAIN even at the end of a CNAME chain (RFC 6604).
                let rcode = if self.ancestors.contains(&lower) {
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                };
                return self.done(rcode, answers, None);
            };
            match node {
                Node::Geo(i) => {
                    // ANY gets one RRset (RFC 8482 §4.2): the A records.
                    let asked = if qtype == RecordType::ANY {
                        RecordType::A
                    } else {
                        qtype
                    };
                    let geo =
                        (matches!(asked, RecordType::A | RecordType::AAAA)).then_some(GeoHit {
                            geo: &self.config.geo[*i],
                            zone: self,
                            qtype: asked,
                            name,
                        });
                    return self.done(ResponseCode::NoError, answers, geo);
                }
                Node::Static(records) => {
                    // ANY is answered minimally (RFC 8482 §4.2): one RRset,
                    // the first the name has (SOA at the apex), so ANY is no
                    // amplifier.
                    let wanted = match (qtype, records.first()) {
                        (RecordType::ANY, Some(first)) => first.record_type(),
                        _ => qtype,
                    };
                    let matching = records.iter().filter(|r| r.record_type() == wanted);
                    let before = answers.len();
                    answers.extend(matching.map(|r| with_name(r, &name)));
                    if answers.len() > before || qtype == RecordType::CNAME {
                        return self.done(ResponseCode::NoError, answers, None);
                    }
                    let Some(target) = records.iter().find_map(|r| match &r.data {
                        RData::CNAME(c) => Some(c.0.clone()),
                        _ => None,
                    }) else {
                        return self.done(ResponseCode::NoError, answers, None);
                    };
                    let cname = records
                        .iter()
                        .find(|r| r.record_type() == RecordType::CNAME)
                        .map(|r| with_name(r, &name));
                    answers.extend(cname);
                    let target_lower = LowerName::new(&target);
                    if !self.origin.zone_of(&target_lower) {
                        return self.done(ResponseCode::NoError, answers, None);
                    }
                    name = target;
                    lower = target_lower;
                }
            }
        }
        self.done(ResponseCode::NoError, answers, None)
    }

    fn done<'z>(
        &'z self,
        rcode: ResponseCode,
        answers: Vec<Record>,
        geo: Option<GeoHit<'z>>,
    ) -> Resolution<'z> {
        Resolution {
            rcode,
            answers,
            geo,
            zone: Some(self),
        }
    }
}

/// The record under the name as the client spelled it.
fn with_name(record: &Record, name: &Name) -> Record {
    let mut record = record.clone();
    record.name = name.clone();
    record
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn zones() -> Zones {
        let config = Config::parse(
            Path::new("t.toml"),
            r#"
            [regions.eu]
            latitude = 50.0
            longitude = 8.0
            endpoints = [{ address = "192.0.2.1" }]
            [[zones]]
            origin = "example.test"
            nameservers = ["ns1.example.test."]
            records = [
              { name = "www", type = "A", value = "192.0.2.10" },
              { name = "alias", type = "CNAME", value = "www.example.test." },
              { name = "geoalias", type = "CNAME", value = "cdn.example.test." },
              { name = "dangling", type = "CNAME", value = "nope.example.test." },
              { name = "a.b.deep", type = "TXT", value = "hello" },
            ]
            geo = [{ name = "cdn", regions = ["eu"] }]
            "#,
        )
        .unwrap();
        Zones::new(&config.zones)
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn outcomes() {
        let z = zones();
        let r = z.resolve(&name("WWW.Example.Test."), RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].name.to_string(), "WWW.Example.Test.");

        let r = z.resolve(&name("www.example.test."), RecordType::AAAA);
        assert_eq!(r.rcode, ResponseCode::NoError);
        assert!(r.negative_soa().is_some());

        let r = z.resolve(&name("nope.example.test."), RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NXDomain);

        let r = z.resolve(&name("deep.example.test."), RecordType::A);
        assert_eq!(
            r.rcode,
            ResponseCode::NoError,
            "empty non-terminal is NODATA"
        );

        let r = z.resolve(&name("other.test."), RecordType::A);
        assert_eq!(r.rcode, ResponseCode::Refused);

        let r = z.resolve(&name("alias.example.test."), RecordType::A);
        assert_eq!(r.answers.len(), 2);

        let r = z.resolve(&name("geoalias.example.test."), RecordType::A);
        assert_eq!(r.answers.len(), 1);
        assert!(r.geo.is_some());

        let r = z.resolve(&name("dangling.example.test."), RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NXDomain);
        assert_eq!(r.answers.len(), 1);

        let r = z.resolve(&name("example.test."), RecordType::ANY);
        assert_eq!(r.answers.len(), 1, "one RRset (RFC 8482): the SOA");
        assert_eq!(r.answers[0].record_type(), RecordType::SOA);
    }
}
