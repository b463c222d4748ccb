//! The origin's assets, replicated to every region and served at their
//! CDN URLs (`/assets/<path>`): read them, and write new ones (a
//! thumbnail, a rendered page). A plugin may use only the path prefixes
//! its entry lists in `assets`; the origin's credential stays in the edge.
//!
//! ```no_run
//! use waypost_sdk::assets;
//!
//! # fn f() -> Result<(), waypost_sdk::assets::Error> {
//! assets::put("reports/today.txt", b"all good".to_vec(), "text/plain")?;
//! let report = assets::get("reports/today.txt")?.expect("just written");
//! assert_eq!(report.body, b"all good");
//! # Ok(()) }
//! ```

use std::fmt;

use crate::bindings::waypost::edge::assets as wit;

pub use wit::Asset;

/// A failed asset call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The origin could not be reached or failed; retrying may help.
    Unavailable(String),
    /// The path or body is not acceptable, or not granted.
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(m) => write!(f, "assets unavailable: {m}"),
            Error::Invalid(m) => write!(f, "assets invalid: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::Error> for Error {
    fn from(err: wit::Error) -> Self {
        match err {
            wit::Error::Unavailable(m) => Error::Unavailable(m),
            wit::Error::Invalid(m) => Error::Invalid(m),
        }
    }
}

/// The asset at `path` (e.g. `photos/cat.jpg`), `None` if there is none.
pub fn get(path: &str) -> Result<Option<Asset>, Error> {
    Ok(wit::get(path)?)
}

/// Stores `body` at `path`, returning once a majority of regions holds it.
pub fn put(path: &str, body: Vec<u8>, content_type: &str) -> Result<(), Error> {
    Ok(wit::put(path, &body, content_type)?)
}
