//! Operational endpoints: liveness and Prometheus metrics.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};

use super::AppState;
use crate::response::{self, ResBody};

/// `/healthz`: the process is up and serving.
pub fn healthz(method: &Method) -> Response<ResBody> {
    let mut response = response::text(StatusCode::OK, "ok");
    strip_body_for_head(method, &mut response);
    response
}

/// `/metrics`: Prometheus text of this server's registry.
pub fn metrics(state: &Arc<AppState>, method: &Method) -> Response<ResBody> {
    let mut response = Response::new(response::full(state.metrics.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(service_base::metrics_text::CONTENT_TYPE),
    );
    strip_body_for_head(method, &mut response);
    response
}

fn strip_body_for_head(method: &Method, response: &mut Response<ResBody>) {
    if method == Method::HEAD {
        *response.body_mut() = response::empty();
    }
}
