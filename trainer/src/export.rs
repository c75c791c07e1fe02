//! `export`: the collapsed model of a checkpoint as TorchScript, with a JSON sidecar and the
//! float32 collapsed weights (`.safetensors`, what the element's native CPU backend runs).

use crate::checkpoint;
use crate::models::load_checkpoint;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Checkpoint folder (or run folder: its `best/` is used, else `last/`).
    pub checkpoint: PathBuf,
    /// Output TorchScript file; the sidecar (`.json`) and the float32 collapsed weights
    /// (`.safetensors`) are written beside it.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Arithmetic inside the model (fp32; bf16 for CPUs with AVX512-BF16; fp16 for CUDA).
    /// Input and output stay float32.
    #[arg(long, default_value = "fp32")]
    pub precision: sesr::model::Precision,
}

fn digest(path: &std::path::Path) -> Result<String> {
    Ok(sesr::weights::sha256_hex(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?))
}

pub fn run(args: ExportArgs) -> Result<()> {
    if args.precision == sesr::model::Precision::Int8 {
        anyhow::bail!("int8 runs only in the native kernel: export fp32 and use `eval --native int8 --calib DIR`");
    }
    let dir = checkpoint::resolve_best(&args.checkpoint);
    let model = load_checkpoint(&dir, Device::Cpu)?;
    let state = checkpoint::read_state(&dir).ok();
    let masks = crate::checkpoint::load_masks(&dir)?;
    if let Some(p) = args.out.parent() {
        std::fs::create_dir_all(p)?;
    }
    model
        .export_torchscript_with(&args.out, args.precision)
        .with_context(|| format!("cannot export to {}", args.out.display()))?;
    let weights = args.out.with_extension("safetensors");
    model.save_safetensors(&weights).with_context(|| format!("cannot write {}", weights.display()))?;
    let sidecar = json!({
        "format": "sesr-torchscript-v1",
        "contract": "forward(x: float32 [N,1,H,W], Y in [0,1]) -> float32 [N,1,sH,sW] in [0,1]",
        "config": model.cfg,
        "scale": model.cfg.scale,
        "precision": args.precision,
        "collapsed_weights": model.weight_count(),
        "sparsity": masks.as_deref().map(sesr::prune::sparsity).unwrap_or(0.0),
        "epochs": state.as_ref().map(|s| s.epoch),
        "best_epoch": state.as_ref().map(|s| s.best_epoch),
        "validation_psnr_y": state.as_ref().and_then(|s| s.best_psnr),
        "training_data": state.as_ref().map(|s| s.train_data.clone()),
        "training_images": state.as_ref().map(|s| s.train_images),
        "checkpoint": dir.display().to_string(),
        "weights": weights.file_name().map(|n| n.to_string_lossy().into_owned()),
        // What the native backend needs to trust the weights without running libtorch.
        "pt_sha256": digest(&args.out)?,
        "weights_sha256": digest(&weights)?,
    });
    let side = args.out.with_extension("json");
    let tmp = sesr::image_io::tmp_sibling(&side);
    std::fs::write(&tmp, serde_json::to_string_pretty(&sidecar)?)?;
    std::fs::rename(&tmp, &side).with_context(|| format!("cannot write {}", side.display()))?;
    println!(
        "exported {} ({} collapsed weights), {} and {}",
        args.out.display(),
        model.weight_count(),
        weights.display(),
        side.display()
    );
    Ok(())
}
