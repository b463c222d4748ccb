//! Waypost origin: the store edges pull assets from.
//!
//! Assets and plugins live in an `object_store` as content-addressed blobs;
//! their metadata, the KV namespaces and the change feed are replicated
//! across regions with Raft ([`raft`]). Served over HTTP/1.1 and h2c with
//! ETag/Last-Modified validation and byte ranges. Start it in-process with
//! [`Server::start`]; `main.rs` is a thin CLI around the same call.

pub mod blob_gc;
pub mod config;
pub mod credentials;
pub mod http_cond;
mod json_size;
pub mod listen;
pub mod metrics;
pub mod peer_tls;
pub mod peers;
pub mod public_tls;
pub mod raft;
mod reload;
mod response;
mod routes;
mod server;
pub mod store;

pub use config::{CacheRule, Config};
pub use server::{RunningServer, Server, StartError};
