//! `prune`: iterative magnitude pruning with rewind (lottery tickets; spec §6).
//!
//! Round 0 trains the dense model for `--epochs-per-round` epochs and keeps its expanded weights
//! at `--rewind-epoch` (θk). Each later round prunes `--rate` of the still-unpruned *collapsed*
//! conv weights, globally by magnitude, rewinds the expanded weights to θk with a fresh
//! optimiser, and trains again to `--epochs-per-round` with the mask applied in every forward.
//! Every round is saved (`roundN/`, with `mask.safetensors`) atomically; a rerun of the same
//! command continues after the last completed round.

use crate::checkpoint::{self, TrainState};
use crate::data::{epoch_plan, load_training_set};
use crate::eval::{load_sets, mean_psnr};
use crate::fit::{ctrl_c_flag, progress_bar, run_epoch, validate, CommonArgs};
use crate::optim::AmsGrad;
use crate::plot::{draw, Panel};
use crate::rng::Rng;
use crate::train::{set_threads, warn};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use sesr::prune::{full_masks, magnitude_prune, sparsity};
use sesr::{ExpandedSesr, Preset};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use tch::{nn::VarStore, Tensor};

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long = "val", required = true, num_args = 1..)]
    pub val: Vec<PathBuf>,
    #[arg(long, default_value = "m3")]
    pub model: Preset,
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
    #[arg(long, default_value = "runs/prune")]
    pub out: PathBuf,
    /// Fraction of the remaining collapsed weights pruned per round.
    #[arg(long, default_value_t = 0.2)]
    pub rate: f64,
    /// Pruning rounds after the dense round.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Epoch whose expanded weights every round rewinds to.
    #[arg(long, default_value_t = 5)]
    pub rewind_epoch: usize,
    /// Epochs of the dense round; pruned rounds train from the rewind epoch to this one.
    #[arg(long, default_value_t = 50)]
    pub epochs_per_round: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PruneState {
    /// Rounds completed (round 0 is the dense one).
    rounds_done: usize,
    /// Best mean validation PSNR of the dense round.
    dense_psnr: Option<f64>,
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let tmp = sesr::image_io::tmp_sibling(path);
    std::fs::write(&tmp, serde_json::to_string_pretty(v)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub fn run(args: PruneArgs) -> Result<()> {
    set_threads(args.common.threads);
    if args.rewind_epoch == 0 || args.rewind_epoch >= args.epochs_per_round {
        bail!("--rewind-epoch must be between 1 and --epochs-per-round − 1");
    }
    if !(0.0..1.0).contains(&args.rate) {
        bail!("--rate must be in [0, 1)");
    }
    let device = sesr::tensor::parse_device(&args.common.device)?;
    let cfg = args.model.config(args.scale);
    cfg.validate()?;
    let run = &args.out;
    std::fs::create_dir_all(run).with_context(|| format!("cannot create {}", run.display()))?;
    let state_path = run.join("prune_state.json");
    let mut pstate: PruneState = match std::fs::read_to_string(&state_path) {
        Ok(s) => serde_json::from_str(&s).with_context(|| format!("{}: bad state", state_path.display()))?,
        Err(_) => PruneState::default(),
    };
    let images = load_training_set(&args.common.data, cfg.scale, args.common.crop, &args.common.rescale, &warn)?;
    let val_sets = load_sets(&args.val, cfg.scale, &warn)?;
    let recipe = args.common.recipe(false);
    recipe.steps_per_epoch(images.len())?;
    let stop = ctrl_c_flag();

    let summary = run.join("prune.csv");
    if !summary.exists() {
        std::fs::write(&summary, "round,sparsity,best_psnr,best_epoch,epochs_to_dense\n")?;
    }
    let curves = run.join("prune_epochs.csv");
    if !curves.exists() {
        std::fs::write(&curves, "round,epoch,sparsity,psnr\n")?;
    }

    tch::manual_seed(args.common.seed as i64);
    let mut vs = VarStore::new(device);
    let model = ExpandedSesr::new(&vs.root(), cfg);
    let mut masks = full_masks(&model.collapse_detached().convs().iter().map(|c| &c.weight).collect::<Vec<_>>());
    for round in pstate.rounds_done..=args.rounds {
        let first_epoch = if round == 0 {
            0
        } else {
            let prev = run.join(format!("round{}", round - 1));
            checkpoint::load_weights(&prev, &mut vs)?;
            let prev_masks = match crate::checkpoint::load_masks(&prev)? {
                Some(m) => m.into_iter().map(|t| t.to_device(device)).collect(),
                None => masks,
            };
            let collapsed = model.collapse_detached();
            let weights: Vec<&Tensor> = collapsed.convs().iter().map(|c| &c.weight).collect();
            masks = magnitude_prune(&weights, &prev_masks, args.rate);
            vs.load(run.join("rewind/model.safetensors")).context("cannot rewind: rewind/model.safetensors")?;
            args.rewind_epoch
        };
        let sp = sparsity(&masks);
        let mut opt = AmsGrad::new(&vs, args.common.lr, args.common.eps);
        let mut rng = Rng::new(args.common.seed ^ ((round as u64 + 1) << 32));
        let (mut best, mut best_epoch, mut to_dense) = (f64::NEG_INFINITY, 0, None);
        let use_masks = (round > 0).then_some(masks.as_slice());
        for epoch in first_epoch..args.epochs_per_round {
            let plan = epoch_plan(&images, args.common.crops_per_image, args.common.crop, &mut rng);
            let pb = progress_bar(format!(
                "round {round}/{} ({:.0}% sparse) epoch {}/{}",
                args.rounds,
                sp * 100.0,
                epoch + 1,
                args.epochs_per_round
            ));
            let r = run_epoch(&model, &mut opt, &images, &recipe, &plan, 0, use_masks, device, &pb, &|_| {
                stop.load(Ordering::SeqCst)
            })
            .map_err(|e| anyhow!("{e:#} (round {round}, epoch {})", epoch + 1))?;
            pb.finish_and_clear();
            if r.stopped_at.is_some() {
                eprintln!("interrupted in round {round}; completed rounds are kept: rerun the same command to redo round {round}");
                return Ok(());
            }
            let psnr = mean_psnr(&validate(&model, use_masks, &val_sets, device)?);
            writeln!(
                std::fs::OpenOptions::new().append(true).open(&curves)?,
                "{round},{},{sp:.4},{psnr:.4}",
                epoch + 1
            )?;
            if psnr > best {
                best = psnr;
                best_epoch = epoch + 1;
            }
            if to_dense.is_none() && pstate.dense_psnr.is_some_and(|d| psnr >= d) {
                to_dense = Some(epoch + 1);
            }
            if round == 0 && epoch + 1 == args.rewind_epoch {
                let dir = run.join("rewind");
                std::fs::create_dir_all(&dir)?;
                let tmp = dir.join(".model.safetensors.tmp.safetensors");
                vs.save(&tmp)?;
                std::fs::rename(&tmp, dir.join("model.safetensors"))?;
            }
            eprintln!(
                "round {round} ({:.1}% sparse) epoch {}/{}: loss {:.5}, PSNR-Y {psnr:.3}",
                sp * 100.0,
                epoch + 1,
                args.epochs_per_round,
                r.mean_loss
            );
        }
        let dir = run.join(format!("round{round}"));
        let st = TrainState {
            epoch: args.epochs_per_round,
            step: 0,
            rng,
            opt_t: opt.t,
            best_psnr: Some(best),
            best_epoch,
            train_data: args.common.data.iter().map(|d| d.display().to_string()).collect(),
            train_images: images.len(),
            ema: None,
            val_data: checkpoint::val_ids(&args.val),
        };
        checkpoint::save(&dir, &cfg, &vs, &opt, &st, None)?;
        crate::checkpoint::save_masks(&masks, &dir.join("mask.safetensors"))?;
        if round == 0 {
            pstate.dense_psnr = Some(best);
        }
        let td = to_dense.map(|e| e.to_string()).unwrap_or_default();
        writeln!(
            std::fs::OpenOptions::new().append(true).open(&summary)?,
            "{round},{sp:.4},{best:.4},{best_epoch},{td}"
        )?;
        pstate.rounds_done = round + 1;
        write_json(&state_path, &pstate)?;
        if let Err(e) = plot(run) {
            warn(format!("no plot: {e:#}"));
        }
        eprintln!(
            "round {round}: sparsity {:.1}%, best PSNR-Y {best:.3} at epoch {best_epoch}; saved {}",
            sp * 100.0,
            dir.display()
        );
    }
    Ok(())
}

/// `prune.png`: best PSNR vs sparsity, and PSNR vs epoch for every round.
fn plot(run: &Path) -> Result<()> {
    let s = crate::plot::read_csv(&run.join("prune.csv"))?;
    let (sp, best) = (s.column("sparsity").unwrap_or_default(), s.column("best_psnr").unwrap_or_default());
    let c = crate::plot::read_csv(&run.join("prune_epochs.csv"))?;
    let (rounds, epochs, psnr) = (
        c.column("round").unwrap_or_default(),
        c.column("epoch").unwrap_or_default(),
        c.column("psnr").unwrap_or_default(),
    );
    let mut per_round: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for i in 0..rounds.len() {
        let name = format!("round {}", rounds[i]);
        match per_round.last_mut() {
            Some((n, v)) if *n == name => v.push((epochs[i], psnr[i])),
            _ => per_round.push((name, vec![(epochs[i], psnr[i])])),
        }
    }
    draw(
        &[
            Panel {
                title: "best PSNR-Y vs sparsity",
                x_label: "sparsity",
                y_label: "dB",
                series: vec![("best".into(), sp.into_iter().zip(best).collect())],
            },
            Panel { title: "PSNR-Y per epoch", x_label: "epoch", y_label: "dB", series: per_round },
        ],
        &run.join("prune.png"),
    )
}
