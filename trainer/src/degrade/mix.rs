//! `trainer degrade`: training pairs whose LR is what a decoder hands over.
//!
//! Each HR photo is modcropped and downscaled with the protocol's bicubic (as the clean pairs
//! are), then coded `--copies` times, each time with a codec, a level and intra or inter frames
//! drawn from [`draw`] by a generator seeded with `--seed` and the copy's name, so a rerun (or a
//! resumed one) writes the same files. The pairs go to disk in a DIV2K-like layout that `train
//! --data OUT` reads:
//!
//! ```text
//! OUT/mix_train_HR/<folder>-<photo>-<k>.png              the HR photo (RGB)
//! OUT/mix_train_LR_luma/X<s>/<folder>-<photo>-<k>x<s>.png the decoded Y plane (8-bit grey, code values)
//! OUT/manifest.csv                                       name, source photo, degradation, pan
//! ```

use super::codec::degrade_y;
use super::spec::{Codec, Degradation, Frames};
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use sesr::image_io::{list_images, load_rgb, save_rgb, tmp_sibling};
use sesr::protocol::make_lr;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct DegradeArgs {
    /// Folders of HR training photos (e.g. T91 BSD200).
    #[arg(long = "data", required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Output folder (read it back with `train --data OUT`).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=4))]
    pub scale: u8,
    /// Degraded copies of every photo, each with its own codec, level and frame type.
    #[arg(long, default_value_t = 3)]
    pub copies: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The codecs of the mix and how often each is drawn: H.264 most (most video is H.264), then
/// JPEG (webcams' MJPEG, and the strongest blocking), HEVC, VP9, MPEG-2 (broadcast) and VP8.
pub const MIX: [(Codec, u32, u32, u32); 6] = [
    // (codec, weight, easiest level, hardest level)
    (Codec::H264, 35, 18, 40),
    (Codec::Jpeg, 20, 90, 30),
    (Codec::H265, 15, 20, 40),
    (Codec::Vp9, 15, 12, 56),
    (Codec::Mpeg2, 10, 2, 14),
    (Codec::Vp8, 5, 8, 50),
];

/// One draw of the mix: a degradation (level uniform between the easiest and hardest, inter
/// frames half the time where the codec has them) and the pan of an inter clip.
pub fn draw(rng: &mut Rng) -> (Degradation, (i64, i64)) {
    let total: u32 = MIX.iter().map(|m| m.1).sum();
    let mut pick = rng.below(total as usize) as u32;
    let &(codec, _, a, b) = MIX
        .iter()
        .find(|m| {
            if pick < m.1 {
                true
            } else {
                pick -= m.1;
                false
            }
        })
        .expect("weights sum to total");
    let (lo, hi) = (a.min(b), a.max(b));
    let level = lo + rng.below((hi - lo + 1) as usize) as u32;
    let frames = if codec.has_inter() && rng.below(2) == 1 { Frames::Inter } else { Frames::Intra };
    let mut step = (rng.below(7) as i64 - 3, rng.below(5) as i64 - 2);
    if step == (0, 0) {
        step = (1, 0);
    }
    (Degradation { codec, level, frames }, step)
}

/// A seed of its own for each copy, from the run's seed and the copy's name.
fn copy_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xC0DE_C0DE, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01B3))
}

fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = tmp_sibling(path);
    write(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

pub fn run(a: DegradeArgs) -> Result<()> {
    let scale = a.scale as usize;
    let hr_dir = a.out.join("mix_train_HR");
    let lr_dir = a.out.join("mix_train_LR_luma").join(format!("X{scale}"));
    std::fs::create_dir_all(&hr_dir).with_context(|| format!("creating {}", hr_dir.display()))?;
    std::fs::create_dir_all(&lr_dir).with_context(|| format!("creating {}", lr_dir.display()))?;
    let mut photos = Vec::new();
    for d in &a.data {
        let folder = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
        for f in list_images(d).with_context(|| format!("reading {}", d.display()))? {
            photos.push((folder.clone(), f));
        }
    }
    if photos.is_empty() {
        bail!("no images in {}", a.data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let jobs: Vec<(String, PathBuf, usize)> =
        photos.iter().flat_map(|(folder, f)| (0..a.copies).map(move |k| (folder.clone(), f.clone(), k))).collect();
    eprintln!("coding {} photos x {} copies into {}", photos.len(), a.copies, a.out.display());
    let done = std::sync::atomic::AtomicUsize::new(0);
    let rows: Vec<Result<Option<String>>> = jobs
        .par_iter()
        .map(|(folder, f, k)| {
            let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let name = format!("{folder}-{stem}-{k}");
            let (d, step) = draw(&mut Rng::new(copy_seed(a.seed, &name)));
            let row = format!("{name},{},{d},{} {}", f.display(), step.0, step.1);
            let (hr_path, lr_path) = (hr_dir.join(format!("{name}.png")), lr_dir.join(format!("{name}x{scale}.png")));
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(100) {
                eprintln!("{n}/{}", jobs.len());
            }
            if hr_path.is_file() && lr_path.is_file() {
                return Ok(Some(row)); // written by an earlier (interrupted) run: the same draw
            }
            let photo = match load_rgb(f) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("warning: skipping {e}");
                    return Ok(None);
                }
            };
            let (hr, lr) = make_lr(&photo, scale);
            if lr.width() < 2 || lr.height() < 2 {
                eprintln!("warning: skipping {}: too small", f.display());
                return Ok(None);
            }
            let y = match degrade_y(&lr, &d, step) {
                Ok(y) => y,
                Err(e) => {
                    // One picture a codec refuses (e.g. smaller than its smallest frame) costs
                    // that pair only; a codec that refuses everything fails the run below.
                    eprintln!("warning: skipping {name} ({}): {e:#}", f.display());
                    return Ok(None);
                }
            };
            let grey = image::GrayImage::from_raw(lr.width() as u32, lr.height() as u32, y).expect("w*h samples");
            save_rgb(&hr, &hr_path)?;
            write_atomic(&lr_path, |p| grey.save_with_format(p, image::ImageFormat::Png).map_err(Into::into))?;
            Ok(Some(row))
        })
        .collect();
    let mut manifest = String::from("name,source,degradation,pan\n");
    let mut n = 0;
    for r in rows {
        if let Some(row) = r? {
            manifest.push_str(&row);
            manifest.push('\n');
            n += 1;
        }
    }
    if n == 0 {
        bail!("no pair could be made (see the warnings above)");
    }
    write_atomic(&a.out.join("manifest.csv"), |p| Ok(std::fs::write(p, &manifest)?))?;
    println!("{n} pairs in {} (train with --data {})", a.out.display(), a.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_cover_the_mix_and_repeat_with_the_seed() {
        let mut rng = Rng::new(copy_seed(0, "T91-t1-0"));
        let draws: Vec<_> = (0..2000).map(|_| draw(&mut rng)).collect();
        for (codec, w, a, b) in MIX {
            let of: Vec<_> = draws.iter().filter(|(d, _)| d.codec == codec).collect();
            let share = of.len() as f64 / draws.len() as f64;
            assert!((share - w as f64 / 100.0).abs() < 0.04, "{codec:?}: {share}");
            assert!(of.iter().all(|(d, _)| d.level >= a.min(b) && d.level <= a.max(b)));
            if codec.has_inter() {
                assert!(of.iter().any(|(d, _)| d.frames == Frames::Inter));
            }
        }
        assert!(draws.iter().all(|(_, s)| *s != (0, 0)));
        let mut again = Rng::new(copy_seed(0, "T91-t1-0"));
        assert_eq!(draw(&mut again), draws[0]);
        assert_ne!(copy_seed(0, "T91-t1-0"), copy_seed(0, "T91-t1-1"));
    }
}
