//! Waypost edge node: a caching HTTP/1.1 + HTTP/2 reverse proxy, one or more
//! per region. See ARCHITECTURE.md for the request pipeline and which module
//! holds each phase.

pub mod config;
pub mod listen;
pub mod plugin_harness;
pub mod server;

mod admin;
mod body;
mod cache;
mod feed;
mod metrics;
mod plugin;
mod proxy;
mod upstream;

pub use config::Config;
pub use server::{RunningServer, Server, StartError};
