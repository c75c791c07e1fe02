//! The ONNX export runs in another runtime (ONNX Runtime, from the venv `scripts/setup.sh`
//! makes) and computes what the native kernel computes.

use sesr::native::{Isa, NativeSesr, Workspace};
use sesr::weights::{CollapsedWeights, ExportedWeights, Precision};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

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

/// Runs an ONNX file on 8-bit luma from stdin (`Y/255`, NCHW float32) and writes the output's
/// shape on one line, then its samples `·255` rounded half away from zero and saturated to 8
/// bits (as Rust's `(v * 255.0).round() as u8`).
const ORT_RUN: &str = r#"
import sys, numpy as np, onnxruntime as ort
path, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.frombuffer(sys.stdin.buffer.read(), dtype=np.uint8).reshape(1, 1, h, w).astype(np.float32) / np.float32(255)
s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
y = s.run(None, {s.get_inputs()[0].name: x})[0]
sys.stdout.buffer.write((" ".join(map(str, y.shape)) + "\n").encode())
v = y * np.float32(255)
sys.stdout.buffer.write(np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), 0, 255).astype(np.uint8).tobytes())
"#;

/// The venv's Python (`VIRTUAL_ENV`, which `target/sesr-env.sh` sets), else `python3`.
fn python() -> std::path::PathBuf {
    std::env::var_os("VIRTUAL_ENV").map_or("python3".into(), |v| Path::new(&v).join("bin/python"))
}

/// `y` of the ONNX file `path` in ONNX Runtime on `src` (8-bit, `w`×`h`), rounded to 8 bits.
fn run_onnx(path: &Path, src: &[u8], w: usize, h: usize) -> (Vec<usize>, Vec<u8>) {
    let py = python();
    let mut child = Command::new(&py)
        .args(["-c", ORT_RUN, path.to_str().unwrap(), &w.to_string(), &h.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh makes the venv)", py.display()));
    child.stdin.take().unwrap().write_all(src).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "ONNX Runtime in {} failed (scripts/setup.sh installs it): {err}", py.display());
    let nl = o.stdout.iter().position(|&b| b == b'\n').expect("shape line");
    let shape = std::str::from_utf8(&o.stdout[..nl]).unwrap().split(' ').map(|d| d.parse().unwrap()).collect();
    (shape, o.stdout[nl + 1..].to_vec())
}

fn native(wts: &CollapsedWeights, src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let net = NativeSesr::with_options(wts, Precision::Fp32, Isa::best()).unwrap();
    let s = net.scale();
    let mut dst = vec![0u8; w * h * s * s];
    net.upscale(src, w, w, h, &mut dst, w * s, &mut [Workspace::new()], &sesr::pool::Pool::shared(1).unwrap());
    dst
}

fn compare(wts: &CollapsedWeights, what: &str) {
    let name = format!("sesr-onnx-{}-{}.onnx", std::process::id(), what.replace([' ', '='], "_"));
    let file = std::env::temp_dir().join(name);
    std::fs::write(&file, sesr::onnx::to_onnx(wts)).unwrap();
    let s = wts.cfg.scale;
    // Two sizes through one file: H and W are dynamic.
    for (w, h) in [(48, 32), (37, 21)] {
        let src = photo(w, h);
        let (shape, got) = run_onnx(&file, &src, w, h);
        assert_eq!(shape, vec![1, 1, h * s, w * s], "{what}");
        let want = native(wts, &src, w, h);
        let (worst, differ) = sesr::metrics::byte_diff(&got, &want);
        // float32 both: rounding-boundary differences only.
        assert!(worst <= 1 && differ * 100 < want.len(), "{what} {w}x{h}: {differ} differ, by up to {worst}");
    }
    std::fs::remove_file(&file).ok();
}

#[test]
fn onnx_export_runs_in_onnx_runtime_like_the_native_kernel() {
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
    let (_, got) = run_onnx(&out, &src, 40, 24);
    let (worst, _) = sesr::metrics::byte_diff(&got, &native(&wts, &src, 40, 24));
    assert!(worst <= 1, "exported file differs by {worst}");
    // An existing file is kept unless --replace.
    let o = export(&[pt.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--replace"));
    std::fs::remove_dir_all(&dir).ok();
}
