//! `waypost:edge/assets`: reading and writing the origin's assets
//! (`/assets/<path>`), under the path prefixes a plugin is granted. The
//! origin's token stays in the edge: a plugin gets the capability, never
//! the credential.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use waypost_api::AssetPath;

use super::EdgeCtx;
use super::waypost::edge::assets::{Asset, Error, Host};

/// Largest asset a plugin may read or write through the edge.
const MAX_ASSET: usize = 32 * 1024 * 1024;

fn checked(
    ctx: &EdgeCtx,
    path: &str,
) -> Result<(AssetPath, std::sync::Arc<super::KvClient>), Error> {
    let asset = AssetPath::new(path).map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(reason) = ctx.grants.refuse_asset(&ctx.plugin, asset.as_str()) {
        tracing::warn!(plugin = %ctx.plugin, version = %ctx.version, path, "{reason}");
        return Err(Error::Invalid(reason));
    }
    let api = ctx.kv.clone().ok_or_else(|| {
        Error::Unavailable(
            "assets are not configured on this edge (set plugin_runtime.kv_pool)".into(),
        )
    })?;
    Ok((asset, api))
}

fn refused(status: StatusCode, body: &[u8]) -> Error {
    let reason = format!(
        "origin assets answered {status}: {}",
        String::from_utf8_lossy(body).trim()
    );
    if status.is_client_error() {
        Error::Invalid(reason)
    } else {
        Error::Unavailable(reason)
    }
}

impl Host for EdgeCtx {
    async fn get(&mut self, path: String) -> Result<Option<Asset>, Error> {
        let (asset, api) = checked(self, &path)?;
        let (status, content_type, body) = api
            .request_typed(Method::GET, &asset.url_path(), Bytes::new(), "", MAX_ASSET)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        match status {
            StatusCode::OK => Ok(Some(Asset {
                body: body.to_vec(),
                content_type: content_type.unwrap_or_else(|| "application/octet-stream".into()),
            })),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(refused(status, &body)),
        }
    }

    async fn put(
        &mut self,
        path: String,
        body: Vec<u8>,
        content_type: String,
    ) -> Result<(), Error> {
        let (asset, api) = checked(self, &path)?;
        if body.len() > MAX_ASSET {
            return Err(Error::Invalid(format!(
                "an asset written by a plugin is at most {MAX_ASSET} bytes, got {}",
                body.len()
            )));
        }
        if HeaderValue::from_str(&content_type).is_err() || content_type.is_empty() {
            return Err(Error::Invalid(format!(
                "{content_type:?} is not a Content-Type header value"
            )));
        }
        let (status, _, answer) = api
            .request_typed(
                Method::PUT,
                &asset.url_path(),
                Bytes::from(body),
                &content_type,
                64 * 1024,
            )
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(refused(status, &answer))
        }
    }
}
