//! Makes the demo clip's frames: a slow pan across a low-resolution (MATLAB bicubic ×½) version
//! of a shipped photo, so that the clip is real image content with a known HR original.
//!
//! `cargo run --release --example make_clip -- assets/images/coffee.png OUT_DIR [W H FRAMES]`
//! then encode, e.g. `gst-launch-1.0 multifilesrc location=OUT_DIR/%03d.png index=0
//! caps=image/png,framerate=25/1 ! pngdec ! videoconvert ! x264enc ! mp4mux ! filesink location=clip.mp4`.

use sesr::image_io::{load_rgb, save_rgb};
use sesr::protocol::make_lr;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let src = PathBuf::from(a.first().ok_or("usage: make_clip PHOTO OUT_DIR [W H FRAMES]")?);
    let out = PathBuf::from(a.get(1).ok_or("usage: make_clip PHOTO OUT_DIR [W H FRAMES]")?);
    let w: usize = a.get(2).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let h: usize = a.get(3).map(|s| s.parse()).transpose()?.unwrap_or(144);
    let n: usize = a.get(4).map(|s| s.parse()).transpose()?.unwrap_or(75);
    std::fs::create_dir_all(&out)?;
    let (_, lr) = make_lr(&load_rgb(&src)?, 2);
    if lr.width() < w || lr.height() < h {
        return Err(
            format!("{}: {}x{} after x1/2 is smaller than {w}x{h}", src.display(), lr.width(), lr.height()).into()
        );
    }
    let (dx, dy) = (lr.width() - w, lr.height() - h);
    for i in 0..n {
        let t = i as f64 / (n.max(2) - 1) as f64;
        let (x0, y0) = ((dx as f64 * t).round() as usize, (dy as f64 * t).round() as usize);
        let frame = lr.map_planes(|p| p.crop(x0, y0, w, h));
        save_rgb(&frame, &out.join(format!("{i:03}.png")))?;
    }
    println!("wrote {n} frames of {w}x{h} to {}", out.display());
    Ok(())
}
