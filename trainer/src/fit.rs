//! The training step loop shared by `train` and `prune`: one epoch of AMSGrad steps over a crop
//! plan (optionally under pruning masks), and validation.

use crate::data::{make_batch, Sample, TrainImage};
use crate::eval::{evaluate, EvalSet, SetScore};
use crate::models::{Teacher, Upscaler};
use crate::optim::AmsGrad;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sesr::ExpandedSesr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Options shared by `train` and `prune`: the data, the recipe (spec §3) and where it runs.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Folders of HR training images (PNG/JPEG/BMP; DIV2K's `*_HR` + `*_LR_bicubic/X2` understood).
    #[arg(long = "data", required = true, num_args = 1..)]
    pub data: Vec<std::path::PathBuf>,
    /// Also train on every photo scaled by these factors (comma-separated, each in (0, 1), e.g.
    /// `0.9,0.8,0.7,0.6`: VDSR's scale augmentation of the 291 images), each an image of its
    /// own in the epoch's plan.
    #[arg(long, value_delimiter = ',', value_parser = rescale_factor)]
    pub rescale: Vec<f64>,
    /// Random LR crops per image per epoch.
    #[arg(long, default_value_t = 64)]
    pub crops_per_image: usize,
    /// LR crop size (the HR crop is `scale` times larger).
    #[arg(long, default_value_t = 64)]
    pub crop: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// AMSGrad learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Training loss: `l1` (the paper's) or `mse`, the squared error PSNR scores (a common
    /// last phase after L1). A distillation term uses the same. `metrics.csv` and the epoch
    /// lines report the L1 to the HR crops either way.
    #[arg(long, value_enum, default_value_t = Loss::L1)]
    pub loss: Loss,
    /// AMSGrad epsilon.
    #[arg(long, default_value_t = 1e-7)]
    pub eps: f64,
    /// auto | cpu | cuda | cuda:N
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl CommonArgs {
    pub fn recipe(&self, expanded_forward: bool) -> Recipe {
        Recipe {
            crops_per_image: self.crops_per_image,
            crop: self.crop,
            batch: self.batch,
            expanded_forward,
            loss: self.loss,
        }
    }
}

fn rescale_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
        _ => Err(format!("{s}: a factor in (0, 1) is expected")),
    }
}

/// The error a training step minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    L1,
    Mse,
}

impl Loss {
    /// The mean error of `a` against `b`, as a scalar tensor.
    pub fn of(self, a: &Tensor, b: &Tensor) -> Tensor {
        let d = a - b;
        match self {
            Loss::L1 => d.abs().mean(Kind::Float),
            Loss::Mse => (&d * &d).mean(Kind::Float),
        }
    }
}

/// How batches are drawn and pushed through the network.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    pub crops_per_image: usize,
    pub crop: usize,
    pub batch: usize,
    pub expanded_forward: bool,
    pub loss: Loss,
}

impl Recipe {
    pub fn steps_per_epoch(&self, images: usize) -> Result<usize> {
        let steps = images * self.crops_per_image / self.batch;
        if steps == 0 {
            bail!("fewer crops per epoch ({}) than one batch ({})", images * self.crops_per_image, self.batch);
        }
        Ok(steps)
    }
}

pub struct EpochResult {
    pub mean_loss: f64,
    pub crops: usize,
    pub secs: f64,
    /// `Some(step)` when the epoch stopped early (Ctrl-C or a step limit) before `step`.
    pub stopped_at: Option<usize>,
}

impl EpochResult {
    pub fn crops_per_s(&self) -> f64 {
        self.crops as f64 / self.secs.max(1e-9)
    }
}

/// A flag set by Ctrl-C (a second Ctrl-C exits at once).
pub fn ctrl_c_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    stop
}

/// A progress bar for [`run_epoch`], which sets its length.
pub fn progress_bar(prefix: String) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg} ETA {eta_precise}",
    )
    .unwrap()
    .progress_chars("=>-");
    let pb = ProgressBar::new(0).with_style(style);
    pb.set_prefix(prefix);
    pb
}

/// Distillation: `weight` × the loss (L1 or MSE) to the teacher's output is added to the loss.
pub struct Distill<'a> {
    pub teacher: &'a Teacher,
    pub weight: f64,
}

/// Runs the steps `start_step..` of an epoch's crop plan. `stop(step)` is asked before every
/// step; a non-finite loss is an error (nothing is updated by that step).
#[allow(clippy::too_many_arguments)]
pub fn run_epoch(
    model: &ExpandedSesr,
    opt: &mut AmsGrad,
    images: &[TrainImage],
    recipe: &Recipe,
    plan: &[Sample],
    start_step: usize,
    masks: Option<&[Tensor]>,
    device: Device,
    pb: &ProgressBar,
    stop: &dyn Fn(usize) -> bool,
) -> Result<EpochResult> {
    run_epoch_distill(model, opt, images, recipe, plan, start_step, masks, None, None, None, device, pb, stop)
}

/// [`run_epoch`] with an optional distillation term, and optionally quantisation-aware (`qat`:
/// the activation grids; the forward is [`sesr::qat::forward`]), updating a weight average
/// (`ema`) after every step. The loss it reports
/// (`mean_loss`) is the L1 to the HR crops alone, comparable with and without a teacher.
#[allow(clippy::too_many_arguments)]
pub fn run_epoch_distill(
    model: &ExpandedSesr,
    opt: &mut AmsGrad,
    images: &[TrainImage],
    recipe: &Recipe,
    plan: &[Sample],
    start_step: usize,
    masks: Option<&[Tensor]>,
    distill: Option<&Distill>,
    qat: Option<&[Vec<sesr::native::int8::ActQuant>]>,
    mut ema: Option<&mut crate::ema::Ema>,
    device: Device,
    pb: &ProgressBar,
    stop: &dyn Fn(usize) -> bool,
) -> Result<EpochResult> {
    let steps = plan.len() / recipe.batch;
    pb.set_length(steps as u64);
    pb.set_position(start_step as u64);
    let t0 = Instant::now();
    let (mut loss_sum, mut n, mut crops) = (0.0, 0usize, 0usize);
    for step in start_step..steps {
        if stop(step) {
            return Ok(EpochResult {
                mean_loss: loss_sum / n.max(1) as f64,
                crops,
                secs: t0.elapsed().as_secs_f64(),
                stopped_at: Some(step),
            });
        }
        let batch = &plan[step * recipe.batch..(step + 1) * recipe.batch];
        let (lr, hr) = make_batch(images, batch, recipe.crop, model.cfg.scale, device);
        let sr = if recipe.expanded_forward {
            model.forward_expanded(&lr)
        } else {
            let mut c = model.collapse();
            if let Some(m) = masks {
                c = c.masked(m);
            }
            match qat {
                Some(acts) => sesr::qat::forward(&c, acts, &lr, sesr::qat::Mode::Train)?,
                None => c.forward_unclamped(&lr),
            }
        };
        let l1 = Loss::L1.of(&sr, &hr);
        let fit = if recipe.loss == Loss::L1 { l1.shallow_clone() } else { recipe.loss.of(&sr, &hr) };
        let loss = match distill {
            Some(d) => {
                let t = d.teacher.forward(&lr)?;
                fit + recipe.loss.of(&sr, &t) * d.weight
            }
            None => fit,
        };
        opt.zero_grad();
        loss.backward();
        let lv = l1.double_value(&[]);
        let total = loss.double_value(&[]);
        if !total.is_finite() {
            bail!("loss became {total} at step {step}");
        }
        opt.step();
        if let Some(e) = ema.as_deref_mut() {
            e.update();
        }
        loss_sum += lv;
        n += 1;
        crops += batch.len();
        pb.set_message(format!(
            "loss {:.5} {:.0} crops/s",
            loss_sum / n as f64,
            crops as f64 / t0.elapsed().as_secs_f64()
        ));
        pb.inc(1);
    }
    Ok(EpochResult { mean_loss: loss_sum / n.max(1) as f64, crops, secs: t0.elapsed().as_secs_f64(), stopped_at: None })
}

/// Scores the (masked) collapsed network on the validation sets.
pub fn validate(
    model: &ExpandedSesr,
    masks: Option<&[Tensor]>,
    sets: &[EvalSet],
    device: Device,
) -> Result<Vec<SetScore>> {
    let mut c = model.collapse_detached();
    if let Some(m) = masks {
        c = c.masked(m);
    }
    evaluate(&Upscaler::Net { model: c, device }, sets)
}

/// Scores the int8 kernel (the element's `precision=int8`) on the model's current weights and
/// the activation grids `acts`: what a QAT run ships.
pub fn validate_int8(
    model: &ExpandedSesr,
    acts: &[Vec<sesr::native::int8::ActQuant>],
    sets: &[EvalSet],
) -> Result<Vec<SetScore>> {
    let weights = model.collapse_detached().to_weights()?;
    let net = sesr::native::NativeSesr::with_int8(&weights, acts, sesr::native::Isa::best())
        .map_err(|e| anyhow::anyhow!("int8 kernel: {e}"))?;
    evaluate(&Upscaler::Native { net }, sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_mean_absolute_and_mean_squared_error() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]);
        let b = Tensor::from_slice(&[1.5f32, 2.0, 1.0, 4.0]);
        // |d| = 0.5, 0, 2, 0; d² = 0.25, 0, 4, 0
        assert!((Loss::L1.of(&a, &b).double_value(&[]) - 0.625).abs() < 1e-7);
        assert!((Loss::Mse.of(&a, &b).double_value(&[]) - 1.0625).abs() < 1e-7);
        // Both are differentiable through `a` with the expected gradients.
        let a = a.set_requires_grad(true);
        Loss::Mse.of(&a, &b).backward();
        let g: Vec<f32> = Vec::try_from(a.grad()).unwrap();
        assert_eq!(g, vec![-0.25, 0.0, 1.0, 0.0]); // 2·d / n
    }
}
