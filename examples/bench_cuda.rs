//! GPU timing of the model path without GStreamer (`../shared/docs/gpu.md`; a command, not a
//! test): the collapsed model on an 8-bit luma plane with libtorch on a CUDA device, in float32
//! and float16, the whole frame and in stripes, through page-locked host buffers with
//! non-blocking copies. Prints upload, model, download and total milliseconds (CUDA
//! synchronised after each phase, median over the frames after a warm-up), the total without
//! the per-phase synchronisation, and the engine as the element runs it; then the same frame on
//! this machine's CPU (native kernel, libtorch) for reference.
//!
//! `cargo run --release --example bench_cuda -- [--model models/sesr_m5_x2.pt] [--size 1920x1080]
//!  [--frames 50] [--stripes 4] [--device cuda]`

use sesr::engine::{Backend, Device, Engine, EngineOptions};
use sesr::model::CollapsedSesr;
use std::path::PathBuf;
use std::time::Instant;
use tch::{CModule, Kind, TchError, Tensor};

/// The network: the exported TorchScript file (what the element runs), or the collapsed model
/// run eagerly in another precision (TorchScript keeps the traced weights as float32 constants,
/// so a loaded module cannot be cast).
enum Net {
    Script(CModule),
    Eager(CollapsedSesr),
}

impl Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        match self {
            Net::Script(m) => m.forward_ts(&[x]),
            Net::Eager(m) => {
                let x = x.shallow_clone();
                let m = std::panic::AssertUnwindSafe(m);
                std::panic::catch_unwind(move || m.forward(&x))
                    .map_err(|e| TchError::Torch(e.downcast_ref::<String>().cloned().unwrap_or_default()))
            }
        }
    }
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One configuration's medians in milliseconds.
struct Row {
    up: f64,
    model: f64,
    down: f64,
    phased: f64,
    total: f64,
}

struct Gpu {
    dev: tch::Device,
    idx: i64,
    w: usize,
    h: usize,
    s: usize,
    halo: usize,
    pin_in: Tensor,
    pin_out: Tensor,
}

impl Gpu {
    fn sync(&self) {
        if self.dev.is_cuda() {
            tch::Cuda::synchronize(self.idx);
        }
    }

    /// Model phase on the device-resident 8-bit input: `stripes` bands with the halo, each
    /// converted to `kind`, run, trimmed and rounded into `out` (u8, oh × ow, on the device).
    fn model(&self, m: &Net, x: &Tensor, out: &Tensor, kind: Kind, stripes: usize) -> Result<(), TchError> {
        let (h, s) = (self.h, self.s);
        let rows = h.div_ceil(stripes);
        let mut r0 = 0;
        while r0 < h {
            let r1 = (r0 + rows).min(h);
            let (c0, c1) = (r0.saturating_sub(self.halo), (r1 + self.halo).min(h));
            let band = x.f_narrow(0, c0 as i64, (c1 - c0) as i64)?;
            let band = band.f_to_kind(kind)?.f_div_scalar(255.0)?.f_reshape([1, 1, (c1 - c0) as i64, self.w as i64])?;
            let y = m.forward(&band)?.f_to_kind(Kind::Float)?;
            let y = y.f_narrow(2, ((r0 - c0) * s) as i64, ((r1 - r0) * s) as i64)?;
            let y = y.f_mul_scalar(255.0)?.f_round()?.f_clamp(0.0, 255.0)?.f_to_kind(Kind::Uint8)?;
            let mut dst = out.f_narrow(0, (r0 * s) as i64, ((r1 - r0) * s) as i64)?;
            dst.f_copy_(&y.f_reshape([((r1 - r0) * s) as i64, (self.w * s) as i64])?)?;
            r0 = r1;
        }
        Ok(())
    }

    fn run(&self, m: &Net, kind: Kind, stripes: usize, frames: usize) -> Result<Row, TchError> {
        let out = Tensor::f_empty([(self.h * self.s) as i64, (self.w * self.s) as i64], (Kind::Uint8, self.dev))?;
        let (mut up, mut model, mut down, mut phased, mut total) = (vec![], vec![], vec![], vec![], vec![]);
        tch::no_grad(|| -> Result<(), TchError> {
            for i in 0..frames + 5 {
                // Phased: synchronised after each step.
                let t0 = Instant::now();
                let x = self
                    .pin_in
                    .f_to_device_(self.dev, Kind::Uint8, true, false)?
                    .f_reshape([self.h as i64, self.w as i64])?;
                self.sync();
                let t1 = Instant::now();
                self.model(m, &x, &out, kind, stripes)?;
                self.sync();
                let t2 = Instant::now();
                self.pin_out.shallow_clone().f_copy_(&out.f_reshape([-1])?)?;
                self.sync();
                let t3 = Instant::now();
                // Pipelined: everything queued, one synchronisation.
                let x = self
                    .pin_in
                    .f_to_device_(self.dev, Kind::Uint8, true, false)?
                    .f_reshape([self.h as i64, self.w as i64])?;
                self.model(m, &x, &out, kind, stripes)?;
                self.pin_out.shallow_clone().f_copy_(&out.f_reshape([-1])?)?;
                self.sync();
                let t4 = Instant::now();
                if i >= 5 {
                    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
                    up.push(ms(t0, t1));
                    model.push(ms(t1, t2));
                    down.push(ms(t2, t3));
                    phased.push(ms(t0, t3));
                    total.push(ms(t3, t4));
                }
            }
            Ok(())
        })?;
        Ok(Row {
            up: median(up),
            model: median(model),
            down: median(down),
            phased: median(phased),
            total: median(total),
        })
    }

    fn output(&self) -> Vec<u8> {
        let n = self.w * self.h * self.s * self.s;
        // SAFETY: `pin_out` is a contiguous CPU u8 tensor of n bytes.
        unsafe { std::slice::from_raw_parts(self.pin_out.data_ptr() as *const u8, n) }.to_vec()
    }
}

fn engine_fps(e: &mut Engine, src: &[u8], w: usize, h: usize, frames: usize) -> (f64, Vec<u8>) {
    let mut dst = vec![0u8; w * h * e.scale * e.scale];
    let mut t = vec![];
    for i in 0..frames + 3 {
        let t0 = Instant::now();
        e.upscale_luma(src, w, w, h, &mut dst, w * e.scale).unwrap();
        if i >= 3 {
            t.push(t0.elapsed().as_secs_f64());
        }
    }
    (1.0 / median(t), dst)
}

fn diff(a: &[u8], b: &[u8]) -> String {
    let mut worst = 0u8;
    let mut n = 0usize;
    let mut se = 0f64;
    for (&x, &y) in a.iter().zip(b) {
        let d = x.abs_diff(y);
        worst = worst.max(d);
        n += (d != 0) as usize;
        se += (d as f64).powi(2);
    }
    let psnr = if se == 0.0 { f64::INFINITY } else { 10.0 * (255f64.powi(2) * a.len() as f64 / se).log10() };
    format!("max diff {worst}, {:.3}% of pixels differ, PSNR {psnr:.1} dB", 100.0 * n as f64 / a.len() as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = PathBuf::from(arg(&args, "--model", &format!("{ROOT}/models/sesr_m5_x2.pt")));
    let (w, h) = arg(&args, "--size", "1920x1080")
        .split_once('x')
        .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
        .expect("--size WxH");
    let frames: usize = arg(&args, "--frames", "50").parse().unwrap();
    let stripes: usize = arg(&args, "--stripes", "4").parse().unwrap();
    // `--device cpu` runs the same code on the CPU (no page-locked memory): a dry run of the
    // logic on machines without a GPU.
    let device = Device::parse(&arg(&args, "--device", "cuda"));
    let (device, idx) = match device {
        Ok(Device::Cuda(i)) => (Device::Cuda(i), i),
        Ok(Device::Cpu) if arg(&args, "--device", "") == "cpu" => (Device::Cpu, 0),
        _ => {
            println!("SKIPPED: no CUDA device ({device:?}; libtorch sees {} GPUs)", tch::Cuda::device_count());
            return;
        }
    };
    let dev: tch::Device = device.into();
    tch::Cuda::cudnn_set_benchmark(true);
    let src = sesr::engine::texture(w, h);

    // The engine as the element runs it (also measures the model's halo).
    let opts = EngineOptions { location: Some(&model), device, backend: Backend::Libtorch, ..Default::default() };
    let mut e = Engine::load_with(&opts).unwrap();
    let s = e.scale;
    let halo = e.halo().unwrap();
    let (engine_whole, whole_out) = engine_fps(&mut e, &src, w, h, frames);
    e.stripe_rows = 68;
    let (engine_stripes, stripes_out) = engine_fps(&mut e, &src, w, h, frames.min(20));

    let pin = |n: usize| {
        let t = Tensor::empty([n as i64], (Kind::Uint8, tch::Device::Cpu));
        if dev.is_cuda() {
            t.pin_memory(dev)
        } else {
            t
        }
    };
    let gpu = Gpu { dev, idx: idx as i64, w, h, s, halo, pin_in: pin(w * h), pin_out: pin(w * h * s * s) };
    // SAFETY: `pin_in` is a contiguous CPU u8 tensor of w·h bytes.
    unsafe { std::slice::from_raw_parts_mut(gpu.pin_in.data_ptr() as *mut u8, w * h) }.copy_from_slice(&src);

    // Reference output: the native kernel on the CPU.
    let mut native =
        Engine::load_with(&EngineOptions { location: Some(&model), backend: Backend::Native, ..Default::default() })
            .unwrap();
    let mut want = vec![0u8; w * h * s * s];
    native.upscale_luma(&src, w, w, h, &mut want, w * s).unwrap();

    println!(
        "model {} (x{s}, halo {halo} rows), {w}x{h} -> {}x{}, {frames} frames per row after 5 warm-up; \
         CUDA device {idx} of {}; host threads {}",
        model.display(),
        w * s,
        h * s,
        tch::Cuda::device_count(),
        sesr::available_threads()
    );
    println!("| precision | layout | upload ms | model ms | download ms | sum (synced) ms | total ms | total fps | model-only fps | output vs native CPU fp32 |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let m32 = Net::Script(CModule::load_on_device(&model, dev).unwrap());
    let collapsed = CollapsedSesr::from_weights(&sesr::weights::ExportedWeights::read(&model, false).unwrap().weights);
    let m16 = Net::Eager(collapsed.to(dev, Kind::Half));
    let mbf16 = Net::Eager(collapsed.to(dev, Kind::BFloat16));
    let mut fp32_out = Vec::new();
    for (name, m, kind) in [
        ("fp32 (TorchScript)", &m32, Kind::Float),
        ("fp16 (eager)", &m16, Kind::Half),
        ("bf16 (eager)", &mbf16, Kind::BFloat16),
    ] {
        for (layout, n) in [("whole frame", 1), ("stripes", stripes)] {
            match gpu.run(m, kind, n, frames) {
                Ok(r) => {
                    let out = gpu.output();
                    let vs = diff(&out, &want);
                    let extra = if kind != Kind::Float && !fp32_out.is_empty() {
                        format!("; vs fp32 above: {}", diff(&out, &fp32_out))
                    } else {
                        String::new()
                    };
                    if kind == Kind::Float && n == 1 {
                        fp32_out = out;
                    }
                    println!(
                        "| {name} | {layout}{} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} | {vs}{extra} |",
                        if n > 1 { format!(" ({n})") } else { String::new() },
                        r.up,
                        r.model,
                        r.down,
                        r.phased,
                        r.total,
                        1e3 / r.total,
                        1e3 / r.model
                    );
                }
                Err(err) => println!("| {name} | {layout} | failed: {} |", err.to_string().replace('\n', " ")),
            }
        }
    }
    println!(
        "\nengine (element path, libtorch on {dev:?}): whole frame with 8-bit pinned copies {engine_whole:.1} fps; \
         float stripes of 68 rows (the CPU path) {engine_stripes:.1} fps; outputs vs native CPU: {} / {}",
        diff(&whole_out, &want),
        diff(&stripes_out, &want)
    );

    // The same frame on this machine's CPU.
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = cpu.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?");
    let native_fps = engine_fps(&mut native, &src, w, h, 10).0;
    let mut lt = Engine::load_with(&EngineOptions {
        location: Some(&model),
        backend: Backend::Libtorch,
        device: Device::Cpu,
        ..Default::default()
    })
    .unwrap();
    let lt_fps = engine_fps(&mut lt, &src, w, h, 5).0;
    println!(
        "CPU reference ({}, {} threads): native {} kernel {native_fps:.1} fps, libtorch {lt_fps:.1} fps",
        name.trim(),
        native.threads(),
        native.isa().map(|i| i.to_string()).unwrap_or_default()
    );
}
