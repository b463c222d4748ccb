//! DNS over TCP (RFC 7766) with the limits an open resolver-facing server
//! needs, which hickory-server's TCP loop does not have: a cap on open
//! connections (past it new ones wait in the kernel's backlog) and per
//! client address (one more is closed at once), an idle timeout between
//! queries, an I/O timeout for one query's bytes and its reply (a client
//! trickling a query is cut), a lifetime no query pattern extends, and a
//! pause after accept() fails for want of file descriptors instead of
//! retrying in a busy loop. Queries on a connection are answered in order
//! by the general path, as hickory's loop does. Reads are buffered and
//! replies written together while more pipelined queries are already in
//! the buffer (one flush per burst, not two writes per reply).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::config::TcpLimits;
use crate::fast::general_answer;
use crate::handler::Handler;
use crate::metrics::{Metrics, ReasonLabels};

/// The first pause after a failed accept(); doubled up to the next one
/// while failures go on.
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);
/// Read and write buffer per connection (a reply is at most 64 KiB and
/// goes through in parts beyond this).
const IO_BUFFER: usize = 8 * 1024;

/// Serves DNS on `listener` until the task is dropped (which drops every
/// connection with it).
pub async fn serve(
    listener: TcpListener,
    limits: TcpLimits,
    handler: Arc<Handler>,
    metrics: Arc<Metrics>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Clients::default();
    let mut connections = JoinSet::new();
    let mut pause = ACCEPT_PAUSE;
    loop {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, src) = match listener.accept().await {
            Ok(accepted) => {
                pause = ACCEPT_PAUSE;
                accepted
            }
            // The connection died before we took it; nothing is wrong here.
            Err(e) if is_connection_error(&e) => continue,
            Err(error) => {
                metrics.accept_errors.inc();
                if pause == ACCEPT_PAUSE {
                    tracing::warn!(
                        %error,
                        addr = ?listener.local_addr().ok(),
                        "TCP accept failed (out of file descriptors? raise LimitNOFILE or lower \
                         listen.tcp_max_connections); pausing accepts while it lasts"
                    );
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let Some(client) = clients.take(src.ip(), limits.max_per_client) else {
            closed(&metrics, "per_client");
            continue;
        };
        connections.spawn(connection(
            stream,
            src,
            limits.clone(),
            handler.clone(),
            metrics.clone(),
            (permit, client),
        ));
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

fn closed(metrics: &Metrics, reason: &'static str) {
    metrics
        .tcp_closed
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// Why a connection ended.
enum End {
    /// The client closed it, or sent something we do not answer.
    Client,
    Limit(&'static str),
}

async fn connection(
    mut stream: TcpStream,
    src: SocketAddr,
    limits: TcpLimits,
    handler: Arc<Handler>,
    metrics: Arc<Metrics>,
    _held: (OwnedSemaphorePermit, ClientSlot),
) {
    metrics.tcp_connections.inc();
    let _ = stream.set_nodelay(true);
    if let End::Limit(reason) = exchange(&mut stream, src, &limits, &handler).await {
        closed(&metrics, reason);
    }
    metrics.tcp_connections.dec();
}

async fn exchange(
    stream: &mut TcpStream,
    src: SocketAddr,
    limits: &TcpLimits,
    handler: &Handler,
) -> End {
    let end = Instant::now() + limits.max_lifetime;
    let (reader, writer) = stream.split();
    let mut reader = BufReader::with_capacity(IO_BUFFER, reader);
    let mut writer = BufWriter::with_capacity(IO_BUFFER, writer);
    let mut message = Vec::new();
    let ended = loop {
        // Replies wait while another whole pipelined query is already
        // buffered (one write for the burst); before waiting for the
        // client, even for the rest of a query, they go.
        if !holds_whole_query(reader.buffer()) && !writer.buffer().is_empty() {
            match timeout_at(Instant::now() + limits.io_timeout, writer.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break End::Client,
                Err(_) => break End::Limit("io"),
            }
        }
        let idle = (Instant::now() + limits.idle_timeout).min(end);
        let first = match timeout_at(idle, reader.read_u8()).await {
            Ok(Ok(byte)) => byte,
            Ok(Err(_)) => break End::Client,
            Err(_) if idle == end => break End::Limit("lifetime"),
            Err(_) => break End::Limit("idle"),
        };
        let io = Instant::now() + limits.io_timeout;
        let read = async {
            let len = u16::from_be_bytes([first, reader.read_u8().await?]);
            message.resize(usize::from(len), 0);
            reader.read_exact(&mut message).await
        };
        match timeout_at(io, read).await {
            Ok(Ok(_)) if !message.is_empty() => {}
            Ok(_) => break End::Client,
            Err(_) => break End::Limit("io"),
        }
        // Messages too short for a header, and responses, get no reply
        // (as on hickory's loop); the connection stays open.
        let Some(reply) = general_answer(handler, &message, src, Protocol::Tcp) else {
            continue;
        };
        let len = u16::try_from(reply.len()).expect("TCP replies are encoded within 65,535 bytes");
        let write = async {
            writer.write_all(&len.to_be_bytes()).await?;
            writer.write_all(&reply).await
        };
        match timeout_at(Instant::now() + limits.io_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break End::Client,
            Err(_) => break End::Limit("io"),
        }
        if Instant::now() >= end {
            break End::Limit("lifetime");
        }
    };
    // Replies to queries answered before the connection ended still go
    // (a malformed query after good ones must not swallow their answers).
    let _ = timeout_at(Instant::now() + limits.io_timeout, writer.flush()).await;
    ended
}

/// Whether `buffered` starts with a complete length-prefixed message.
fn holds_whole_query(buffered: &[u8]) -> bool {
    match buffered {
        [high, low, rest @ ..] => rest.len() >= usize::from(u16::from_be_bytes([*high, *low])),
        _ => false,
    }
}

/// Open connections per client address; an address leaves the map with
/// its last connection, so the map holds at most `max_connections` keys.
#[derive(Default, Clone)]
struct Clients(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Clients {
    fn take(&self, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

/// One connection's place in [`Clients`], given back on drop.
struct ClientSlot {
    clients: Clients,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
