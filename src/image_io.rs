//! Reading and writing images as [`RgbPlanes`].

use crate::plane::{Plane, RgbPlanes};
use crate::Error;
use std::path::Path;

/// File extensions recognised as images (lower case).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "tif"];

/// Whether the path has an image extension.
pub fn is_image_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// The image files directly inside `dir`, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
    let mut v: Vec<_> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file() && is_image_path(p)).collect();
    v.sort();
    Ok(v)
}

/// Converts a decoded image (RGB, grey, with or without alpha, any bit depth) to 8-bit RGB planes.
pub fn from_dynamic(img: &image::DynamicImage) -> RgbPlanes {
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let (mut r, mut g, mut b) = (Plane::new(w, h), Plane::new(w, h), Plane::new(w, h));
    for (i, px) in rgb.pixels().enumerate() {
        r.data[i] = px[0] as f32;
        g.data[i] = px[1] as f32;
        b.data[i] = px[2] as f32;
    }
    RgbPlanes { r, g, b }
}

/// Loads an image file as 8-bit RGB planes (grey images are replicated to R = G = B).
pub fn load_rgb(path: &Path) -> Result<RgbPlanes, Error> {
    let img = image::ImageReader::open(path)
        .map_err(|e| Error::Io { path: path.display().to_string(), source: e })?
        .with_guessed_format()
        .map_err(|e| Error::Io { path: path.display().to_string(), source: e })?
        .decode()
        .map_err(|e| Error::Image { path: path.display().to_string(), reason: e.to_string() })?;
    Ok(from_dynamic(&img))
}

/// 8-bit RGB image (rounded, saturated) from planes.
pub fn to_rgb8(rgb: &RgbPlanes) -> image::RgbImage {
    let (w, h) = (rgb.width(), rgb.height());
    let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        image::Rgb([q(rgb.r.data[i]), q(rgb.g.data[i]), q(rgb.b.data[i])])
    })
}

/// 8-bit grey image from a plane with samples in [0, 1].
pub fn unit_plane_to_luma8(p: &Plane) -> image::GrayImage {
    image::GrayImage::from_fn(p.width as u32, p.height as u32, |x, y| {
        image::Luma([(p.get(x as usize, y as usize).clamp(0.0, 1.0) * 255.0).round() as u8])
    })
}

/// Saves 8-bit RGB planes; the format follows the extension. Written to a temporary file and
/// renamed, so a reader never sees half a file.
pub fn save_rgb(rgb: &RgbPlanes, path: &Path) -> Result<(), Error> {
    let img = to_rgb8(rgb);
    let tmp = tmp_sibling(path);
    let fmt = image::ImageFormat::from_path(path)
        .map_err(|e| Error::Image { path: path.display().to_string(), reason: e.to_string() })?;
    img.save_with_format(&tmp, fmt)
        .map_err(|e| Error::Image { path: path.display().to_string(), reason: e.to_string() })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })
}

/// `dir/.name.tmp` beside `path`.
pub fn tmp_sibling(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_corrupt_file() {
        let dir = std::env::temp_dir().join(format!("sesr-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = Plane::from_fn(7, 5, |x, y| (x * 30 + y * 3) as f32);
        let rgb = RgbPlanes { r: p.clone(), g: p.map(|v| 255.0 - v), b: Plane::filled(7, 5, 9.0) };
        let path = dir.join("a.png");
        save_rgb(&rgb, &path).unwrap();
        assert_eq!(load_rgb(&path).unwrap(), rgb);
        assert_eq!(list_images(&dir).unwrap(), vec![path.clone()]);

        let bad = dir.join("bad.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let e = load_rgb(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.png"), "{e}");
        let missing = load_rgb(&dir.join("missing.png")).unwrap_err().to_string();
        assert!(missing.contains("missing.png"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
