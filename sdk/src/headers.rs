//! What the edge tells a plugin about the request, in request headers.
//!
//! The edge sets these on every request a plugin receives and passes them
//! on down the chain. It first removes every `x-waypost-*` header the
//! client sent, so a plugin may trust them.

use std::net::IpAddr;

use crate::{Body, Request};

/// `x-waypost-client-ip`: the address of the client connected to the edge
/// (not a proxy-supplied `X-Forwarded-For`); `x-waypost-request-id`: the
/// edge's id for this request (its access log and plugin log lines carry
/// the same id); `x-waypost-geo-country`: the client's ISO 3166-1 alpha-2
/// country code, when the edge's geo database knows it (the same value as
/// [`crate::geo::client_location`]'s `country`, without a call).
pub use waypost_api::headers::{CLIENT_IP, GEO_COUNTRY, REQUEST_ID};

/// The client's address from [`CLIENT_IP`], if present and well formed.
pub fn client_ip(request: &Request<Body>) -> Option<IpAddr> {
    request
        .headers()
        .get(CLIENT_IP)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The request id from [`REQUEST_ID`], if present.
pub fn request_id(request: &Request<Body>) -> Option<&str> {
    request.headers().get(REQUEST_ID)?.to_str().ok()
}

/// The client's country code from [`GEO_COUNTRY`], if the edge knows it.
pub fn country(request: &Request<Body>) -> Option<&str> {
    request
        .headers()
        .get(GEO_COUNTRY)?
        .to_str()
        .ok()
        .filter(|c| !c.is_empty())
}
