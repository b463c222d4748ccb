//! Checking a blob's bytes against its content address while they stream
//! out.
//!
//! A local copy can rot (a bad disk, an operator's stray edit) without its
//! size changing, and the only proof of the bytes is their SHA-256. Hashing
//! as the bytes go out costs one pass over data we are copying anyway, where
//! hashing before sending would mean reading every blob twice.
//!
//! The verdict only exists after the last byte, and a client that has all
//! `Content-Length` bytes treats the response as complete. So the newest
//! chunk is always held back: it is released only once the whole blob has
//! hashed to its address. On a mismatch the stream ends with an error
//! instead, the server aborts the response, and the client sees a short,
//! failed transfer — never a clean 200 with wrong bytes.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};

use crate::response::BoxError;

/// The bytes did not hash to the address they were stored under.
#[derive(Debug, thiserror::Error)]
#[error("blob {expected} hashed to {actual} while it was being sent; the transfer was aborted")]
pub struct HashMismatch {
    pub expected: String,
    pub actual: String,
}

/// What runs once when the bytes turn out wrong.
type OnMismatch = Box<dyn FnOnce(&HashMismatch) + Send>;

/// A stream of a whole blob that fails at the end unless its bytes hash to
/// `expected`; `on_mismatch` runs once when they do not.
pub struct Verified<S> {
    inner: S,
    hasher: Sha256,
    expected: String,
    held: Option<Bytes>,
    on_mismatch: Option<OnMismatch>,
    done: bool,
}

impl<S> Verified<S> {
    pub fn new(
        inner: S,
        expected: impl Into<String>,
        on_mismatch: impl FnOnce(&HashMismatch) + Send + 'static,
    ) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            expected: expected.into(),
            held: None,
            on_mismatch: Some(Box::new(on_mismatch)),
            done: false,
        }
    }
}

impl<S, E> Stream for Verified<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    this.hasher.update(&chunk);
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                None => {
                    this.done = true;
                    let actual = hex::encode(std::mem::take(&mut this.hasher).finalize());
                    if actual == this.expected {
                        return Poll::Ready(this.held.take().map(Ok));
                    }
                    let mismatch = HashMismatch {
                        expected: this.expected.clone(),
                        actual,
                    };
                    if let Some(report) = this.on_mismatch.take() {
                        report(&mismatch);
                    }
                    return Poll::Ready(Some(Err(mismatch.into())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;

    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, BoxError>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn run(parts: &[&'static [u8]], expected: &str) -> (Vec<Result<Bytes, String>>, usize) {
        let reports = Arc::new(AtomicUsize::new(0));
        let counted = reports.clone();
        let out = Verified::new(chunks(parts), expected, move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
        .await;
        (out, reports.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn intact_bytes_pass_through_whole() {
        let sha = hex::encode(Sha256::digest(b"hello world"));
        let (out, reports) = run(&[b"hello", b"", b" world"], &sha).await;
        let bytes: Vec<u8> = out.into_iter().flat_map(|r| r.unwrap()).collect();
        assert_eq!(bytes, b"hello world");
        assert_eq!(reports, 0);
    }

    #[tokio::test]
    async fn bad_bytes_withhold_the_last_chunk_and_fail() {
        let sha = hex::encode(Sha256::digest(b"hello world"));
        let (out, reports) = run(&[b"hello", b" wOrld"], &sha).await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].as_deref().unwrap(), b"hello");
        assert!(out[1].as_ref().unwrap_err().contains("aborted"), "{out:?}");
        assert_eq!(reports, 1);
    }

    #[tokio::test]
    async fn a_single_bad_chunk_sends_nothing() {
        let (out, reports) = run(&[b"x"], &"0".repeat(64)).await;
        assert_eq!(out.len(), 1);
        assert!(out[0].is_err());
        assert_eq!(reports, 1);
    }
}
