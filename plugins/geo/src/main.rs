//! `geo`: country redirects and geo headers.
//!
//! Looks up the client's location (`waypost:edge/geo`). If the site's
//! plugin config has `redirect.<COUNTRY>` (e.g. `redirect.DE =
//! "https://example.de/"`) for the client's country, answers `302` to that
//! URL. Otherwise forwards the request to `next` with `x-geo-country` and
//! `x-geo-continent` request headers and adds the same headers to the
//! response. A header is left out when the database does not know the
//! value; client-sent `x-geo-*` headers are always removed first.

use geo::{CONTINENT_HEADER, COUNTRY_HEADER, header_code, redirect_key};
use waypost_sdk::{Body, HeaderValue, Request, Response, Result, StatusCode, config, next};

#[waypost_sdk::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>> {
    let location = waypost_sdk::geo::client_location();
    let country = header_code(location.country.as_deref());
    let continent = header_code(location.continent.as_deref());

    if let Some(target) = country
        .as_deref()
        .and_then(|c| config::get(&redirect_key(c)))
    {
        return Ok(Response::builder()
            .status(StatusCode::FOUND)
            .header("location", target)
            .header("cache-control", "private, no-store")
            .body(Body::empty())?);
    }

    let geo_headers: Vec<(&str, HeaderValue)> =
        [(COUNTRY_HEADER, country), (CONTINENT_HEADER, continent)]
            .into_iter()
            .filter_map(|(name, value)| Some((name, HeaderValue::from_str(&value?).ok()?)))
            .collect();

    let headers = request.headers_mut();
    headers.remove(COUNTRY_HEADER);
    headers.remove(CONTINENT_HEADER);
    for (name, value) in &geo_headers {
        headers.insert(*name, value.clone());
    }
    let mut response = next::forward(request).await?;
    for (name, value) in geo_headers {
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}
