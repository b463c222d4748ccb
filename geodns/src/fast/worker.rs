//! One UDP worker: its own SO_REUSEPORT socket (the kernel spreads
//! clients over the workers), batches of up to `BATCH` datagrams in and
//! out per system call (`recvmmsg`/`sendmmsg` through nix), and answers
//! from the prepared table; everything else goes to the general path on
//! the same thread. Buffers are allocated once per worker.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, sendto};

use super::counters::WorkerCounters;
use super::query::{KEY_LEN, parse};
use super::table::{Table, write_reply};
use super::{Shared, general, slip};
use crate::handler::Handler;
use crate::rate_limit::Verdict;
use hickory_server::net::xfer::Protocol;

/// Datagrams per system call: gdnsd's width. A wider batch measured no
/// faster here (the kernel's per-datagram work dominates) and holds the
/// first query of a batch back while the others are answered.
const BATCH: usize = 16;
/// Receive buffer per datagram (hickory's UDP buffer is as large).
const RECV_BUF: usize = 4096;
/// A fast reply never exceeds the largest payload we send.
const SEND_BUF: usize = 1232;
/// How long an idle worker waits in its receive call (the socket's
/// receive timeout) before it looks at the stop flag.
pub const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How long a worker waits for room in a full send buffer before it drops
/// the rest of its batch (UDP may lose replies; the client retries).
const SEND_WAIT: Duration = Duration::from_millis(10);

pub struct Worker {
    pub socket: UdpSocket,
    pub shared: Arc<Shared>,
    pub counters: Arc<WorkerCounters>,
    pub stop: Arc<AtomicBool>,
}

impl Worker {
    pub fn run(self) {
        let mut recv_bufs: Box<[[u8; RECV_BUF]; BATCH]> = vec![[0u8; RECV_BUF]; BATCH]
            .into_boxed_slice()
            .try_into()
            .expect("BATCH buffers");
        let mut send_bufs: Box<[[u8; SEND_BUF]; BATCH]> = vec![[0u8; SEND_BUF]; BATCH]
            .into_boxed_slice()
            .try_into()
            .expect("BATCH buffers");
        let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut received = [(0usize, None::<SockaddrStorage>); BATCH];
        let mut replies = [(0usize, None::<SockaddrStorage>); BATCH];
        let mut key = [0u8; KEY_LEN];
        let fd = self.socket.as_raw_fd();
        let handler = Handler {
            state: self.shared.state.clone(),
            metrics: self.shared.metrics.clone(),
        };
        let mut table = self.shared.table();
        let mut hits = self
            .counters
            .switch_regions(&table.snapshot.config, &self.shared.metrics);
        let mut log = QueryLog::default();
        let mut fail_opens = 0u64;

        while !self.stop.load(Ordering::Relaxed) {
            let count = {
                let mut iovs = recv_bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
                // Blocks until one datagram is there (or the socket's
                // receive timeout, IDLE_WAIT, passes), then takes what else
                // has arrived: one system call per batch, as gdnsd does.
                match recvmmsg(
                    fd,
                    &mut recv_headers,
                    iovs.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    Ok(results) => {
                        let mut n = 0;
                        for (slot, message) in received.iter_mut().zip(results) {
                            *slot = (message.bytes, message.address);
                            n += 1;
                        }
                        n
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => 0,
                    Err(error) => {
                        // Not a timeout (e.g. ENOMEM): back off rather than
                        // spin on the error.
                        tracing::debug!(%error, "udp receive failed");
                        std::thread::sleep(IDLE_WAIT);
                        0
                    }
                }
            };
            if count == 0 {
                continue;
            }
            if !self.shared.is_fresh(&table) {
                table = self.shared.table();
                hits = self
                    .counters
                    .switch_regions(&table.snapshot.config, &self.shared.metrics);
            }
            let mut out = 0;
            for (i, &(len, addr)) in received[..count].iter().enumerate() {
                let Some(src) = addr.as_ref().and_then(socket_addr) else {
                    continue;
                };
                let datagram = &recv_bufs[i][..len];
                let verdict = self
                    .shared
                    .rate_limit
                    .as_ref()
                    .map_or(Verdict::Answer, |limit| limit.check(src.ip()));
                if verdict != Verdict::Answer {
                    let truncated = (verdict == Verdict::Slip)
                        .then(|| slip::truncated(datagram, &mut send_bufs[out]))
                        .flatten();
                    self.counters.limited(truncated.is_some());
                    if let Some(n) = truncated {
                        replies[out] = (n, addr);
                        out += 1;
                    }
                    continue;
                }
                let fast = parse(datagram, &mut key).and_then(|q| {
                    let answer = table.answer(&q, &key, src.ip())?;
                    let n = write_reply(&q, datagram, answer, &mut send_bufs[out])?;
                    Some((q, answer, n))
                });
                match fast {
                    Some((q, answer, n)) => {
                        replies[out] = (n, addr);
                        out += 1;
                        let p = answer.prepared;
                        self.counters.query(p.counter);
                        if let Some(r) = p.region {
                            hits.hit(r);
                        }
                        if p.fail_open {
                            self.counters.fail_open();
                            if fail_opens.is_multiple_of(1000) {
                                tracing::warn!("no healthy region: answering with every endpoint");
                            }
                            fail_opens += 1;
                        }
                        log.maybe(
                            &table,
                            src,
                            &key[..q.name_len],
                            q.qtype,
                            answer.scope,
                            &send_bufs[out - 1][..n],
                        );
                    }
                    None => {
                        if let (Some(reply), Some(to)) = (
                            general::answer(&handler, datagram, src, Protocol::Udp),
                            addr,
                        ) {
                            // Never blocks the worker: a full send buffer
                            // drops the reply, as UDP may.
                            let _ = sendto(fd, &reply, &to, MsgFlags::MSG_DONTWAIT);
                        }
                    }
                }
            }
            self.send(fd, &mut send_headers, &send_bufs, &replies, out);
        }
    }

    fn send(
        &self,
        fd: i32,
        headers: &mut MultiHeaders<SockaddrStorage>,
        bufs: &[[u8; SEND_BUF]; BATCH],
        replies: &[(usize, Option<SockaddrStorage>); BATCH],
        count: usize,
    ) {
        let slices: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [IoSlice::new(&bufs[i][..replies[i].0])]);
        let addrs: [Option<SockaddrStorage>; BATCH] = std::array::from_fn(|i| replies[i].1);
        let mut sent = 0;
        let deadline = Instant::now() + SEND_WAIT;
        while sent < count {
            match sendmmsg(
                fd,
                headers,
                slices[sent..count].iter(),
                &addrs[sent..count],
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => sent += results.count().max(1),
                Err(Errno::EAGAIN | Errno::EINTR) if Instant::now() < deadline => {
                    let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(
                        &mut fds,
                        PollTimeout::try_from(SEND_WAIT).unwrap_or(PollTimeout::NONE),
                    );
                }
                Err(Errno::EAGAIN | Errno::EINTR) => return,
                // One bad destination (e.g. unreachable): skip it.
                Err(_) => sent += 1,
            }
        }
    }
}

fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        Some(SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
    } else {
        addr.as_sockaddr_in6()
            .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
    }
}

/// One line per `query_log_sample` fast answers when the query log is on.
#[derive(Default)]
struct QueryLog {
    seen: u64,
}

impl QueryLog {
    fn maybe(
        &mut self,
        table: &Table,
        src: SocketAddr,
        name: &[u8],
        qtype: u16,
        scope: u8,
        reply: &[u8],
    ) {
        let config = &table.snapshot.config;
        if !config.query_log {
            return;
        }
        self.seen += 1;
        if !(self.seen - 1).is_multiple_of(u64::from(config.query_log_sample)) {
            return;
        }
        let name = hickory_proto::rr::Name::from_labels(wire_labels(name))
            .map(|n| n.to_string())
            .unwrap_or_default();
        let rcode = reply.get(3).map_or(0, |b| b & 0x0f);
        let answers = u16::from_be_bytes([reply[6], reply[7]]);
        tracing::info!(
            target: "geodns::query",
            src = %src,
            name = %name,
            qtype = crate::handler::type_label(qtype.into()),
            rcode = crate::handler::rcode_label(hickory_proto::op::ResponseCode::from(0, rcode)),
            scope,
            answers,
            path = "fast",
        );
    }
}

fn wire_labels(name: &[u8]) -> Vec<Vec<u8>> {
    let mut labels = Vec::new();
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if len == 0 {
            break;
        }
        labels.push(name[pos + 1..pos + 1 + usize::from(len)].to_vec());
        pos += 1 + usize::from(len);
    }
    labels
}
