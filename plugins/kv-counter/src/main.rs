//! `kv-counter`: a JSON counter API over the edge's replicated KV store.
//!
//! - `GET /counter/<name>` → `200 {"name":"<name>","value":N}` (0 when the
//!   counter does not exist yet);
//! - `POST /counter/<name>` → increments, then `200` with the new value;
//! - `GET /counters` → `200 {"counters":["<name>",…]}`, in order;
//! - a KV failure → `503 {"error":"<message>"}`; a name outside
//!   `[A-Za-z0-9._-]{1,128}` → `400`; another method → `405`; any other
//!   path → `404`.
//!
//! Config: `namespace` (default `counters`), the KV namespace holding the
//! counters, one key per counter, values as decimal text. The increment is
//! a read-modify-write: concurrent increments of one counter can be lost.

use kv_counter::{Route, answer, decode, encode, error_body, listing, route};
use waypost_sdk::kv::{self, Store};
use waypost_sdk::{Body, Request, Response, Result, StatusCode, config};

#[waypost_sdk::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {
    let store = Store::open(config::get_or("namespace", "counters"));
    let outcome = match route(request.method().as_str(), request.uri().path()) {
        Route::Read(name) => read(&store, name).map(|value| answer(name, value)),
        Route::Increment(name) => increment(&store, name).map(|value| answer(name, value)),
        Route::List => store
            .list("")
            .map(|names| listing(&names))
            .map_err(Failure::Kv),
        Route::BadName => {
            return json(
                StatusCode::BAD_REQUEST,
                error_body("counter names are 1-128 of A-Z a-z 0-9 . _ -"),
            );
        }
        Route::MethodNotAllowed(allow) => {
            let mut response = json(
                StatusCode::METHOD_NOT_ALLOWED,
                error_body(&format!("use {allow}")),
            )?;
            response.headers_mut().insert("allow", allow.parse()?);
            return Ok(response);
        }
        Route::NotFound => return json(StatusCode::NOT_FOUND, error_body("not found")),
    };
    match outcome {
        Ok(body) => json(StatusCode::OK, body),
        Err(Failure::Kv(err)) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            error_body(&err.to_string()),
        ),
        Err(Failure::Corrupt(name)) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(&format!(
                "counter {name} holds a value that is not a number"
            )),
        ),
    }
}

enum Failure {
    Kv(kv::Error),
    Corrupt(String),
}

fn read(store: &Store, name: &str) -> Result<u64, Failure> {
    match store.get(name).map_err(Failure::Kv)? {
        None => Ok(0),
        Some(bytes) => decode(&bytes).ok_or_else(|| Failure::Corrupt(name.to_owned())),
    }
}

fn increment(store: &Store, name: &str) -> Result<u64, Failure> {
    let value = read(store, name)?.saturating_add(1);
    store.put(name, encode(value)).map_err(Failure::Kv)?;
    Ok(value)
}

fn json(status: StatusCode, body: String) -> Result<Response<Body>> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body.into())?)
}
