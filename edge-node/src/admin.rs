//! The admin listener: `/healthz`, `/metrics` and purges. It is separate from
//! the public listeners so purge and metrics are never reachable through a
//! site's host name.
//!
//! Purge API (bearer token from `admin.token`):
//! `POST /purge?url=http://host/path` purges every variant of a URL;
//! `POST /purge?key=<surrogate-key>` purges every object tagged with the key;
//! add `&soft=true` to mark objects stale instead (they are revalidated on
//! next use and may still be served stale where allowed).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use service_base::secrets::constant_time_eq;

use crate::body::{self, Body};
use crate::cache::{self, Cache};
use crate::metrics::Metrics;
use crate::plugin::Runtime;

pub struct Admin {
    pub cache: Arc<Cache>,
    pub metrics: Arc<Metrics>,
    pub token: Option<String>,
    pub plugins: Option<Arc<Runtime>>,
}

/// Largest plugin upload accepted.
const MAX_PLUGIN_BYTES: usize = 128 << 20;

impl Admin {
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok"),
            (&Method::GET, "/metrics") => {
                let body = self.metrics.render(&self.cache.usage());
                let mut resp = Response::new(body::full(body));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(service_base::metrics_text::CONTENT_TYPE),
                );
                resp
            }
            (&Method::POST, "/purge") => self.purge(&req).await,
            (&Method::PUT, p) if p.starts_with("/plugins/") => self.upload_plugin(req).await,
            (_, "/healthz" | "/metrics" | "/purge") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "unknown admin path; try /healthz, /metrics or POST /purge",
            ),
        }
    }

    /// `PUT /plugins/{name}`: a new version of a configured plugin. It is
    /// compiled and checked before it replaces the running version; on
    /// error the old version keeps serving and the compiler's message is
    /// returned.
    async fn upload_plugin(&self, req: Request<Incoming>) -> Response<Body> {
        if let Err(resp) = self.authorize(&req) {
            return *resp;
        }
        let name = req.uri().path().trim_start_matches("/plugins/").to_string();
        let Some(rt) = self.plugins.clone() else {
            return text(
                StatusCode::NOT_FOUND,
                "this edge has no [[plugins]] configured",
            );
        };
        let limited = http_body_util::Limited::new(req.into_body(), MAX_PLUGIN_BYTES);
        let bytes = match http_body_util::BodyExt::collect(limited).await {
            Ok(c) => c.to_bytes().to_vec(),
            Err(e) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("reading the component: {e}"),
                );
            }
        };
        match rt.upload(&name, bytes).await {
            Ok(version) => {
                let json = serde_json::json!({ "plugin": name, "version": version }).to_string();
                let mut resp = Response::new(body::full(json));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                resp
            }
            Err(e) => text(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{e}; the previous version keeps serving"),
            ),
        }
    }

    /// Checks the bearer token; the error is the response to send.
    fn authorize<B>(&self, req: &Request<B>) -> Result<(), Box<Response<Body>>> {
        let Some(expected) = &self.token else {
            return Err(Box::new(text(
                StatusCode::FORBIDDEN,
                "the admin API is disabled: set `admin.token` in the edge config",
            )));
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
            let mut resp = text(
                StatusCode::UNAUTHORIZED,
                "this needs `Authorization: Bearer <admin.token>`",
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Err(Box::new(resp));
        }
        Ok(())
    }

    async fn purge(&self, req: &Request<Incoming>) -> Response<Body> {
        if let Err(resp) = self.authorize(req) {
            return *resp;
        }
        let query = req.uri().query().unwrap_or("");
        let mut url = None;
        let mut key = None;
        let mut soft = false;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "url" => url = Some(v.into_owned()),
                "key" => key = Some(v.into_owned()),
                "soft" => soft = matches!(v.as_ref(), "1" | "true" | "yes"),
                other => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!("unknown purge parameter `{other}`; use url, key, soft"),
                    );
                }
            }
        }
        let (kind, purged) = match (url, key) {
            (Some(u), None) => match cache::url_key(&u) {
                Ok(primary) => ("url", self.cache.purge_url(&primary, soft).await),
                Err(reason) => return text(StatusCode::BAD_REQUEST, &reason.to_string()),
            },
            (None, Some(k)) if !k.is_empty() => (
                "surrogate_key",
                self.cache.purge_surrogate_key(&k, soft).await,
            ),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "give exactly one of `url=<absolute URL>` or `key=<surrogate key>`",
                );
            }
        };
        self.metrics.count_purge(kind);
        tracing::info!(kind, soft, purged, "purge");
        let mut resp = Response::new(body::full(format!(
            "{{\"purged\":{purged},\"soft\":{soft}}}\n"
        )));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut resp = Response::new(body::full(format!("{msg}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
