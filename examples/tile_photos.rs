//! Turns large photos (wallpapers of 2–5 megapixels) into training images of the size of the
//! usual SR training sets (BSD200's are 481×321): each photo is reduced by `FACTOR` with a
//! Lanczos-3 filter, which also averages away most of its JPEG artefacts, and cut into
//! non-overlapping `TILE`×`TILE` tiles (the remainder at the right and bottom is dropped). The
//! trainer draws the same number of crops from every image, so tiles give a large photo the
//! weight of its area instead of that of one small picture.
//!
//! `cargo run --release --example tile_photos -- OUT_DIR PHOTO... [--factor 2] [--tile 400]`
//! (used by `scripts/extra-photos.sh`)

use image::imageops::FilterType;
use std::path::{Path, PathBuf};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |name: &str, default: u32| -> u32 {
        match args.iter().position(|a| a == name) {
            Some(i) => {
                let v = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} needs a number"));
                args.drain(i..i + 2);
                v
            }
            None => default,
        }
    };
    let factor = take("--factor", 2).max(1);
    let tile = take("--tile", 400).max(64);
    let (out, photos) = args.split_first().expect("usage: tile_photos OUT_DIR PHOTO... [--factor N] [--tile N]");
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).unwrap();
    let mut tiles = 0;
    for p in photos {
        let p = Path::new(p);
        let img = match image::open(p) {
            Ok(i) => i.to_rgb8(),
            Err(e) => {
                eprintln!("skipped {}: {e}", p.display());
                continue;
            }
        };
        let (w, h) = (img.width() / factor, img.height() / factor);
        let small = if factor > 1 { image::imageops::resize(&img, w, h, FilterType::Lanczos3) } else { img };
        let stem = p.file_stem().unwrap().to_string_lossy();
        // Wallpaper packs name the picture by its folder (…/Path/contents/images/1920x1080.jpg).
        let name = if stem.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            p.ancestors()
                .nth(3)
                .and_then(|a| a.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(stem.into_owned())
        } else {
            stem.into_owned()
        };
        for ty in 0..h / tile {
            for tx in 0..w / tile {
                let t = image::imageops::crop_imm(&small, tx * tile, ty * tile, tile, tile).to_image();
                t.save(out.join(format!("{name}_{ty}{tx}.png"))).unwrap();
                tiles += 1;
            }
        }
    }
    println!("{tiles} tiles of {tile}x{tile} in {}", out.display());
}
