//! `waypost:edge/geo`: the client's location from a MaxMind-format database
//! (City or Country; ASN when the database carries it), looked up once per
//! request before the plugin runs.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Reader, geoip2};

use super::EdgeCtx;
use super::waypost::edge::geo::{Host, Location};

/// An opened database.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
}

impl GeoDb {
    pub fn open(path: &Path) -> Result<Self, maxminddb::MaxMindDbError> {
        Ok(Self {
            reader: Reader::open_readfile(path)?,
        })
    }

    /// Everything the database knows about `ip`; unknown fields are `None`.
    pub fn locate(&self, ip: IpAddr) -> Location {
        let mut loc = unknown();
        let Ok(found) = self.reader.lookup(ip) else {
            return loc;
        };
        if let Ok(Some(city)) = found.decode::<geoip2::City>() {
            loc.country = city.country.iso_code.map(str::to_string);
            loc.continent = city.continent.code.map(str::to_string);
            loc.latitude = city.location.latitude;
            loc.longitude = city.location.longitude;
        }
        if let Ok(Some(asn)) = found.decode::<geoip2::Asn>() {
            loc.asn = asn.autonomous_system_number;
        }
        loc
    }
}

pub fn unknown() -> Location {
    Location {
        country: None,
        continent: None,
        latitude: None,
        longitude: None,
        asn: None,
    }
}

impl Host for EdgeCtx {
    async fn client_location(&mut self) -> Location {
        self.location.clone()
    }
}
