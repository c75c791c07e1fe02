//! Training data: HR folders → (LR Y, HR Y) pairs, random augmented crops, batches.

use crate::rng::Rng;
use anyhow::{bail, Result};
use sesr::color::y_unit;
use sesr::image_io::{list_images, load_rgb};
use sesr::protocol::{make_lr, prepare, EvalPair};
use sesr::resize::imresize_rgb_u8;
use sesr::Plane;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// One training image: Y planes in [0, 1] of the LR input and the HR target.
pub struct TrainImage {
    pub lr: Plane,
    pub hr: Plane,
}

/// DIV2K layout: for `…/DIV2K_train_HR/0001.png` the LR image is
/// `…/DIV2K_train_LR_bicubic/X2/0001x2.png`.
pub fn div2k_lr_path(hr: &Path, scale: usize) -> Option<PathBuf> {
    let dir = hr.parent()?;
    let dir_name = dir.file_name()?.to_str()?;
    let prefix = dir_name.strip_suffix("_HR")?;
    let stem = hr.file_stem()?.to_str()?;
    let ext = hr.extension()?.to_str()?;
    let p = dir
        .parent()?
        .join(format!("{prefix}_LR_bicubic"))
        .join(format!("X{scale}"))
        .join(format!("{stem}x{scale}.{ext}"));
    p.is_file().then_some(p)
}

/// The decoded-luma layout of `trainer degrade`: for `…/NAME_HR/0001.png` the LR input is the
/// 8-bit grey `…/NAME_LR_luma/X2/0001x2.png`, whose samples are the Y plane's code values as a
/// video decoder gives them (not RGB: it is read as Y/255, exactly).
pub fn luma_lr_path(hr: &Path, scale: usize) -> Option<PathBuf> {
    let dir = hr.parent()?;
    let prefix = dir.file_name()?.to_str()?.strip_suffix("_HR")?;
    let stem = hr.file_stem()?.to_str()?;
    let p =
        dir.parent()?.join(format!("{prefix}_LR_luma")).join(format!("X{scale}")).join(format!("{stem}x{scale}.png"));
    p.is_file().then_some(p)
}

/// An 8-bit grey file of Y code values as a plane in [0, 1].
pub fn load_luma(path: &Path) -> Result<Plane> {
    let img = image::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let image::DynamicImage::ImageLuma8(g) = img else {
        bail!("{}: a decoded-luma LR file must be an 8-bit grey image", path.display());
    };
    Ok(Plane::from_vec(g.width() as usize, g.height() as usize, g.as_raw().iter().map(|&v| v as f32 / 255.0).collect()))
}

/// The image folders of a `--data` folder: itself, or — for a folder with no images of its own
/// that holds DIV2K-style training folders, e.g. the `DIV2K/` root — its `*train*_HR`
/// sub-folders (never `*valid*_HR`: validation images must not be trained on).
pub fn image_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    if !list_images(dir)?.is_empty() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("_HR") && n.contains("train"))
        })
        .collect();
    subs.sort();
    if subs.is_empty() {
        subs.push(dir.to_path_buf());
    }
    Ok(subs)
}

/// Loads every usable image of the folders (any number of them; see [`image_folders`] for
/// DIV2K roots). Unreadable files are named and skipped, images whose LR is smaller than a crop
/// are skipped with a warning; none usable is an error naming the folders.
///
/// `rescale`: for each factor `f` in it, every photo is also taken at `f` times its size
/// (MATLAB bicubic, antialiased, 8-bit RGB — as VDSR's "291 images" recipe scales its data),
/// an HR image of its own with its own LR; copies too small for a crop are left out.
pub fn load_training_set(
    dirs: &[PathBuf],
    scale: usize,
    crop: usize,
    rescale: &[f64],
    warn: &dyn Fn(String),
) -> Result<Vec<TrainImage>> {
    let mut out = Vec::new();
    let mut folders = Vec::new();
    for d in dirs {
        let found = image_folders(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
        if found.len() != 1 || found[0] != *d {
            let names: Vec<String> = found.iter().map(|f| f.display().to_string()).collect();
            warn(format!("{}: training on {}", d.display(), names.join(", ")));
        }
        folders.extend(found);
    }
    for dir in &folders {
        let files = list_images(dir)?;
        if files.is_empty() {
            warn(format!("{}: no images found", dir.display()));
        }
        for f in files {
            let hr = match load_rgb(&f) {
                Ok(i) => i,
                Err(e) => {
                    warn(format!("skipping {e}"));
                    continue;
                }
            };
            // The LR input: decoded luma (`trainer degrade`), DIV2K's LR file, or made here.
            let luma_file = luma_lr_path(&f, scale);
            let luma = luma_file.is_some();
            let lr_file = luma_file.or_else(|| div2k_lr_path(&f, scale));
            let lr = match &lr_file {
                Some(lp) if luma => load_luma(lp),
                Some(lp) => load_rgb(lp).map(|lr| y_unit(&lr)).map_err(Into::into),
                None => Ok(y_unit(&make_lr(&hr, scale).1)),
            };
            let lr = match lr {
                Ok(lr) => lr,
                Err(e) => {
                    warn(format!("skipping {e}"));
                    continue;
                }
            };
            if lr.width * scale > hr.width() || lr.height * scale > hr.height() {
                let lp = lr_file.as_deref().unwrap_or(&f);
                warn(format!("skipping {}: LR {} does not match", f.display(), lp.display()));
                continue;
            }
            if lr.width < crop || lr.height < crop {
                warn(format!(
                    "skipping {}: {}x{} LR is smaller than a {crop}x{crop} crop",
                    f.display(),
                    lr.width,
                    lr.height
                ));
                continue;
            }
            let hr = hr.map_planes(|p| p.crop(0, 0, lr.width * scale, lr.height * scale));
            out.push(TrainImage { lr, hr: y_unit(&hr) });
            if luma {
                continue; // decoded luma: no scaled copies (the codec ran at this size)
            }
            for &f in rescale {
                let (hr_f, lr_f) = make_lr(&imresize_rgb_u8(&hr, f), scale);
                if lr_f.width() >= crop && lr_f.height() >= crop {
                    out.push(TrainImage { lr: y_unit(&lr_f), hr: y_unit(&hr_f) });
                }
            }
        }
    }
    if out.is_empty() {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        bail!("no usable training image in {}", list.join(", "));
    }
    Ok(out)
}

/// Evaluation images of a folder under the scoring protocol (unreadable files skipped).
pub fn load_eval_set(dir: &Path, scale: usize, warn: &dyn Fn(String)) -> Result<Vec<(String, EvalPair)>> {
    let mut v = Vec::new();
    for f in list_images(dir)? {
        match load_rgb(&f) {
            Ok(img) if img.width() > 2 * scale && img.height() > 2 * scale => {
                v.push((f.file_name().unwrap().to_string_lossy().into_owned(), prepare(&img, scale)))
            }
            Ok(_) => warn(format!("skipping {}: too small to score", f.display())),
            Err(e) => warn(format!("skipping {e}")),
        }
    }
    if v.is_empty() {
        bail!("no usable image in {}", dir.display());
    }
    Ok(v)
}

/// One crop: image, LR top-left corner, vertical flip, quarter turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub img: u32,
    pub x: u32,
    pub y: u32,
    pub flip: bool,
    pub rot: u8,
}

/// The shuffled crops of one epoch: `per_image` random crops of every image.
pub fn epoch_plan(images: &[TrainImage], per_image: usize, crop: usize, rng: &mut Rng) -> Vec<Sample> {
    let mut v = Vec::with_capacity(images.len() * per_image);
    for (i, im) in images.iter().enumerate() {
        for _ in 0..per_image {
            v.push(Sample {
                img: i as u32,
                x: rng.below(im.lr.width - crop + 1) as u32,
                y: rng.below(im.lr.height - crop + 1) as u32,
                flip: rng.below(2) == 1,
                rot: rng.below(4) as u8,
            });
        }
    }
    rng.shuffle(&mut v);
    v
}

/// Copies the `n`×`n` crop at (x0, y0), vertically flipped if asked, then turned `rot` quarter
/// turns, into `out`. The same transform on LR and HR crops keeps them aligned.
fn crop_into(p: &Plane, x0: usize, y0: usize, n: usize, flip: bool, rot: u8, out: &mut Vec<f32>) {
    for y in 0..n {
        for x in 0..n {
            // (x, y) in the output → (u, v) in the flipped crop.
            let (u, v) = match rot % 4 {
                0 => (x, y),
                1 => (n - 1 - y, x),
                2 => (n - 1 - x, n - 1 - y),
                _ => (y, n - 1 - x),
            };
            let v = if flip { n - 1 - v } else { v };
            out.push(p.get(x0 + u, y0 + v));
        }
    }
}

/// LR `[B,1,c,c]` and HR `[B,1,sc,sc]` tensors of a batch of samples.
pub fn make_batch(
    images: &[TrainImage],
    samples: &[Sample],
    crop: usize,
    scale: usize,
    device: Device,
) -> (Tensor, Tensor) {
    let (c, hc) = (crop, crop * scale);
    let mut lr = Vec::with_capacity(samples.len() * c * c);
    let mut hr = Vec::with_capacity(samples.len() * hc * hc);
    for s in samples {
        let im = &images[s.img as usize];
        crop_into(&im.lr, s.x as usize, s.y as usize, c, s.flip, s.rot, &mut lr);
        crop_into(&im.hr, s.x as usize * scale, s.y as usize * scale, hc, s.flip, s.rot, &mut hr);
    }
    let b = samples.len() as i64;
    (
        Tensor::from_slice(&lr).reshape([b, 1, c as i64, c as i64]).to_device(device),
        Tensor::from_slice(&hr).reshape([b, 1, hc as i64, hc as i64]).to_device(device),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmented_crops_stay_aligned() {
        // HR = nearest-neighbour ×2 of LR, so every transform must keep hr[2y][2x] == lr[y][x].
        let lr = Plane::from_fn(9, 7, |x, y| (x * 10 + y) as f32);
        let hr = Plane::from_fn(18, 14, |x, y| lr.get(x / 2, y / 2));
        let images = vec![TrainImage { lr, hr }];
        for flip in [false, true] {
            for rot in 0..4 {
                let s = Sample { img: 0, x: 2, y: 1, flip, rot };
                let (l, h) = make_batch(&images, &[s], 4, 2, Device::Cpu);
                let l = sesr::tensor::tensor_to_plane(&l);
                let h = sesr::tensor::tensor_to_plane(&h);
                for y in 0..4 {
                    for x in 0..4 {
                        assert_eq!(h.get(2 * x, 2 * y), l.get(x, y));
                        assert_eq!(h.get(2 * x + 1, 2 * y + 1), l.get(x, y));
                    }
                }
                let mut vals: Vec<i32> = l.data.iter().map(|&v| v as i32).collect();
                vals.sort();
                assert_eq!(vals[0], 21, "the crop's own pixels");
            }
        }
    }

    #[test]
    fn div2k_layout_is_found() {
        let root = std::env::temp_dir().join(format!("sesr-div2k-{}", std::process::id()));
        let hr_dir = root.join("DIV2K_train_HR");
        let lr_dir = root.join("DIV2K_train_LR_bicubic/X2");
        std::fs::create_dir_all(&hr_dir).unwrap();
        std::fs::create_dir_all(&lr_dir).unwrap();
        std::fs::write(hr_dir.join("0001.png"), b"").unwrap();
        assert_eq!(div2k_lr_path(&hr_dir.join("0001.png"), 2), None);
        std::fs::write(lr_dir.join("0001x2.png"), b"").unwrap();
        assert_eq!(div2k_lr_path(&hr_dir.join("0001.png"), 2), Some(lr_dir.join("0001x2.png")));
        // The DIV2K root stands for its training HR folder, never the validation one.
        std::fs::create_dir_all(root.join("DIV2K_valid_HR")).unwrap();
        assert_eq!(image_folders(&root).unwrap(), vec![hr_dir.clone()]);
        assert_eq!(image_folders(&hr_dir).unwrap(), vec![hr_dir.clone()]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn decoded_luma_layout_is_read_as_y_code_values() {
        let root = std::env::temp_dir().join(format!("sesr-luma-{}", std::process::id()));
        let hr_dir = root.join("mix_train_HR");
        let lr_dir = root.join("mix_train_LR_luma/X2");
        std::fs::create_dir_all(&hr_dir).unwrap();
        std::fs::create_dir_all(&lr_dir).unwrap();
        write_png(&hr_dir.join("a.png"), 40, 36);
        write_png(&hr_dir.join("b.png"), 40, 36); // no LR of its own: a clean pair, as before
        let y = image::GrayImage::from_fn(20, 18, |x, y| image::Luma([(16 + x * 10 + y) as u8]));
        y.save(lr_dir.join("ax2.png")).unwrap();
        assert_eq!(luma_lr_path(&hr_dir.join("a.png"), 2), Some(lr_dir.join("ax2.png")));
        let warn = |m: String| panic!("unexpected warning {m}");
        let set = load_training_set(std::slice::from_ref(&hr_dir), 2, 8, &[0.5], &warn).unwrap();
        // a: its decoded luma, no rescaled copy; b: clean, with its copy at half size.
        assert_eq!(set.len(), 3);
        assert_eq!(set[0].lr.get(3, 2), (16 + 30 + 2) as f32 / 255.0, "code values / 255, exactly");
        assert_eq!((set[0].hr.width, set[0].hr.height), (40, 36));
        // An RGB file where decoded luma is expected is refused with the reason.
        write_png(&lr_dir.join("ax2.png"), 20, 18);
        let e = load_luma(&lr_dir.join("ax2.png")).err().unwrap().to_string();
        assert!(e.contains("8-bit grey"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn write_png(path: &Path, w: u32, h: u32) {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn several_folders_are_pooled_and_none_usable_is_an_error_naming_them() {
        let root = std::env::temp_dir().join(format!("sesr-data-{}", std::process::id()));
        let (a, b, empty) = (root.join("a"), root.join("b"), root.join("empty"));
        for d in [&a, &b, &empty] {
            std::fs::create_dir_all(d).unwrap();
        }
        write_png(&a.join("big.png"), 40, 36);
        write_png(&a.join("small.png"), 10, 10); // LR 5×5: smaller than an 8×8 crop
        std::fs::write(b.join("broken.png"), b"not a png").unwrap();
        write_png(&b.join("big2.png"), 20, 18);
        let warnings = std::cell::RefCell::new(Vec::new());
        let warn = |m: String| warnings.borrow_mut().push(m);
        let set = load_training_set(&[a.clone(), b.clone(), empty.clone()], 2, 8, &[], &warn).unwrap();
        assert_eq!(set.len(), 2, "one usable image in each of a and b");
        assert_eq!((set[0].lr.width, set[0].hr.width, set[1].lr.width), (20, 40, 10));
        let w = warnings.borrow().join("\n");
        assert!(w.contains("small.png") && w.contains("broken.png") && w.contains("no images found"), "{w}");

        // Nothing usable: an error that names every folder given.
        let err = load_training_set(&[empty.clone(), b.join("nowhere-but-b")], 2, 8, &[], &warn);
        assert!(err.is_err(), "a missing folder is an error too");
        let err = load_training_set(std::slice::from_ref(&empty), 2, 8, &[], &warn).err().unwrap().to_string();
        assert!(err.contains("no usable training image") && err.contains("empty"), "{err}");
        std::fs::remove_file(b.join("big2.png")).unwrap();
        let err = load_training_set(&[empty.clone(), b.clone()], 2, 8, &[], &warn).err().unwrap().to_string();
        assert!(err.contains(&*empty.to_string_lossy()) && err.contains(&*b.to_string_lossy()), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn rescaled_copies_are_pairs_of_their_own_and_too_small_ones_are_left_out() {
        let root = std::env::temp_dir().join(format!("sesr-rescale-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        write_png(&root.join("a.png"), 40, 36);
        let warn = |m: String| panic!("unexpected warning {m}");
        let set = load_training_set(std::slice::from_ref(&root), 2, 8, &[0.5, 0.25], &warn).unwrap();
        // 0.5: HR 20×18, LR 10×9 (kept); 0.25: LR 5×4.5 → smaller than the 8×8 crop (left out).
        assert_eq!(set.len(), 2);
        let sizes: Vec<_> = set.iter().map(|t| (t.hr.width, t.hr.height, t.lr.width, t.lr.height)).collect();
        assert_eq!(sizes, vec![(40, 36, 20, 18), (20, 18, 10, 9)]);
        // The copy is the photo at half size (MATLAB bicubic), with its LR made from that.
        let photo = load_rgb(&root.join("a.png")).unwrap();
        let (hr_half, lr_half) = make_lr(&imresize_rgb_u8(&photo, 0.5), 2);
        assert_eq!(set[1].hr.data, y_unit(&hr_half).data);
        assert_eq!(set[1].lr.data, y_unit(&lr_half).data);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
