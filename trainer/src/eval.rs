//! Scoring on benchmark folders under the protocol of SR papers.

use crate::data::load_eval_set;
use crate::models::Upscaler;
use anyhow::Result;
use serde::Serialize;
use sesr::protocol::{score, EvalPair};
use std::path::PathBuf;

/// A benchmark set prepared for scoring.
pub struct EvalSet {
    pub name: String,
    pub images: Vec<(String, EvalPair)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageScore {
    pub image: String,
    pub psnr_y: f64,
    pub ssim_y: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetScore {
    pub set: String,
    pub images: usize,
    pub psnr_y: f64,
    pub ssim_y: f64,
    pub per_image: Vec<ImageScore>,
}

pub fn load_sets(dirs: &[PathBuf], scale: usize, warn: &dyn Fn(String)) -> Result<Vec<EvalSet>> {
    dirs.iter()
        .map(|d| {
            let name =
                d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| d.display().to_string());
            Ok(EvalSet { name, images: load_eval_set(d, scale, warn)? })
        })
        .collect()
}

pub fn evaluate(up: &Upscaler, sets: &[EvalSet]) -> Result<Vec<SetScore>> {
    evaluate_with(up, sets, false)
}

/// [`evaluate`], of the self-ensemble ([`Upscaler::upscale_y_x8`]) if `x8`.
pub fn evaluate_with(up: &Upscaler, sets: &[EvalSet], x8: bool) -> Result<Vec<SetScore>> {
    let scale = up.scale();
    sets.iter()
        .map(|s| {
            let mut per_image = Vec::new();
            for (name, pair) in &s.images {
                let sr = if x8 { up.upscale_y_x8(&pair.lr_y)? } else { up.upscale_y(&pair.lr_y)? };
                let (psnr_y, ssim_y) = score(&sr, &pair.hr_y, scale);
                per_image.push(ImageScore { image: name.clone(), psnr_y, ssim_y });
            }
            let n = per_image.len() as f64;
            Ok(SetScore {
                set: s.name.clone(),
                images: per_image.len(),
                psnr_y: per_image.iter().map(|i| i.psnr_y).sum::<f64>() / n,
                ssim_y: per_image.iter().map(|i| i.ssim_y).sum::<f64>() / n,
                per_image,
            })
        })
        .collect()
}

/// Mean over sets of the per-set mean PSNR (the number "best" checkpoints are chosen by).
pub fn mean_psnr(scores: &[SetScore]) -> f64 {
    scores.iter().map(|s| s.psnr_y).sum::<f64>() / scores.len().max(1) as f64
}

pub fn print_table(method: &str, scores: &[SetScore]) {
    println!("{:<12} {:<28} {:>7} {:>9} {:>8}", "set", "method", "images", "PSNR-Y", "SSIM-Y");
    for s in scores {
        println!("{:<12} {:<28} {:>7} {:>9.3} {:>8.4}", s.set, method, s.images, s.psnr_y, s.ssim_y);
    }
}

/// One table for several inputs (`eval --degrade`): a row per input and set.
pub fn print_input_table(method: &str, results: &[(String, Vec<SetScore>)]) {
    println!("{:<12} {:<16} {:<28} {:>7} {:>9} {:>8}", "set", "input", "method", "images", "PSNR-Y", "SSIM-Y");
    for (input, scores) in results {
        for s in scores {
            println!("{:<12} {:<16} {:<28} {:>7} {:>9.3} {:>8.4}", s.set, input, method, s.images, s.psnr_y, s.ssim_y);
        }
    }
}
