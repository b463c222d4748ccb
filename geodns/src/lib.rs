//! Waypost GeoDNS: an authoritative server for the platform's zones that
//! answers each geo name with the nearest healthy region for the client.
//!
//! `config` turns the TOML file into validated types; `zone` decides which
//! records answer a question; `geo` compiles the MaxMind database and CIDR
//! overrides into merged prefixes (the ECS scope comes from them); `health`
//! checks endpoints; `answer` picks the endpoints for one client; `handler`
//! is the wire side on hickory-server; `fast` answers the common UDP query
//! from prepared wire-format answers on worker threads (and hands the rest
//! to `handler`), after `rate_limit` allows the reply; `tcp` serves TCP
//! with connection limits; `server` binds and runs it all and `reload` swaps
//! configurations without a restart.

mod answer;
pub mod config;
mod error;
mod fast;
pub mod geo;
mod handler;
mod health;
mod metrics;
mod metrics_http;
mod rate_limit;
mod reload;
mod server;
mod state;
mod tcp;
mod wire;
pub mod zone;

pub use config::Config;
pub use error::Error;
pub use server::{RunningServer, Server};
