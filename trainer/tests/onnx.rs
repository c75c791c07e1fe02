//! The ONNX export runs in another runtime (tract, pure Rust) and computes what the native
//! kernel computes.

use sesr::native::{Isa, NativeSesr, Workspace};
use sesr::weights::{CollapsedWeights, ExportedWeights, Precision};
use std::path::Path;
use tract_onnx::prelude::*;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

/// A photo's luma crop, 8-bit.
fn photo(w: usize, h: usize) -> Vec<u8> {
    let rgb = sesr::image_io::load_rgb(&repo("assets/images/chelsea.png")).unwrap();
    let y = sesr::color::y_unit(&rgb);
    let (x0, y0) = ((y.width - w) / 2, (y.height - h) / 2);
    (0..w * h).map(|i| (y.get(x0 + i % w, y0 + i / w) * 255.0).round().clamp(0.0, 255.0) as u8).collect()
}

/// `y` of the ONNX model on `src` (8-bit, `w`×`h`), rounded to 8 bits.
fn run_onnx(bytes: &[u8], src: &[u8], w: usize, h: usize) -> (Vec<usize>, Vec<u8>) {
    let model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(bytes)).unwrap();
    let model = model.into_optimized().unwrap().into_runnable().unwrap();
    let x: Tensor =
        tract_ndarray::Array4::from_shape_fn((1, 1, h, w), |(_, _, y, x)| src[y * w + x] as f32 / 255.0).into();
    let out = model.run(tvec!(x.into())).unwrap();
    let y = out[0].to_array_view::<f32>().unwrap();
    (y.shape().to_vec(), y.iter().map(|v| (v * 255.0).round() as u8).collect())
}

fn native(wts: &CollapsedWeights, src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let net = NativeSesr::with_options(wts, Precision::Fp32, Isa::best()).unwrap();
    let s = net.scale();
    let mut dst = vec![0u8; w * h * s * s];
    net.upscale(src, w, w, h, &mut dst, w * s, &mut [Workspace::new()], &sesr::pool::Pool::shared(1).unwrap());
    dst
}

fn compare(wts: &CollapsedWeights, what: &str) {
    let bytes = sesr::onnx::to_onnx(wts);
    let s = wts.cfg.scale;
    // Two sizes through one file: H and W are dynamic.
    for (w, h) in [(48, 32), (37, 21)] {
        let src = photo(w, h);
        let (shape, got) = run_onnx(&bytes, &src, w, h);
        assert_eq!(shape, vec![1, 1, h * s, w * s], "{what}");
        let want = native(wts, &src, w, h);
        let (worst, differ) = sesr::metrics::byte_diff(&got, &want);
        // float32 both: rounding-boundary differences only.
        assert!(worst <= 1 && differ * 100 < want.len(), "{what} {w}x{h}: {differ} differ, by up to {worst}");
    }
}

#[test]
fn onnx_export_runs_in_tract_like_the_native_kernel() {
    let m5 = ExportedWeights::read(&repo("models/sesr_m5_x2.pt"), false).unwrap().weights;
    compare(&m5, "M5 x2");
    let m3 = ExportedWeights::read(&repo("models/sesr_m3_x2_f12.pt"), false).unwrap().weights;
    compare(&m3, "M3 x2 f=12");
    // ×4 (two DepthToSpace in the model's order): the M5 x2 weights with a 16-channel output conv.
    let mut x4 = m5.clone();
    x4.cfg.scale = 4;
    let o = &m5.output;
    x4.output.cout = 16;
    x4.output.weight =
        (0..16).flat_map(|c| o.weight[(c % 4) * o.cin * 25..(c % 4 + 1) * o.cin * 25].to_vec()).collect();
    x4.output.bias = (0..16).map(|c| o.bias[c % 4] + 0.01 * c as f32).collect();
    compare(&x4, "x4");
}

#[test]
fn trainer_exports_a_shipped_model_as_onnx() {
    let dir = std::env::temp_dir().join(format!("sesr-onnx-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("m3.onnx");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "--format", "onnx", "--out", out.to_str().unwrap()];
        args.extend(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_trainer")).args(&args).output().unwrap()
    };
    let pt = repo("models/sesr_m3_x2.pt");
    let o = export(&[pt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wts = ExportedWeights::read(&pt, false).unwrap().weights;
    let src = photo(40, 24);
    let (_, got) = run_onnx(&std::fs::read(&out).unwrap(), &src, 40, 24);
    let (worst, _) = sesr::metrics::byte_diff(&got, &native(&wts, &src, 40, 24));
    assert!(worst <= 1, "exported file differs by {worst}");
    // An existing file is kept unless --replace.
    let o = export(&[pt.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--replace"));
    std::fs::remove_dir_all(&dir).ok();
}
