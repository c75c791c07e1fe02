//! `average`: uniform weight averaging of checkpoints of one run (Polyak averaging of the last
//! epochs, as in SWA or fairseq's checkpoint averaging). Late in training the validation PSNR
//! of single epochs wanders by a few hundredths of a dB around a plateau; the mean of those
//! weights usually sits nearer the plateau's centre than any one of them.
//!
//! The expanded weights are averaged (every variable, element by element), so the result is
//! a checkpoint of the same run: `eval`, `export`, `calibrate` and `train --init` take it.

use crate::checkpoint;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{Kind, Tensor};

#[derive(Debug, Args)]
pub struct AverageArgs {
    /// Checkpoint folders (or run folders: their `last/`), all of one model config.
    #[arg(required = true, num_args = 2..)]
    pub checkpoints: Vec<PathBuf>,
    /// Output checkpoint folder (must not exist).
    #[arg(long, short)]
    pub out: PathBuf,
}

/// The element-wise mean of the named tensors of `sets` (all with the same names and shapes).
pub fn mean_weights(sets: &[(PathBuf, Vec<(String, Tensor)>)]) -> Result<Vec<(String, Tensor)>> {
    let Some((first_path, first)) = sets.first() else { bail!("nothing to average") };
    let mut sum: BTreeMap<String, Tensor> = first.iter().map(|(n, t)| (n.clone(), t.to_kind(Kind::Double))).collect();
    for (path, set) in &sets[1..] {
        if set.len() != first.len() {
            bail!("{} has {} variables, {} has {}", path.display(), set.len(), first_path.display(), first.len());
        }
        for (name, t) in set {
            let Some(s) = sum.get_mut(name) else {
                bail!("{} has a variable {name} that {} lacks", path.display(), first_path.display())
            };
            if s.size() != t.size() {
                bail!("{name}: shape {:?} in {}, {:?} in {}", t.size(), path.display(), s.size(), first_path.display());
            }
            *s += t.to_kind(Kind::Double);
        }
    }
    let n = sets.len() as f64;
    Ok(first.iter().map(|(name, t)| (name.clone(), (&sum[name] / n).to_kind(t.kind()))).collect())
}

pub fn run(args: AverageArgs) -> Result<()> {
    if args.out.exists() {
        bail!("{} exists: choose a new folder for the averaged checkpoint", args.out.display());
    }
    let dirs: Vec<PathBuf> = args.checkpoints.iter().map(|d| checkpoint::resolve(d)).collect();
    let cfg = checkpoint::read_config(&dirs[0])?;
    let mut sets = Vec::new();
    for d in &dirs {
        let c = checkpoint::read_config(d)?;
        if c != cfg {
            bail!(
                "{} is a {c:?} model, {} a {cfg:?} one: only checkpoints of one model average",
                d.display(),
                dirs[0].display()
            );
        }
        if checkpoint::load_masks(d)?.is_some() {
            bail!("{} is pruned: averaging would mix pruning masks", d.display());
        }
        let p = d.join("model.safetensors");
        let t = Tensor::read_safetensors(&p)
            .with_context(|| format!("cannot read {}", p.display()))
            .map_err(|e| checkpoint::unusable(d, e))?;
        sets.push((d.clone(), t));
    }
    let mean = mean_weights(&sets)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let refs: Vec<(&str, &Tensor)> = mean.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, args.out.join("model.safetensors"))?;
    std::fs::write(args.out.join("config.json"), cfg.to_json())?;
    let sources: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    std::fs::write(
        args.out.join("averaged.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "averaged": sources }))?,
    )?;
    // The newest source's trainer state (its training data, for the export sidecar).
    if let Some(s) = dirs.iter().filter_map(|d| checkpoint::read_state(d).ok()).max_by_key(|s| (s.epoch, s.step)) {
        std::fs::write(args.out.join("state.json"), serde_json::to_string_pretty(&s)?)?;
    }
    println!("averaged {} checkpoints into {}", dirs.len(), args.out.display());
    Ok(())
}
