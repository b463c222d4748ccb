//! The wire contract between Waypost's processes: every type, name rule
//! and header that crosses a process boundary (origin ↔ edge, origin ↔
//! CLI, origin ↔ origin, edge ↔ plugin), defined once.
//!
//! The crate has no I/O and builds for `wasm32-wasip2`, so the plugin SDK
//! uses it too (without the `serde` feature: names and headers only).

pub mod asset_path;
#[cfg(feature = "serde")]
pub mod backup;
#[cfg(feature = "serde")]
pub mod cluster;
#[cfg(feature = "serde")]
pub mod feed;
pub mod headers;
#[cfg(feature = "serde")]
pub mod kv;
pub mod names;
#[cfg(feature = "serde")]
pub mod queues;
#[cfg(feature = "serde")]
pub mod writes;

pub use asset_path::{AssetPath, InvalidAssetPath};
pub use names::{InvalidName, KvKey, Namespace, PluginName, QueueName};
