//! `trainer calibrate`: post-training int8 calibration of an exported model, stored in its
//! sidecar for the element's `precision=int8`/`auto`.

use anyhow::{bail, Context, Result};
use clap::Args;
use sesr::native::int8::Int8Calibration;
use std::path::PathBuf;

#[derive(Args)]
pub struct CalibrateArgs {
    /// Exported model (`X.pt`); its sidecar `X.json` gets the calibration (its `"int8"` object).
    pub model: PathBuf,
    /// Folders of training images whose LR crops calibrate the activation ranges (never the
    /// evaluation images).
    #[arg(long, num_args = 1.., required = true)]
    pub calib: Vec<PathBuf>,
}

pub fn run(a: CalibrateArgs) -> Result<()> {
    let weights = sesr::weights::ExportedWeights::read(&a.model, false)
        .with_context(|| format!("model '{}'", a.model.display()))?
        .weights;
    let (activations, images) = crate::models::calibrate(&weights, &a.calib)?;
    // The network must build from it (ranges valid, one per channel of every layer).
    sesr::native::NativeSesr::with_int8(&weights, &activations, sesr::native::Isa::Portable)
        .map_err(|e| anyhow::anyhow!("calibration unusable: {e}"))?;
    let folders = a.calib.iter().map(|d| d.canonicalize().unwrap_or(d.clone()).display().to_string()).collect();
    let cal = Int8Calibration::new(&weights, activations, images, folders, false);
    let json = write_into_sidecar(&a.model, &cal)?;
    println!(
        "wrote the int8 calibration ({} layers, crops of up to {} images from {}) into {}",
        cal.activations.len(),
        cal.images,
        cal.folders.join(", "),
        json.display()
    );
    Ok(())
}

/// Puts `cal` into the sidecar of the exported model `pt` as its `"int8"` object (written beside
/// and renamed: an interrupted write leaves the old sidecar whole). Returns the sidecar's path.
pub fn write_into_sidecar(pt: &std::path::Path, cal: &Int8Calibration) -> Result<PathBuf> {
    let (json, _) = sesr::weights::sidecar_paths(pt);
    let text = std::fs::read_to_string(&json).with_context(|| format!("sidecar {}", json.display()))?;
    let mut v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("sidecar {}: not JSON", json.display()))?;
    let Some(obj) = v.as_object_mut() else { bail!("sidecar {}: not a JSON object", json.display()) };
    obj.insert("int8".into(), serde_json::to_value(cal)?);
    let tmp = json.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &json).with_context(|| format!("replacing {}", json.display()))?;
    Ok(json)
}
