//! Links of a plugin chain. A plugin's `next` is either the next plugin or,
//! after the last one, the edge's own cache → origin path, so responses a
//! plugin fetches through `next` are cached by the usual rules.

use std::future::Future;
use std::pin::Pin;

use http::{Request, Response};

use crate::body::Body;

pub type LinkFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Something that answers a request: a plugin or the cache path.
pub trait Link: Send + Sync {
    fn call(&self, req: Request<Body>) -> LinkFuture;
}
