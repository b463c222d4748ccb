//! TEST FIXTURE, not an example: the handler panics. Plugins build with
//! `panic = "abort"`, so the panic message goes to stderr and the instance
//! traps. Used by the edge's plugin limit tests.

use waypost_sdk::{Body, Request, Response, Result};

#[waypost_sdk::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {
    panic!(
        "fault-panic: deliberate panic while handling {}",
        request.uri().path()
    );
}
