//! Waypost's own header names, in one place. Every `x-waypost-*` field a
//! client sends is removed at the edge before routing (see the edge's
//! `proxy::forward`), so none of them can be forged from outside.

/// Prefix of every Waypost header.
pub const PREFIX: &str = "x-waypost-";

/// Set by the edge for plugins and the origin: the client's address.
pub const CLIENT_IP: &str = "x-waypost-client-ip";
/// Set by the edge: the id this request has in the edge's logs.
pub const REQUEST_ID: &str = "x-waypost-request-id";
/// Set by the edge from its GeoIP database: ISO 3166 country code.
pub const GEO_COUNTRY: &str = "x-waypost-geo-country";
/// On `GET /plugins/{name}`: the SHA-256 of the plugin bytes.
pub const PLUGIN_SHA256: &str = "x-waypost-plugin-sha256";
/// On write answers: the change-feed sequence number the write produced.
pub const SEQ: &str = "x-waypost-seq";
/// On peer blob pushes: the blob's size in bytes.
pub const BLOB_SIZE: &str = "x-waypost-blob-size";
/// On a request one origin forwarded to the leader, so it is not forwarded
/// again.
pub const FORWARDED: &str = "x-waypost-forwarded";
