//! TEST FIXTURE, not an example: the handler spins forever without
//! yielding, so only the edge's wall-clock deadline (epoch interruption)
//! can stop it. Used by the edge's plugin limit tests.

use std::hint::black_box;

use waypost_sdk::{Body, Request, Response, Result};

#[waypost_sdk::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>> {
    let mut counter: u64 = 0;
    while black_box(counter) != u64::MAX {
        counter = black_box(counter.wrapping_add(1)) % (u64::MAX - 1);
    }
    Ok(Response::new(Body::from("unreachable\n")))
}
