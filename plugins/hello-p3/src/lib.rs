//! `hello-p3`: the hello example for the wasi:http 0.3 `service` world
//! (built with the `wasip3` bindings, no SDK). Answers every request with
//! `Hello from Waypost (wasi:http 0.3)!` and the request's path.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

struct Hello;

wasip3::http::service::export!(Hello);

impl wasip3::exports::http::handler::Guest for Hello {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        let body = format!("Hello from Waypost (wasi:http 0.3)!\n{path}\n").into_bytes();
        let headers = Fields::from_list(&[
            (
                "content-type".to_string(),
                b"text/plain; charset=utf-8".to_vec(),
            ),
            (
                "content-length".to_string(),
                body.len().to_string().into_bytes(),
            ),
            ("x-plugin".to_string(), b"hello-p3".to_vec()),
        ])
        .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
        let (mut body_tx, body_rx) = wit_stream::new();
        // No trailers: the writer is dropped, so the reader sees `Ok(None)`.
        let (_, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _delivered) = Response::new(headers, Some(body_rx), trailers_rx);
        // The body is written after the response is returned: the host only
        // starts reading the stream once it has the response.
        wasip3::spawn(async move {
            body_tx.write_all(body).await;
        });
        Ok(response)
    }
}
