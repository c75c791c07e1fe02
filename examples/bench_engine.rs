//! Throughput of the core's engine without GStreamer (a command, not a test): every native
//! kernel variant this CPU runs, side by side with the libtorch backend on the same luma plane
//! and with this machine's sgemm measured in the same run. Also runs where GStreamer is not
//! installed (e.g. the GPU machine: `--device cuda` times the libtorch backend there).
//!
//! `cargo run --release --example bench_engine -- [--models m5,m3|x.pt] [--sizes 960x540,1920x1080]
//!  [--frames N] [--threads N] [--device cpu|cuda] [--variants avx512,avx2,portable]`
//!
//! Columns: fps of the engine (8-bit Y in, 8-bit Y out, the element's luma path: median over the
//! frames after a warm-up), achieved GFLOP/s (2 × MACs × pixels × fps) and its share of the
//! same-run 4096² sgemm (libtorch/MKL, same thread count); the libtorch backend as the element
//! runs it (stripes) and the whole frame in one forward; the ratio native/libtorch backend.

use sesr::engine::{Backend, Device, Engine, EngineOptions};
use sesr::native::Isa;
use std::path::PathBuf;
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn model_path(name: &str) -> PathBuf {
    if name.ends_with(".pt") {
        PathBuf::from(name)
    } else {
        PathBuf::from(format!("{ROOT}/models/sesr_{name}_x2.pt"))
    }
}

/// Median frames per second of `frame` over `frames` calls, after one warm-up call.
fn median_fps(frames: usize, mut frame: impl FnMut()) -> f64 {
    let mut times = Vec::new();
    for i in 0..=frames {
        let t0 = Instant::now();
        frame();
        if i >= 1 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    1.0 / times[times.len() / 2]
}

/// Median fps of `engine` on a `w`×`h` plane.
fn engine_fps(engine: &mut Engine, w: usize, h: usize, frames: usize) -> f64 {
    let src = sesr::engine::texture(w, h);
    let s = engine.scale;
    let mut dst = vec![0u8; w * h * s * s];
    median_fps(frames, || engine.upscale_luma(&src, w, w, h, &mut dst, w * s).unwrap())
}

/// The integer kernels this CPU runs: `(isa, plain)` — the variant's best block, and with
/// `plain` the AVX2 block without VNNI — and their block names.
fn int8_blocks() -> Vec<(Isa, bool, &'static str)> {
    let wts = sesr::weights::ExportedWeights::read(&model_path("m3"), false).unwrap().weights;
    let probe = sesr::engine::texture(64, 48);
    let acts = sesr::native::int8::calibrate(&wts, &[(&probe[..], 64, 48)]);
    let mut v = Vec::new();
    for isa in [Isa::Avx512, Isa::Avx2].into_iter().filter(|i| i.available()) {
        let net = sesr::native::NativeSesr::with_int8(&wts, &acts, isa).unwrap();
        let name = net.int8_block().unwrap_or("scalar");
        if !v.iter().any(|&(_, _, n)| n == name) {
            v.push((isa, false, name));
        }
        if name.contains("vnni") && !v.iter().any(|&(_, _, n)| n == "avx2") {
            v.push((isa, true, "avx2"));
        }
    }
    if v.is_empty() {
        v.push((Isa::Portable, false, "scalar"));
    }
    v
}

/// Median fps of an integer kernel (activation ranges calibrated on the probe texture:
/// calibration changes the grids, not the work) on a `w`×`h` plane.
fn int8_fps(pt: &std::path::Path, w: usize, h: usize, frames: usize, threads: usize, isa: Isa, plain: bool) -> f64 {
    let wts = sesr::weights::ExportedWeights::read(pt, false).unwrap().weights;
    let probe = sesr::engine::texture(64, 48);
    let acts = sesr::native::int8::calibrate(&wts, &[(&probe[..], 64, 48)]);
    let mut net = sesr::native::NativeSesr::with_int8(&wts, &acts, isa).unwrap();
    if plain {
        net = net.without_vnni();
    }
    let pool = sesr::pool::Pool::shared(threads).unwrap();
    let mut ws: Vec<_> = (0..pool.threads()).map(|_| sesr::native::Workspace::new()).collect();
    let src = sesr::engine::texture(w, h);
    let s = net.scale();
    let mut dst = vec![0u8; w * h * s * s];
    median_fps(frames, || net.upscale(&src, w, w, h, &mut dst, w * s, &mut ws, &pool))
}

fn sgemm_gflops(device: tch::Device) -> f64 {
    let n = 4096i64;
    let a = tch::Tensor::rand([n, n], (tch::Kind::Float, device));
    let b = tch::Tensor::rand([n, n], (tch::Kind::Float, device));
    let _ = a.mm(&b).sum(tch::Kind::Float).double_value(&[]);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = Instant::now();
        let _ = a.mm(&b).sum(tch::Kind::Float).double_value(&[]);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = arg(&args, "--threads", "0").parse().expect("--threads N");
    let threads = if threads == 0 { sesr::available_threads() } else { threads };
    tch::set_num_threads(threads as i32);
    let frames: usize = arg(&args, "--frames", "8").parse().expect("--frames N");
    let device = Device::parse(&arg(&args, "--device", "cpu")).unwrap();
    let variants: Vec<Isa> = arg(&args, "--variants", "avx512,avx2,portable")
        .split(',')
        .map(|v| v.parse().unwrap())
        .filter(|i: &Isa| {
            if !i.available() {
                println!("(the {i} kernel: not available on this CPU, skipped)");
            }
            i.available()
        })
        .collect();
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model_name = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .map(|l| l.split(':').nth(1).unwrap_or("").trim())
        .unwrap_or("?");
    let flags: Vec<&str> = ["avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx2", "fma"]
        .into_iter()
        .filter(|f| cpu.split_whitespace().any(|w| w == *f))
        .collect();
    let sgemm = sgemm_gflops(device.into());
    println!(
        "engine, luma only (x2 models), {frames} frames per cell, {threads} threads; CPU: {model_name} [{}]; \
         sgemm 4096^2 on {device:?}: {sgemm:.1} GFLOP/s",
        flags.join(" ")
    );
    print!("| model | input |");
    for v in &variants {
        print!(" {v} fps | {v} GFLOP/s | {v} % sgemm |");
    }
    let blocks = int8_blocks();
    print!(" libtorch backend fps | libtorch whole-frame fps | libtorch GFLOP/s | best native / libtorch backend |");
    for (_, _, name) in &blocks {
        print!(" int8 {name} fps | int8 {name} / best fp32 |");
    }
    println!();
    println!("|---|---|{}---|---|---|---|{}", "---|---|---|".repeat(variants.len()), "---|---|".repeat(blocks.len()));
    for m in arg(&args, "--models", "m5,m3").split(',') {
        let pt = model_path(m);
        let base = EngineOptions { location: Some(&pt), device, threads, ..Default::default() };
        for size in arg(&args, "--sizes", "640x360,960x540,1280x720,1920x1080").split(',') {
            let (w, h) = size.split_once('x').expect("WxH");
            let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
            let mut row = format!("| {m} | {w}x{h} |");
            let mut best: f64 = 0.0;
            let mut macs = f64::NAN;
            for &isa in &variants {
                if device != Device::Cpu {
                    row += " - | - | - |";
                    continue;
                }
                let mut e =
                    Engine::load_with(&EngineOptions { backend: Backend::Native, isa: Some(isa), ..base }).unwrap();
                macs = e.macs_per_pixel().unwrap() as f64;
                let fps = engine_fps(&mut e, w, h, frames);
                let gf = 2.0 * macs * (w * h) as f64 * fps / 1e9;
                best = best.max(fps);
                row += &format!(" {fps:.2} | {gf:.1} | {:.0}% |", 100.0 * gf / sgemm);
            }
            let mut lt = Engine::load_with(&EngineOptions { backend: Backend::Libtorch, ..base }).unwrap();
            let lt_fps = engine_fps(&mut lt, w, h, frames);
            lt.stripe_rows = h;
            let whole = engine_fps(&mut lt, w, h, frames.min(4));
            let gf = 2.0 * macs * (w * h) as f64 * lt_fps / 1e9;
            row += &format!(" {lt_fps:.2} | {whole:.2} | {gf:.1} | {:.2} |", best / lt_fps);
            for &(isa, plain, _) in &blocks {
                let q = int8_fps(&pt, w, h, frames, threads, isa, plain);
                row += &format!(" {q:.2} | {:.2} |", q / best);
            }
            println!("{row}");
        }
    }
}
