//! wasi:http 0.2 plugins (the `proxy` world): the guest's
//! `incoming-handler.handle` gets the request and a `response-outparam`
//! whose value is the response head; the body streams from the instance's
//! task afterwards.

use http::Request;
use tokio::task::JoinHandle;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::handoff::{self, HeadSender};
use super::host::HostState;
use crate::body::{self, Body};

/// Spawns one request in a fresh instance of a 0.2 component; fails before
/// spawning when the request cannot be handed to the guest.
pub fn start(
    pre: &ProxyPre<HostState>,
    mut store: Store<HostState>,
    req: Request<Body>,
    tls: bool,
    head: HeadSender,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> wasmtime::Result<JoinHandle<wasmtime::Result<()>>> {
    let scheme = if tls { Scheme::Https } else { Scheme::Http };
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(scheme, handoff::to_wasi_request(req))?;
    let outparam = store
        .data_mut()
        .http()
        .new_response_outparam_from_callback(move |answer| {
            let _ = head.send(
                answer
                    .map(|resp| resp.map(body::boxed))
                    .map_err(|code| format!("{code:?}")),
            );
        })?;
    let pre = pre.clone();
    Ok(tokio::spawn(async move {
        let _permit = permit;
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, outparam)
            .await
    }))
}
