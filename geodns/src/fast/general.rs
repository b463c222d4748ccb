//! The general path for datagrams a UDP worker received but may not answer
//! itself, and for every TCP query: what hickory-server's loops do with a
//! message (drop
//! unanswerable sources, responses and datagrams too short for a header;
//! FORMERR for what does not decode), then our `Handler`, run to
//! completion on the worker thread. Nothing in the handler waits (its
//! only await is the reply, which this captures), so the worker needs no
//! async runtime and the behaviour is the one hickory's path has.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

use crate::handler::Handler;

/// The reply to `datagram` (one DNS message, without TCP's length prefix)
/// from `src`, if it gets one.
pub fn answer(
    handler: &Handler,
    datagram: &[u8],
    src: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    if !answerable(src) {
        return None;
    }
    let header = Header::read(&mut BinDecoder::new(datagram)).ok()?;
    let request = match Request::from_bytes(datagram.to_vec(), src, protocol) {
        Ok(request) => request,
        Err(_) => {
            // hickory answers undecodable requests with no question.
            let queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
            let response = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            return encode(response, protocol).ok().map(|(_, bytes)| bytes);
        }
    };
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let capture = Capture {
        reply: Arc::default(),
        protocol,
    };
    futures::executor::block_on(handler.handle_request::<_, TokioTime>(&request, capture.clone()));
    capture
        .reply
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}

/// hickory-server's `sanitize_src_address`: no reply to port 0, the
/// unspecified address or broadcast.
fn answerable(src: SocketAddr) -> bool {
    src.port() != 0
        && match src.ip() {
            IpAddr::V4(a) => !a.is_unspecified() && !a.is_broadcast(),
            IpAddr::V6(a) => !a.is_unspecified(),
        }
}

/// Keeps the encoded reply instead of sending it.
#[derive(Clone)]
struct Capture {
    reply: Arc<Mutex<Option<Vec<u8>>>>,
    protocol: Protocol,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (info, bytes) = encode(response, self.protocol)?;
        *self.reply.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(info)
    }
}

/// hickory's `MessageResponse::encode` (crate-private there): on UDP the
/// client's payload size or 512 bytes, on TCP 65,535; SERVFAIL when
/// encoding fails.
fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    protocol: Protocol,
) -> Result<(ResponseInfo, Vec<u8>), NetError> {
    let id = response.metadata().id;
    let max = match protocol {
        Protocol::Udp => response.edns().map_or(512, |e| e.max_payload()),
        _ => u16::MAX,
    };
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(max);
    if let Ok(info) = response.destructive_emit(&mut encoder) {
        return Ok((info, bytes));
    }
    bytes.clear();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(512);
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    header.emit(&mut encoder).map_err(NetError::from)?;
    Ok((ResponseInfo::from(header), bytes))
}
