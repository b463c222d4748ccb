//! What the edge tells a plugin about the request, in request headers.
//!
//! The edge sets these on every request a plugin receives, replacing any
//! value a client sent under the same names, and passes them on down the
//! chain.

use std::net::IpAddr;

use crate::{Body, Request};

/// `x-waypost-client-ip`: the address of the client connected to the edge
/// (not a proxy-supplied `X-Forwarded-For`).
pub const CLIENT_IP: &str = "x-waypost-client-ip";

/// `x-waypost-request-id`: the edge's id for this request; the edge's
/// access log and plugin log lines carry the same id.
pub const REQUEST_ID: &str = "x-waypost-request-id";

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
