//! Bicubic ×2 under the spec's protocol against published measurements (spec §5):
//! PSNR-Y Set5 33.68 ± 0.02, Set14 30.33 ± 0.03. Runs when the benchmark images are present
//! (`$SESR_DATA_DIR/val` or `../shared/data/val`); skipped with a message otherwise.

use sesr::image_io::{list_images, load_rgb};
use sesr::protocol::{bicubic_sr, prepare, score};
use std::path::PathBuf;

fn val_dir() -> Option<PathBuf> {
    let base = std::env::var_os("SESR_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let v = base.join("val");
    v.join("Set5").is_dir().then_some(v)
}

fn bicubic_psnr(set: &str) -> (f64, f64, usize) {
    let dir = val_dir().unwrap().join(set);
    let files = list_images(&dir).unwrap();
    let (mut p, mut s) = (0.0, 0.0);
    for f in &files {
        let pair = prepare(&load_rgb(f).unwrap(), 2);
        let (psnr, ssim) = score(&bicubic_sr(&pair.lr_y, 2), &pair.hr_y, 2);
        p += psnr;
        s += ssim;
    }
    let n = files.len();
    (p / n as f64, s / n as f64, n)
}

#[test]
fn bicubic_x2_matches_the_literature() {
    if val_dir().is_none() {
        eprintln!("SKIPPED: no benchmark images (set SESR_DATA_DIR or provide ../shared/data/val)");
        return;
    }
    let (p5, s5, n5) = bicubic_psnr("Set5");
    let (p14, s14, n14) = bicubic_psnr("Set14");
    eprintln!("bicubic x2: Set5 ({n5}) PSNR-Y {p5:.3} SSIM {s5:.4}; Set14 ({n14}) PSNR-Y {p14:.3} SSIM {s14:.4}");
    assert_eq!((n5, n14), (5, 14));
    assert!((p5 - 33.68).abs() <= 0.02, "Set5 bicubic PSNR-Y {p5:.3}, literature 33.68 ± 0.02");
    assert!((p14 - 30.33).abs() <= 0.03, "Set14 bicubic PSNR-Y {p14:.3}, literature 30.33 ± 0.03");
}
