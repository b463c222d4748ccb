//! The library's errors; only the binary turns them into `anyhow`.

use std::net::SocketAddr;

use service_base::config_file::ConfigError;

use crate::geo::DbError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing to reload: the configuration was not read from a file")]
    NoSource,
    #[error("cannot start a UDP worker thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("reload task failed: {0}")]
    Reload(String),
}
