//! TEST FIXTURE, not an example: a wasi:http 0.3 `service` component that
//! fails on purpose, by path, so the edge's tests can check that a p3
//! fault fails only its own request. `/trap` panics (with `panic = "abort"`
//! a wasm trap), `/loop` spins without yielding (only the epoch deadline
//! stops it), anything else answers `ok`.

use std::hint::black_box;

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

struct Fault;

wasip3::http::service::export!(Fault);

impl wasip3::exports::http::handler::Guest for Fault {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        match request.get_path_with_query().as_deref() {
            Some("/trap") => panic!("fault-p3: trapping on purpose"),
            Some("/loop") => {
                let mut counter: u64 = 0;
                while black_box(counter) != u64::MAX {
                    counter = black_box(counter.wrapping_add(1)) % (u64::MAX - 1);
                }
            }
            _ => {}
        }
        let (mut body_tx, body_rx) = wit_stream::new();
        let (_, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _delivered) = Response::new(Fields::new(), Some(body_rx), trailers_rx);
        wasip3::spawn(async move {
            body_tx.write_all(b"ok\n".to_vec()).await;
        });
        Ok(response)
    }
}
