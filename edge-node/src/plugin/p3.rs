//! wasi:http 0.3 plugins: the `service` world (exports `wasi:http/handler`)
//! and the `middleware` world (also imports it). A request runs inside
//! `Store::run_concurrent`, the event loop of the component model's async
//! ABI, which keeps running after the guest returned its response for as
//! long as the edge reads the body, because the guest's body stream is fed
//! from that loop. A middleware's imported `handle` is the next link of the
//! chain; a service's `wasi:http/client` requests go through the same
//! policy as 0.2 plugins' (`hooks.rs`).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Request;
use http::uri::{Authority, Scheme};
use http_body::{Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmtime::Store;
use wasmtime::component::{Accessor, Linker, Resource};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{WasiHttp, WasiHttpView};

use super::handoff::{self, HeadSender};
use super::hooks::NEXT;
use super::host::HostState;
use crate::body::{self, Body};

/// The interface a middleware imports to reach the next link. The linker
/// matches semver-compatibly, so any `wasi:http/handler@0.3.x` import binds.
const HANDLER: &str = "wasi:http/handler@0.3.0";

/// Adds WASI 0.3 (cli, clocks, filesystem, random, sockets; no preopens or
/// network are granted), wasi:http 0.3 `types` and `client`, and the
/// `handler` a middleware imports.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p3::add_to_linker(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    linker.instance(HANDLER)?.func_wrap_concurrent(
        "handle",
        |accessor: &Accessor<HostState>,
         (request,): (Resource<wasmtime_wasi_http::p3::Request>,)| {
            Box::pin(call_next(accessor, request))
        },
    )
}

/// A middleware's imported `handle`: the request is addressed to `next`
/// and sent like a `client.send` to `http://next/`, so both worlds reach
/// the next link through the one routing point, `Hooks::send_request`.
async fn call_next(
    accessor: &Accessor<HostState>,
    request: Resource<wasmtime_wasi_http::p3::Request>,
) -> wasmtime::Result<(Result<Resource<wasmtime_wasi_http::p3::Response>, ErrorCode>,)> {
    accessor.with(|mut store| -> wasmtime::Result<()> {
        let view = store.get().http();
        let request = view.table.get_mut(&request)?;
        request.scheme = Some(Scheme::HTTP);
        request.authority = Some(Authority::from_static(NEXT));
        Ok(())
    })?;
    let http = accessor.with_getter::<WasiHttp>(<HostState as WasiHttpView>::http);
    match <WasiHttp as HostWithStore<HostState>>::send(&http, request).await {
        Ok(response) => Ok((Ok(response),)),
        // A guest-visible error code, or a trap that ends the instance.
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

/// Spawns one request in a fresh instance of a 0.3 component; the head
/// goes to `head`, the task ends when the edge has read or dropped the
/// body.
pub fn start(
    pre: &ServicePre<HostState>,
    mut store: Store<HostState>,
    req: Request<Body>,
    tls: bool,
    head: HeadSender,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> JoinHandle<wasmtime::Result<()>> {
    let pre = pre.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let service = pre.instantiate_async(&mut store).await?;
        let (mut request, request_io) = wasmtime_wasi_http::p3::Request::from_http(
            store.data_mut().http().hooks,
            handoff::to_wasi_request(req),
        );
        request.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
        let (verdict, verdict_rx) = oneshot::channel();
        let result = store
            .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
                let response = match service.handle(accessor, request).await? {
                    Ok(response) => response,
                    Err(code) => {
                        let _ = head.send(Err(format!("{code:?}")));
                        return Ok(());
                    }
                };
                let response =
                    accessor.with(|mut store| response.into_http(&mut store, request_io))?;
                let (read, done) = oneshot::channel();
                let _ = head.send(Ok(response.map(|body| {
                    body::boxed(Fed {
                        body,
                        read: Some(read),
                        verdict: Some(verdict_rx),
                    })
                })));
                // `read` goes when the body has ended or the client went
                // away. Work the guest still has after that is cut off with
                // the instance, as for a 0.2 plugin.
                let _ = done.await;
                Ok(())
            })
            .await
            .and_then(|r| r);
        if let Err(e) = &result {
            // Before the store (and with it the guest's streams) is
            // dropped, so the body reports the failure, not a clean end.
            let _ = verdict.send(format!("plugin failed while sending the body: {e:#}"));
        }
        result
    })
}

pin_project_lite::pin_project! {
    /// A 0.3 guest's response body. When the guest's stream ends, the
    /// request's task is told (`read`), so the event loop feeding the body
    /// can stop, and the body ends only after the task's verdict: a guest
    /// that trapped or ran out of time mid-body closes its stream just as
    /// one that finished, and that must reach the client as an error, not
    /// as a short but complete response.
    struct Fed<B> {
        #[pin]
        body: B,
        read: Option<oneshot::Sender<()>>,
        verdict: Option<oneshot::Receiver<String>>,
    }
}

impl<B> http_body::Body for Fed<B>
where
    B: http_body::Body,
    B::Error: Into<body::BoxError>,
{
    type Data = B::Data;
    type Error = body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if this.read.is_some() {
            match ready!(this.body.poll_frame(cx)) {
                Some(frame) => return Poll::Ready(Some(frame.map_err(Into::into))),
                None => drop(this.read.take()),
            }
        }
        let Some(verdict) = this.verdict.as_mut() else {
            return Poll::Ready(None);
        };
        let verdict = ready!(Pin::new(verdict).poll(cx));
        *this.verdict = None;
        Poll::Ready(verdict.ok().map(|failure| Err(failure.into())))
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
