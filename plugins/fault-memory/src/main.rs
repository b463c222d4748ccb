//! TEST FIXTURE, not an example: the handler allocates 1 MiB chunks (each
//! written to, so the pages are really used) and keeps them all, until an
//! allocation fails; the failed allocation aborts, which traps. Only the
//! edge's per-plugin memory cap stops it before the 4 GiB wasm32 limit.
//! Used by the edge's plugin limit tests.

use std::hint::black_box;

use waypost_sdk::{Body, Request, Response, Result};

const CHUNK: usize = 1 << 20;

#[waypost_sdk::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = vec![0xa5u8; CHUNK];
        hoard.push(black_box(chunk));
        black_box(&hoard);
    }
}
