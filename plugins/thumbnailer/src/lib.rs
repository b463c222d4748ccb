//! `thumbnailer`: consumes the `photos` queue that `photo-upload` fills.
//! For each job it reads the original asset, makes a thumbnail (at most
//! 256 px on its longer side) and a sepia version (at most 1024 px), and
//! stores both as PNG assets at the URLs the upload promised. Work is
//! idempotent (the same job twice writes the same bytes), as at-least-once
//! delivery asks.
//!
//! A job whose original is missing or not an image can never succeed: it
//! is retried after a minute until the queue's `max_attempts` send it to
//! the dead letters, where an operator sees it (`waypost queue dlq
//! photos`). Grants: `assets = ["photos/"]`.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use waypost_sdk::assets;
use waypost_sdk::log;
use waypost_sdk::queue::{Consumer, Delivery, Outcome};

/// Longest side of a thumbnail.
pub const THUMBNAIL: u32 = 256;
/// Longest side of the sepia version.
pub const SEPIA: u32 = 1024;

/// The thumbnail and the sepia version of `original`, as PNG bytes.
pub fn render(original: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let image = image::load_from_memory(original).map_err(|e| format!("not an image: {e}"))?;
    let thumbnail = shrink(&image, THUMBNAIL);
    let sepia = sepia(&shrink(&image, SEPIA));
    Ok((png(&thumbnail)?, png(&DynamicImage::ImageRgba8(sepia))?))
}

/// `image` fitted within `side` × `side`, never enlarged.
fn shrink(image: &DynamicImage, side: u32) -> DynamicImage {
    if image.width() <= side && image.height() <= side {
        return image.clone();
    }
    image.resize(side, side, FilterType::Triangle)
}

/// The classic sepia matrix over each pixel.
fn sepia(image: &DynamicImage) -> RgbaImage {
    let mut out = image.to_rgba8();
    for Rgba([r, g, b, _]) in out.pixels_mut() {
        let (fr, fg, fb) = (f32::from(*r), f32::from(*g), f32::from(*b));
        let tone = |kr: f32, kg: f32, kb: f32| (fr * kr + fg * kg + fb * kb).min(255.0) as u8;
        (*r, *g, *b) = (
            tone(0.393, 0.769, 0.189),
            tone(0.349, 0.686, 0.168),
            tone(0.272, 0.534, 0.131),
        );
    }
    out
}

fn png(image: &DynamicImage) -> Result<Vec<u8>, String> {
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .map_err(|e| format!("encoding PNG: {e}"))?;
    Ok(bytes.into_inner())
}

/// What went wrong with one job.
enum Failure {
    /// Retrying may help (the origin was unreachable).
    Transient(String),
    /// Retrying cannot help; the job is for the dead letters.
    Permanent(String),
}

fn work(body: &str) -> Result<(), Failure> {
    let job: serde_json::Value =
        serde_json::from_str(body).map_err(|e| Failure::Permanent(format!("bad job: {e}")))?;
    let (Some(name), Some(original)) = (job["name"].as_str(), job["original"].as_str()) else {
        return Err(Failure::Permanent(
            "a job names `name` and `original`".into(),
        ));
    };
    let source = assets::get(original)
        .map_err(|e| Failure::Transient(e.to_string()))?
        .ok_or_else(|| Failure::Permanent(format!("the original {original} does not exist")))?;
    let (thumbnail, sepia) = render(&source.body).map_err(Failure::Permanent)?;
    for (path, bytes) in [
        (format!("photos/thumbnails/{name}.png"), thumbnail),
        (format!("photos/sepia/{name}.png"), sepia),
    ] {
        assets::put(&path, bytes, "image/png").map_err(|e| Failure::Transient(e.to_string()))?;
    }
    Ok(())
}

struct Thumbnailer;

impl Consumer for Thumbnailer {
    fn handle(_queue: String, deliveries: Vec<Delivery>) -> Vec<Outcome> {
        deliveries
            .iter()
            .map(|d| match work(&d.body) {
                Ok(()) => Outcome::Ack,
                Err(Failure::Transient(e)) => {
                    log::warn_with("photo job failed; retrying", &[("error", &e)]);
                    Outcome::Retry(None)
                }
                Err(Failure::Permanent(e)) => {
                    log::warn_with("photo job cannot succeed", &[("error", &e)]);
                    Outcome::Retry(Some(60))
                }
            })
            .collect()
    }
}

waypost_sdk::export_consumer!(Thumbnailer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_thumbnail_and_a_sepia_version() {
        let photo =
            DynamicImage::ImageRgba8(RgbaImage::from_pixel(800, 400, Rgba([0, 0, 255, 255])));
        let (thumbnail, sepia) = render(&png(&photo).unwrap()).unwrap();
        let thumbnail = image::load_from_memory(&thumbnail).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (256, 128));
        let sepia = image::load_from_memory(&sepia).unwrap().to_rgba8();
        let Rgba([r, g, b, _]) = *sepia.get_pixel(0, 0);
        assert!(r > b && g > b, "blue turned brownish: {r} {g} {b}");
        assert!(render(b"not an image").is_err());
    }
}
