//! `train`: the paper's recipe (spec §3) with checkpoints, resume, validation and metrics.

use crate::checkpoint::{self, TrainState};
use crate::data::{epoch_plan, load_training_set};
use crate::ema::Ema;
use crate::eval::{load_sets, mean_psnr};
use crate::fit::{ctrl_c_flag, progress_bar, run_epoch_distill, validate, validate_int8, CommonArgs, Distill};
use crate::models::Teacher;
use crate::optim::AmsGrad;
use crate::rng::Rng;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use sesr::native::int8::Int8Calibration;
use sesr::{ExpandedSesr, Preset, SesrConfig};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use tch::nn::VarStore;

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Validation folders (HR images), scored each epoch (PSNR-Y).
    #[arg(long = "val", num_args = 1..)]
    pub val: Vec<PathBuf>,
    /// Also validate on the `--val` images coded as these (e.g. `h264:32 jpeg:60`, see `eval
    /// --degrade`): each a set of its own in `metrics.csv`, all in the mean `best/` is ranked by.
    #[arg(long, num_args = 1.., value_parser = crate::degrade::parse_degrade, requires = "val")]
    pub val_degrade: Vec<Option<crate::degrade::Degradation>>,
    /// Model variant.
    #[arg(long, default_value = "m5")]
    pub model: Preset,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=4))]
    pub scale: u8,
    /// Output folder (checkpoints `last/`, `best/`, `metrics.csv`).
    #[arg(long, default_value = "runs/sesr")]
    pub out: PathBuf,
    /// Continue a run from its `last/` checkpoint (a run folder or a checkpoint folder).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start a new run from another run's weights (its `best/`, or a checkpoint folder), e.g. a
    /// ×4 model from a ×2 run: variables of the same name and shape are copied, the rest (the
    /// output layer for a different scale) start fresh. A deeper model of the same width from a
    /// shallower run (`--model m7 --init` an M5 run) gets the run's blocks first and its further
    /// blocks as the identity, so it starts computing the shallower network exactly.
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Train through the expanded network instead of collapsing in the forward (slower; for comparison).
    #[arg(long)]
    pub expanded_forward: bool,
    /// Stop after this many steps in total (smoke tests and benchmarks).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Linear blocks while training: `plain` (SESR) or `ecb` (SESR's branch plus 1×1
    /// expand-squeeze, Sobel-x/y and Laplacian branches). Both collapse into the same network,
    /// so the exported model and its cost do not depend on it. A resumed run keeps its own.
    #[arg(long)]
    pub block: Option<sesr::config::BlockKind>,
    /// Distillation teacher: a TorchScript ×s model (e.g. `models/sesr_m5_x2.pt`) or a run or
    /// checkpoint folder (e.g. an M11 or XL trained here). Not stored in the checkpoint: give
    /// it again with `--resume`.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Weight of the L1 term to the teacher's output (the L1 to the HR image keeps weight 1).
    #[arg(long, default_value_t = 1.0, requires = "teacher")]
    pub distill_weight: f64,
    /// The teacher's target is its self-ensemble: the mean of its outputs over the 8 flips and
    /// turns of each batch (8 teacher passes a step; a better teacher than the model alone,
    /// e.g. for the largest model trained, which has no larger teacher).
    #[arg(long, requires = "teacher")]
    pub teacher_self_ensemble: bool,
    /// Quantisation-aware fine-tuning for the int8 kernel, from a trained float run (`--init
    /// RUN`): the forward is the kernel's integer forward (`sesr::qat`) with straight-through
    /// gradients, on activation grids calibrated at the start on the training images (kept in
    /// `OUT/int8.json`; `export` writes them and the integer weights into the sidecar), and
    /// validation scores the int8 kernel itself. A resumed QAT run stays one.
    #[arg(long)]
    pub qat: bool,
    /// Keep an exponential moving average of the weights with this decay per step (e.g.
    /// 0.999: about the last 1000 steps): validation, `best/` and so `export` use the average,
    /// training goes on from the raw weights (`last/` keeps both). A resumed run keeps its
    /// average (and its decay unless given again); given on resume of a run without one, the
    /// average starts at the resumed weights.
    #[arg(long)]
    pub ema: Option<f64>,
    /// On `--resume`, drop the run's weight average and start a new one at the resumed weights
    /// (e.g. to average a new phase of the run at another `--lr`, or when `ema.safetensors` is
    /// lost); the decay is `--ema`'s, else the run's.
    #[arg(long, requires = "resume")]
    pub ema_restart: bool,
    /// Learning-rate schedule over `--epochs`: `constant` (the paper's) or `cosine` (from `--lr`
    /// at epoch 0 down to `--lr-min` at the last epoch, set at the start of each epoch as
    /// PyTorch's `CosineAnnealingLR`; a resumed run picks it up at its epoch).
    #[arg(long, value_enum, default_value_t = Schedule::Constant)]
    pub lr_schedule: Schedule,
    /// The learning rate the cosine schedule ends at.
    #[arg(long, default_value_t = 1e-6)]
    pub lr_min: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Cosine,
}

/// The learning rate of `epoch` (0-based) of `epochs`.
pub fn scheduled_lr(schedule: Schedule, lr: f64, lr_min: f64, epoch: usize, epochs: usize) -> f64 {
    match schedule {
        Schedule::Constant => lr,
        Schedule::Cosine => {
            let t = (epoch as f64 / epochs.max(1) as f64).min(1.0);
            lr_min + (lr - lr_min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

/// The QAT grids of a run folder.
pub fn qat_path(run_dir: &std::path::Path) -> PathBuf {
    run_dir.join("int8.json")
}

/// Reads a QAT run's grids ([`qat_path`]).
pub fn read_qat_grids(path: &std::path::Path) -> Result<Int8Calibration> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not an int8 calibration", path.display()))
}

pub fn set_threads(threads: Option<usize>) {
    let n = threads.unwrap_or_else(sesr::available_threads);
    tch::set_num_threads(n as i32);
    tch::set_num_interop_threads(1);
}

/// Appends this start's recipe to `run_dir/recipe.jsonl` (one JSON line per start or
/// resume): what `export` records as the model's training.
fn write_recipe(run_dir: &std::path::Path, args: &TrainArgs, cfg: &sesr::SesrConfig) -> Result<()> {
    let c = &args.common;
    let line = serde_json::json!({
        "config": cfg,
        "block": cfg.block,
        "data": c.data,
        "crops_per_image": c.crops_per_image,
        "crop": c.crop,
        "batch": c.batch,
        "lr": c.lr,
        "loss": c.loss,
        "rescale": c.rescale,
        "seed": c.seed,
        "epochs": args.epochs,
        "resumed": args.resume.is_some(),
        "init": args.init,
        "teacher": args.teacher,
        "distill_weight": args.teacher.as_ref().map(|_| args.distill_weight),
        "teacher_self_ensemble": args.teacher_self_ensemble,
        "qat": args.qat,
        "ema": args.ema,
        "ema_restart": args.ema_restart,
        "lr_schedule": args.lr_schedule,
        "lr_min": (args.lr_schedule == Schedule::Cosine).then_some(args.lr_min),
    });
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(run_dir.join("recipe.jsonl"))?;
    writeln!(f, "{line}")?;
    Ok(())
}

pub fn warn(msg: String) {
    eprintln!("warning: {msg}");
}

/// The activation grids of a QAT run: its `int8.json` when resumed, else calibrated now on the
/// training images from the initial weights (and written there first, so that an interrupted
/// run resumes on the same grids). A new run also scores the int8 kernel before any step.
fn qat_grids(
    args: &TrainArgs,
    model: &ExpandedSesr,
    path: &std::path::Path,
    val_sets: &[crate::eval::EvalSet],
) -> Result<Int8Calibration> {
    if path.is_file() {
        let cal = read_qat_grids(path)?;
        eprintln!("QAT on the activation grids of {}", path.display());
        return Ok(cal);
    }
    let weights = model.collapse_detached().to_weights()?;
    let (acts, images) = crate::models::calibrate(&weights, &args.common.data)?;
    let folders = args.common.data.iter().map(|d| d.display().to_string()).collect();
    let cal = Int8Calibration { activations: acts, images, folders, qat: true, layers: Vec::new() };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&cal)?)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    let before = validate_int8(model, &cal.activations, val_sets)?;
    let vals: Vec<String> = before.iter().map(|s| format!("{} {:.3}", s.set, s.psnr_y)).collect();
    eprintln!(
        "QAT: activation grids calibrated into {}; int8 kernel before QAT: PSNR-Y {}",
        path.display(),
        vals.join(", ")
    );
    Ok(cal)
}

/// What a run's epochs are ranked by: the int8 kernel on the QAT grids (what a QAT run ships),
/// else the float model.
fn score(
    model: &ExpandedSesr,
    acts: Option<&Int8Calibration>,
    val_sets: &[crate::eval::EvalSet],
    device: tch::Device,
) -> Result<Vec<crate::eval::SetScore>> {
    match acts {
        Some(c) => validate_int8(model, &c.activations, val_sets),
        None => validate(model, None, val_sets, device),
    }
}

/// `best_psnr` ranks epochs scored on one set of validation folders. A run resumed on other
/// folders (another copy of the sets, as the luma-packed ones used on a GPU machine, whose 8-bit luma
/// reads a few hundredths of a dB lower; other sets; or a run from before the folders were
/// kept) scores its `best/` on the new folders first, so that a later epoch is compared with
/// it on equal terms and `best/` is replaced only by a better model.
fn rescore_best(
    run_dir: &std::path::Path,
    cfg: sesr::SesrConfig,
    device: tch::Device,
    val_sets: &[crate::eval::EvalSet],
    acts: Option<&Int8Calibration>,
    state: &mut TrainState,
) -> Result<()> {
    let best = run_dir.join("best");
    let mut vs = VarStore::new(device);
    let model = ExpandedSesr::new(&vs.root(), cfg);
    if let Err(e) = checkpoint::load_weights(&best, &mut vs) {
        warn(format!("{e:#}; the next epoch scored becomes best/"));
        state.best_psnr = None;
        return Ok(());
    }
    let psnr = mean_psnr(&score(&model, acts, val_sets, device)?);
    eprintln!(
        "best/ (epoch {}) scored on these validation folders: {psnr:.3} dB (was {:.3} on {})",
        state.best_epoch,
        state.best_psnr.unwrap_or(f64::NAN),
        if state.val_data.is_empty() { "folders not recorded".to_string() } else { state.val_data.join(", ") }
    );
    state.best_psnr = Some(psnr);
    Ok(())
}

pub fn run(args: TrainArgs) -> Result<()> {
    set_threads(args.common.threads);
    let device = sesr::tensor::parse_device(&args.common.device)?;
    let resume_dir = args.resume.as_ref().map(|r| checkpoint::resolve(r));
    if args.scale == 3 {
        bail!("--scale must be 2 or 4");
    }
    let cfg = match &resume_dir {
        Some(d) => {
            let cfg = checkpoint::read_config(d)?;
            if let Some(b) = args.block.filter(|b| *b != cfg.block) {
                bail!("{} was trained with {} blocks, not {b}", d.display(), cfg.block);
            }
            cfg
        }
        None => args.model.config(args.scale as usize).with_block(args.block.unwrap_or_default()),
    };
    if !(args.lr_min.is_finite() && args.lr_min >= 0.0 && args.lr_min <= args.common.lr) {
        bail!("--lr-min must lie in [0, --lr]; got {} with --lr {}", args.lr_min, args.common.lr);
    }
    if !(args.distill_weight.is_finite() && args.distill_weight >= 0.0) {
        bail!("--distill-weight must be a finite number ≥ 0, got {}", args.distill_weight);
    }
    let run_dir = match &args.resume {
        Some(r) if r.join("last").is_dir() => r.clone(),
        Some(r) => r.parent().map(PathBuf::from).unwrap_or_else(|| args.out.clone()),
        None => args.out.clone(),
    };
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let qat_file = qat_path(&run_dir);
    let qat = args.qat || (args.resume.is_some() && qat_file.is_file());
    if qat && args.resume.is_none() && args.init.is_none() {
        bail!("--qat fine-tunes a trained float run: give it with --init RUN");
    }
    if qat && args.resume.is_some() && !qat_file.is_file() {
        bail!(
            "{} is a float run ({} missing): start QAT from it with --qat --init",
            run_dir.display(),
            qat_file.display()
        );
    }
    if args.qat && args.resume.is_none() && qat_file.exists() {
        bail!("{} already holds a QAT run: resume it with --resume, or choose another --out", run_dir.display());
    }
    if qat && args.resume.is_some() {
        // Damaged grids stop the resume before anything of the run is written.
        read_qat_grids(&qat_file)?;
    }

    let teacher = match &args.teacher {
        Some(t) => {
            let mut t = Teacher::load(t, cfg.scale, device)?;
            t.self_ensemble = args.teacher_self_ensemble;
            eprintln!("distilling from {} with weight {}", t.describe(), args.distill_weight);
            Some(t)
        }
        None => None,
    };
    let distill = teacher.as_ref().map(|teacher| Distill { teacher, weight: args.distill_weight });
    write_recipe(&run_dir, &args, &cfg)?;

    eprintln!("loading training images from {:?}", args.common.data);
    let images = load_training_set(&args.common.data, cfg.scale, args.common.crop, &args.common.rescale, &warn)?;
    let mut val_sets = load_sets(&args.val, cfg.scale, &warn)?;
    val_sets = crate::degrade::with_coded_copies(val_sets, &args.val_degrade)?;
    eprintln!(
        "{} training images{}, {} validation images; model {:?} on {device:?}",
        images.len(),
        if args.common.rescale.is_empty() {
            String::new()
        } else {
            format!(" (with the copies at {:?} of their size)", args.common.rescale)
        },
        val_sets.iter().map(|s| s.images.len()).sum::<usize>(),
        cfg
    );

    tch::manual_seed(args.common.seed as i64);
    let mut vs = VarStore::new(device);
    let model = ExpandedSesr::new(&vs.root(), cfg);
    let mut opt = AmsGrad::new(&vs, args.common.lr, args.common.eps);
    let mut state = TrainState {
        epoch: 0,
        step: 0,
        rng: Rng::new(args.common.seed),
        opt_t: 0,
        best_psnr: None,
        best_epoch: 0,
        train_data: args.common.data.iter().map(|d| d.display().to_string()).collect(),
        train_images: images.len(),
        ema: None,
        val_data: checkpoint::val_ids(&args.val),
    };
    if let Some(init) = &args.init {
        let d = checkpoint::resolve_best(init);
        let (copied, fresh) = checkpoint::init_from(&d, &mut vs)?;
        eprintln!(
            "initialised {copied} variables from {}; fresh: {}",
            d.display(),
            if fresh.is_empty() { "none".to_string() } else { fresh.join(", ") }
        );
        let grown = grown_blocks(&checkpoint::read_config(&d)?, &cfg);
        if !grown.is_empty() {
            grown.clone().for_each(|i| model.make_identity_block(i));
            eprintln!(
                "blocks {}–{} start as the identity: the network starts as the {}-block one it grows from",
                grown.start,
                grown.end - 1,
                grown.start
            );
        }
    }
    if let Some(d) = &resume_dir {
        checkpoint::load_weights(d, &mut vs)?;
        state = checkpoint::read_state(d)?;
        checkpoint::load_optimizer(d, &vs, &mut opt, state.opt_t)?;
        eprintln!("resumed from {} at epoch {} step {}", d.display(), state.epoch, state.step);
    }
    let mut ema = match (args.ema.or(state.ema), &resume_dir) {
        (None, _) if args.ema_restart => {
            bail!("--ema-restart: the run keeps no weight average; give its decay with --ema")
        }
        (None, _) => None,
        (Some(decay), d) => {
            let mut e = Ema::new(&vs, decay)?;
            match d.as_ref().filter(|_| state.ema.is_some() && !args.ema_restart) {
                Some(d) => {
                    e.load(&d.join(crate::ema::FILE)).map_err(|err| {
                        checkpoint::unusable(d, err.context("its weight average (--ema-restart starts a new one)"))
                    })?;
                    eprintln!("weight average (decay {decay}) resumed from {}", d.display());
                }
                None => eprintln!(
                    "keeping a weight average with decay {decay}, from the current weights{}",
                    if args.ema_restart && state.ema.is_some() { " (restarted)" } else { "" }
                ),
            }
            Some(e)
        }
    };
    state.ema = ema.as_ref().map(|e| e.decay);

    let acts = if qat { Some(qat_grids(&args, &model, &qat_file, &val_sets)?) } else { None };
    if !val_sets.is_empty() {
        let mut ids = checkpoint::val_ids(&args.val);
        ids.extend(args.val_degrade.iter().flatten().map(|d| format!("coded as {d}")));
        if resume_dir.is_some() && state.best_psnr.is_some() && state.val_data != ids {
            rescore_best(&run_dir, cfg, device, &val_sets, acts.as_ref(), &mut state)?;
        }
        state.val_data = ids;
    }

    let stop = ctrl_c_flag();
    let metrics_path = run_dir.join("metrics.csv");
    if !metrics_path.exists() {
        let mut header = "epoch,train_loss,crops_per_s,seconds".to_string();
        for s in &val_sets {
            header.push_str(&format!(",psnr_{}", s.name));
        }
        std::fs::write(&metrics_path, header + "\n")?;
    }

    let recipe = args.common.recipe(args.expanded_forward);
    recipe.steps_per_epoch(images.len())?;
    let mut total_steps = 0usize;
    while state.epoch < args.epochs {
        let epoch = state.epoch;
        opt.lr = scheduled_lr(args.lr_schedule, args.common.lr, args.lr_min, epoch, args.epochs);
        let mut rng = state.rng;
        let plan = epoch_plan(&images, args.common.crops_per_image, args.common.crop, &mut rng);
        let pb = progress_bar(format!("epoch {}/{}", epoch + 1, args.epochs));
        let first = state.step;
        let should_stop = |step: usize| {
            stop.load(Ordering::SeqCst) || args.max_steps.is_some_and(|m| total_steps + step - first >= m)
        };
        let result = run_epoch_distill(
            &model,
            &mut opt,
            &images,
            &recipe,
            &plan,
            first,
            None,
            distill.as_ref(),
            acts.as_ref().map(|c| &c.activations[..]),
            ema.as_mut(),
            device,
            &pb,
            &should_stop,
        )
        .map_err(|e| {
            pb.abandon();
            anyhow!(
                "{e:#} of epoch {}; stopped without saving. The last good checkpoint is in {}",
                epoch + 1,
                run_dir.join("last").display()
            )
        })?;
        pb.finish_and_clear();
        total_steps += result.crops / args.common.batch;
        if let Some(step) = result.stopped_at {
            state.step = step;
            state.opt_t = opt.t;
            let last = run_dir.join("last");
            checkpoint::save(&last, &cfg, &vs, &opt, &state, ema.as_ref())?;
            eprintln!(
                "stopped at epoch {} step {step} ({} crops since this start, {:.0} crops/s); checkpoint saved in {}",
                epoch + 1,
                result.crops,
                result.crops_per_s(),
                last.display()
            );
            eprintln!("continue with: cargo run --release -p trainer -- train --resume {}", run_dir.display());
            return Ok(());
        }

        // Validation, and `best/`, see the average.
        if let Some(e) = ema.as_mut() {
            e.swap();
        }
        let scores = score(&model, acts.as_ref(), &val_sets, device)?;
        let psnr = mean_psnr(&scores);
        let mut row = format!("{},{:.6},{:.1},{:.1}", epoch + 1, result.mean_loss, result.crops_per_s(), result.secs);
        for s in &scores {
            row.push_str(&format!(",{:.4}", s.psnr_y));
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&metrics_path)?;
        writeln!(f, "{row}")?;
        drop(f);
        if let Err(e) = crate::plot::plot_training(&metrics_path, &run_dir.join("plot.png")) {
            warn(format!("no plot: {e:#}"));
        }

        state.epoch = epoch + 1;
        state.step = 0;
        state.rng = rng;
        state.opt_t = opt.t;
        let improved = !scores.is_empty() && state.best_psnr.is_none_or(|b| psnr > b);
        if improved {
            state.best_psnr = Some(psnr);
            state.best_epoch = epoch + 1;
        }
        if improved || scores.is_empty() {
            // The scored weights alone: `best/` of an averaged run holds the average as its
            // weights, and no second set.
            let scored = TrainState { ema: None, ..state.clone() };
            checkpoint::save(&run_dir.join("best"), &cfg, &vs, &opt, &scored, None)?;
        }
        if let Some(e) = ema.as_mut() {
            e.swap();
        }
        checkpoint::save(&run_dir.join("last"), &cfg, &vs, &opt, &state, ema.as_ref())?;
        let vals: Vec<String> = scores.iter().map(|s| format!("{} {:.3}", s.set, s.psnr_y)).collect();
        eprintln!(
            "epoch {}/{}: lr {:.3e}, loss {:.5}, {:.0} crops/s, {:.0}s; PSNR-Y {}{}",
            epoch + 1,
            args.epochs,
            opt.lr,
            result.mean_loss,
            result.crops_per_s(),
            result.secs,
            vals.join(", "),
            if improved { " (best)" } else { "" }
        );
    }
    match state.best_psnr {
        Some(p) => eprintln!("done: {} epochs; best {p:.3} dB at epoch {}", state.epoch, state.best_epoch),
        None => eprintln!("done: {} epochs", state.epoch),
    }
    Ok(())
}

/// The blocks a run of `to` adds to an `--init` checkpoint of `from` when it only deepens it
/// (same width, expansion, scale and block kind, fewer blocks): those start as the identity,
/// so the deeper network starts computing the shallower one. Empty otherwise.
fn grown_blocks(from: &SesrConfig, to: &SesrConfig) -> std::ops::Range<usize> {
    let deepens = from.m < to.m && SesrConfig { m: to.m, ..*from } == *to;
    if deepens {
        from.m..to.m
    } else {
        0..0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_runs_from_lr_to_lr_min() {
        let lr = |e| scheduled_lr(Schedule::Cosine, 1e-3, 1e-5, e, 4);
        assert_eq!(lr(0), 1e-3);
        assert!((lr(2) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-15);
        assert!(lr(1) > lr(2) && lr(2) > lr(3) && lr(3) > 1e-5);
        assert!((lr(4) - 1e-5).abs() < 1e-15 && (lr(9) - 1e-5).abs() < 1e-15, "held at the end");
        assert_eq!(scheduled_lr(Schedule::Constant, 5e-4, 1e-6, 7, 10), 5e-4);
    }

    #[test]
    fn only_a_deeper_network_of_the_same_shape_grows() {
        let c = |p: Preset, s| p.config(s).with_block(sesr::config::BlockKind::Ecb);
        assert_eq!(grown_blocks(&c(Preset::M5, 2), &c(Preset::M7, 2)), 5..7);
        assert_eq!(grown_blocks(&c(Preset::M3, 4), &c(Preset::M5, 4)), 3..5);
        assert!(grown_blocks(&c(Preset::M5, 2), &c(Preset::M5, 2)).is_empty(), "same depth");
        assert!(grown_blocks(&c(Preset::M7, 2), &c(Preset::M5, 2)).is_empty(), "shallower");
        assert!(grown_blocks(&c(Preset::M5, 2), &c(Preset::M11, 2)).is_empty(), "M11 expands to 64, not 256");
        assert!(grown_blocks(&c(Preset::M5, 2), &c(Preset::M7, 4)).is_empty(), "another scale");
        assert!(grown_blocks(&Preset::M5.config(2), &c(Preset::M7, 2)).is_empty(), "another block kind");
    }
}
