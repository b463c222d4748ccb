//! The encoding of request bodies between regions (Raft RPCs and
//! forwarded writes): CBOR, where a string is its bytes. As JSON, a 1 MiB
//! KV value of control characters became ~6 MiB to send, and an entry that
//! cannot cross the link within the append timeout is resent forever.
//!
//! Receivers also take JSON (any other `Content-Type`), which is what
//! origins before CBOR send, so regions can be upgraded one at a time in
//! that direction. Answers stay JSON: they are small.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The `Content-Type` of a CBOR body.
pub const CBOR: &str = "application/cbor";

/// Why a body could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot encode the body as CBOR: {0}")]
    Encode(String),
    #[error("the CBOR body is not valid: {0}")]
    Cbor(String),
    #[error("the JSON body is not valid: {0}")]
    Json(#[from] serde_json::Error),
}

/// `value` as a CBOR body.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::new();
    ciborium::into_writer(value, &mut body).map_err(|e| WireError::Encode(e.to_string()))?;
    Ok(body)
}

/// A body sent with `content_type`: CBOR if it says so, else JSON.
pub fn decode<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, WireError> {
    let cbor = content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(CBOR))
    });
    if cbor {
        ciborium::from_reader(body).map_err(|e| WireError::Cbor(e.to_string()))
    } else {
        Ok(serde_json::from_slice(body)?)
    }
}

#[cfg(test)]
mod tests {
    use openraft::raft::AppendEntriesRequest;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

    use super::*;
    use crate::raft::{Command, TypeConfig};

    fn append(value: String) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 9)),
            leader_commit: Some(LogId::new(CommittedLeaderId::new(3, 1), 9)),
            entries: vec![Entry {
                log_id: LogId::new(CommittedLeaderId::new(3, 1), 10),
                payload: EntryPayload::Normal(Command::KvPut {
                    namespace: "n".into(),
                    key: "k".into(),
                    value,
                    precondition: None,
                }),
            }],
        }
    }

    #[test]
    fn a_mebibyte_of_control_characters_travels_as_a_mebibyte() {
        let rpc = append("\u{1}".repeat(1024 * 1024));
        let cbor = encode(&rpc).unwrap();
        let json = serde_json::to_vec(&rpc).unwrap();
        assert!(cbor.len() < 1024 * 1024 + 1024, "{} bytes", cbor.len());
        assert!(json.len() > 6 * 1024 * 1024, "{} bytes", json.len());
        let back: AppendEntriesRequest<TypeConfig> = decode(Some(CBOR), &cbor).unwrap();
        assert_eq!(back.entries[0].payload, rpc.entries[0].payload);
        assert_eq!(back.prev_log_id, rpc.prev_log_id);
    }

    #[test]
    fn json_from_an_older_origin_still_decodes() {
        let rpc = append("v".into());
        let json = serde_json::to_vec(&rpc).unwrap();
        let back: AppendEntriesRequest<TypeConfig> =
            decode(Some("application/json"), &json).unwrap();
        assert_eq!(back.entries[0].payload, rpc.entries[0].payload);
        assert!(decode::<AppendEntriesRequest<TypeConfig>>(Some(CBOR), b"{}").is_err());
    }
}
