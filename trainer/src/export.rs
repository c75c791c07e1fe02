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
    /// Overwrite an existing model at `--out` (e.g. a shipped `models/sesr_m5_x2.pt`, which the
    /// element embeds): its `.pt`, `.safetensors` and `.json` are replaced, and the run's
    /// `metrics.csv` and `plot.png` are copied beside it as `X.metrics.csv` and `X.plot.png`.
    /// Refused when the new model's scale differs from the old one's. Without it, an existing
    /// `--out` is an error.
    #[arg(long)]
    pub replace: bool,
    /// `torchscript` (with the sidecar and weights), or `onnx`: the collapsed model alone as
    /// ONNX (float32 `[N,1,H,W]` in [0,1], dynamic sizes, opset 17, standard operators) for
    /// ONNX Runtime, OpenVINO or vs-mlrt. With `onnx` the input may also be an exported `.pt`
    /// (its weights beside it), e.g. a shipped model.
    #[arg(long, value_parser = ["torchscript", "onnx"], default_value = "torchscript")]
    pub format: String,
    /// Export the weight average an `--ema` run keeps beside its weights (`ema.safetensors`;
    /// a run folder means its `last/`) instead of the weights themselves.
    #[arg(long)]
    pub ema: bool,
}

/// The checkpoint folder an export reads and its collapsed model: the weights of the run's
/// `best/` (else `last/`), or with `--ema` the weight average kept in `last/`.
fn exported_checkpoint(args: &ExportArgs) -> Result<(PathBuf, sesr::CollapsedSesr)> {
    if args.ema {
        let dir = checkpoint::resolve(&args.checkpoint);
        let model = crate::models::load_checkpoint_weights(&dir, crate::ema::FILE, Device::Cpu)?;
        Ok((dir, model))
    } else {
        let dir = checkpoint::resolve_best(&args.checkpoint);
        let model = load_checkpoint(&dir, Device::Cpu)?;
        Ok((dir, model))
    }
}

fn digest(path: &std::path::Path) -> Result<String> {
    Ok(sesr::weights::sha256_hex(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?))
}

pub fn run(args: ExportArgs) -> Result<()> {
    if args.precision == sesr::model::Precision::Int8 {
        anyhow::bail!("int8 runs only in the native kernel: export fp32 and use `eval --native int8 --calib DIR`");
    }
    if args.format == "onnx" {
        return export_onnx(&args);
    }
    let (dir, model) = exported_checkpoint(&args)?;
    let old = replaced_model(&args, model.cfg.scale)?;
    let trained_cfg = checkpoint::read_config(&dir)?;
    // The run folder of a `best/` or `last/` checkpoint (where `metrics.csv`, `recipe.jsonl` are).
    let run_dir = match dir.file_name().and_then(|n| n.to_str()) {
        Some("best" | "last") => dir.parent().map(PathBuf::from),
        _ => None,
    };
    let recipe = run_dir
        .as_ref()
        .and_then(|r| std::fs::read_to_string(r.join("recipe.jsonl")).ok())
        .map(|t| t.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect::<Vec<_>>());
    let state = checkpoint::read_state(&dir).ok();
    // The run's best epoch and score are its weights', not an average's.
    let best = state.as_ref().filter(|_| !args.ema);
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
        "best_epoch": best.map(|s| s.best_epoch),
        "validation_psnr_y": best.and_then(|s| s.best_psnr),
        "training_data": state.as_ref().map(|s| s.train_data.clone()),
        "training_images": state.as_ref().map(|s| s.train_images),
        "checkpoint": dir.display().to_string(),
        "weight_average": args.ema.then_some(crate::ema::FILE),
        // How the expanded model was trained (the collapsed model above is the same for every
        // block kind); `training_recipe`: each start/resume of the run, when it recorded them.
        "training_block": trained_cfg.block,
        "training_recipe": recipe,
        "weights": weights.file_name().map(|n| n.to_string_lossy().into_owned()),
        // What the native backend needs to trust the weights without running libtorch.
        "pt_sha256": digest(&args.out)?,
        "weights_sha256": digest(&weights)?,
    });
    let side = args.out.with_extension("json");
    let tmp = sesr::image_io::tmp_sibling(&side);
    std::fs::write(&tmp, serde_json::to_string_pretty(&sidecar)?)?;
    std::fs::rename(&tmp, &side).with_context(|| format!("cannot write {}", side.display()))?;
    // A QAT run: its activation grids, and the integer weights they give, go with the model.
    if let Some(path) = run_dir.as_ref().map(|r| crate::train::qat_path(r)).filter(|p| p.is_file()) {
        let cal = crate::train::read_qat_grids(&path)?;
        let cal = sesr::native::int8::Int8Calibration::new(
            &model.to_weights()?,
            cal.activations,
            cal.images,
            cal.folders,
            true,
        );
        crate::calibrate::write_into_sidecar(&args.out, &cal)?;
        println!(
            "wrote the QAT run's int8 grids and integer weights ({} convs) into {}",
            cal.layers.len(),
            side.display()
        );
    }
    println!(
        "exported {} ({} collapsed weights), {} and {}",
        args.out.display(),
        model.weight_count(),
        weights.display(),
        side.display()
    );
    if args.replace {
        for (from, suffix) in [("metrics.csv", "metrics.csv"), ("plot.png", "plot.png")] {
            let Some(src) = run_dir.as_ref().map(|r| r.join(from)).filter(|p| p.is_file()) else { continue };
            let dst = args.out.with_extension(suffix);
            std::fs::copy(&src, &dst).with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
            println!("copied {} to {}", src.display(), dst.display());
        }
        let psnr = |v: Option<f64>| v.map(|p| format!("{p:.3} dB")).unwrap_or_else(|| "unknown".into());
        println!(
            "replaced a model of validation PSNR-Y {} by one of {} (score both with `eval` before committing)",
            psnr(old.and_then(|o| o["validation_psnr_y"].as_f64())),
            psnr(best.and_then(|s| s.best_psnr))
        );
    }
    Ok(())
}

/// `--format onnx`: the collapsed weights of a checkpoint or of an exported `.pt` as ONNX.
fn export_onnx(args: &ExportArgs) -> Result<()> {
    if args.precision != sesr::model::Precision::Fp32 {
        anyhow::bail!("--format onnx writes float32 (the tools that read it choose their own arithmetic)");
    }
    if args.out.exists() && !args.replace {
        anyhow::bail!("{} exists; pass --replace to overwrite it", args.out.display());
    }
    let is_pt = args.checkpoint.is_file() && args.checkpoint.extension().is_some_and(|e| e == "pt");
    let weights = if is_pt {
        let e = sesr::weights::ExportedWeights::read(&args.checkpoint, true)
            .with_context(|| format!("model '{}'", args.checkpoint.display()))?;
        if e.digests_match == Some(false) {
            anyhow::bail!(
                "{}: its weights file changed since export (digests differ): not the TorchScript model's",
                args.checkpoint.display()
            );
        }
        e.weights
    } else {
        exported_checkpoint(args)?.1.to_weights()?
    };
    if let Some(p) = args.out.parent() {
        std::fs::create_dir_all(p)?;
    }
    let tmp = sesr::image_io::tmp_sibling(&args.out);
    std::fs::write(&tmp, sesr::onnx::to_onnx(&weights)).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "exported {} as ONNX (opset {}, x{}, input x [N,1,H,W] float32 in [0,1], output y [N,1,{s}H,{s}W])",
        args.out.display(),
        sesr::onnx::OPSET,
        weights.cfg.scale,
        s = weights.cfg.scale
    );
    Ok(())
}

/// The sidecar of the model `--replace` overwrites (None when there is none). An existing
/// `--out` without `--replace`, or a replacement of another scale, is an error.
fn replaced_model(args: &ExportArgs, scale: usize) -> Result<Option<serde_json::Value>> {
    if !args.out.exists() {
        return Ok(None);
    }
    if !args.replace {
        anyhow::bail!("{} exists; pass --replace to overwrite it (and its .safetensors and .json)", args.out.display());
    }
    let side = args.out.with_extension("json");
    let Ok(text) = std::fs::read_to_string(&side) else { return Ok(None) };
    let old: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not a model sidecar", side.display()))?;
    if let Some(s) = old["scale"].as_u64().filter(|&s| s as usize != scale) {
        anyhow::bail!("{} is a x{s} model; the checkpoint is x{scale}: not replaced", args.out.display());
    }
    Ok(Some(old))
}
