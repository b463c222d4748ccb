//! Key-value data replicated across regions by the origin.
//!
//! Keys live in namespaces; values are bytes. Reads may be served from a
//! short-lived cache at the edge, so a value written in one region shows
//! up elsewhere within moments, not instantly. There are no transactions:
//! a read-modify-write can lose a concurrent update. A plugin may use only
//! the namespaces its `[[plugins]]` entry lists in `kv_namespaces`; others
//! fail with [`Error::Invalid`] saying so.
//!
//! ```no_run
//! use waypost_sdk::kv::Store;
//!
//! # fn f() -> Result<(), waypost_sdk::kv::Error> {
//! let sessions = Store::open("sessions");
//! sessions.put("abc", b"user=7")?;
//! assert_eq!(sessions.get("abc")?.as_deref(), Some(&b"user=7"[..]));
//! # Ok(()) }
//! ```

use std::fmt;

use crate::bindings::waypost::edge::kv as wit;

/// A failed KV call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The origin could not be reached or failed; retrying may help.
    Unavailable(String),
    /// The namespace or key is not acceptable.
    Invalid(String),
    /// The value is not what the typed getter expected (UTF-8, JSON).
    Decode(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(m) => write!(f, "kv unavailable: {m}"),
            Error::Invalid(m) => write!(f, "kv invalid: {m}"),
            Error::Decode(m) => write!(f, "kv value: {m}"),
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

/// One namespace of the KV store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    namespace: String,
}

impl Store {
    /// The namespace `namespace`. Opening does not call the edge; a bad
    /// name shows up as [`Error::Invalid`] on first use.
    pub fn open(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    /// The namespace's name.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The value of `key`, `None` if absent.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(wit::get(&self.namespace, key)?)
    }

    /// The value of `key` as UTF-8 text.
    pub fn get_string(&self, key: &str) -> Result<Option<String>, Error> {
        self.get(key)?
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|_| Error::Decode(format!("`{key}` is not UTF-8")))
            })
            .transpose()
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        Ok(wit::put(&self.namespace, key, value.as_ref())?)
    }

    /// Removes `key` (no error if absent).
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        Ok(wit::delete(&self.namespace, key)?)
    }

    /// The keys starting with `prefix`, in order.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        Ok(wit::list(&self.namespace, prefix)?)
    }

    /// The value of `key` decoded from JSON.
    #[cfg(feature = "json")]
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get(key)?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|err| {
                    Error::Decode(format!("`{key}` is not the expected JSON: {err}"))
                })
            })
            .transpose()
    }

    /// Sets `key` to `value` encoded as JSON.
    #[cfg(feature = "json")]
    pub fn put_json<T: serde::Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value)
            .map_err(|err| Error::Decode(format!("`{key}`: cannot encode as JSON: {err}")))?;
        self.put(key, bytes)
    }
}
