//! Origin pools: where misses go. Each pool balances over its origins
//! round-robin, skips origins that health checks or failed connections have
//! marked down, and retries idempotent requests on the next origin.

mod health;
mod pool;

pub use pool::{FetchError, Pool};
