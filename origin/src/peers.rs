//! Moving blobs between regions.
//!
//! Metadata replicates through Raft; blobs do not. An upload's blob is
//! pushed to a majority of voting regions before its metadata commits
//! ([`push`]), and a region that still lacks a blob (it was down, or was
//! not needed for the majority) pulls it from a peer on first read and
//! keeps it. Blobs are content-addressed, so the fetched bytes are hashed
//! on the way in and refused unless they hash to the address asked for; a
//! corrupt copy on one peer makes us try the next.

pub mod http;
pub mod push;

use std::time::Duration;

use futures::TryStreamExt;

use crate::store::Blobs;

/// Why no peer supplied a blob.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no other region has blob {0}")]
    Missing(String),
    #[error("storing the fetched blob failed: {0}")]
    Store(#[from] crate::store::BlobWriteError),
}

/// What one fetch did, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    Ok,
    /// Some peer sent bytes that did not match the address (then another
    /// peer supplied it, or none did).
    HadCorrupt,
}

/// An HTTP client for peer regions.
#[derive(Debug, Clone)]
pub struct PeerClient {
    http: http::PeerHttp,
    /// For pushes: reqwest's read timeout runs from the start of a request
    /// until the response headers, which a peer sends only after storing
    /// the whole body, so pushes get a deadline scaled to the blob instead.
    push_http: http::PeerHttp,
}

impl PeerClient {
    pub fn new(auth: &http::PeerAuth) -> Self {
        let http = auth.client(
            reqwest::Client::builder()
                .pool_idle_timeout(crate::listen::CLIENT_POOL_IDLE)
                .connect_timeout(Duration::from_millis(500))
                .read_timeout(Duration::from_secs(10)),
        );
        let push_http = auth.client(
            reqwest::Client::builder()
                .pool_idle_timeout(crate::listen::CLIENT_POOL_IDLE)
                .connect_timeout(Duration::from_millis(500)),
        );
        Self { http, push_http }
    }

    /// Pulls blob `sha256` from the first of `addrs` that has an intact
    /// copy and stores it in `blobs`.
    pub async fn fetch_blob(
        &self,
        blobs: &Blobs,
        sha256: &str,
        addrs: &[String],
    ) -> Result<Fetched, FetchError> {
        let mut saw_corrupt = false;
        for addr in addrs {
            let path = format!("/internal/blobs/{sha256}");
            let response = match self.http.get(addr, &path).send().await {
                Ok(r) if r.status().is_success() => r,
                Ok(_) | Err(_) => continue,
            };
            let stream = response.bytes_stream().map_err(std::io::Error::other);
            match blobs.put_stream(stream, |_| {}).await {
                Ok(stored) if stored.sha256 == sha256 => {
                    return Ok(if saw_corrupt {
                        Fetched::HadCorrupt
                    } else {
                        Fetched::Ok
                    });
                }
                Ok(stored) => {
                    tracing::warn!(peer = %addr, expected = sha256, got = %stored.sha256, "peer sent a corrupt blob");
                    saw_corrupt = true;
                }
                Err(crate::store::BlobWriteError::Body(e)) => {
                    tracing::warn!(peer = %addr, error = %e, "blob transfer from peer broke off");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(FetchError::Missing(sha256.to_string()))
    }
}
