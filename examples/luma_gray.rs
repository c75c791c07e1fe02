//! Packs training photos compactly for a machine they cannot travel to in full (the GPU machine
//! takes 64 MiB): each image becomes an 8-bit grey PNG whose grey level `v` gives back its luma
//! through the trainer's own conversion (`Y = 16 + 219 v / 255` for R = G = B = v), so training
//! on the packed folder sees the photo's Y to within 0.43 of a level (the rounding of `v`).
//! Checked here on every file by reading it back.
//!
//! `cargo run --release --example luma_gray -- OUT_DIR IN_DIR...` (writes OUT_DIR/<folder name>/)

use sesr::color::y_unit;
use sesr::image_io::{list_images, load_rgb};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, dirs) = args.split_first().expect("usage: luma_gray OUT_DIR IN_DIR...");
    let mut worst = 0f32;
    let mut n = 0;
    for d in dirs {
        let d = std::path::Path::new(d);
        let dst = std::path::Path::new(out).join(d.file_name().expect("a folder name"));
        std::fs::create_dir_all(&dst).unwrap();
        for f in list_images(d).unwrap() {
            let y = y_unit(&load_rgb(&f).unwrap());
            let img = image::GrayImage::from_fn(y.width as u32, y.height as u32, |x, r| {
                let v = (y.data[r as usize * y.width + x as usize] * 255.0 - 16.0) * 255.0 / 219.0;
                image::Luma([v.round().clamp(0.0, 255.0) as u8])
            });
            let p = dst.join(f.file_stem().unwrap()).with_extension("png");
            img.save(&p).unwrap();
            let back = y_unit(&load_rgb(&p).unwrap());
            for (a, b) in back.data.iter().zip(&y.data) {
                worst = worst.max((a - b).abs() * 255.0);
            }
            n += 1;
        }
    }
    println!("{n} images packed into {out}; largest luma change {worst:.3} levels");
    assert!(worst <= 0.44, "packing changed luma by more than the rounding");
}
