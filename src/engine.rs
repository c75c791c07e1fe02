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

use crate::native::{Isa, NativeSesr, Workspace};
use crate::pool::Pool;
use crate::resize::{resize_plane_samples, resize_rows, Contributions, U8Layout};
use crate::sample::{Depth, Sample};
use crate::weights::{ExportedWeights, Precision};
use std::path::Path;

/// The default model compiled in: collapsed SESR-M5 ×2 (see `models/`).
#[cfg(feature = "torch")]
pub static DEFAULT_MODEL: &[u8] = include_bytes!("../models/sesr_m5_x2.pt");
/// Its float32 weights and sidecar, for the native backend.
static DEFAULT_WEIGHTS: &[u8] = include_bytes!("../models/sesr_m5_x2.safetensors");
static DEFAULT_SIDECAR: &str = include_str!("../models/sesr_m5_x2.json");
/// The compressed-input model compiled in beside it: the same network fine-tuned on LR pictures
/// decoded from real codecs (see `models/` and `trainer degrade`).
#[cfg(feature = "torch")]
pub static COMPRESSED_MODEL: &[u8] = include_bytes!("../models/sesr_m5_x2_compressed.pt");
static COMPRESSED_WEIGHTS: &[u8] = include_bytes!("../models/sesr_m5_x2_compressed.safetensors");
static COMPRESSED_SIDECAR: &str = include_str!("../models/sesr_m5_x2_compressed.json");

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
            Embedded::Clean => (DEFAULT_SIDECAR, DEFAULT_WEIGHTS),
            Embedded::Compressed => (COMPRESSED_SIDECAR, COMPRESSED_WEIGHTS),
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

#[cfg(feature = "torch")]
impl From<Device> for tch::Device {
    fn from(d: Device) -> tch::Device {
        match d {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda(i) => tch::Device::Cuda(i),
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

/// The native backend on its own: no libtorch code is reachable from it, so a program that
/// uses only this (the GStreamer element) links no libtorch even where the crate is built with
/// the `torch` feature.
pub struct NativeEngine {
    net: NativeSesr,
    workspaces: Vec<Workspace>,
    pool: Pool,
    /// How its weights came to be trusted: `embedded`, `digests`, or checked against the
    /// TorchScript module.
    pub trust: &'static str,
}

impl NativeEngine {
    fn new(net: NativeSesr, trust: &'static str, pool: Pool) -> Self {
        let workspaces = (0..pool.threads()).map(|_| Workspace::new()).collect();
        NativeEngine { net, workspaces, pool, trust }
    }

    pub fn scale(&self) -> usize {
        self.net.scale()
    }

    pub fn isa(&self) -> Isa {
        self.net.isa()
    }

    /// The arithmetic it runs in (int8 when loaded so, or picked by `auto_int8`).
    pub fn precision(&self) -> Precision {
        self.net.precision()
    }

    pub fn threads(&self) -> usize {
        self.workspaces.len()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn macs_per_pixel(&self) -> usize {
        self.net.macs_per_pixel()
    }

    /// See [`Engine::upscale_luma`].
    pub fn upscale_luma(&mut self, src: &[u8], stride: usize, w: usize, h: usize, dst: &mut [u8], dst_stride: usize) {
        self.net.upscale(src, stride, w, h, dst, dst_stride, &mut self.workspaces, &self.pool);
    }

    /// See [`Engine::upscale_luma16`].
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
        if self.net.precision() == Precision::Int8 {
            return Err(format!("int8 takes 8-bit video; this stream is {}-bit (use precision=fp32)", depth.bits));
        }
        self.net.upscale_u16(src, stride, w, h, dst, dst_stride, depth, &mut self.workspaces, &self.pool);
        Ok(())
    }
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
    /// With `precision` fp32: run in int8 instead when the model carries an int8 calibration
    /// and the CPU has VNNI (the element's `precision=auto`).
    pub auto_int8: bool,
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
            auto_int8: false,
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
            pool: n.pool.clone(),
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
    let int8 = o.precision == Precision::Int8 || (o.auto_int8 && o.precision == Precision::Fp32);
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
        _ => NativeSesr::with_options(&exported.weights, if int8 { Precision::Fp32 } else { o.precision }, isa)?,
    };
    let trusted = o.location.is_none() || exported.digests_match == Some(true);
    Ok((net, trusted))
}

/// The rest of [`Engine::load_with`] once libtorch is needed: to check untrusted native
/// weights against the TorchScript module, or to run the module itself.
#[cfg(feature = "torch")]
fn torch_load(o: &EngineOptions, name: &str, native: Result<NativeSesr, String>, pool: Pool) -> Result<Engine, String> {
    use std::io::Cursor;
    use tch::CModule;
    let device: tch::Device = o.device.into();
    let module = match o.location {
        Some(p) => CModule::load_on_device(p, device),
        None => CModule::load_data_on_device(&mut Cursor::new(o.embedded.torchscript()), device),
    }
    .map_err(|e| format!("model '{name}': not a loadable TorchScript file: {}", first_line(&e.to_string())))?;
    let scale = crate::model::probe_torchscript_scale(&module, device)
        .map_err(|e| format!("model '{name}': incompatible: {}", first_line(&e.to_string())))?;
    if scale != 2 && scale != 4 {
        return Err(format!("model '{name}': scale {scale} is not supported (2 or 4)"));
    }
    finite_outputs(&module, device).map_err(|e| format!("model '{name}': {e}"))?;
    let native = native.and_then(|net| {
        verify(&net, &module, scale, &pool)?;
        Ok(net)
    });
    match (native, o.backend) {
        (Ok(net), _) => {
            Ok(Engine::from_native(NativeEngine::new(net, "checked against the TorchScript module", pool), o.device))
        }
        (Err(why), Backend::Native) => Err(format!("model '{name}': native backend unavailable: {why}")),
        (Err(why), _) if o.precision != Precision::Fp32 => {
            Err(format!("model '{name}': precision {:?} needs the native backend: {why}", o.precision))
        }
        (Err(why), _) => {
            let halo = receptive_radius(&module, device, scale)
                .map_err(|e| format!("model '{name}': incompatible: {}", first_line(&e.to_string())))?;
            let why = (o.backend == Backend::Auto).then_some(why);
            Ok(Engine {
                scale,
                device: o.device,
                stripe_rows: 0,
                fallback_reason: why,
                trust: None,
                pool,
                runner: Runner::Torch(TorchRunner { module, halo, input: Vec::new(), pinned: None }),
            })
        }
    }
}

/// Refuses a module whose output on a grey frame is not finite (NaN or infinite weights).
#[cfg(feature = "torch")]
fn finite_outputs(module: &tch::CModule, device: tch::Device) -> Result<(), String> {
    use tch::{Kind, Tensor};
    let x = Tensor::f_full([1, 1, 16, 16], 0.5, (Kind::Float, device)).map_err(|e| e.to_string())?;
    let y = tch::no_grad(|| module.forward_ts(&[x])).map_err(|e| first_line(&e.to_string()).to_string())?;
    let finite =
        y.f_isfinite().and_then(|f| f.f_all()).and_then(|a| a.f_int64_value(&[])).map_err(|e| e.to_string())?;
    if finite == 0 {
        return Err("the model outputs NaN or infinite values (non-finite weights?)".into());
    }
    Ok(())
}

#[cfg(feature = "torch")]
struct TorchRunner {
    module: tch::CModule,
    /// Receptive-field radius in input pixels, measured at load time: how many rows of context
    /// a stripe needs above and below for its output to equal the whole frame's.
    halo: usize,
    input: Vec<f32>,
    /// GPU path: page-locked host buffers (8-bit input plane, 8-bit output plane), reused
    /// while the frame size stays.
    pinned: Option<(tch::Tensor, tch::Tensor)>,
}

/// A `w`×`h` luma probe: ramps with pseudo-random texture.
pub fn texture(w: usize, h: usize) -> Vec<u8> {
    (0..w * h).map(|i| ((i % w) * 5 + (i / w) * 3 + (i * 7919) % 61) as u8).collect()
}

/// Checks that `net` computes what `module` computes, on a textured probe frame: 8-bit outputs
/// within one level (rounding), on all but a few pixels.
#[cfg(feature = "torch")]
fn verify(net: &NativeSesr, module: &tch::CModule, scale: usize, pool: &Pool) -> Result<(), String> {
    use crate::metrics::byte_diff;
    use tch::{Device, Kind, Tensor};
    if net.scale() != scale {
        return Err(format!("weights are x{}, the TorchScript model x{scale}", net.scale()));
    }
    let (w, h) = (45usize, 37usize);
    let src = texture(w, h);
    let x = Tensor::from_slice(&src).to_kind(Kind::Float).reshape([1, 1, h as i64, w as i64]) / 255.0;
    let y = tch::no_grad(|| module.forward_ts(&[x])).map_err(|e| first_line(&e.to_string()).to_string())?;
    let y = (y * 255.0).round().clamp(0.0, 255.0).to_kind(Kind::Uint8).to_device(Device::Cpu).flatten(0, -1);
    let want = Vec::<u8>::try_from(&y).map_err(|e| e.to_string())?;
    let mut got = vec![0u8; w * h * scale * scale];
    net.upscale(&src, w, w, h, &mut got, w * scale, &mut [Workspace::new()], pool);
    let (worst, differ) = byte_diff(&got, &want);
    // float32: rounding-boundary differences only; bfloat16 and int8: a few levels on some
    // pixels.
    let (max_worst, max_share) = match net.precision() {
        Precision::Fp32 => (1, 100),
        _ => (8, 4),
    };
    if worst > max_worst || differ * max_share > want.len() {
        return Err(format!(
            "its weights file does not match the TorchScript model ({differ} of {} probe pixels differ, by up to {worst})",
            want.len()
        ));
    }
    Ok(())
}

#[cfg(feature = "torch")]
impl TorchRunner {
    #[allow(clippy::too_many_arguments)]
    fn upscale(
        &mut self,
        src: &[u8],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u8],
        dst_stride: usize,
        s: usize,
        device: tch::Device,
        stripe_rows: usize,
    ) -> Result<(), String> {
        if device != tch::Device::Cpu && stripe_rows == 0 {
            return self.upscale_on_device(src, stride, w, h, dst, dst_stride, s, device);
        }
        self.upscale_float_stripes(src, stride, w, h, dst, dst_stride, Depth::U8, s, device, stripe_rows)
    }

    /// The model on value/(2^bits − 1) in stripes with the halo, float32 to and from the
    /// device, rounded back to `depth`.
    #[allow(clippy::too_many_arguments)]
    fn upscale_float_stripes<T: Sample>(
        &mut self,
        src: &[T],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [T],
        dst_stride: usize,
        depth: Depth,
        s: usize,
        device: tch::Device,
        stripe_rows: usize,
    ) -> Result<(), String> {
        use tch::{Device, Kind, Tensor};
        self.input.clear();
        for y in 0..h {
            self.input.extend(src[y * stride..y * stride + w].iter().map(|&v| depth.to_unit(v)));
        }
        let rows = match stripe_rows {
            0 => (AUTO_STRIPE_PIXELS / w.max(1)).max(16),
            n => n,
        }
        .min(h);
        let mut r0 = 0;
        while r0 < h {
            let r1 = (r0 + rows).min(h);
            // Context rows above and below, clipped at the frame: the frame's own zero padding.
            let (c0, c1) = (r0.saturating_sub(self.halo), (r1 + self.halo).min(h));
            let band = &self.input[c0 * w..c1 * w];
            // SAFETY: `band` holds exactly (c1−c0)·w contiguous f32 and outlives `x`, which is
            // dropped before this iteration ends; the model does not keep its input.
            let x = unsafe {
                Tensor::from_blob(
                    band.as_ptr() as *const u8,
                    &[1, 1, (c1 - c0) as i64, w as i64],
                    &[],
                    Kind::Float,
                    Device::Cpu,
                )
            };
            // `f_` variants throughout: a libtorch error (CUDA out of memory…) is an error, not a panic.
            let y = tch::no_grad(|| self.module.forward_ts(&[x.f_to_device(device)?]))
                .map_err(|e| format!("model forward failed: {}", first_and_last_lines(&e.to_string())))?;
            let (ow, oh) = (w * s, (c1 - c0) * s);
            if y.size() != [1, 1, oh as i64, ow as i64] || y.kind() != Kind::Float {
                return Err(format!("model returned {:?} {:?}, expected float [1, 1, {oh}, {ow}]", y.kind(), y.size()));
            }
            let y = if y.device() == Device::Cpu && y.is_contiguous() {
                y
            } else {
                y.f_to_device(Device::Cpu)
                    .and_then(|y| y.f_contiguous())
                    .map_err(|e| format!("model output to the CPU: {}", first_line(&e.to_string())))?
            };
            // SAFETY: `y` is a contiguous CPU float tensor of oh·ow elements, alive for this borrow.
            let out = unsafe { std::slice::from_raw_parts(y.data_ptr() as *const f32, ow * oh) };
            for row in r0 * s..r1 * s {
                let src_row = &out[(row - c0 * s) * ow..(row - c0 * s + 1) * ow];
                let d = &mut dst[row * dst_stride..row * dst_stride + ow];
                for (o, &v) in d.iter_mut().zip(src_row) {
                    *o = depth.from_unit(v);
                }
            }
            r0 = r1;
        }
        Ok(())
    }
}

#[cfg(feature = "torch")]
impl TorchRunner {
    /// The GPU path: the whole frame in one forward, 8 bits each way over the bus (the
    /// conversion to float and the rounding back run on the device), through page-locked host
    /// buffers so that the copies run at the bus's speed.
    #[allow(clippy::too_many_arguments)]
    fn upscale_on_device(
        &mut self,
        src: &[u8],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u8],
        dst_stride: usize,
        s: usize,
        device: tch::Device,
    ) -> Result<(), String> {
        use tch::{Device, Kind, Tensor};
        let (ow, oh) = (w * s, h * s);
        let err = |what: &str, e: tch::TchError| format!("{what}: {}", first_and_last_lines(&e.to_string()));
        let fits = |t: &Tensor, n: usize| t.numel() == n;
        if !self.pinned.as_ref().is_some_and(|(i, o)| fits(i, w * h) && fits(o, ow * oh)) {
            self.pinned = None;
            let pin =
                |n: usize| Tensor::f_empty([n as i64], (Kind::Uint8, Device::Cpu)).and_then(|t| t.f_pin_memory(device));
            let i = pin(w * h).map_err(|e| err("page-locked input buffer", e))?;
            let o = pin(ow * oh).map_err(|e| err("page-locked output buffer", e))?;
            self.pinned = Some((i, o));
        }
        let (pin_in, pin_out) = self.pinned.as_mut().expect("allocated above");
        // SAFETY: `pin_in` is a contiguous CPU u8 tensor of w·h bytes that this runner owns.
        let host_in = unsafe { std::slice::from_raw_parts_mut(pin_in.data_ptr() as *mut u8, w * h) };
        for y in 0..h {
            host_in[y * w..(y + 1) * w].copy_from_slice(&src[y * stride..y * stride + w]);
        }
        let y = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
            let x = pin_in.f_to_device_(device, Kind::Uint8, true, false)?;
            let x = x.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?.f_reshape([1, 1, h as i64, w as i64])?;
            let y = self.module.forward_ts(&[x])?;
            if y.size() != [1, 1, oh as i64, ow as i64] {
                return Err(tch::TchError::Shape(format!(
                    "model returned {:?}, expected [1, 1, {oh}, {ow}]",
                    y.size()
                )));
            }
            y.f_mul_scalar(255.0)?.f_round()?.f_clamp(0.0, 255.0)?.f_to_kind(Kind::Uint8)?.f_reshape([-1])
        })
        .map_err(|e| err("model forward failed", e))?;
        pin_out.f_copy_(&y).map_err(|e| err("model output to the CPU", e))?;
        // SAFETY: `pin_out` is a contiguous CPU u8 tensor of ow·oh bytes, filled by the blocking copy above.
        let host_out = unsafe { std::slice::from_raw_parts(pin_out.data_ptr() as *const u8, ow * oh) };
        for row in 0..oh {
            dst[row * dst_stride..row * dst_stride + ow].copy_from_slice(&host_out[row * ow..(row + 1) * ow]);
        }
        Ok(())
    }
}

/// The receptive-field radius of a model in input pixels: the farthest input row whose change
/// moves the output at the centre, found by comparing the outputs for two inputs that differ
/// in one pixel (at the centre of a 96×96 grey frame), plus one for safety.
#[cfg(feature = "torch")]
fn receptive_radius(module: &tch::CModule, device: tch::Device, scale: usize) -> Result<usize, tch::TchError> {
    use tch::{Device, Kind, Tensor};
    let n = 96i64;
    let base = Tensor::full([1, 1, n, n], 0.5, (Kind::Float, device));
    let a = tch::no_grad(|| module.forward_ts(&[&base]))?;
    let s = scale as i64;
    let mut radius = 0;
    // A brighter and a darker poke: a ReLU-like unit could hide one sign of change.
    for v in [0.9, 0.1] {
        let poked = base.copy();
        let _ = poked.narrow(2, n / 2, 1).narrow(3, n / 2, 1).fill_(v);
        let b = tch::no_grad(|| module.forward_ts(&[&poked]))?;
        let diff = (&a - b).abs().squeeze().sum_dim_intlist(1, false, Kind::Float).to_device(Device::Cpu);
        let rows = Vec::<f32>::try_from(&diff).unwrap_or_default();
        for (i, _) in rows.iter().enumerate().filter(|(_, &d)| d > 0.0) {
            radius = radius.max((i as i64 / s - n / 2).abs());
        }
    }
    Ok(radius as usize + 1)
}

#[cfg(feature = "torch")]
fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s)
}

/// A TorchScript interpreter error in short: its first line and its last (the reason, e.g.
/// "RuntimeError: … not enough memory …"), without the traceback between.
#[cfg(feature = "torch")]
fn first_and_last_lines(s: &str) -> String {
    let first = first_line(s);
    match s.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(last) if last != first => format!("{} … {}", first.trim(), last.trim()),
        _ => first.trim().to_string(),
    }
}

/// Where chroma samples sit relative to luma: co-sited with the first luma sample of their
/// pair (`true`) or centred between the pair (`false`), horizontally and vertically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChromaSiting {
    pub h_cosited: bool,
    pub v_cosited: bool,
}

/// Source position (in input chroma samples) of output chroma sample `j`, as `step·j + offset`,
/// for 2× subsampled chroma and a luma scale factor `s`. A chroma sample `i` sits at luma
/// position `2i + d` (d = 0 co-sited, ½ centred); luma maps by `(X + ½)/s − ½`.
pub fn chroma_map(scale: usize, cosited: bool) -> (f64, f64) {
    chroma_map_sub(scale, 2, cosited)
}

/// [`chroma_map`] for chroma subsampled `sub`× (1: full resolution, the luma mapping; 2: 4:2:x).
/// A chroma sample `i` sits at luma position `sub·i + d`, `d` = 0 co-sited or `(sub − 1)/2`
/// centred.
pub fn chroma_map_sub(scale: usize, sub: usize, cosited: bool) -> (f64, f64) {
    let (s, k) = (scale as f64, sub as f64);
    let d = if cosited { 0.0 } else { (k - 1.0) / 2.0 };
    (1.0 / s, ((d + 0.5) / s - 0.5 - d) / k)
}

/// Bicubic upscaler of 2×2-subsampled chroma planes between two fixed frame sizes.
pub struct ChromaScaler {
    h: Contributions,
    v: Contributions,
    /// Worker threads (U and V, or the two halves of NV12's rows, in parallel when ≥ 2).
    pool: Pool,
    tmp: [Vec<f32>; 2],
}

impl ChromaScaler {
    /// For chroma planes of `in_w`×`in_h` samples going to `out_w`×`out_h`, on `pool` (a pool
    /// of ≥ 2 threads scales U and V at the same time).
    pub fn new(
        in_w: usize,
        in_h: usize,
        out_w: usize,
        out_h: usize,
        scale: usize,
        siting: ChromaSiting,
        pool: Pool,
    ) -> Self {
        Self::with_subsampling(in_w, in_h, out_w, out_h, scale, siting, (2, 2), pool)
    }

    /// As [`new`](Self::new), for chroma subsampled `sub = (horizontal, vertical)` times
    /// (4:2:0 `(2, 2)`, 4:2:2 `(2, 1)`, 4:4:4 `(1, 1)`).
    #[allow(clippy::too_many_arguments)]
    pub fn with_subsampling(
        in_w: usize,
        in_h: usize,
        out_w: usize,
        out_h: usize,
        scale: usize,
        siting: ChromaSiting,
        sub: (usize, usize),
        pool: Pool,
    ) -> Self {
        let (hs, ho) = chroma_map_sub(scale, sub.0, siting.h_cosited);
        let (vs, vo) = chroma_map_sub(scale, sub.1, siting.v_cosited);
        ChromaScaler {
            h: Contributions::affine(in_w, out_w, hs, ho, 1.0),
            v: Contributions::affine(in_h, out_h, vs, vo, 1.0),
            pool,
            tmp: Default::default(),
        }
    }

    /// One planar chroma plane.
    pub fn scale_plane(&mut self, src: &[u8], stride: usize, dst: &mut [u8], dst_stride: usize) {
        self.scale_plane_samples(src, stride, dst, dst_stride, Depth::U8)
    }

    /// One planar chroma plane of any sample type (strides in samples).
    pub fn scale_plane_samples<T: Sample>(
        &mut self,
        src: &[T],
        stride: usize,
        dst: &mut [T],
        dst_stride: usize,
        depth: Depth,
    ) {
        resize_plane_samples(src, stride, dst, dst_stride, &self.h, &self.v, depth, &mut self.tmp[0]);
    }

    /// Both planes of I420 (`(data, stride)` each).
    pub fn scale_planes(
        &mut self,
        u: (&[u8], usize),
        v: (&[u8], usize),
        du: (&mut [u8], usize),
        dv: (&mut [u8], usize),
    ) {
        self.scale_planes_samples(u, v, du, dv, Depth::U8)
    }

    /// As [`scale_planes`](Self::scale_planes) for any sample type (strides in samples).
    pub fn scale_planes_samples<T: Sample>(
        &mut self,
        u: (&[T], usize),
        v: (&[T], usize),
        du: (&mut [T], usize),
        dv: (&mut [T], usize),
        depth: Depth,
    ) {
        let (h, vc) = (&self.h, &self.v);
        let [t0, t1] = &mut self.tmp;
        self.pool.join(
            || resize_plane_samples(u.0, u.1, du.0, du.1, h, vc, depth, t0),
            || resize_plane_samples(v.0, v.1, dv.0, dv.1, h, vc, depth, t1),
        );
    }

    /// An interleaved UV plane (NV12), read and written interleaved; output rows split between
    /// two threads.
    pub fn scale_interleaved(&mut self, src: &[u8], stride: usize, dst: &mut [u8], dst_stride: usize) {
        self.scale_interleaved_samples(src, stride, dst, dst_stride, Depth::U8)
    }

    /// As [`scale_interleaved`](Self::scale_interleaved) for any sample type (P010's UV
    /// words; strides in samples).
    pub fn scale_interleaved_samples<T: Sample>(
        &mut self,
        src: &[T],
        stride: usize,
        dst: &mut [T],
        dst_stride: usize,
        depth: Depth,
    ) {
        let (h, v) = (&self.h, &self.v);
        let oh = v.out_len;
        let rows = |dst: &mut [T], r: std::ops::Range<usize>, tmp: &mut Vec<f32>| {
            for c in 0..2 {
                let sl = U8Layout { stride, step: 2, offset: c };
                let dl = U8Layout { stride: dst_stride, step: 2, offset: c };
                resize_rows(src, sl, dst, dl, h, v, r.clone(), depth, tmp);
            }
        };
        let [t0, t1] = &mut self.tmp;
        if self.pool.threads() >= 2 && oh >= 2 {
            let mid = oh / 2;
            let (top, bottom) = dst.split_at_mut(mid * dst_stride);
            self.pool.join(|| rows(top, 0..mid, t0), || rows(bottom, mid..oh, t1));
        } else {
            rows(dst, 0..oh, t0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::byte_diff;

    #[test]
    fn centred_siting_is_matlab_mapping() {
        let (step, off) = chroma_map(2, false);
        assert_eq!((step, off), (0.5, -0.25));
        // Co-sited: output chroma 0 sits on output luma 0, i.e. input luma −¼, i.e. chroma −⅛.
        assert_eq!(chroma_map(2, true), (0.5, -0.125));
        assert_eq!(chroma_map(4, true).1, (0.5 / 4.0 - 0.5) / 2.0);
        // Full-resolution chroma maps like luma: MATLAB's (j + ½)/s − ½, whatever the siting.
        assert_eq!(chroma_map_sub(2, 1, false), (0.5, -0.25));
        assert_eq!(chroma_map_sub(2, 1, true), (0.5, -0.25));
    }

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
    #[cfg(feature = "torch")]
    fn stripes_equal_the_whole_frame() {
        let mut e = Engine::load(None, Device::Cpu, Backend::Libtorch, 0, Precision::Fp32).unwrap();
        let halo = e.halo().unwrap();
        // SESR-M5: 5×5 in, five 3×3, 5×5 out: radius 2 + 5 + 2 = 9 (+1 margin), unless
        // trained weights happen to cancel an edge tap.
        assert!((8..=10).contains(&halo), "halo {halo}");
        let (w, h) = (37, 70);
        let src: Vec<u8> = (0..w * h).map(|i| ((i * 37 + (i / w) * 11) % 256) as u8).collect();
        let mut whole = vec![0u8; 4 * w * h];
        e.stripe_rows = h;
        e.upscale_luma(&src, w, w, h, &mut whole, 2 * w).unwrap();
        for rows in [1, 7, 16, 33] {
            let mut striped = vec![0u8; 4 * w * h];
            e.stripe_rows = rows;
            e.upscale_luma(&src, w, w, h, &mut striped, 2 * w).unwrap();
            let (d, _) = byte_diff(&whole, &striped);
            assert!(d <= 1, "stripes of {rows} rows differ by {d}");
        }
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

    #[test]
    #[cfg(feature = "torch")]
    fn bad_models_are_named() {
        let e = Engine::load(Some(Path::new("/nonexistent/m.pt")), Device::Cpu, Backend::Auto, 0, Precision::Fp32)
            .err()
            .unwrap();
        assert!(e.contains("/nonexistent/m.pt") && e.contains("no such file"), "{e}");
        let dir = std::env::temp_dir().join(format!("sesr-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("corrupt.pt");
        std::fs::write(&bad, b"garbage").unwrap();
        let e = Engine::load(Some(&bad), Device::Cpu, Backend::Auto, 0, Precision::Fp32).err().unwrap();
        assert!(e.contains("corrupt.pt") && e.contains("not a loadable"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
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
        let (pa, _) = run(&EngineOptions { auto_int8: true, ..base });
        let want = if crate::native::int8::cpu_has_vnni() { Precision::Int8 } else { Precision::Fp32 };
        assert_eq!(pa, Some(want));
        // A sidecar without the calibration: int8 refused with the way out, auto runs fp32.
        let dir = std::env::temp_dir().join(format!("sesr-engine-int8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pt = dir.join("m.pt");
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/models/sesr_m5_x2.pt"), &pt).unwrap();
        std::fs::write(dir.join("m.safetensors"), DEFAULT_WEIGHTS).unwrap();
        let mut sidecar: serde_json::Value = serde_json::from_str(DEFAULT_SIDECAR).unwrap();
        assert!(sidecar.as_object_mut().unwrap().remove("int8").is_some());
        std::fs::write(dir.join("m.json"), sidecar.to_string()).unwrap();
        let o = EngineOptions { location: Some(&pt), ..base };
        let e = Engine::load_with(&EngineOptions { precision: Precision::Int8, ..o }).err().unwrap();
        assert!(e.contains("calibration") && e.contains("trainer calibrate"), "{e}");
        assert_eq!(run(&EngineOptions { auto_int8: true, ..o }).0, Some(Precision::Fp32));
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
    #[cfg(feature = "torch")]
    fn embedded_weights_are_the_embedded_torchscript_model() {
        // The embedded pair is trusted without a libtorch check at load time: prove it here.
        let module = tch::CModule::load_data(&mut std::io::Cursor::new(DEFAULT_MODEL)).unwrap();
        let o = EngineOptions::default();
        let (net, trusted) = native_model(&o).unwrap();
        assert!(trusted);
        verify(&net, &module, 2, &Pool::inline()).unwrap();
        // And the shipped files' sidecars carry the digests of the files beside them.
        for m in ["sesr_m5_x2", "sesr_m3_x2", "sesr_m3_x2_f12", "sesr_m3_x2_f8"] {
            let e = ExportedWeights::read(&models().join(format!("{m}.pt")), true).unwrap();
            assert_eq!(e.digests_match, Some(true), "{m}");
        }
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

    #[test]
    fn interleaved_equals_planar() {
        let (iw, ih) = (5, 3);
        let mut sc = ChromaScaler::new(
            iw,
            ih,
            10,
            6,
            2,
            ChromaSiting { h_cosited: true, v_cosited: false },
            Pool::shared(2).unwrap(),
        );
        let u: Vec<u8> = (0..iw * ih).map(|i| (i * 17) as u8).collect();
        let v: Vec<u8> = (0..iw * ih).map(|i| 255 - (i * 11) as u8).collect();
        let nv: Vec<u8> = (0..iw * ih).flat_map(|i| [u[i], v[i]]).collect();
        let mut out_nv = vec![0u8; 20 * 6];
        sc.scale_interleaved(&nv, 2 * iw, &mut out_nv, 20);
        let (mut ou, mut ov) = (vec![0u8; 60], vec![0u8; 60]);
        sc.scale_plane(&u, iw, &mut ou, 10);
        sc.scale_plane(&v, iw, &mut ov, 10);
        for i in 0..60 {
            assert_eq!(out_nv[2 * i], ou[i]);
            assert_eq!(out_nv[2 * i + 1], ov[i]);
        }
    }
}
