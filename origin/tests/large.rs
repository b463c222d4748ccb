//! A 50 MiB asset goes up and comes back as streams, never as one buffer in
//! the test.

mod common;

use bytes::Bytes;
use common::{Origin, header};
use futures::StreamExt;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 800; // 50 MiB

/// Chunk `i` of a deterministic pseudo-random byte stream (xorshift64).
fn chunk(i: usize) -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(out)
}

fn data() -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::iter(0..CHUNKS).map(|i| Ok(chunk(i)))
}

#[tokio::test]
async fn fifty_mib_streams_up_and_down() {
    let o = Origin::start().await;
    let mut expected = Sha256::new();
    for i in 0..CHUNKS {
        expected.update(chunk(i));
    }
    let expected = hex::encode(expected.finalize());

    let body = reqwest::Body::wrap_stream(data());
    let resp = o.put("/assets/big.bin", body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "etag"), format!("\"{expected}\""));

    let resp = o.get("/assets/big.bin").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "content-length"),
        (CHUNK * CHUNKS).to_string()
    );
    let mut got = Sha256::new();
    let mut len = 0usize;
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        len += piece.len();
        got.update(&piece);
    }
    assert_eq!(len, CHUNK * CHUNKS);
    assert_eq!(hex::encode(got.finalize()), expected);

    // A range in the middle crossing a chunk boundary.
    let start = 10 * CHUNK - 10;
    let range = format!("bytes={}-{}", start, start + 19);
    let resp = o
        .get("/assets/big.bin")
        .header("range", range)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let want = [&chunk(9)[CHUNK - 10..], &chunk(10)[..10]].concat();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), want.as_slice());
}
