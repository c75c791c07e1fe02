//! Loading a model to evaluate or run: an exported TorchScript file, a training checkpoint, or
//! the bicubic baseline.

use crate::checkpoint;
use anyhow::{bail, Context, Result};
use sesr::tensor::{plane_to_tensor, tensor_to_plane};
use sesr::{CollapsedSesr, ExpandedSesr, Plane};
use std::path::Path;
use tch::{nn::VarStore, CModule, Device, Kind};

pub enum Upscaler {
    Script {
        module: CModule,
        scale: usize,
        device: Device,
    },
    Net {
        model: CollapsedSesr,
        device: Device,
    },
    Bicubic {
        scale: usize,
    },
    /// The element's native CPU kernel: 8-bit Y in and out, as in the element.
    Native {
        net: sesr::native::NativeSesr,
    },
}

/// The collapsed network of a checkpoint folder (or run folder).
pub fn load_checkpoint(dir: &Path, device: Device) -> Result<CollapsedSesr> {
    load_checkpoint_weights(dir, "model.safetensors", device)
}

/// [`load_checkpoint`] with the expanded weights from `file` of the checkpoint (e.g. the
/// weight average [`crate::ema::FILE`]).
pub fn load_checkpoint_weights(dir: &Path, file: &str, device: Device) -> Result<CollapsedSesr> {
    let dir = checkpoint::resolve(dir);
    let cfg = checkpoint::read_config(&dir)?;
    let mut vs = VarStore::new(Device::Cpu);
    let model = ExpandedSesr::new(&vs.root(), cfg);
    checkpoint::load_weights_from(&dir, file, &mut vs)?;
    let mut collapsed = model.collapse_detached();
    if let Some(masks) = crate::checkpoint::load_masks(&dir)? {
        // A pruned model: the mask is folded into the weights.
        collapsed = tch::no_grad(|| collapsed.masked(&masks));
    }
    Ok(collapsed.to(device, Kind::Float))
}

/// A teacher for distillation: any ×s model [`Upscaler::load`] accepts (a TorchScript file with
/// the SR contract, or a checkpoint/run folder), run on whole batches without gradients.
pub struct Teacher {
    up: Upscaler,
    pub path: std::path::PathBuf,
    /// The teacher's output is its self-ensemble (the mean over the 8 symmetries).
    pub self_ensemble: bool,
}

impl Teacher {
    /// Loads the teacher and checks that it upscales by `scale`.
    pub fn load(path: &Path, scale: usize, device: Device) -> Result<Self> {
        // A run folder means its best checkpoint, as for `export`.
        let p = if path.is_dir() { checkpoint::resolve_best(path) } else { path.to_path_buf() };
        let up = Upscaler::load(&p, device).with_context(|| format!("teacher {}", path.display()))?;
        if up.scale() != scale {
            bail!("teacher {} upscales x{}, the student x{scale}", path.display(), up.scale());
        }
        Ok(Teacher { up, path: path.to_path_buf(), self_ensemble: false })
    }

    pub fn describe(&self) -> String {
        let x8 = if self.self_ensemble { ", self-ensemble x8" } else { "" };
        format!("{} ({}{x8})", self.path.display(), self.up.describe())
    }

    /// `[B,1,H,W]` LR Y in [0, 1] → `[B,1,sH,sW]`, clamped to [0, 1], no autograd history.
    pub fn forward(&self, lr: &tch::Tensor) -> Result<tch::Tensor> {
        let once = |x: &tch::Tensor| match &self.up {
            Upscaler::Script { module, .. } => Ok(module.forward_ts(&[x])?),
            Upscaler::Net { model, .. } => Ok(model.forward(x)),
            _ => bail!("a teacher is a TorchScript model or a checkpoint"),
        };
        tch::no_grad(|| {
            if !self.self_ensemble {
                return once(lr);
            }
            let mut sum: Option<tch::Tensor> = None;
            for t in 0..8 {
                let y = undihedral(&once(&dihedral(lr, t))?, t);
                sum = Some(match sum {
                    Some(s) => s + y,
                    None => y,
                });
            }
            Ok(sum.expect("8 terms") / 8.0)
        })
        .map(|t| t.detach())
    }
}

/// [`sesr::Plane::dihedral`] on the last two dimensions (H, W) of a tensor.
pub fn dihedral(x: &tch::Tensor, t: u8) -> tch::Tensor {
    let d = x.dim() as i64;
    let mut y = if t & 4 != 0 { x.transpose(d - 2, d - 1) } else { x.shallow_clone() };
    if t & 1 != 0 {
        y = y.flip([d - 1]);
    }
    if t & 2 != 0 {
        y = y.flip([d - 2]);
    }
    y
}

/// The inverse of [`dihedral`].
pub fn undihedral(x: &tch::Tensor, t: u8) -> tch::Tensor {
    dihedral(x, sesr::plane::inverse_symmetry(t)).contiguous()
}

impl Upscaler {
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if path.is_dir() {
            return Ok(Upscaler::Net { model: load_checkpoint(path, device)?, device });
        }
        if !path.exists() {
            bail!("{}: no such model file or checkpoint folder", path.display());
        }
        if let Some(problem) = sesr::weights::model_file_problem(path) {
            bail!("{}: {problem} or checkpoint folder", path.display());
        }
        let module = CModule::load_on_device(path, device)
            .with_context(|| format!("{}: not a loadable TorchScript model", path.display()))?;
        let scale = sesr::model::probe_torchscript_scale(&module, device)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Upscaler::Script { module, scale, device })
    }

    /// The model at `path` (checkpoint folder, or exported `.pt` with its `.safetensors` and
    /// `.json` beside it) in the native kernel at `precision`.
    pub fn load_native(path: &Path, precision: sesr::model::Precision, calib: &[std::path::PathBuf]) -> Result<Self> {
        let (weights, stored) = if path.is_dir() {
            (load_checkpoint(path, Device::Cpu)?.to_weights()?, Ok(None))
        } else {
            if let Some(problem) = sesr::weights::model_file_problem(path) {
                bail!("{}: {problem} or checkpoint folder", path.display());
            }
            let e = sesr::weights::ExportedWeights::read(path, false).with_context(|| format!("{}", path.display()))?;
            let j = sesr::weights::sidecar_paths(path).0;
            (e.weights, e.int8.map_err(|err| anyhow::anyhow!("{}: {err}", j.display())))
        };
        let net = if precision == sesr::model::Precision::Int8 {
            // The calibration `trainer calibrate` stored in an exported model's sidecar, unless
            // `--calib` asks for a fresh one.
            let stored = if calib.is_empty() { stored? } else { None };
            let acts = match stored {
                Some(c) => c.activations,
                None => calibrate(&weights, calib)?.0,
            };
            sesr::native::NativeSesr::with_int8(
                &weights,
                &acts,
                sesr::native::Isa::selected().map_err(anyhow::Error::msg)?,
            )
        } else {
            sesr::native::NativeSesr::with_precision(&weights, precision)
        }
        .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Upscaler::Native { net })
    }

    pub fn scale(&self) -> usize {
        match self {
            Upscaler::Native { net } => net.scale(),
            Upscaler::Script { scale, .. } | Upscaler::Bicubic { scale } => *scale,
            Upscaler::Net { model, .. } => model.cfg.scale,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Upscaler::Script { scale, .. } => format!("TorchScript x{scale}"),
            Upscaler::Net { model, .. } => format!("checkpoint {:?}", model.cfg),
            Upscaler::Bicubic { scale } => format!("bicubic x{scale}"),
            Upscaler::Native { net } => format!("native {} {:?} x{}", net.isa(), net.precision(), net.scale()),
        }
    }

    /// The self-ensemble ("x8", the "+" rows of SR papers): the mean of the model's outputs
    /// over the 8 symmetries of the input, each turned back.
    pub fn upscale_y_x8(&self, lr: &Plane) -> Result<Plane> {
        let mut sum = Plane::new(lr.width * self.scale(), lr.height * self.scale());
        for t in 0..8 {
            let y = self.upscale_y(&lr.dihedral(t))?.undihedral(t);
            sum.data.iter_mut().zip(&y.data).for_each(|(s, v)| *s += v);
        }
        Ok(sum.map(|v| v / 8.0))
    }

    /// Super-resolves a Y plane in [0, 1].
    pub fn upscale_y(&self, lr: &Plane) -> Result<Plane> {
        Ok(match self {
            Upscaler::Script { module, device, .. } => {
                let y = tch::no_grad(|| module.forward_ts(&[plane_to_tensor(lr, *device)]))?;
                tensor_to_plane(&y)
            }
            Upscaler::Net { model, device } => {
                tensor_to_plane(&tch::no_grad(|| model.forward(&plane_to_tensor(lr, *device))))
            }
            Upscaler::Bicubic { scale } => sesr::resize::upscale_bicubic(lr, *scale),
            Upscaler::Native { net } => {
                let (w, h, s) = (lr.width, lr.height, net.scale());
                let src: Vec<u8> = lr.data.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect();
                let mut dst = vec![0u8; w * h * s * s];
                let pool = sesr::pool::Pool::shared(0).map_err(anyhow::Error::msg)?;
                let mut ws: Vec<_> = (0..pool.threads()).map(|_| sesr::native::Workspace::new()).collect();
                net.upscale(&src, w, w, h, &mut dst, w * s, &mut ws, &pool);
                Plane::from_vec(w * s, h * s, dst.iter().map(|&v| v as f32 / 255.0).collect())
            }
        })
    }
}

/// Activation ranges of `weights` on LR crops of the images in `dirs` (up to 64 images, the
/// central 96×96 LR crop of each): post-training calibration of the integer kernel.
pub fn calibrate(
    weights: &sesr::weights::CollapsedWeights,
    dirs: &[std::path::PathBuf],
) -> Result<(Vec<Vec<sesr::native::int8::ActQuant>>, usize)> {
    if dirs.is_empty() {
        bail!("--native int8 needs a calibration: the model's sidecar has none, so give --calib DIR (training images to calibrate the activation ranges on)");
    }
    let scale = weights.cfg.scale;
    let mut crops = Vec::new();
    for d in dirs {
        for p in sesr::image_io::list_images(d)?.into_iter().take(64usize.saturating_sub(crops.len())) {
            let Ok(hr) = sesr::image_io::load_rgb(&p) else { continue };
            let (_, lr) = sesr::protocol::make_lr(&hr, scale);
            let y = sesr::color::y_unit(&lr);
            let (cw, ch) = (y.width.min(96), y.height.min(96));
            let (x0, y0) = ((y.width - cw) / 2, (y.height - ch) / 2);
            let mut c = Vec::with_capacity(cw * ch);
            for yy in 0..ch {
                for xx in 0..cw {
                    c.push((y.get(x0 + xx, y0 + yy) * 255.0).round().clamp(0.0, 255.0) as u8);
                }
            }
            crops.push((c, cw, ch));
        }
    }
    if crops.is_empty() {
        bail!(
            "no calibration images in {}",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let planes: Vec<(&[u8], usize, usize)> = crops.iter().map(|(c, w, h)| (&c[..], *w, *h)).collect();
    Ok((sesr::native::int8::calibrate(weights, &planes), crops.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo_like(w: usize, h: usize) -> Plane {
        Plane::from_fn(w, h, |x, y| {
            let (x, y) = (x as f32, y as f32);
            (0.5 + 0.3 * (0.7 * x + 0.2 * y * y / 7.0).sin() * (0.4 * y).cos() + 0.01 * x).clamp(0.0, 1.0)
        })
    }

    fn max_diff(a: &Plane, b: &Plane) -> f32 {
        a.data.iter().zip(&b.data).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)
    }

    /// `--model` paths that are neither a model file nor a checkpoint folder are named as such.
    #[test]
    fn odd_model_paths_are_named() {
        let err = |r: Result<Upscaler>| r.err().map(|e| format!("{e:#}")).expect("no model there");
        let e = err(Upscaler::load(Path::new("/dev/null"), Device::Cpu));
        assert!(e.contains("/dev/null: is a device, not a model file"), "{e}");
        let e = err(Upscaler::load_native(Path::new("/dev/null"), sesr::model::Precision::Fp32, &[]));
        assert!(e.contains("/dev/null: is a device, not a model file"), "{e}");
        let e = err(Upscaler::load(Path::new("/nonexistent/m.pt"), Device::Cpu));
        assert!(e.contains("no such model file or checkpoint folder"), "{e}");
    }

    /// Bicubic interpolation is symmetric under flips and transposes, so its self-ensemble is
    /// itself: a test that each output is turned back the right way.
    #[test]
    fn bicubic_self_ensemble_is_bicubic() {
        let lr = photo_like(13, 9);
        let up = Upscaler::Bicubic { scale: 2 };
        let (a, b) = (up.upscale_y(&lr).unwrap(), up.upscale_y_x8(&lr).unwrap());
        assert_eq!((b.width, b.height), (26, 18));
        assert!(max_diff(&a, &b) < 1e-5, "bicubic x8 differs by {}", max_diff(&a, &b));
    }

    /// The teacher's tensor self-ensemble equals `eval --self-ensemble`'s plane one on a shipped
    /// model, and differs from the model alone.
    #[test]
    fn tensor_and_plane_self_ensembles_agree() {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/sesr_m3_x2.pt");
        let lr = photo_like(21, 14);
        let x = plane_to_tensor(&lr, Device::Cpu);
        for t in 0..8 {
            let d = tensor_to_plane(&dihedral(&x, t).contiguous());
            assert_eq!(d, lr.dihedral(t), "t = {t}");
            assert_eq!(tensor_to_plane(&undihedral(&plane_to_tensor(&d, Device::Cpu), t)), lr);
        }
        let mut teacher = Teacher::load(&model, 2, Device::Cpu).unwrap();
        let alone = tensor_to_plane(&teacher.forward(&x).unwrap());
        teacher.self_ensemble = true;
        let x8 = tensor_to_plane(&teacher.forward(&x).unwrap());
        let planes = Upscaler::load(&model, Device::Cpu).unwrap().upscale_y_x8(&lr).unwrap();
        assert!(max_diff(&x8, &planes) < 1e-5, "tensor vs plane x8: {}", max_diff(&x8, &planes));
        assert!(max_diff(&x8, &alone) > 1e-3, "the ensemble changes the output: {}", max_diff(&x8, &alone));
    }
}
