//! `hello`: answers every request itself with
//! `200 text/plain` `Hello from Waypost!` and, on a second line, the path;
//! sets `x-plugin: hello`. Uses no `waypost:edge` capability, so
//! `wasmtime serve -S cli` runs it as well (the plugin benchmark does).

use waypost_sdk::{Body, Request, Response, Result, StatusCode};

#[waypost_sdk::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {
    let body = format!("Hello from Waypost!\n{}\n", request.uri().path());
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-plugin", "hello")
        .body(body.into())?)
}
