//! Loading a model to evaluate or run: an exported TorchScript file, a training checkpoint, or
//! the bicubic baseline.

use crate::checkpoint;
use anyhow::{bail, Context, Result};
use sesr::tensor::{plane_to_tensor, tensor_to_plane};
use sesr::{CollapsedSesr, ExpandedSesr, Plane};
use std::path::Path;
use tch::{nn::VarStore, CModule, Device, Kind, Tensor};

pub enum Upscaler {
    Script { module: CModule, scale: usize, device: Device },
    Net { model: CollapsedSesr, device: Device },
    Bicubic { scale: usize },
}

/// The collapsed network of a checkpoint folder (or run folder).
pub fn load_checkpoint(dir: &Path, device: Device) -> Result<CollapsedSesr> {
    let dir = checkpoint::resolve(dir);
    let cfg = checkpoint::read_config(&dir)?;
    let mut vs = VarStore::new(Device::Cpu);
    let model = ExpandedSesr::new(&vs.root(), cfg);
    checkpoint::load_weights(&dir, &mut vs)?;
    Ok(model.collapse_detached().to(device, Kind::Float))
}

/// Scale of a TorchScript super-resolution model, found by running it on a small input; also
/// checks the contract `[N,1,H,W] -> [N,1,sH,sW]`.
pub fn probe_scale(module: &CModule, device: Device, path: &Path) -> Result<usize> {
    let x = Tensor::full([1, 1, 3, 5], 0.5, (Kind::Float, device));
    let y = tch::no_grad(|| module.forward_ts(&[&x]))
        .with_context(|| format!("{}: the model does not accept a [1,1,H,W] float tensor", path.display()))?;
    let s = y.size();
    for scale in [2i64, 3, 4, 8] {
        if s == [1, 1, 3 * scale, 5 * scale] {
            return Ok(scale as usize);
        }
    }
    bail!("{}: output shape {s:?} for input [1, 1, 3, 5] is not [1, 1, 3s, 5s]", path.display())
}

impl Upscaler {
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if path.is_dir() {
            return Ok(Upscaler::Net { model: load_checkpoint(path, device)?, device });
        }
        if !path.exists() {
            bail!("{}: no such model file or checkpoint folder", path.display());
        }
        let module = CModule::load_on_device(path, device)
            .with_context(|| format!("{}: not a loadable TorchScript model", path.display()))?;
        let scale = probe_scale(&module, device, path)?;
        Ok(Upscaler::Script { module, scale, device })
    }

    pub fn scale(&self) -> usize {
        match self {
            Upscaler::Script { scale, .. } | Upscaler::Bicubic { scale } => *scale,
            Upscaler::Net { model, .. } => model.cfg.scale,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Upscaler::Script { scale, .. } => format!("TorchScript x{scale}"),
            Upscaler::Net { model, .. } => format!("checkpoint {:?}", model.cfg),
            Upscaler::Bicubic { scale } => format!("bicubic x{scale}"),
        }
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
        })
    }
}
