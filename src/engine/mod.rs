//! The element's work, free of GStreamer: the SESR model on a luma plane, and the bicubic
//! chroma upscaler that respects chroma siting. Shared by `sesrupscale`, `trainer eval/upscale`
//! and the benches.
//!
//! Two backends run the model. *native* streams rows through all layers at once
//! ([`crate::native`], a kernel for every CPU) from the model's float32 weights, which
//! `trainer export` writes beside the TorchScript file (`X.safetensors` + `X.json`). *libtorch*
//! (cargo feature `torch`) runs the TorchScript file on any device, in stripes with the
//! receptive-field halo.
//!
//! The native backend never runs libtorch when the sidecar's SHA-256 digests show that the
//! TorchScript file and the weights are the pair `trainer export` wrote (and the embedded default
//! model is trusted as built). Weights without digests, or files changed since export, are
//! checked against the TorchScript module on a probe frame, so a stale or foreign weights file
//! is refused rather than silently used.

mod auto;
mod chroma;
mod embedded;
mod native;
#[cfg(feature = "torch")]
mod torch;

pub use auto::{bf16_measures_faster, bf16_probe};
pub use chroma::{chroma_map, chroma_map_sub, ChromaScaler, ChromaSiting};
#[cfg(feature = "torch")]
pub use embedded::{COMPRESSED_MODEL, DEFAULT_MODEL};
pub use native::NativeEngine;

use crate::native::{Isa, NativeSesr};
use crate::pool::Pool;
use crate::sample::Depth;
use crate::weights::{ExportedWeights, Precision};
use std::path::Path;
#[cfg(feature = "torch")]
use torch::{torch_load, TorchRunner};

/// Which compiled-in model runs when no file is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Embedded {
    /// SESR-M5 ×2 trained on clean (bicubic, 8-bit) LR pictures.
    #[default]
    Clean,
    /// SESR-M5 ×2 trained on a mix of clean and codec-decoded LR pictures.
    Compressed,
}

impl Embedded {
    pub fn name(self) -> &'static str {
        match self {
            Embedded::Clean => "embedded SESR-M5 x2",
            Embedded::Compressed => "embedded SESR-M5 x2 (compressed input)",
        }
    }

    /// Sidecar and float32 weights.
    fn exported(self) -> (&'static str, &'static [u8]) {
        match self {
            Embedded::Clean => (embedded::DEFAULT_SIDECAR, embedded::DEFAULT_WEIGHTS),
            Embedded::Compressed => (embedded::COMPRESSED_SIDECAR, embedded::COMPRESSED_WEIGHTS),
        }
    }

    /// The TorchScript module.
    #[cfg(feature = "torch")]
    pub fn torchscript(self) -> &'static [u8] {
        match self {
            Embedded::Clean => DEFAULT_MODEL,
            Embedded::Compressed => COMPRESSED_MODEL,
        }
    }
}

/// Which implementation runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Native when the model, device and CPU allow it, else libtorch.
    #[default]
    Auto,
    Libtorch,
    Native,
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// `auto` (CUDA when libtorch sees a GPU), `cpu`, `cuda`, `cuda:N`.
    pub fn parse(s: &str) -> Result<Device, String> {
        #[cfg(feature = "torch")]
        {
            match crate::tensor::parse_device(s).map_err(|e| e.to_string())? {
                tch::Device::Cuda(i) => Ok(Device::Cuda(i)),
                _ => Ok(Device::Cpu),
            }
        }
        #[cfg(not(feature = "torch"))]
        {
            match s.trim().to_ascii_lowercase().as_str() {
                "auto" | "cpu" => Ok(Device::Cpu),
                d if d.starts_with("cuda") || d == "gpu" => {
                    Err(format!("device '{s}': built without libtorch (cargo feature `torch`), CPU only"))
                }
                _ => Err(format!("unknown device '{s}' (expected auto, cpu, cuda or cuda:N)")),
            }
        }
    }
}

/// A loaded super-resolution model with its buffers, reused across frames.
pub struct Engine {
    pub scale: usize,
    pub device: Device,
    /// Input rows per libtorch stripe (0: automatic — on the CPU about [`AUTO_STRIPE_PIXELS`]
    /// input pixels a stripe, on a GPU the whole frame with 8-bit copies through page-locked
    /// buffers). The native backend streams rows and ignores it.
    pub stripe_rows: usize,
    /// Why `Auto` chose libtorch, when it did.
    pub fallback_reason: Option<String>,
    /// How the native backend came to trust its weights (`None` for libtorch).
    pub trust: Option<&'static str>,
    pool: Pool,
    runner: Runner,
}

enum Runner {
    #[cfg(feature = "torch")]
    Torch(TorchRunner),
    Native(NativeEngine),
}

/// Input pixels per stripe in automatic mode (~68 rows of 1080p): small enough for the
/// 16-channel activations to stay in cache — measured 2.7× faster per 1080p frame than the
/// whole frame at once on the development CPU (see BENCHMARKS.md) — and it bounds memory for
/// 4K and 8K input.
pub const AUTO_STRIPE_PIXELS: usize = 1 << 17;

/// Why [`Engine::load_without_libtorch`] could not finish without libtorch, and what it got so far.
pub struct NeedsLibtorch {
    pub reason: String,
    name: String,
    #[cfg_attr(not(feature = "torch"), allow(dead_code))]
    native: Result<NativeSesr, String>,
    #[cfg_attr(not(feature = "torch"), allow(dead_code))]
    pool: Pool,
}

/// What [`Engine::load`] is asked to load.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions<'a> {
    /// TorchScript file (`X.pt`, weights beside it); `None`: the embedded model `embedded`.
    pub location: Option<&'a Path>,
    /// The compiled-in model to run when `location` is `None`.
    pub embedded: Embedded,
    pub device: Device,
    pub backend: Backend,
    /// Worker threads (0: all cores); engines asking for the same count share one pool.
    pub threads: usize,
    /// The native backend's arithmetic (fp32, or bf16 on CPUs with AVX512-BF16); libtorch
    /// runs a model in the precision it was exported in.
    pub precision: Precision,
    /// The native kernel variant (`None`: [`Isa::selected`]).
    pub isa: Option<Isa>,
    /// The element's `precision=auto` (with `precision` fp32): int8 when the model carries an
    /// int8 calibration and the CPU has VNNI, else bf16 where it measures clearly faster than
    /// fp32 on this CPU ([`bf16_measures_faster`]), else fp32.
    pub auto_precision: bool,
}

impl Default for EngineOptions<'_> {
    fn default() -> Self {
        EngineOptions {
            location: None,
            embedded: Embedded::Clean,
            device: Device::Cpu,
            backend: Backend::Auto,
            threads: 0,
            precision: Precision::Fp32,
            isa: None,
            auto_precision: false,
        }
    }
}

impl Engine {
    /// Loads `location` (or the embedded default when `None`) on `device` and checks the model
    /// contract `[N,1,H,W] float -> [N,1,sH,sW] float`. `threads`: CPU threads of the native
    /// backend (0: all cores). Errors name the file and the reason.
    pub fn load(
        location: Option<&Path>,
        device: Device,
        backend: Backend,
        threads: usize,
        precision: Precision,
    ) -> Result<Self, String> {
        Self::load_with(&EngineOptions { location, device, backend, threads, precision, ..Default::default() })
    }

    /// As [`load`](Self::load), with every option.
    pub fn load_with(o: &EngineOptions) -> Result<Self, String> {
        match Self::load_without_libtorch(o)? {
            Ok(native) => Ok(Engine::from_native(native, o.device)),
            #[cfg(feature = "torch")]
            Err(pending) => torch_load(o, &pending.name, pending.native, pending.pool),
            #[cfg(not(feature = "torch"))]
            Err(pending) => Err(format!("model '{}': native backend unavailable: {}", pending.name, pending.reason)),
        }
    }

    /// The part of [`load_with`](Self::load_with) that needs no libtorch: `Ok(Ok(engine))` when
    /// the native backend runs with trusted weights, `Ok(Err(_))` when libtorch is needed (to
    /// run the model, or to check its weights), `Err` for what no backend can fix (a missing
    /// file, contradictory options). The element calls this first and loads libtorch only for
    /// the second case.
    pub fn load_without_libtorch(o: &EngineOptions) -> Result<Result<NativeEngine, NeedsLibtorch>, String> {
        let name = o.location.map(|p| p.display().to_string()).unwrap_or_else(|| o.embedded.name().into());
        if let Some(p) = o.location {
            if let Some(problem) = crate::weights::model_file_problem(p) {
                return Err(format!("model '{name}': {problem}"));
            }
        }
        if o.precision != Precision::Fp32 && o.backend == Backend::Libtorch {
            return Err(format!(
                "precision {:?} is a native-backend setting; for libtorch, export the model with \
                 `trainer export --precision`",
                o.precision
            ));
        }
        let pool = Pool::shared(o.threads)?;
        // The native network and whether its weights are known to be the model's own.
        let native: Result<(NativeSesr, bool), String> = match o.backend {
            Backend::Libtorch => Err("libtorch backend requested".to_string()),
            _ if o.device != Device::Cpu => Err(format!("the native backend runs on the CPU, not {:?}", o.device)),
            _ => native_model(o).map_err(|e| e.to_string()),
        };
        let (native, reason) = match native {
            Ok((net, true)) => {
                let trust = if o.location.is_none() { "embedded" } else { "digests" };
                return Ok(Ok(NativeEngine::new(net, trust, pool)));
            }
            Ok((net, false)) => (
                Ok(net),
                "its weights carry no digests of the TorchScript file, or one of the files changed since export: \
                 they must be checked against the TorchScript module"
                    .to_string(),
            ),
            Err(e) => (Err(e.clone()), e),
        };
        Ok(Err(NeedsLibtorch { name, reason, native, pool }))
    }

    fn from_native(n: NativeEngine, device: Device) -> Engine {
        Engine {
            scale: n.scale(),
            device,
            stripe_rows: 0,
            fallback_reason: None,
            trust: Some(n.trust),
            pool: n.pool().clone(),
            runner: Runner::Native(n),
        }
    }

    /// The worker threads this engine runs on (the chroma scaler shares them).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The libtorch backend's stripe halo (receptive-field radius measured at load time).
    pub fn halo(&self) -> Option<usize> {
        match &self.runner {
            #[cfg(feature = "torch")]
            Runner::Torch(t) => Some(t.halo),
            Runner::Native(_) => None,
        }
    }

    /// CPU threads a frame runs on: the native backend's own, or libtorch's.
    pub fn threads(&self) -> usize {
        match &self.runner {
            Runner::Native(n) => n.threads(),
            #[cfg(feature = "torch")]
            Runner::Torch(_) => tch::get_num_threads().max(1) as usize,
        }
    }

    /// `"native"` or `"libtorch"`.
    pub fn backend_name(&self) -> &'static str {
        match self.runner {
            #[cfg(feature = "torch")]
            Runner::Torch(_) => "libtorch",
            Runner::Native(_) => "native",
        }
    }

    /// The native kernel's arithmetic (`None` for libtorch).
    pub fn runner_precision(&self) -> Option<Precision> {
        match &self.runner {
            Runner::Native(n) => Some(n.precision()),
            #[cfg(feature = "torch")]
            Runner::Torch(_) => None,
        }
    }

    /// The native kernel's variant (`None` for libtorch).
    pub fn isa(&self) -> Option<Isa> {
        match &self.runner {
            Runner::Native(n) => Some(n.isa()),
            #[cfg(feature = "torch")]
            Runner::Torch(_) => None,
        }
    }

    /// Multiply-accumulates per input pixel of the native network (`None` for libtorch).
    pub fn macs_per_pixel(&self) -> Option<usize> {
        match &self.runner {
            Runner::Native(n) => Some(n.macs_per_pixel()),
            #[cfg(feature = "torch")]
            Runner::Torch(_) => None,
        }
    }

    /// Upscales an 8-bit luma plane (`w`×`h`, row stride `stride`) into `dst` (`sw`×`sh`, stride
    /// `dst_stride`): Y/255 through the model, rounded and clamped back to 8 bits.
    pub fn upscale_luma(
        &mut self,
        src: &[u8],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u8],
        dst_stride: usize,
    ) -> Result<(), String> {
        match &mut self.runner {
            Runner::Native(n) => {
                n.upscale_luma(src, stride, w, h, dst, dst_stride);
                Ok(())
            }
            #[cfg(feature = "torch")]
            Runner::Torch(t) => {
                t.upscale(src, stride, w, h, dst, dst_stride, self.scale, self.device.into(), self.stripe_rows)
            }
        }
    }

    /// As [`upscale_luma`](Self::upscale_luma) for 16-bit samples holding `depth` (10-bit
    /// video: `P010_10LE` keeps the value in the high bits, `I420_10LE` in the low ones):
    /// value/(2^bits − 1) through the model and back to the same depth, never through 8 bits.
    /// Strides in samples.
    #[allow(clippy::too_many_arguments)]
    pub fn upscale_luma16(
        &mut self,
        src: &[u16],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u16],
        dst_stride: usize,
        depth: Depth,
    ) -> Result<(), String> {
        match &mut self.runner {
            Runner::Native(n) => n.upscale_luma16(src, stride, w, h, dst, dst_stride, depth),
            #[cfg(feature = "torch")]
            Runner::Torch(t) => t.upscale_float_stripes(
                src,
                stride,
                w,
                h,
                dst,
                dst_stride,
                depth,
                self.scale,
                self.device.into(),
                self.stripe_rows,
            ),
        }
    }
}

/// The native network of `o` and whether its weights are trusted without a libtorch check: the
/// embedded default's, or `X.safetensors` with its sidecar `X.json` beside `X.pt`.
fn native_model(o: &EngineOptions) -> Result<(NativeSesr, bool), String> {
    let exported = match o.location {
        None => {
            let (sidecar, weights) = o.embedded.exported();
            ExportedWeights::from_bytes(sidecar, weights, None)
        }
        Some(p) => ExportedWeights::read(p, true),
    }
    .map_err(|e| e.to_string())?;
    if exported.precision != Precision::Fp32 {
        return Err(format!("exported in {:?}: it runs as exported, in libtorch", exported.precision));
    }
    let isa = match o.isa {
        Some(i) => i,
        None => Isa::selected()?,
    };
    let auto = o.auto_precision && o.precision == Precision::Fp32;
    let int8 = o.precision == Precision::Int8 || auto;
    let calibration = if int8 {
        exported.int8.clone().map_err(|e| match o.location {
            Some(p) => format!("{}: {e}", crate::weights::sidecar_paths(p).0.display()),
            None => e,
        })?
    } else {
        None
    };
    let net = match calibration {
        Some(c) if o.precision == Precision::Int8 || crate::native::int8::cpu_has_vnni() => {
            NativeSesr::with_int8(&exported.weights, &c.activations, isa)?
        }
        None if o.precision == Precision::Int8 => {
            return Err("int8 needs the model's calibration, and its sidecar has none (add it with \
                        `trainer calibrate MODEL.pt --calib DIR...`)"
                .to_string())
        }
        _ => NativeSesr::with_options(&exported.weights, if auto { auto::auto_float(isa) } else { o.precision }, isa)?,
    };
    let trusted = o.location.is_none() || exported.digests_match == Some(true);
    Ok((net, trusted))
}

/// A `w`×`h` luma probe: ramps with pseudo-random texture.
pub fn texture(w: usize, h: usize) -> Vec<u8> {
    (0..w * h).map(|i| ((i % w) * 5 + (i / w) * 3 + (i * 7919) % 61) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::byte_diff;

    #[test]
    fn embedded_model_loads_and_upscales() {
        let mut e = Engine::load(None, Device::Cpu, Backend::Auto, 0, Precision::Fp32).unwrap();
        // Every CPU has a native kernel, and the embedded weights need no libtorch check.
        assert_eq!(e.backend_name(), "native", "{:?}", e.fallback_reason);
        assert_eq!(e.trust, Some("embedded"));
        assert_eq!(e.scale, 2);
        let (w, h, stride) = (9, 5, 16);
        let src: Vec<u8> = (0..stride * h).map(|i| (i * 7 % 256) as u8).collect();
        let mut dst = vec![0u8; 18 * 10];
        e.upscale_luma(&src, stride, w, h, &mut dst, 18).unwrap();
        assert!(dst.iter().any(|&v| v > 0));
    }

    #[test]
    fn model_paths_that_are_no_files_are_named() {
        let load = |p: &Path| {
            Engine::load(Some(p), Device::Cpu, Backend::Auto, 1, Precision::Fp32).err().expect("no model there")
        };
        let dir = std::env::temp_dir();
        let e = load(&dir);
        assert!(e.contains(&dir.display().to_string()) && e.contains("is a directory, not a model file"), "{e}");
        #[cfg(unix)]
        {
            let e = load(Path::new("/dev/null"));
            assert!(e.contains("/dev/null") && e.contains("is a device, not a model file"), "{e}");
        }
    }

    #[cfg(feature = "torch")]
    fn models() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
    }

    fn run(o: &EngineOptions, src: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut e = Engine::load_with(o).unwrap();
        let mut dst = vec![0u8; 4 * w * h];
        e.upscale_luma(src, w, w, h, &mut dst, 2 * w).unwrap();
        dst
    }

    #[test]
    #[cfg(feature = "torch")]
    fn native_and_libtorch_backends_agree() {
        let (w, h) = (301, 77);
        let src = texture(w, h);
        let pt = models().join("sesr_m3_x2.pt");
        let o = EngineOptions { location: Some(&pt), threads: 2, ..Default::default() };
        let want = run(&EngineOptions { backend: Backend::Libtorch, ..o }, &src, w, h);
        for isa in Isa::ALL {
            if !isa.available() {
                eprintln!("skipped: this CPU cannot run the {isa} kernel");
                continue;
            }
            let got = run(&EngineOptions { backend: Backend::Native, isa: Some(isa), ..o }, &src, w, h);
            let (worst, differ) = byte_diff(&got, &want);
            assert!(worst <= 1 && differ * 200 < want.len(), "{isa}: {differ} differ, by up to {worst}");
        }
    }

    #[test]
    #[cfg(feature = "torch")]
    fn bf16_runs_natively_and_only_there() {
        if !crate::native::cpu_supports_bf16() {
            eprintln!("skipped: no AVX512-BF16 on this CPU");
            return;
        }
        let (w, h) = (64, 40);
        let src = texture(w, h);
        let mut outs = Vec::new();
        for p in [Precision::Fp32, Precision::Bf16] {
            let mut e = Engine::load(None, Device::Cpu, Backend::Auto, 1, p).unwrap();
            assert_eq!(e.backend_name(), "native");
            let mut dst = vec![0u8; 4 * w * h];
            e.upscale_luma(&src, w, w, h, &mut dst, 2 * w).unwrap();
            outs.push(dst);
        }
        let (worst, _) = byte_diff(&outs[0], &outs[1]);
        assert!(worst <= 4 && outs[0] != outs[1], "bf16 vs fp32: worst {worst}");
        let e = Engine::load(None, Device::Cpu, Backend::Libtorch, 1, Precision::Bf16).err().unwrap();
        assert!(e.contains("native-backend setting") && e.contains("--precision"), "{e}");
    }

    #[test]
    fn auto_measures_bf16_against_fp32_where_bf16_runs() {
        let Some((fp32, bf16)) = bf16_probe() else {
            assert!(!crate::native::cpu_supports_bf16() || Isa::selected().unwrap() != Isa::Avx512);
            assert!(!bf16_measures_faster());
            eprintln!("SKIPPED: auto's bf16 probe (no AVX512-BF16 on this CPU): auto's float is fp32");
            return;
        };
        assert!(fp32 > std::time::Duration::ZERO && bf16 > std::time::Duration::ZERO);
        // Measured once: the same answer every time.
        assert_eq!(bf16_probe(), Some((fp32, bf16)));
        eprintln!("bf16 probe: fp32 {fp32:?}, bf16 {bf16:?}: auto's float is bf16: {}", bf16_measures_faster());
    }

    #[test]
    fn int8_runs_from_the_sidecar_calibration() {
        // A photo (the calibration's kind of input: the synthetic texture is far outside it).
        let (w, h) = (96, 64);
        let rgb = crate::image_io::load_rgb(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/images/chelsea.png").as_ref());
        let y = crate::color::y_unit(&rgb.unwrap());
        let (x0, y0) = ((y.width - w) / 2, (y.height - h) / 2);
        let src: Vec<u8> =
            (0..w * h).map(|i| (y.get(x0 + i % w, y0 + i / w) * 255.0).round().clamp(0.0, 255.0) as u8).collect();
        let run = |o: &EngineOptions| {
            let mut e = Engine::load_with(o).unwrap();
            let mut dst = vec![0u8; 4 * w * h];
            e.upscale_luma(&src, w, w, h, &mut dst, 2 * w).unwrap();
            (e.runner_precision(), dst)
        };
        // The embedded model carries its calibration: int8 on request, close to fp32.
        let base = EngineOptions { threads: 2, ..Default::default() };
        let (p32, f) = run(&base);
        let (p8, q) = run(&EngineOptions { precision: Precision::Int8, ..base });
        assert_eq!((p32, p8), (Some(Precision::Fp32), Some(Precision::Int8)));
        let mse = f.iter().zip(&q).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>() / f.len() as f64;
        let psnr = 10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10();
        eprintln!("int8 vs fp32 on a photo: PSNR {psnr:.1} dB");
        assert!(f != q && psnr > 45.0, "int8 vs fp32 PSNR {psnr:.1} dB");
        // auto: int8 only where the CPU has VNNI.
        let (pa, _) = run(&EngineOptions { auto_precision: true, ..base });
        // Without int8, auto's float: bf16 only where it measured clearly faster here.
        let float = if bf16_measures_faster() { Precision::Bf16 } else { Precision::Fp32 };
        let want = if crate::native::int8::cpu_has_vnni() { Precision::Int8 } else { float };
        assert_eq!(pa, Some(want));
        // A sidecar without the calibration: int8 refused with the way out, auto runs fp32.
        let dir = std::env::temp_dir().join(format!("sesr-engine-int8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pt = dir.join("m.pt");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/models/sesr_m5_x2.pt"), &pt).unwrap();
        std::fs::write(dir.join("m.safetensors"), embedded::DEFAULT_WEIGHTS).unwrap();
        let mut sidecar: serde_json::Value = serde_json::from_str(embedded::DEFAULT_SIDECAR).unwrap();
        assert!(sidecar.as_object_mut().unwrap().remove("int8").is_some());
        std::fs::write(dir.join("m.json"), sidecar.to_string()).unwrap();
        let o = EngineOptions { location: Some(&pt), ..base };
        let e = Engine::load_with(&EngineOptions { precision: Precision::Int8, ..o }).err().unwrap();
        assert!(e.contains("calibration") && e.contains("trainer calibrate"), "{e}");
        assert_eq!(run(&EngineOptions { auto_precision: true, ..o }).0, Some(float));
        // A calibration that does not fit the model: an error, not a crash.
        sidecar["int8"] = serde_json::json!({"activations": [[{"scale": 0.1, "zero": 0}]]});
        std::fs::write(dir.join("m.json"), sidecar.to_string()).unwrap();
        let e = Engine::load_with(&EngineOptions { precision: Precision::Int8, ..o }).err().unwrap();
        assert!(e.contains("activation quantisations"), "{e}");
        // A damaged calibration: fp32 still loads; int8 is an error naming the sidecar.
        sidecar["int8"] = serde_json::json!("not a calibration");
        std::fs::write(dir.join("m.json"), sidecar.to_string()).unwrap();
        assert_eq!(run(&o).0, Some(Precision::Fp32));
        let e = Engine::load_with(&EngineOptions { precision: Precision::Int8, ..o }).err().unwrap();
        assert!(e.contains("m.json") && e.contains("int8 calibration"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    #[cfg(feature = "torch")]
    fn native_needs_matching_weights() {
        let dir = std::env::temp_dir().join(format!("sesr-engine-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pt = dir.join("m.pt");
        std::fs::copy(models().join("sesr_m5_x2.pt"), &pt).unwrap();
        // No weights beside the model: native refused with the reason, auto falls back.
        let e = Engine::load(Some(&pt), Device::Cpu, Backend::Native, 1, Precision::Fp32).err().unwrap();
        assert!(e.contains("native backend unavailable") && e.contains("m.json"), "{e}");
        let auto = Engine::load(Some(&pt), Device::Cpu, Backend::Auto, 1, Precision::Fp32).unwrap();
        assert_eq!(auto.backend_name(), "libtorch");
        assert_eq!(auto.isa(), None);
        assert!(auto.fallback_reason.unwrap().contains("no weights"));
        // Another model's weights (M3 beside an M5 .pt, sidecar and all): refused, not used.
        std::fs::copy(models().join("sesr_m3_x2.json"), dir.join("m.json")).unwrap();
        std::fs::copy(models().join("sesr_m3_x2.safetensors"), dir.join("m.safetensors")).unwrap();
        let e = Engine::load(Some(&pt), Device::Cpu, Backend::Native, 1, Precision::Fp32).err().unwrap();
        assert!(e.contains("does not match"), "{e}");
        // The right ones: native, trusted by their digests without libtorch.
        std::fs::copy(models().join("sesr_m5_x2.json"), dir.join("m.json")).unwrap();
        std::fs::copy(models().join("sesr_m5_x2.safetensors"), dir.join("m.safetensors")).unwrap();
        let ok = Engine::load(Some(&pt), Device::Cpu, Backend::Auto, 1, Precision::Fp32).unwrap();
        assert_eq!((ok.backend_name(), ok.trust), ("native", Some("digests")));
        // The right ones under a sidecar without digests (an older export): checked, then native.
        let mut sidecar: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("m.json")).unwrap()).unwrap();
        sidecar.as_object_mut().unwrap().remove("pt_sha256");
        std::fs::write(dir.join("m.json"), sidecar.to_string()).unwrap();
        let ok = Engine::load(Some(&pt), Device::Cpu, Backend::Auto, 1, Precision::Fp32).unwrap();
        assert_eq!((ok.backend_name(), ok.trust), ("native", Some("checked against the TorchScript module")));
        // Digests that no longer match (the .pt was replaced by another model's): checked, refused.
        std::fs::copy(models().join("sesr_m5_x2.json"), dir.join("m.json")).unwrap();
        std::fs::copy(models().join("sesr_m3_x2.pt"), &pt).unwrap();
        let e = Engine::load(Some(&pt), Device::Cpu, Backend::Native, 1, Precision::Fp32).err().unwrap();
        assert!(e.contains("does not match"), "{e}");
        std::fs::copy(models().join("sesr_m5_x2.pt"), &pt).unwrap();
        // A corrupt weights file: a clear reason.
        std::fs::write(dir.join("m.safetensors"), b"not safetensors").unwrap();
        let e = Engine::load(Some(&pt), Device::Cpu, Backend::Native, 1, Precision::Fp32).err().unwrap();
        assert!(e.contains("weights"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_kernel_variant_runs_the_embedded_model_alike() {
        let (w, h) = (203, 61);
        let src = texture(w, h);
        let o = EngineOptions { threads: 2, isa: Some(Isa::Portable), ..Default::default() };
        let want = run(&o, &src, w, h);
        for isa in Isa::ALL {
            if !isa.available() {
                eprintln!("skipped: this CPU cannot run the {isa} kernel");
                continue;
            }
            let e = Engine::load_with(&EngineOptions { isa: Some(isa), ..o }).unwrap();
            assert_eq!(e.isa(), Some(isa));
            let (worst, differ) = byte_diff(&run(&EngineOptions { isa: Some(isa), ..o }, &src, w, h), &want);
            assert!(worst <= 1 && differ * 200 < want.len(), "{isa}: {differ} differ, by up to {worst}");
        }
    }
}
