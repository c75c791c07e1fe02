//! Scores MATLAB-bicubic ×2/×4 super-resolution of every image in a folder under the SR papers'
//! protocol, and writes the bicubic upscale of the first image.
//!
//! `cargo run --release --example bicubic -- [FOLDER] [SCALE] [OUT.png]`

use sesr::color::{from_ycbcr, to_ycbcr};
use sesr::image_io::{list_images, load_rgb, save_rgb};
use sesr::protocol::{bicubic_sr, make_lr, prepare, score};
use sesr::resize::upscale_bicubic;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().map(String::as_str).unwrap_or("assets/images"));
    let scale: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let out = PathBuf::from(args.get(2).map(String::as_str).unwrap_or("out/bicubic.png"));
    let files = list_images(&dir)?;
    if files.is_empty() {
        return Err(format!("no images in {}", dir.display()).into());
    }
    println!("{:<24} {:>9} {:>8}", "image", "PSNR-Y", "SSIM-Y");
    let (mut sp, mut ss) = (0.0, 0.0);
    for f in &files {
        let pair = prepare(&load_rgb(f)?, scale);
        let (p, s) = score(&bicubic_sr(&pair.lr_y, scale), &pair.hr_y, scale);
        println!("{:<24} {p:>9.3} {s:>8.4}", f.file_name().unwrap().to_string_lossy());
        sp += p;
        ss += s;
    }
    let n = files.len() as f64;
    println!("{:<24} {:>9.3} {:>8.4}", "mean", sp / n, ss / n);

    let (_, lr) = make_lr(&load_rgb(&files[0])?, scale);
    let [y, cb, cr] = to_ycbcr(&lr);
    let up = from_ycbcr(&upscale_bicubic(&y, scale), &upscale_bicubic(&cb, scale), &upscale_bicubic(&cr, scale));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    save_rgb(&up, &out)?;
    println!("wrote {} ({}x{})", out.display(), up.width(), up.height());
    Ok(())
}
