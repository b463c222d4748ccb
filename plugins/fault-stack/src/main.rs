//! TEST FIXTURE, not an example: the handler recurses without bound until
//! the stack overflows (the wasm call stack, limited by the engine, or the
//! 1 MiB shadow stack in linear memory, which wasm32-wasip2 places first
//! so an overflow traps): either way a trap. Used by the edge's plugin
//! limit tests.

use std::hint::black_box;

use waypost_sdk::{Body, Request, Response, Result};

#[inline(never)]
fn descend(depth: u64) -> u64 {
    let frame = black_box([depth; 8]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    // Not a tail call: the result is used after the call returns.
    descend(depth + 1).wrapping_add(black_box(frame)[(depth % 8) as usize])
}

#[waypost_sdk::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>> {
    let depth = descend(0);
    Ok(Response::new(Body::from(format!("unreachable {depth}\n"))))
}
