//! The libtorch backend (cargo feature `torch`): the TorchScript module run in stripes with the
//! receptive-field halo on the CPU, or whole frames through page-locked buffers on a GPU, and
//! the check of native weights against the module.

use super::{texture, Backend, Device, Engine, EngineOptions, NativeEngine, Runner, AUTO_STRIPE_PIXELS};
use crate::native::{NativeSesr, Workspace};
use crate::pool::Pool;
use crate::sample::{Depth, Sample};
use crate::weights::Precision;

#[cfg(feature = "torch")]
impl From<Device> for tch::Device {
    fn from(d: Device) -> tch::Device {
        match d {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda(i) => tch::Device::Cuda(i),
        }
    }
}

/// The rest of [`Engine::load_with`] once libtorch is needed: to check untrusted native
/// weights against the TorchScript module, or to run the module itself.
#[cfg(feature = "torch")]
pub(super) fn torch_load(
    o: &EngineOptions,
    name: &str,
    native: Result<NativeSesr, String>,
    pool: Pool,
) -> Result<Engine, String> {
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
pub(super) struct TorchRunner {
    module: tch::CModule,
    /// Receptive-field radius in input pixels, measured at load time: how many rows of context
    /// a stripe needs above and below for its output to equal the whole frame's.
    pub(super) halo: usize,
    input: Vec<f32>,
    /// GPU path: page-locked host buffers (8-bit input plane, 8-bit output plane), reused
    /// while the frame size stays.
    pinned: Option<(tch::Tensor, tch::Tensor)>,
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
    pub(super) fn upscale(
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
    pub(super) fn upscale_float_stripes<T: Sample>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{native_model, DEFAULT_MODEL};
    use crate::metrics::byte_diff;
    use crate::weights::ExportedWeights;
    use std::path::Path;

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
            let pt = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(format!("{m}.pt"));
            let e = ExportedWeights::read(&pt, true).unwrap();
            assert_eq!(e.digests_match, Some(true), "{m}");
        }
    }
}
