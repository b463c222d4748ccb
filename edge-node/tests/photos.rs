//! The photo-processing case end to end on a real origin: a PUT through
//! the edge to the `photo-upload` plugin answers 202 at once with the
//! future URLs; the `thumbnailer` consumer (the `image` crate in wasm)
//! makes the thumbnail and the sepia version in the background, and both
//! are then served at those URLs through the edge's cache.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{client, edge_toml, plugin_wasm, start_edge_with, url};

const TOKEN: &str = "photo-origin-token";
const UPLOAD_TOKEN: &str = "photo-upload-token-for-tests";

/// A `width` × `height` PNG of one colour.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    let pixels: Vec<u8> = (0..width * height).flat_map(|_| [30, 90, 200]).collect();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    out
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_answered_at_once_and_its_versions_appear_on_the_cdn() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = origin::Config::for_data_dir(dir.path().join("origin"), TOKEN);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let origin = origin::Server::start(config).await.unwrap();
    let c = client();
    let declared = c
        .put(format!("http://{}/queues/photos", origin.local_addr()))
        .bearer_auth(TOKEN)
        .json(&json!({"max_attempts": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 201);

    let site = format!(
        "[[sites]]\nhosts = [\"*\"]\npath_prefix = \"/photos\"\npool = \"main\"\n\
         plugins = [\"photo-upload\"]\nplugin_config = {{ upload_token = \"{UPLOAD_TOKEN}\" }}\n"
    );
    let toml = format!(
        "{}{site}\
         [[plugins]]\nname = \"photo-upload\"\nfile = \"{upload}\"\n\
         assets = [\"photos/\"]\nqueues = [\"photos\"]\n\
         [[consumers]]\nname = \"thumbnailer\"\nfile = \"{thumbnailer}\"\nqueue = \"photos\"\n\
         assets = [\"photos/\"]\n\
         [plugin_runtime]\nkv_pool = \"main\"\nkv_token = \"{TOKEN}\"\ncompile_cache_dir = \"{cache}\"\n",
        edge_toml(&[origin.local_addr()], dir.path(), ""),
        upload = plugin_wasm("photo-upload").display(),
        thumbnailer = plugin_wasm("thumbnailer").display(),
        cache = dir.path().join("wasm-cache").display(),
    );
    let edge = start_edge_with(&toml, dir.path()).await;

    // Without the upload token nothing is stored.
    let anonymous = c
        .put(url(&edge, "/photos/cat"))
        .body(png(800, 600))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let not_an_image = c
        .put(url(&edge, "/photos/cat"))
        .bearer_auth(UPLOAD_TOKEN)
        .body("<svg/>")
        .send()
        .await
        .unwrap();
    assert_eq!(not_an_image.status(), 415);

    let accepted = c
        .put(url(&edge, "/photos/cat"))
        .bearer_auth(UPLOAD_TOKEN)
        .body(png(800, 600))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let accepted: Value = accepted.json().await.unwrap();
    let thumbnail = accepted["versions"]["thumbnail"]
        .as_str()
        .unwrap()
        .to_string();
    let sepia = accepted["versions"]["sepia"].as_str().unwrap().to_string();
    assert_eq!(thumbnail, "/assets/photos/thumbnails/cat.png");

    let deadline = Instant::now() + Duration::from_secs(30);
    let fetch = |path: String| {
        let c = c.clone();
        let u = url(&edge, &path);
        async move {
            loop {
                let r = c.get(&u).send().await.unwrap();
                if r.status() == 200 {
                    return r.bytes().await.unwrap();
                }
                assert!(
                    Instant::now() < deadline,
                    "{path} never appeared ({})",
                    r.status()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(dimensions(&fetch(thumbnail).await), (256, 192));
    assert_eq!(dimensions(&fetch(sepia).await), (800, 600));
    let status: Value = c
        .get(url(&edge, "/photos/cat"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["ready"], json!({"thumbnail": true, "sepia": true}));
    let queue: Value = c
        .get(format!("http://{}/queues/photos", origin.local_addr()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (queue["acked"].as_u64(), queue["depth"].as_u64()),
        (Some(1), Some(0)),
        "{queue}"
    );
    edge.shutdown().await;
    origin.shutdown().await;
}
