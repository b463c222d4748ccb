//! The body types that flow through the proxy: one boxed type for responses
//! (cached, streamed from a fill, forwarded from an origin, or generated) and
//! for requests forwarded to origins.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the edge sends or forwards.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// Wraps any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Most bytes of an origin's body read after the client side stopped
/// reading it (see [`FromOrigin`]).
const DRAIN_MAX_BYTES: u64 = 64 * 1024;
/// How long such a body is waited for.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// An origin's response body on its way to a client. Dropped with only a
/// little of it left to arrive (typically nothing but the end of the
/// stream: the client side stops reading once it has every byte the
/// length promised), it is read to its end in the background instead of
/// being abandoned.
///
/// Over HTTP/2 an abandoned body is reset (RST_STREAM CANCEL), and the
/// frames the origin had already sent for it then count against the h2
/// crate's limit of streams reset on the peer's account, 1,024 per
/// connection: a few thousand passed responses later the whole
/// connection to the origin is torn down with every request on it
/// (`bench/cache_hit.sh`'s `miss_tls` lost ~2% of requests so). Over
/// HTTP/1.1 the drain lets the connection be reused. A body with more
/// left, or of unknown length, is abandoned as before.
struct FromOrigin {
    inner: Option<hyper::body::Incoming>,
}

/// An origin's response body for a client ([`FromOrigin`]).
pub fn from_origin(body: hyper::body::Incoming) -> Body {
    boxed(FromOrigin { inner: Some(body) })
}

impl http_body::Body for FromOrigin {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.as_ref().map_or_else(
            || http_body::SizeHint::with_exact(0),
            http_body::Body::size_hint,
        )
    }
}

impl Drop for FromOrigin {
    fn drop(&mut self) {
        use http_body::Body as _;
        let Some(mut body) = self.inner.take() else {
            return;
        };
        let little_left = body
            .size_hint()
            .upper()
            .is_some_and(|left| left <= DRAIN_MAX_BYTES);
        if body.is_end_stream() || !little_left {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = tokio::time::timeout(DRAIN_TIME, async {
                while let Some(Ok(_)) = body.frame().await {}
            })
            .await;
        });
    }
}
