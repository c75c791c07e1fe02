//! Throughput benchmark of `sesrupscale` (a command, not a test). One table per run:
//! for each model and input size, the element in a real pipeline (frames prepared up front) with
//! its default (native) backend and with `backend=libtorch`, the model alone on the same Y plane
//! (native kernel in fp32 and bf16; libtorch whole-frame forward), GStreamer's bicubic (`videoscale
//! method=catrom`) at the same sizes, achieved GFLOP/s against this machine's sgemm measured in
//! the same run, the peak resident memory of the element's native run (each row in its own
//! process, the element first), and the element with `precision=int8` (the integer kernel).
//!
//! `cargo run --release -p gst-plugin-sesr --example bench -- [--frames N] [--models m3,m5,other.pt]
//!  [--sizes 640x360,960x540,1280x720,1920x1080] [--threads N]`

use gst::prelude::*;
use std::time::Instant;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

/// A model given by preset name (`m3`, `m5`: the shipped ×2 models) or by a `.pt` path.
fn model_path(name: &str) -> String {
    if name.ends_with(".pt") {
        name.to_string()
    } else {
        format!("{ROOT}/models/sesr_{name}_x2.pt")
    }
}

/// The model's float32 weights for the native kernel (`X.safetensors` + `X.json` beside `X.pt`).
fn native_model(name: &str, precision: sesr::model::Precision) -> sesr::native::NativeSesr {
    let exported = sesr::weights::ExportedWeights::read(std::path::Path::new(&model_path(name)), false).unwrap();
    sesr::native::NativeSesr::with_precision(&exported.weights, precision).unwrap()
}

/// Median fps of the native kernel alone on a `w`×`h` luma plane.
fn native_fps(name: &str, w: usize, h: usize, frames: usize, threads: usize, precision: sesr::model::Precision) -> f64 {
    if precision == sesr::model::Precision::Bf16 && !sesr::native::cpu_supports_bf16() {
        return f64::NAN;
    }
    let net = native_model(name, precision);
    let src: Vec<u8> = (0..w * h).map(|i| ((i * 7) % 251) as u8).collect();
    let mut dst = vec![0u8; w * h * 4];
    let pool = sesr::pool::Pool::shared(threads).unwrap();
    let mut ws: Vec<_> = (0..pool.threads()).map(|_| sesr::native::Workspace::new()).collect();
    let mut times = Vec::new();
    for i in 0..frames {
        let t0 = Instant::now();
        net.upscale(&src, w, w, h, &mut dst, 2 * w, &mut ws, &pool);
        if i >= 1 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    1.0 / times[times.len() / 2]
}

/// MACs per input pixel: the collapsed weight count, from the preset or the export sidecar.
fn macs_per_px(name: &str) -> f64 {
    if let Ok(p) = name.parse::<sesr::Preset>() {
        return p.config(2).collapsed_weights() as f64;
    }
    let side = std::path::Path::new(&model_path(name)).with_extension("json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&side).unwrap_or_default()).unwrap_or_default();
    v["collapsed_weights"].as_f64().unwrap_or(f64::NAN)
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Frames per second of `appsrc ! <middle> ! fakesink` over `frames` prepared NV12 frames,
/// timed from the 2nd output buffer to the last (the first includes start-up).
fn pipeline_fps(middle: &str, w: usize, h: usize, frames: usize) -> f64 {
    let desc = format!(
        "appsrc name=src is-live=false format=time caps=video/x-raw,format=NV12,width={w},height={h},framerate=30/1 \
         ! {middle} ! fakesink name=sink sync=false"
    );
    let p = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    let src = p.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    src.set_max_bytes(0);
    let sink = p.by_name("sink").unwrap();
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let t2 = times.clone();
    sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        t2.lock().unwrap().push(Instant::now());
        gst::PadProbeReturn::Ok
    });
    // A real picture's luma/chroma content does not change the work; a gradient will do.
    let mut data = vec![0u8; w * h * 3 / 2];
    for (i, v) in data.iter_mut().enumerate() {
        *v = ((i * 7) % 251) as u8;
    }
    let buffers: Vec<gst::Buffer> = (0..frames)
        .map(|i| {
            let mut b = gst::Buffer::from_slice(data.clone());
            b.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
            b
        })
        .collect();
    p.set_state(gst::State::Playing).unwrap();
    for b in buffers {
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let bus = p.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    let t = times.lock().unwrap();
    assert_eq!(t.len(), frames, "every frame came out");
    (frames - 2) as f64 / (t[frames - 1] - t[1]).as_secs_f64()
}

fn model_fps(model: &str, w: usize, h: usize, frames: usize) -> f64 {
    let m = tch::CModule::load(model).unwrap();
    let x = tch::Tensor::rand([1, 1, h as i64, w as i64], (tch::Kind::Float, tch::Device::Cpu));
    let mut times = Vec::new();
    for i in 0..frames {
        let t0 = Instant::now();
        let y = tch::no_grad(|| m.forward_ts(&[&x])).unwrap();
        let _ = y.size();
        if i >= 1 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    1.0 / times[times.len() / 2]
}

fn sgemm_gflops() -> f64 {
    let n = 4096i64;
    let a = tch::Tensor::rand([n, n], (tch::Kind::Float, tch::Device::Cpu));
    let b = tch::Tensor::rand([n, n], (tch::Kind::Float, tch::Device::Cpu));
    let _ = a.mm(&b);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = Instant::now();
        let c = a.mm(&b);
        let _ = c.size();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

fn row(model: &str, w: usize, h: usize, frames: usize, threads: usize) {
    gst::init().unwrap();
    gstsesr::plugin_register_static().unwrap();
    let path = model_path(model);
    let el = pipeline_fps(&format!("sesrupscale model-location={path} num-threads={threads}"), w, h, frames);
    let rss = peak_rss_mib();
    let el_int8 =
        pipeline_fps(&format!("sesrupscale model-location={path} num-threads={threads} precision=int8"), w, h, frames);
    let el_torch = pipeline_fps(&format!("sesrupscale model-location={path} backend=libtorch"), w, h, frames);
    let native = native_fps(model, w, h, frames, threads, sesr::model::Precision::Fp32);
    let native_bf16 = native_fps(model, w, h, frames, threads, sesr::model::Precision::Bf16);
    let alone = model_fps(&path, w, h, frames);
    let catrom = pipeline_fps(
        &format!("videoscale method=catrom ! video/x-raw,width={},height={}", 2 * w, 2 * h),
        w,
        h,
        frames.max(10),
    );
    println!("ROW {el} {native} {el_torch} {alone} {catrom} {rss} {native_bf16} {el_int8}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: i32 = arg(&args, "--threads", "0").parse().unwrap();
    if threads > 0 {
        tch::set_num_threads(threads);
    }
    let frames: usize = arg(&args, "--frames", "12").parse().unwrap();
    if let Some(i) = args.iter().position(|a| a == "--row") {
        let (m, w, h) = (&args[i + 1], args[i + 2].parse().unwrap(), args[i + 3].parse().unwrap());
        row(m, w, h, frames, threads.max(0) as usize);
        return;
    }
    let models = arg(&args, "--models", "m3,m5");
    let sizes = arg(&args, "--sizes", "640x360,960x540,1280x720,1920x1080");
    let sgemm = sgemm_gflops();
    println!(
        "sesrupscale x2, NV12, {frames} frames per cell, libtorch {} threads, native {} threads; sgemm 4096^2: \
         {sgemm:.1} GFLOP/s",
        tch::get_num_threads(),
        if threads > 0 { threads as usize } else { sesr::available_threads() }
    );
    println!(
        "| model | input | element fps | native alone fps | element/native | native GFLOP/s | % of sgemm | \
         element libtorch fps | libtorch alone fps | libtorch GFLOP/s | element/libtorch element | catrom fps | \
         peak RSS MiB | native bf16 alone fps | element int8 fps | element int8 / element |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in models.split(',') {
        for s in sizes.split(',') {
            let (w, h) = s.split_once('x').unwrap();
            let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args(["--row", m, &w.to_string(), &h.to_string(), "--frames", &frames.to_string()]);
            if threads > 0 {
                cmd.args(["--threads", &threads.to_string()]);
            }
            let out = cmd.output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.starts_with("ROW "))
                .unwrap_or_else(|| panic!("row failed: {text} {}", String::from_utf8_lossy(&out.stderr)));
            let v: Vec<f64> = line[4..].split_whitespace().map(|x| x.parse().unwrap()).collect();
            let (el, native, el_torch, alone, catrom, rss, bf16, int8) =
                (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
            let gflop = 2.0 * macs_per_px(m) * (w * h) as f64 / 1e9;
            println!(
                "| {} | {w}x{h} | {el:.2} | {native:.2} | {:.2} | {:.1} | {:.0}% | {el_torch:.2} | {alone:.2} | \
                 {:.1} | {:.2} | {catrom:.1} | {rss:.0} | {bf16:.2} | {int8:.2} | {:.2} |",
                std::path::Path::new(m).file_stem().unwrap().to_string_lossy(),
                el / native,
                gflop * native,
                100.0 * gflop * native / sgemm,
                gflop * alone,
                el / el_torch,
                int8 / el,
            );
        }
    }
}
