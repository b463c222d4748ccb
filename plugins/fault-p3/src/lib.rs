//! TEST FIXTURE, not an example: a wasi:http 0.3 `service` component for
//! the edge's tests, by path: `/trap` panics (with `panic = "abort"` a wasm
//! trap), `/loop` spins without yielding (only the epoch deadline stops
//! it), `/half` answers 200 and traps after the first body bytes, `/huge`
//! streams 64 KiB chunks until the reader goes away,
//! `/send/<authority>/<path>` sends `GET http://<authority>/<path>`
//! through `wasi:http/client` and answers with what comes back (so the
//! tests see the edge's outgoing-request policy), anything else answers
//! `ok`.

use std::hint::black_box;

use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::{wit_future, wit_stream};

struct Fault;

wasip3::http::service::export!(Fault);

impl wasip3::exports::http::handler::Guest for Fault {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        if let Some(target) = path.strip_prefix("/send/") {
            let (authority, rest) = target.split_once('/').unwrap_or((target, ""));
            return send(authority, &format!("/{rest}")).await;
        }
        match path.as_str() {
            "/trap" => panic!("fault-p3: trapping on purpose"),
            "/loop" => {
                let mut counter: u64 = 0;
                while black_box(counter) != u64::MAX {
                    counter = black_box(counter.wrapping_add(1)) % (u64::MAX - 1);
                }
            }
            _ => {}
        }
        let (half, huge) = (path == "/half", path == "/huge");
        let (mut body_tx, body_rx) = wit_stream::new();
        let (_, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _delivered) = Response::new(Fields::new(), Some(body_rx), trailers_rx);
        wasip3::spawn(async move {
            if huge {
                while body_tx.write_all(vec![b'x'; 64 << 10]).await.is_empty() {}
                return;
            }
            if half {
                body_tx.write_all(b"partial".to_vec()).await;
                panic!("fault-p3: trapping mid-body on purpose");
            }
            body_tx.write_all(b"ok\n".to_vec()).await;
        });
        Ok(response)
    }
}

/// `GET http://{authority}{path}` through `wasi:http/client`; the response
/// (or the error code the host answers with) is passed on as it is.
async fn send(authority: &str, path: &str) -> Result<Response, ErrorCode> {
    let (_, trailers_rx) = wit_future::new(|| Ok(None));
    let (request, _sent) = Request::new(Fields::new(), None, trailers_rx, None);
    let invalid = |what: &str| ErrorCode::InternalError(Some(format!("invalid {what}")));
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    wasip3::http::client::send(request).await
}
