//! Reads a MaxMind-format database (City or Country) into the client
//! locations `GeoMap` compiles, one entry per network of the database.

use std::collections::HashMap;
use std::path::Path;

use ipnetwork::IpNetwork;
use maxminddb::{Reader, WithinOptions, geoip2};

use super::rank::Location;
use super::{Key, v4_key};

/// Why the geo database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("geo database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
}

/// Every network of the database with data, as (first key, last key,
/// location index) in ascending order, plus the distinct locations.
#[derive(Debug, Default)]
pub struct Networks {
    pub ranges: Vec<(Key, Key, u32)>,
    pub locations: Vec<Location>,
}

pub fn read(path: &Path) -> Result<Networks, DbError> {
    let wrap = |source| DbError::Open {
        path: path.display().to_string(),
        source,
    };
    let reader = Reader::open_readfile(path).map_err(wrap)?;
    let mut out = Networks::default();
    // Many networks share one data record (a city); decode each record once.
    let mut by_offset: HashMap<usize, u32> = HashMap::new();
    for item in reader.networks(WithinOptions::default()).map_err(wrap)? {
        let lookup = item.map_err(wrap)?;
        let (Some(offset), Ok(network)) = (lookup.offset(), lookup.network()) else {
            continue;
        };
        let index = match by_offset.get(&offset) {
            Some(&i) => i,
            None => {
                let city: Option<geoip2::City<'_>> = lookup.decode().map_err(wrap)?;
                let location = city.map(to_location).unwrap_or_default();
                let i = out.locations.len() as u32;
                out.locations.push(location);
                by_offset.insert(offset, i);
                i
            }
        };
        let (first, last) = key_range(network);
        out.ranges.push((first, last, index));
    }
    out.ranges.sort_unstable_by_key(|r| r.0);
    Ok(out)
}

fn to_location(city: geoip2::City<'_>) -> Location {
    let coordinates = city.location.latitude.zip(city.location.longitude);
    let country = city
        .country
        .iso_code
        .or(city.registered_country.iso_code)
        .map(str::to_owned);
    Location {
        coordinates,
        country,
        continent: city.continent.code.map(str::to_owned),
        region: None,
    }
}

/// The key range a database network covers. IPv4 networks of an IPv6
/// database live under `::/96`; both spellings map to the IPv4 keys.
fn key_range(network: IpNetwork) -> (Key, Key) {
    match network {
        IpNetwork::V4(n) => {
            let first = v4_key(n.network());
            (first, first | host_mask(96 + u32::from(n.prefix())))
        }
        IpNetwork::V6(n) => {
            let bits = u128::from(n.network());
            if bits >> 32 == 0 && n.prefix() >= 96 {
                let first = v4_key(std::net::Ipv4Addr::from(bits as u32));
                return (first, first | host_mask(u32::from(n.prefix())));
            }
            (bits, bits | host_mask(u32::from(n.prefix())))
        }
    }
}

/// The bits below a prefix of `len` bits.
pub fn host_mask(len: u32) -> u128 {
    if len >= 128 { 0 } else { u128::MAX >> len }
}
