//! Where the client is, from the edge's geo database (MaxMind format).

use crate::bindings::waypost::edge::geo as wit;

/// The client's location; fields the database does not know are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, e.g. `"DE"`.
    pub country: Option<String>,
    /// Continent code, e.g. `"EU"`.
    pub continent: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<u32>,
}

/// The location of the current request's client.
pub fn client_location() -> Location {
    let wit::Location {
        country,
        continent,
        latitude,
        longitude,
        asn,
    } = wit::client_location();
    Location {
        country,
        continent,
        latitude,
        longitude,
        asn,
    }
}
