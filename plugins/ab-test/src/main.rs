//! `ab-test`: sticky A/B bucketing.
//!
//! A client's bucket is in the cookie `wp_ab=a|b`. A client without one
//! (or with another value) is put in `a` with probability `split` percent
//! (config `split`, default 50, using wasi:random) and gets the cookie
//! (`Path=/; Max-Age=2592000; SameSite=Lax`) on the response. The request
//! goes to `next` with its path under the bucket's prefix (config `path_a`,
//! default `/a`; `path_b`, default `/b`): `/x?y` becomes `/a/x?y`. The
//! response carries `x-ab-bucket: a|b`.

use ab_test::{Bucket, bucket_from_cookies, parse_split, pick, prefixed, set_cookie};
use waypost_sdk::{Body, Error, Request, Response, Result, config, next, random};

#[waypost_sdk::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {
    let sticky = bucket_from_cookies(
        request
            .headers()
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let bucket = match sticky {
        Some(bucket) => bucket,
        None => {
            let split = parse_split(config::get("split").as_deref())
                .map_err(|e| Error::msg(format!("ab-test plugin config: {e}")))?;
            pick(random::u64(), split)
        }
    };
    let prefix = match bucket {
        Bucket::A => config::get_or("path_a", "/a"),
        Bucket::B => config::get_or("path_b", "/b"),
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let target = prefixed(&prefix, path_and_query);

    let mut response = next::forward_to(request, &target).await?;
    let headers = response.headers_mut();
    headers.insert("x-ab-bucket", bucket.as_str().parse()?);
    if sticky.is_none() {
        headers.append("set-cookie", set_cookie(bucket).parse()?);
    }
    Ok(response)
}
