//! TLS on a listener: the handshake (bounded by the header-read timeout,
//! so a silent client cannot hold a connection slot) and, when the client
//! presented a peer certificate, its node id in every request's
//! extensions.

use std::io;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::peer_tls::{PeerIdentity, node_id_of};

/// Completes the server handshake within `timeout`; the peer identity is
/// `Some` when the client's certificate names a node.
pub(super) async fn accept(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
) -> io::Result<(TlsStream<TcpStream>, Option<PeerIdentity>)> {
    let tls = tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| node_id_of(leaf).ok())
        .map(PeerIdentity);
    Ok((tls, identity))
}

/// Adds the connection's [`PeerIdentity`] to each request.
#[derive(Debug, Clone)]
pub(super) struct WithIdentity<S> {
    pub(super) inner: S,
    pub(super) identity: Option<PeerIdentity>,
}

impl<S> hyper::service::Service<Request<Incoming>> for WithIdentity<S>
where
    S: hyper::service::Service<Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if let Some(identity) = self.identity {
            req.extensions_mut().insert(identity);
        }
        self.inner.call(req)
    }
}
