//! Origin pools: where misses go. Each pool balances over its origins
//! round-robin, skips origins that health checks or failed connections have
//! marked down, and retries idempotent requests on the next origin. A pool
//! with `regions` prefers its first region with a healthy origin and fails
//! over to the next region, coming back when the nearer one recovers.

mod capped;
mod health;
mod pool;
mod tls;

pub use pool::{FetchError, Pool};
