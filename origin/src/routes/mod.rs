//! Request routing: which handler answers a path, and the shared state the
//! handlers use. Routing looks at the raw (percent-encoded) path so asset
//! names are decoded exactly once, in [`crate::asset_path`].

mod assets;
mod auth;
mod ops;

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::response::{self, ResBody};
use crate::store::Store;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub metrics: Metrics,
}

/// The route template of a request, used as a bounded metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Assets,
    Healthz,
    Metrics,
    Unknown,
}

impl Route {
    /// Classifies a raw request path.
    pub fn of(path: &str) -> Self {
        match path {
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            p if p.starts_with("/assets/") => Route::Assets,
            _ => Route::Unknown,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Route::Assets => "assets",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Unknown => "unknown",
        }
    }
}

const READ_ONLY: &str = "GET, HEAD";
const ASSET_METHODS: &str = "GET, HEAD, PUT, DELETE";

/// Answers one request.
pub async fn dispatch(
    state: &Arc<AppState>,
    route: Route,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let method = req.method().clone();
    match route {
        Route::Healthz if is_read(&method) => ops::healthz(&method),
        Route::Metrics if is_read(&method) => ops::metrics(state, &method),
        Route::Healthz | Route::Metrics => response::method_not_allowed(READ_ONLY),
        Route::Assets => {
            let name = req.uri().path()["/assets/".len()..].to_string();
            match method {
                Method::GET | Method::HEAD => assets::get(state, &name, &req).await,
                Method::PUT => assets::put(state, &name, req).await,
                Method::DELETE => assets::delete(state, &name, &req).await,
                _ => response::method_not_allowed(ASSET_METHODS),
            }
        }
        Route::Unknown => response::text(
            StatusCode::NOT_FOUND,
            format!(
                "no route for {}; the origin serves /assets/<name>, /healthz and /metrics",
                req.uri().path()
            ),
        ),
    }
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}
