//! The UDP fast path: worker threads that answer the common query from
//! answers prepared in wire format, and hand every other datagram to the
//! general path (`handler`, the code TCP and the tests of every DNS rule
//! go through), so behaviour lives in one place and the fast path only
//! repeats its bytes.
//!
//! # The rule
//!
//! A datagram is answered by the fast path only when all of this holds;
//! anything else goes to the general path unchanged:
//!
//! 1. Header: QR=0, OPCODE=QUERY, AA=0, TC=0, RA=0, Z=0, RCODE=0 (RD, AD
//!    and CD may be anything); QDCOUNT=1, ANCOUNT=0, NSCOUNT=0, ARCOUNT 0
//!    or 1.
//! 2. Question: an uncompressed name of at most 255 bytes, class IN, and a
//!    (name, type) the prepared table holds: A and AAAA of every name in
//!    our zones, plus each type a static name has. Not: ANY, AXFR/IXFR,
//!    names that do not exist (NXDOMAIN), empty non-terminals, CNAMEs
//!    leading into a geo name, names outside our zones.
//! 3. Additional: nothing, or exactly one OPT record that ends the
//!    datagram, with root owner, EDNS version 0, extended RCODE 0, no flag
//!    but DO, and options among: one valid Client Subnet (family 1 or 2,
//!    source prefix within the family, scope 0, exactly as many ADDRESS
//!    octets as the source prefix needs, no bits set beyond it) and
//!    COOKIE (ignored, as the general path ignores it).
//! 4. The answer is deterministic: a geo name whose first serving region
//!    has more healthy endpoints of the family than `max_answers` is a
//!    weighted random draw and goes to the general path; so does a reply
//!    whose names would be compressed differently for a mixed-case (0x20)
//!    question (e.g. the SOA of a NODATA answer), and one that would not
//!    fit the client's payload size (the general path truncates).
//!
//! The reply is then the general path's reply byte for byte: the prepared
//! sections are encoded by hickory from `Zones::resolve` and `geo_answer`,
//! and the ID, RD/CD, the question as the client spelled it and the OPT
//! (payload size, ECS with our scope) are patched in. `tests/fast_path.rs`
//! sends every compliance case through a server with workers and one
//! without and compares the replies byte for byte.
//!
//! Answers are rebuilt when the snapshot (config, database) or the health
//! generation changes; a worker checks once per batch, so a health change
//! reaches answers within one batch. Counters are per worker and folded
//! into `/metrics` on scrape; `query_seconds` times the general path only.

mod counters;
mod general;
mod query;
mod slip;
mod table;
mod worker;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};

pub use counters::WorkerCounters;
pub use general::answer as general_answer;
use table::Table;

use crate::Error;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::state::Snapshot;

/// What every worker shares: the serving snapshot and the table built
/// from it.
pub struct Shared {
    state: Arc<ArcSwap<Snapshot>>,
    metrics: Arc<Metrics>,
    table: ArcSwap<Table>,
    /// Response rate limiting, checked before a datagram is answered.
    rate_limit: Option<Arc<RateLimiter>>,
    /// One worker rebuilds a stale table while the others wait for it.
    rebuild: Mutex<()>,
}

impl Shared {
    fn is_fresh(&self, table: &Table) -> bool {
        let snapshot = self.state.load();
        std::ptr::eq(Arc::as_ptr(&table.snapshot), Arc::as_ptr(&snapshot))
            && table.generation == snapshot.health.generation()
    }

    /// The table for the current snapshot and health, rebuilt if stale.
    fn table(&self) -> Arc<Table> {
        let table = self.table.load_full();
        if self.is_fresh(&table) {
            return table;
        }
        let _one = self.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        let table = self.table.load_full();
        if self.is_fresh(&table) {
            return table;
        }
        let table = Arc::new(Table::build(self.state.load_full()));
        self.table.store(table.clone());
        table
    }
}

/// Running workers; [`stop`](Self::stop) ends them.
pub struct FastPath {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// `threads` UDP sockets on `addr` with SO_REUSEPORT (port 0: the first
/// one's port for all); blocking with a receive timeout, so a worker
/// waits inside its receive call and still sees the stop flag (sends pass
/// MSG_DONTWAIT).
pub fn bind(addr: SocketAddr, threads: usize) -> Result<Vec<UdpSocket>, Error> {
    let mut sockets = Vec::with_capacity(threads);
    let mut at = addr;
    for _ in 0..threads {
        let err = |source| Error::Bind { addr, source };
        let socket =
            Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
        socket.set_reuse_port(true).map_err(err)?;
        if at.is_ipv6() {
            socket.set_only_v6(true).map_err(err)?;
        }
        socket
            .set_read_timeout(Some(worker::IDLE_WAIT))
            .map_err(err)?;
        socket.bind(&at.into()).map_err(err)?;
        let socket = UdpSocket::from(socket);
        at = socket.local_addr().map_err(err)?;
        sockets.push(socket);
    }
    Ok(sockets)
}

impl FastPath {
    /// Starts one worker thread per socket.
    pub fn start(
        sockets: Vec<UdpSocket>,
        state: Arc<ArcSwap<Snapshot>>,
        metrics: Arc<Metrics>,
        rate_limit: Option<Arc<RateLimiter>>,
    ) -> Result<Self, Error> {
        let table = Table::build(state.load_full());
        let shared = Arc::new(Shared {
            state,
            metrics: metrics.clone(),
            table: ArcSwap::from_pointee(table),
            rate_limit,
            rebuild: Mutex::new(()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, socket) in sockets.into_iter().enumerate() {
            let counters = Arc::new(WorkerCounters::new(&shared.state.load().config));
            metrics
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(counters.clone());
            let worker = worker::Worker {
                socket,
                shared: shared.clone(),
                counters,
                stop: stop.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("geodns-udp-{i}"))
                .spawn(move || worker.run())
                .map_err(Error::Thread)?;
            threads.push(thread);
        }
        Ok(Self { stop, threads })
    }

    /// Tells the workers to stop and waits for them (each notices within
    /// its idle wait).
    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
