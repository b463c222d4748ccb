//! Raft RPCs between regions over the origins' own HTTP API.
//!
//! Each RPC is a CBOR ([`super::wire`]) `POST
//! /internal/raft/{append,vote,snapshot}` to the peer's advertised
//! address, authorised by the peer certificate or the cluster token
//! ([`crate::peers::http`]). The peer answers with
//! the JSON of `Result<Response, RaftError>`, so a remote Raft error comes
//! back typed and a transport failure is `Unreachable`.
//!
//! openraft 0.9 caps an AppendEntries batch by entry count only, and a
//! batch must arrive within the append RPC's timeout (the heartbeat
//! interval) or it is resent whole, forever. KV values are up to 1 MiB, so
//! a count-capped batch can be far too big to cross a WAN in time (or at
//! all: followers refuse bodies over [`MAX_RPC_BYTES`]). Batches are
//! therefore also capped by bytes here: a batch over [`MAX_APPEND_BYTES`] is
//! refused before sending with `PayloadTooLarge` and a hint of how many
//! entries fit, which makes openraft resend a shorter one at once; a
//! follower's 413 is mapped the same way.
//!
//! A batch that still takes longer than one attempt to cross the link goes
//! as a transfer that outlives the attempt ([`transfer`]).

mod transfer;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{NodeId, TypeConfig};
use crate::peers::http::{ANSWER_MAX, PeerHttp, error_text, json_answer};

/// Largest Raft request body a region accepts: a batch of log entries or a
/// snapshot chunk.
pub const MAX_RPC_BYTES: usize = 64 * 1024 * 1024;

/// The encoded (CBOR) size an AppendEntries batch may reach before it is
/// split.
/// About one KV value at its largest: small enough to cross a WAN within
/// the append timeout, large enough that small entries still go hundreds
/// per request. A single entry larger than this is still sent, alone.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// Makes a client per peer; they share one connection pool.
#[derive(Debug, Clone)]
pub struct Network {
    http: PeerHttp,
}

impl Network {
    pub fn new(http: PeerHttp) -> Self {
        Self { http }
    }
}

/// The connection to one peer.
#[derive(Debug)]
pub struct Peer {
    link: Link,
    /// The large batch being sent, if any.
    transfer: Option<transfer::Transfer<AppendAnswer>>,
}

/// Where one peer is and how to reach it.
#[derive(Debug, Clone)]
struct Link {
    http: PeerHttp,
    target: NodeId,
    addr: String,
}

type AppendAnswer =
    Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>>;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            link: Link {
                http: self.http.clone(),
                target,
                addr: node.addr.clone(),
            },
            transfer: None,
        }
    }
}

impl Link {
    /// Sends one RPC; `too_large` says what to report when the peer refuses
    /// the body as too large (`None`: that is just a failed RPC).
    async fn call<Req, Resp, Err>(
        &self,
        rpc: &str,
        req: &Req,
        too_large: Option<PayloadTooLarge>,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, Err>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        self.send(rpc, encode(req).map_err(RPCError::Network)?, too_large)
            .await
    }

    /// Sends one RPC whose request is already encoded.
    async fn send<Resp, Err>(
        &self,
        rpc: &str,
        body: Vec<u8>,
        too_large: Option<PayloadTooLarge>,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, Err>>
    where
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let path = format!("/internal/raft/{rpc}");
        // No client-side timeout: openraft wraps every RPC in its own and
        // reports a `Timeout`, which it retries at once. Only a peer that
        // cannot be connected to is `Unreachable`, which makes openraft back
        // off from it; a slow answer (a follower's slow fsync) must not.
        let response = self
            .http
            .post(&self.addr, &path)
            .header(reqwest::header::CONTENT_TYPE, super::wire::CBOR)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        if let Some(node) = PeerHttp::node_of(&response)
            && !matches!(node, Ok(id) if id == self.target)
        {
            // Another region answers at this member's address (a stale
            // address after a move, or a misissued certificate): its
            // answer must not count as the target's.
            let found = node.map_or_else(|e| e.to_string(), |id| format!("node {id}"));
            let e = std::io::Error::other(format!(
                "the peer at {} presented the certificate of {found}, not node {}",
                self.addr, self.target
            ));
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        if response.status() == reqwest::StatusCode::PAYLOAD_TOO_LARGE
            && let Some(too_large) = too_large
        {
            return Err(RPCError::PayloadTooLarge(too_large));
        }
        if !response.status().is_success() {
            let status = response.status();
            let text = error_text(response).await;
            let e = std::io::Error::other(format!("peer answered {status}: {text}"));
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        let result: Result<Resp, Err> = json_answer(response, ANSWER_MAX)
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl Peer {
    /// Sends a batch over [`transfer::DETACH_BYTES`] as a transfer (or
    /// waits for the one already sending it), with a heartbeat beside it:
    /// while the transfer runs, openraft retries these entries instead of
    /// sending heartbeats, and the peer must not start an election for
    /// want of them.
    async fn append_large(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        body: Vec<u8>,
        halved: Option<PayloadTooLarge>,
    ) -> AppendAnswer {
        let key = transfer::Key::of(&rpc);
        let last = rpc.entries.last().map(|e| e.log_id);
        if !self.transfer.as_ref().is_some_and(|t| t.key() == &key) {
            let link = self.link.clone();
            self.transfer = Some(transfer::Transfer::start(key, last, async move {
                link.transfer(body, halved).await
            }));
        }
        let heartbeat = AppendEntriesRequest::<TypeConfig> {
            entries: Vec::new(),
            ..rpc
        };
        let heartbeat = self
            .link
            .call::<_, AppendEntriesResponse<NodeId>, RaftError<NodeId>>(
                "append", &heartbeat, None,
            );
        // Cancel-safe: when openraft gives up on this attempt, the transfer
        // goes on and the next attempt for these entries waits for it.
        let answer = tokio::select! {
            answer = self.transfer.as_mut().expect("just set").finish() => answer,
            // A newer leader answered: say so now, not after the transfer.
            Ok(AppendEntriesResponse::HigherVote(vote)) = heartbeat => {
                return Ok(AppendEntriesResponse::HigherVote(vote));
            }
        };
        let sent = self.transfer.take().expect("just awaited").last();
        let answer = answer.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match answer? {
            // The transfer may have carried fewer entries than this attempt
            // (openraft added some since): the peer holds up to its last.
            AppendEntriesResponse::Success if sent < last => {
                Ok(AppendEntriesResponse::PartialSuccess(sent))
            }
            other => Ok(other),
        }
    }
}

impl Link {
    /// Sends one large AppendEntries body within its size's deadline.
    async fn transfer(&self, body: Vec<u8>, halved: Option<PayloadTooLarge>) -> AppendAnswer {
        let deadline = transfer::deadline(body.len());
        let bytes = body.len();
        let sent = tokio::time::timeout(deadline, self.send("append", body, halved)).await;
        let Ok(answer) = sent else {
            let e = std::io::Error::other(format!(
                "sending {bytes} bytes of log entries to node {} at {} took over {deadline:?} \
                 (a link slower than the {} KiB/s a batch is given time for); sending them again",
                self.target,
                self.addr,
                transfer::SLOWEST_RATE / 1024
            ));
            tracing::warn!(error = %e, "raft transfer");
            return Err(RPCError::Network(NetworkError::new(&e)));
        };
        answer
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let sending = rpc.entries.len();
        let fit = entries_that_fit(&rpc.entries, MAX_APPEND_BYTES);
        if fit < sending {
            return Err(PayloadTooLarge::new_entries_hint(fit as u64).into());
        }
        // The peer refused even a batch within our budget: halve it.
        let halved = (sending > 1).then(|| PayloadTooLarge::new_entries_hint(sending as u64 / 2));
        let body = encode(&rpc).map_err(RPCError::Network)?;
        if body.len() <= transfer::DETACH_BYTES {
            return self.link.send("append", body, halved).await;
        }
        self.append_large(rpc, body, halved).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.link.call("snapshot", &rpc, None).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.link.call("vote", &rpc, None).await
    }
}

/// `req` in CBOR, or the error openraft gets when that fails.
fn encode<Req: Serialize>(req: &Req) -> Result<Vec<u8>, NetworkError> {
    super::wire::encode(req).map_err(|e| NetworkError::new(&std::io::Error::other(e)))
}

/// How many leading `entries` fit in `budget` bytes of JSON; at least one,
/// so an entry larger than the budget still goes (alone). Stops measuring
/// at the budget, so a huge batch costs no more than a full one.
fn entries_that_fit<T: Serialize>(entries: &[T], budget: usize) -> usize {
    let mut used = 0;
    for (i, entry) in entries.iter().enumerate() {
        // Serializing only fails if the type cannot be serialized, which
        // the real send would report; such an entry counts as fitting.
        used += crate::json_size::cbor_len(entry) + 1;
        if used > budget {
            return i.max(1);
        }
    }
    entries.len()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

    use super::*;
    use crate::raft::Command;

    /// A peer at a server that reads each request whole and refuses it as
    /// too large, as a region does with a body over `MAX_RPC_BYTES`.
    async fn refusing_peer() -> Peer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        let mut response =
                            http::Response::new(http_body_util::Full::<bytes::Bytes>::default());
                        *response.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Peer {
            link: Link {
                http: crate::peers::http::PeerAuth::Token("t".into())
                    .client(reqwest::Client::builder()),
                target: 2,
                addr: addr.to_string(),
            },
            transfer: None,
        }
    }

    #[tokio::test]
    async fn a_refused_batch_is_payload_too_large_with_half_the_entries() {
        let mut peer = refusing_peer().await;
        let entries = (1..=4)
            .map(|index| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(Command::KvDelete {
                    namespace: "ns".into(),
                    key: "k".into(),
                    precondition: None,
                }),
            })
            .collect();
        let rpc = AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries,
        };
        let option = RPCOption::new(std::time::Duration::from_secs(5));
        match peer.append_entries(rpc, option.clone()).await {
            Err(RPCError::PayloadTooLarge(e)) => assert_eq!(e.entries_hint(), 2),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        // A vote carries no batch to shrink: a refusal is a failed RPC.
        let vote = VoteRequest::new(Vote::new(2, 1), None);
        assert!(matches!(
            peer.vote(vote, option).await,
            Err(RPCError::Network(_))
        ));
    }

    #[test]
    fn batches_are_cut_at_the_byte_budget() {
        let entries = vec!["x".repeat(98); 10]; // 100 bytes of JSON + separator each
        assert_eq!(entries_that_fit(&entries, 10_000), 10);
        assert_eq!(entries_that_fit(&entries, 350), 3);
        assert_eq!(entries_that_fit(&entries[..0], 350), 0);
    }

    #[test]
    fn an_entry_over_the_budget_still_goes_alone() {
        let entries = vec!["x".repeat(1000); 3];
        assert_eq!(entries_that_fit(&entries, 100), 1);
    }
}
