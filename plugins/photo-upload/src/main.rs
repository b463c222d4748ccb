//! `photo-upload`: `PUT /photos/<name>` with a PNG or JPEG body (and
//! `Authorization: Bearer <upload_token>`) stores the original as the asset
//! `photos/originals/<name>`, queues a job on `photos` for the
//! `thumbnailer` consumer, and answers `202 Accepted` with the URLs the
//! thumbnail and the sepia version will have. `GET /photos/<name>` says
//! which versions exist yet.
//!
//! Config (site `plugin_config`): `upload_token`, without which uploads
//! are refused (503): an edge is on the internet. Grants: `assets =
//! ["photos/"]`, `queues = ["photos"]`.

use photo_upload::{Format, MAX_PHOTO, job, original, photo_name, same_secret, versions};
use waypost_sdk::queue::{self, Message};
use waypost_sdk::{Body, Method, Request, Response, Result, StatusCode, assets, config};

#[waypost_sdk::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>> {
    let Some(name) = photo_name(request.uri().path()).map(str::to_string) else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "use /photos/<name>, name of a-z 0-9 - _"}),
        );
    };
    match *request.method() {
        Method::GET => status(&name),
        Method::PUT => {
            if let Some(denied) = authorize(&request) {
                return denied;
            }
            let length = request.body().content_length();
            if length.is_none_or(|n| n > MAX_PHOTO) {
                return json(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    serde_json::json!({"error": format!("send a Content-Length of at most {MAX_PHOTO} bytes")}),
                );
            }
            let bytes = request.body_mut().contents().await?.to_vec();
            upload(&name, bytes)
        }
        _ => {
            let mut response = json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({"error": "use GET or PUT"}),
            )?;
            response.headers_mut().insert("allow", "GET, PUT".parse()?);
            Ok(response)
        }
    }
}

/// The refusal for a request without the upload token, if it has none.
fn authorize(request: &Request<Body>) -> Option<Result<Response<Body>>> {
    let Some(token) = config::get("upload_token").filter(|t| !t.is_empty()) else {
        return Some(json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "uploads are closed: the site sets no upload_token"}),
        ));
    };
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    (!same_secret(presented.as_bytes(), token.as_bytes())).then(|| {
        json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "uploads need Authorization: Bearer <upload token>"}),
        )
    })
}

fn upload(name: &str, bytes: Vec<u8>) -> Result<Response<Body>> {
    let Some(format) = Format::sniff(&bytes) else {
        return json(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            serde_json::json!({"error": "send a PNG or JPEG image"}),
        );
    };
    if let Err(e) = assets::put(&original(name), bytes, format.content_type()) {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": e.to_string()}),
        );
    }
    // One job per upload of this name within the queue's dedup window.
    let message = Message::new(job(name));
    let id = match queue::send("photos", message) {
        Ok(id) => id,
        Err(e) => {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": e.to_string()}),
            );
        }
    };
    let urls: serde_json::Map<String, serde_json::Value> = versions(name)
        .into_iter()
        .map(|(kind, path)| (kind.to_string(), format!("/assets/{path}").into()))
        .collect();
    json(
        StatusCode::ACCEPTED,
        serde_json::json!({"original": format!("/assets/{}", original(name)), "job": id, "versions": urls}),
    )
}

fn status(name: &str) -> Result<Response<Body>> {
    let mut ready = serde_json::Map::new();
    for (kind, path) in versions(name) {
        let exists = match assets::get(&path) {
            Ok(found) => found.is_some(),
            Err(e) => {
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"error": e.to_string()}),
                );
            }
        };
        ready.insert(kind.to_string(), exists.into());
    }
    json(
        StatusCode::OK,
        serde_json::json!({ "name": name, "ready": ready }),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Result<Response<Body>> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body.to_string().into())?)
}
