//! `shrink`: structured pruning — keep the `--channels` most important feature channels of a
//! checkpoint (f 16 → 12 → 8), writing a narrower checkpoint that `train --resume` fine-tunes
//! and `export` turns into a faster model.

use crate::checkpoint::{self, TrainState};
use crate::optim::AmsGrad;
use crate::rng::Rng;
use anyhow::{bail, Result};
use clap::Args;
use sesr::model::top_channels;
use sesr::ExpandedSesr;
use std::path::PathBuf;
use tch::{nn::VarStore, Device};

#[derive(Debug, Args)]
pub struct ShrinkArgs {
    /// Checkpoint folder (or run folder: its `best/`, else `last/`).
    pub checkpoint: PathBuf,
    /// Feature channels to keep.
    #[arg(long)]
    pub channels: usize,
    /// Output run folder (the narrow checkpoint goes to `OUT/last` and `OUT/best`).
    #[arg(long, short)]
    pub out: PathBuf,
}

pub fn run(args: ShrinkArgs) -> Result<()> {
    let dir = checkpoint::resolve_best(&args.checkpoint);
    let cfg = checkpoint::read_config(&dir)?;
    if args.channels == 0 || args.channels > cfg.f {
        bail!("--channels must be between 1 and the model's f = {}", cfg.f);
    }
    let mut vs = VarStore::new(Device::Cpu);
    let model = ExpandedSesr::new(&vs.root(), cfg);
    checkpoint::load_weights(&dir, &mut vs)?;
    let keep = top_channels(&model.collapse_detached(), args.channels);
    let out_vs = VarStore::new(Device::Cpu);
    let narrow = model.select_channels(&out_vs.root(), &keep);
    let old = checkpoint::read_state(&dir).ok();
    let state = TrainState {
        epoch: 0,
        step: 0,
        rng: Rng::new(old.as_ref().map(|s| s.rng.state).unwrap_or(0)),
        opt_t: 0,
        best_psnr: None,
        best_epoch: 0,
        train_data: old.as_ref().map(|s| s.train_data.clone()).unwrap_or_default(),
        train_images: old.as_ref().map(|s| s.train_images).unwrap_or(0),
        ema: None,
        val_data: Vec::new(),
    };
    let opt = AmsGrad::new(&out_vs, 5e-4, 1e-7);
    checkpoint::save(&args.out.join("last"), &narrow.cfg, &out_vs, &opt, &state, None)?;
    checkpoint::save(&args.out.join("best"), &narrow.cfg, &out_vs, &opt, &state, None)?;
    println!(
        "kept channels {keep:?} of {}: f = {}, {} collapsed weights (was {}); checkpoint in {}",
        cfg.f,
        narrow.cfg.f,
        narrow.cfg.collapsed_weights(),
        cfg.collapsed_weights(),
        args.out.display()
    );
    println!(
        "fine-tune with: cargo run --release -p trainer -- train --resume {} --data ... --val ...",
        args.out.display()
    );
    Ok(())
}
