//! Every shipped model against bicubic on the bundled photos (`assets/images`, public domain):
//! the spec's protocol (MATLAB bicubic LR, PSNR-Y with a `scale`-pixel border), run as the
//! element runs it — the native kernel on 8-bit Y — in float32 and in int8 from the sidecar's
//! calibration. A model that was exported wrongly, collapsed wrongly or calibrated wrongly
//! falls to (or below) bicubic; these are real photos the models never trained on.

use sesr::engine::{Backend, Engine, EngineOptions};
use sesr::image_io::load_rgb;
use sesr::plane::Plane;
use sesr::protocol::{bicubic_sr, prepare, score};
use sesr::weights::Precision;
use std::path::PathBuf;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Mean PSNR-Y gain over bicubic on the bundled photos, and the model's mean PSNR-Y.
fn gain(model: &str, precision: Precision) -> (f64, f64) {
    let pt = repo(&format!("models/{model}.pt"));
    let opts = EngineOptions { location: Some(&pt), backend: Backend::Native, precision, ..Default::default() };
    let mut e = Engine::load_with(&opts).unwrap_or_else(|err| panic!("{model} {precision:?}: {err}"));
    let s = e.scale;
    let (mut g, mut p, mut n) = (0.0, 0.0, 0);
    for photo in ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"] {
        let pair = prepare(&load_rgb(&repo(&format!("assets/images/{photo}"))).unwrap(), s);
        let (w, h) = (pair.lr_y.width, pair.lr_y.height);
        let src: Vec<u8> = pair.lr_y.data.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect();
        let mut dst = vec![0u8; w * h * s * s];
        e.upscale_luma(&src, w, w, h, &mut dst, w * s).unwrap();
        let sr = Plane::from_vec(w * s, h * s, dst.iter().map(|&v| v as f32 / 255.0).collect());
        let (model_psnr, _) = score(&sr, &pair.hr_y, s);
        let (bicubic_psnr, _) = score(&bicubic_sr(&pair.lr_y, s), &pair.hr_y, s);
        eprintln!("{model} {precision:?} {photo}: {model_psnr:.3} dB, bicubic {bicubic_psnr:.3} dB");
        g += model_psnr - bicubic_psnr;
        p += model_psnr;
        n += 1;
    }
    (g / n as f64, p / n as f64)
}

#[test]
fn shipped_models_beat_bicubic_on_photos_in_fp32_and_int8() {
    // Minimum mean gains: about half of what the models measured when shipped (+2.25, +2.05,
    // +1.91, +1.74 and +1.12 dB on the four photos; int8 within 0.015 dB of fp32), far above
    // what a damaged model keeps.
    for (model, min_gain) in
        [("sesr_m5_x2", 0.6), ("sesr_m3_x2", 0.5), ("sesr_m3_x2_f12", 0.4), ("sesr_m3_x2_f8", 0.3), ("sesr_m5_x4", 0.4)]
    {
        let (g32, p32) = gain(model, Precision::Fp32);
        eprintln!("{model}: fp32 mean {p32:.3} dB, +{g32:.3} dB over bicubic");
        assert!(g32 >= min_gain, "{model}: fp32 gains only {g32:.3} dB over bicubic (expected ≥ {min_gain})");
        let calibrated = std::fs::read_to_string(repo(&format!("models/{model}.json"))).unwrap().contains("\"int8\"");
        if calibrated {
            let (g8, p8) = gain(model, Precision::Int8);
            eprintln!("{model}: int8 mean {p8:.3} dB, +{g8:.3} dB over bicubic");
            assert!(g32 - g8 <= 0.05, "{model}: int8 loses {:.3} dB against fp32 (expected ≤ 0.05)", g32 - g8);
        }
    }
}
