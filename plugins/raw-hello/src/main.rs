//! `raw-hello`: a plain wasi:http 0.2 `proxy` component that does not use
//! the Waypost SDK, written directly against the `wasi` crate's bindings.
//! It answers every request with `200 text/plain` `raw hello`. The edge
//! must run it unmodified, like any standard component.

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct RawHello;

impl wasi::exports::http::incoming_handler::Guest for RawHello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let body_bytes = b"raw hello\n";
        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"text/plain".to_vec()),
            (
                "content-length".to_owned(),
                body_bytes.len().to_string().into_bytes(),
            ),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(200).expect("valid status");
        let body = response.body().expect("body taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("stream taken once");
        stream
            .blocking_write_and_flush(body_bytes)
            .expect("writing the body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finishing the body");
    }
}

wasi::http::proxy::export!(RawHello);

// A bin crate needs a `main`; the host enters through `handle` instead.
fn main() {}
