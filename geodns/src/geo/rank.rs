//! Orders a geo name's regions for one client location: preferred
//! countries first, then preferred continents, then great-circle distance.
//! The whole order is kept (not just the winner) so that a health change
//! never needs a recompile: the answer is the first healthy region in it.

use crate::config::Region;

/// What the database (or an override) knows about where a client is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    pub coordinates: Option<(f64, f64)>,
    pub country: Option<String>,
    pub continent: Option<String>,
    /// Set by a CIDR override: this region comes first.
    pub region: Option<usize>,
}

/// `candidates` (region indexes) ordered best first for `location`.
pub fn rank(location: &Location, candidates: &[usize], regions: &[Region]) -> Vec<u16> {
    let mut keyed: Vec<(u8, f64, usize, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(order, &r)| {
            let region = &regions[r];
            let tier = if location.region == Some(r) {
                0
            } else if location
                .country
                .as_ref()
                .is_some_and(|c| region.countries.contains(c))
            {
                1
            } else if location
                .continent
                .as_ref()
                .is_some_and(|c| region.continents.contains(c))
            {
                2
            } else {
                3
            };
            let distance = location.coordinates.map_or(0.0, |(lat, lon)| {
                great_circle_km(lat, lon, region.latitude, region.longitude)
            });
            (tier, distance, order, r)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    keyed.into_iter().map(|k| k.3 as u16).collect()
}

/// Haversine distance on a spherical Earth; plenty for choosing a region.
pub fn great_circle_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str, lat: f64, lon: f64, countries: &[&str]) -> Region {
        Region {
            name: name.into(),
            latitude: lat,
            longitude: lon,
            countries: countries.iter().map(|c| c.to_string()).collect(),
            continents: Vec::new(),
            endpoints: Vec::new(),
        }
    }

    #[test]
    fn distance_then_preferences() {
        let regions = [
            region("fra", 50.1, 8.7, &[]),
            region("nyc", 40.7, -74.0, &["GB"]),
        ];
        let paris = Location {
            coordinates: Some((48.9, 2.35)),
            ..Location::default()
        };
        assert_eq!(rank(&paris, &[0, 1], &regions), vec![0, 1]);
        let london = Location {
            coordinates: Some((51.5, -0.1)),
            country: Some("GB".into()),
            ..Location::default()
        };
        assert_eq!(rank(&london, &[0, 1], &regions), vec![1, 0]);
        let d = great_circle_km(48.9, 2.35, 50.1, 8.7);
        assert!((440.0..500.0).contains(&d), "{d}");
    }
}
