//! Training checkpoints: a folder with the expanded weights (`model.safetensors`), the model
//! config (`config.json`), the optimiser state (`optimizer.safetensors`) and the trainer state
//! (`state.json`). A folder is written next to its final place and renamed over it, so a crash
//! never leaves a half-written checkpoint.

use crate::optim::AmsGrad;
use crate::rng::Rng;
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use sesr::SesrConfig;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Steps completed inside `epoch` (non-zero only for an interrupted epoch).
    pub step: usize,
    /// RNG state at the start of `epoch` (its crop plan is drawn from it).
    pub rng: Rng,
    /// AMSGrad step count.
    pub opt_t: i64,
    /// Best mean validation PSNR-Y so far (none without validation sets).
    pub best_psnr: Option<f64>,
    pub best_epoch: usize,
    /// Paths of the training folders, for the export sidecar.
    pub train_data: Vec<String>,
    pub train_images: usize,
}

pub fn save(dir: &Path, cfg: &SesrConfig, vs: &VarStore, opt: &AmsGrad, state: &TrainState) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = dir.file_name().unwrap().to_string_lossy();
    let tmp = parent.join(format!(".{name}.tmp"));
    let old = parent.join(format!(".{name}.old"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    vs.save(tmp.join("model.safetensors"))?;
    opt.save(&tmp.join("optimizer.safetensors"))?;
    std::fs::write(tmp.join("config.json"), cfg.to_json())?;
    std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("cannot move checkpoint into {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

pub fn read_config(dir: &Path) -> Result<SesrConfig> {
    let p = dir.join("config.json");
    let s = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    SesrConfig::from_json(&s).with_context(|| p.display().to_string())
}

pub fn read_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join("state.json");
    let s = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_str(&s).with_context(|| format!("{}: bad trainer state", p.display()))
}

pub fn load_weights(dir: &Path, vs: &mut VarStore) -> Result<()> {
    let p = dir.join("model.safetensors");
    vs.load(&p).with_context(|| format!("cannot load weights from {}", p.display()))
}

/// Accepts a run folder (uses its `best/` when it has one, else `last/`) or a checkpoint folder.
pub fn resolve_best(dir: &Path) -> PathBuf {
    if dir.join("best/config.json").is_file() {
        dir.join("best")
    } else {
        resolve(dir)
    }
}

/// Accepts a run folder (uses its `last/`) or a checkpoint folder.
pub fn resolve(dir: &Path) -> PathBuf {
    if dir.join("config.json").is_file() {
        dir.to_path_buf()
    } else {
        dir.join("last")
    }
}

/// Writes pruning masks (`mask{i}`, in conv order) of a checkpoint folder.
pub fn save_masks(masks: &[Tensor], path: &Path) -> Result<()> {
    let named: Vec<(String, Tensor)> =
        masks.iter().enumerate().map(|(i, m)| (format!("mask{i}"), m.shallow_clone())).collect();
    Tensor::write_safetensors(&named, path)?;
    Ok(())
}

/// Masks of a checkpoint folder, in conv order, when it has them.
pub fn load_masks(dir: &Path) -> Result<Option<Vec<Tensor>>> {
    let p = dir.join("mask.safetensors");
    if !p.is_file() {
        return Ok(None);
    }
    let map: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&p)?.into_iter().collect();
    (0..map.len())
        .map(|i| {
            map.get(&format!("mask{i}"))
                .map(|t| t.shallow_clone())
                .ok_or_else(|| anyhow!("{}: no mask{i}", p.display()))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}
