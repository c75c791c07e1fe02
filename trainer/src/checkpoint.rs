//! Training checkpoints: a folder with the expanded weights (`model.safetensors`), the model
//! config (`config.json`), the optimiser state (`optimizer.safetensors`) and the trainer state
//! (`state.json`).
//!
//! A checkpoint is written whole into a hidden folder beside its place (`.last.tmp`), then
//! moved in: the checkpoint it replaces becomes `last.prev` (one previous checkpoint is kept),
//! so a crash, a full disk or a read-only folder never loses a checkpoint already saved, and a
//! checkpoint found corrupt at `--resume` has a previous good one beside it, which the error
//! names.

use crate::optim::AmsGrad;
use crate::rng::Rng;
use anyhow::{anyhow, bail, Context, Result};
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
    /// Decay of the weight average kept beside the weights (`ema.safetensors`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<f64>,
    /// The validation folders `best_psnr` was scored on (canonical paths; empty in runs from
    /// before it was kept): a resume on other folders scores `best/` again before comparing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_data: Vec<String>,
}

/// The folder's name and parent, for its siblings.
fn parent_and_name(dir: &Path) -> Result<(PathBuf, String)> {
    let name = dir.file_name().ok_or_else(|| anyhow!("{}: not a checkpoint folder name", dir.display()))?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((parent.to_path_buf(), name.to_string_lossy().into_owned()))
}

/// Where the checkpoint that `dir` replaced is kept: `last` → `last.prev`.
pub fn prev_path(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!("{name}.prev"))
}

/// Writes a checkpoint; `ema`, when given, is kept beside the weights as
/// [`crate::ema::FILE`] (its decay must be `state.ema`).
pub fn save(
    dir: &Path,
    cfg: &SesrConfig,
    vs: &VarStore,
    opt: &AmsGrad,
    state: &TrainState,
    ema: Option<&crate::ema::Ema>,
) -> Result<()> {
    let (parent, name) = parent_and_name(dir)?;
    let kept = || {
        if dir.exists() {
            format!("; the checkpoint already in {} is untouched", dir.display())
        } else {
            String::new()
        }
    };
    let tmp = parent.join(format!(".{name}.tmp"));
    let write = || -> Result<()> {
        std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
        if tmp.exists() {
            // A leftover of an interrupted save (a file or a folder).
            std::fs::remove_dir_all(&tmp).or_else(|_| std::fs::remove_file(&tmp))?;
        }
        std::fs::create_dir(&tmp)?;
        vs.save(tmp.join("model.safetensors"))?;
        opt.save(&tmp.join("optimizer.safetensors"))?;
        std::fs::write(tmp.join("config.json"), cfg.to_json())?;
        std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
        let mut files = vec!["model.safetensors", "optimizer.safetensors", "config.json", "state.json"];
        if let Some(e) = ema {
            e.save(&tmp.join(crate::ema::FILE))?;
            files.push(crate::ema::FILE);
        }
        // On the disk before the rename makes it the checkpoint.
        for f in files {
            std::fs::File::open(tmp.join(f))?.sync_all()?;
        }
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("cannot write checkpoint {} (in {}){}", dir.display(), tmp.display(), kept())));
    }
    let prev = prev_path(dir);
    if dir.exists() && !looks_whole(dir) {
        // The checkpoint being replaced is itself damaged (a run resumed from `last.prev`):
        // it is set aside, and the previous good one stays where it is.
        let aside = dir.with_file_name(format!("{name}.corrupt"));
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(dir, &aside)
            .with_context(|| format!("cannot move the damaged {} to {}{}", dir.display(), aside.display(), kept()))?;
    }
    if dir.exists() {
        if prev.exists() {
            std::fs::remove_dir_all(&prev).with_context(|| format!("cannot replace {}{}", prev.display(), kept()))?;
        }
        std::fs::rename(dir, &prev)
            .with_context(|| format!("cannot move {} to {}{}", dir.display(), prev.display(), kept()))?;
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        // Put the previous checkpoint back where it was.
        let back = prev.exists() && std::fs::rename(&prev, dir).is_ok();
        return Err(anyhow!(e).context(format!(
            "cannot move the new checkpoint {} into {}{}",
            tmp.display(),
            dir.display(),
            if back { "; the previous checkpoint is back in place" } else { "" }
        )));
    }
    Ok(())
}

/// Whether a checkpoint folder's files are all there and whole: both JSON files parse, and each
/// safetensors file is as long as its header says (a cheap check: no tensor is loaded). The
/// optimiser state may be absent (a `best/` kept in the repository without it, which evaluates
/// and exports but does not resume); present, it must be whole.
fn looks_whole(dir: &Path) -> bool {
    let json_ok = |f: &str| {
        std::fs::read_to_string(dir.join(f)).ok().and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    };
    let state = json_ok("state.json").and_then(|v| serde_json::from_value::<TrainState>(v).ok());
    let config_ok = json_ok("config.json").is_some_and(|v| serde_json::from_value::<SesrConfig>(v).is_ok());
    let ema_ok = state.as_ref().is_some_and(|s| s.ema.is_none() || safetensors_whole(&dir.join(crate::ema::FILE)));
    state.is_some()
        && config_ok
        && ema_ok
        && safetensors_whole(&dir.join("model.safetensors"))
        && (!dir.join("optimizer.safetensors").exists() || safetensors_whole(&dir.join("optimizer.safetensors")))
}

/// Whether a safetensors file holds the bytes its header promises.
fn safetensors_whole(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    let Ok(len) = f.metadata().map(|m| m.len()) else { return false };
    let mut n = [0u8; 8];
    if f.read_exact(&mut n).is_err() {
        return false;
    }
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || 8 + n > len {
        return false;
    }
    let mut header = vec![0u8; n as usize];
    if f.read_exact(&mut header).is_err() {
        return false;
    }
    let Ok(serde_json::Value::Object(h)) = serde_json::from_slice::<serde_json::Value>(&header) else { return false };
    let end = h
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    8 + n + end == len
}

/// `err` about checkpoint `dir`, saying that it is unusable and where the previous good one is.
pub fn unusable(dir: &Path, err: anyhow::Error) -> anyhow::Error {
    let prev = prev_path(dir);
    let hint = if prev.join("config.json").is_file() {
        format!(
            "; the previous checkpoint is kept in {}: resume from it with --resume {}",
            prev.display(),
            prev.display()
        )
    } else {
        String::new()
    };
    err.context(format!("checkpoint {} is missing or corrupt{hint}", dir.display()))
}

pub fn read_config(dir: &Path) -> Result<SesrConfig> {
    let p = dir.join("config.json");
    let read = || -> Result<SesrConfig> {
        let s = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        SesrConfig::from_json(&s).with_context(|| p.display().to_string())
    };
    read().map_err(|e| unusable(dir, e))
}

/// How [`TrainState::val_data`] names validation folders: canonical paths where they resolve.
pub fn val_ids(dirs: &[PathBuf]) -> Vec<String> {
    dirs.iter().map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()).display().to_string()).collect()
}

pub fn read_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join("state.json");
    let read = || -> Result<TrainState> {
        let s = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&s).with_context(|| format!("{}: bad trainer state", p.display()))
    };
    read().map_err(|e| unusable(dir, e))
}

pub fn load_weights(dir: &Path, vs: &mut VarStore) -> Result<()> {
    load_weights_from(dir, "model.safetensors", vs)
}

/// [`load_weights`] from another weights file of the checkpoint (e.g. the weight average
/// [`crate::ema::FILE`]).
pub fn load_weights_from(dir: &Path, file: &str, vs: &mut VarStore) -> Result<()> {
    let p = dir.join(file);
    vs.load(&p).with_context(|| format!("cannot load weights from {}", p.display())).map_err(|e| unusable(dir, e))
}

/// Initialises a fresh model from a checkpoint (e.g. a ×4 model from a ×2 run, as the reference
/// code does): variables with the same name, shape and type are copied, the others keep their
/// fresh initialisation. Returns how many were copied and the names of those left fresh; a
/// checkpoint sharing no variable with the model is an error.
pub fn init_from(dir: &Path, vs: &mut VarStore) -> Result<(usize, Vec<String>)> {
    let p = dir.join("model.safetensors");
    let map: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&p)
        .with_context(|| format!("cannot read {}", p.display()))
        .map_err(|e| unusable(dir, e))?
        .into_iter()
        .collect();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut copied, mut fresh) = (0, Vec::new());
    tch::no_grad(|| {
        for (name, mut var) in vars {
            match map.get(&name) {
                Some(t) if t.size() == var.size() && t.kind() == var.kind() => {
                    var.copy_(t);
                    copied += 1;
                }
                _ => fresh.push(name),
            }
        }
    });
    if copied == 0 {
        bail!("{}: no variable of it matches this model (names or shapes differ)", p.display());
    }
    Ok((copied, fresh))
}

/// The optimiser state of a checkpoint, its tensors checked against the model's variables
/// before they are copied (a corrupt file is an error naming it, not a panic in the copy).
pub fn load_optimizer(dir: &Path, vs: &VarStore, opt: &mut AmsGrad, t: i64) -> Result<()> {
    let p = dir.join("optimizer.safetensors");
    let mut load = || -> Result<()> {
        let map: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&p).with_context(|| format!("cannot read {}", p.display()))?.into_iter().collect();
        for (name, var) in vs.variables() {
            for prefix in ["m", "v", "vmax"] {
                let key = format!("{prefix}/{name}");
                let t = map.get(&key).ok_or_else(|| anyhow!("{}: optimiser state lacks {key}", p.display()))?;
                if t.size() != var.size() || t.kind() != var.kind() {
                    return Err(anyhow!(
                        "{}: {key} is {:?} {:?}, the model's {:?} {:?}",
                        p.display(),
                        t.kind(),
                        t.size(),
                        var.kind(),
                        var.size()
                    ));
                }
            }
        }
        opt.load(&p, t)
    };
    load().map_err(|e| unusable(dir, e))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sesr-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn model(m: usize) -> (SesrConfig, VarStore, AmsGrad) {
        let cfg = SesrConfig::new(m, 4, 8, 2).unwrap();
        let vs = VarStore::new(tch::Device::Cpu);
        let _ = sesr::ExpandedSesr::new(&vs.root(), cfg);
        let opt = AmsGrad::new(&vs, 1e-3, 1e-8);
        (cfg, vs, opt)
    }

    fn state(epoch: usize) -> TrainState {
        TrainState {
            epoch,
            step: 0,
            rng: Rng::new(1),
            opt_t: 3,
            best_psnr: None,
            best_epoch: 0,
            train_data: vec![],
            train_images: 1,
            ema: None,
            val_data: Vec::new(),
        }
    }

    /// Every file of a checkpoint folder with its bytes.
    fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn saves_keep_the_previous_checkpoint() {
        let d = tmp("prev");
        let (cfg, vs, opt) = model(1);
        let last = d.join("last");
        save(&last, &cfg, &vs, &opt, &state(1), None).unwrap();
        assert!(!prev_path(&last).exists());
        save(&last, &cfg, &vs, &opt, &state(2), None).unwrap();
        save(&last, &cfg, &vs, &opt, &state(3), None).unwrap();
        assert_eq!(read_state(&last).unwrap().epoch, 3);
        assert_eq!(read_state(&d.join("last.prev")).unwrap().epoch, 2);
        assert!(!d.join(".last.tmp").exists(), "no temporary folder left");
        let mut names: Vec<String> =
            std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["last", "last.prev"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_checkpoints_are_named_with_the_previous_one() {
        let d = tmp("corrupt");
        let (cfg, mut vs, mut opt) = model(1);
        let last = d.join("last");
        save(&last, &cfg, &vs, &opt, &state(1), None).unwrap();
        save(&last, &cfg, &vs, &opt, &state(2), None).unwrap();
        let hint = format!("--resume {}", d.join("last.prev").display());
        let check = |e: anyhow::Error, file: &str| {
            let e = format!("{e:#}");
            assert!(e.contains(&last.join(file).display().to_string()), "{e}");
            assert!(e.contains("is missing or corrupt") && e.contains(&hint), "{e}");
        };
        // Truncated weights.
        let w = std::fs::read(last.join("model.safetensors")).unwrap();
        std::fs::write(last.join("model.safetensors"), &w[..w.len() / 2]).unwrap();
        check(load_weights(&last, &mut vs).unwrap_err(), "model.safetensors");
        // Garbage state, truncated config.
        std::fs::write(last.join("state.json"), b"{\"epoch\": 1,").unwrap();
        check(read_state(&last).unwrap_err(), "state.json");
        std::fs::write(last.join("config.json"), b"{\"m\":").unwrap();
        check(read_config(&last).unwrap_err(), "config.json");
        // A wider model's optimiser state (shapes differ), and garbage: errors, not panics.
        let wide_cfg = SesrConfig::new(1, 8, 8, 2).unwrap();
        let wide_vs = VarStore::new(tch::Device::Cpu);
        let _ = sesr::ExpandedSesr::new(&wide_vs.root(), wide_cfg);
        let wide = d.join("wide");
        save(&wide, &wide_cfg, &wide_vs, &AmsGrad::new(&wide_vs, 1e-3, 1e-8), &state(1), None).unwrap();
        std::fs::copy(wide.join("optimizer.safetensors"), last.join("optimizer.safetensors")).unwrap();
        check(load_optimizer(&last, &vs, &mut opt, 1).unwrap_err(), "optimizer.safetensors");
        std::fs::write(last.join("optimizer.safetensors"), b"garbage").unwrap();
        check(load_optimizer(&last, &vs, &mut opt, 1).unwrap_err(), "optimizer.safetensors");
        // The previous checkpoint is whole and loads.
        let prev = d.join("last.prev");
        load_weights(&prev, &mut vs).unwrap();
        assert_eq!(read_state(&prev).unwrap().epoch, 1);
        load_optimizer(&prev, &vs, &mut opt, 1).unwrap();
        // Saving over the damaged checkpoint (a run resumed from `last.prev`) keeps the good
        // previous one and sets the damaged one aside.
        let prev_before = contents(&prev);
        save(&last, &cfg, &vs, &opt, &state(5), None).unwrap();
        assert_eq!(contents(&prev), prev_before, "the good previous checkpoint was replaced");
        assert!(d.join("last.corrupt/state.json").is_file());
        assert!(looks_whole(&last) && looks_whole(&prev) && !looks_whole(&d.join("last.corrupt")));
        // A checkpoint without its optimiser state (a `best/` as the repository keeps it) is
        // whole: replaced, it becomes the previous one, not a damaged one.
        let best = d.join("best");
        save(&best, &cfg, &vs, &opt, &state(1), None).unwrap();
        std::fs::remove_file(best.join("optimizer.safetensors")).unwrap();
        assert!(looks_whole(&best));
        save(&best, &cfg, &vs, &opt, &state(2), None).unwrap();
        assert!(d.join("best.prev/model.safetensors").is_file() && !d.join("best.corrupt").exists());
        // A missing checkpoint with a previous one beside it says so too.
        std::fs::remove_dir_all(&last).unwrap();
        let e = format!("{:#}", read_config(&last).unwrap_err());
        assert!(e.contains(&hint), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failed_saves_lose_nothing() {
        let d = tmp("failed");
        let (cfg, vs, opt) = model(1);
        let last = d.join("last");
        save(&last, &cfg, &vs, &opt, &state(1), None).unwrap();
        save(&last, &cfg, &vs, &opt, &state(2), None).unwrap();
        let (before, prev_before) = (contents(&last), contents(&prev_path(&last)));
        let unchanged = || {
            assert_eq!(contents(&last), before, "last changed");
            assert_eq!(contents(&prev_path(&last)), prev_before, "last.prev changed");
            assert_eq!(read_state(&last).unwrap().epoch, 2);
        };
        // The checkpoint's place is under a file: nothing can be written.
        let file = d.join("a_file");
        std::fs::write(&file, b"x").unwrap();
        let e = format!("{:#}", save(&file.join("last"), &cfg, &vs, &opt, &state(3), None).unwrap_err());
        assert!(e.contains("cannot write checkpoint") && e.contains("a_file"), "{e}");
        // The previous checkpoint's place cannot be cleared (a file is there, not a folder):
        // the save fails before the current checkpoint moves.
        let prev = prev_path(&last);
        std::fs::rename(&prev, d.join("kept")).unwrap();
        std::fs::write(&prev, b"in the way").unwrap();
        let e = format!("{:#}", save(&last, &cfg, &vs, &opt, &state(3), None).unwrap_err());
        assert!(e.contains("last.prev") && e.contains("untouched"), "{e}");
        assert_eq!(contents(&last), before);
        std::fs::remove_file(&prev).unwrap();
        std::fs::rename(d.join("kept"), &prev).unwrap();
        unchanged();
        // A read-only folder (as root, permissions do not stop writes: a full disk is tried by
        // the CLI test instead).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let ro = d.join("ro");
            std::fs::create_dir(&ro).unwrap();
            let ro_last = ro.join("last");
            save(&ro_last, &cfg, &vs, &opt, &state(1), None).unwrap();
            let ro_before = contents(&ro_last);
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
            if std::fs::write(ro.join("probe"), b"").is_ok() {
                eprintln!("SKIPPED the read-only folder: this user writes into it anyway (root)");
            } else {
                let e = format!("{:#}", save(&ro_last, &cfg, &vs, &opt, &state(2), None).unwrap_err());
                assert!(e.contains("cannot write checkpoint") && e.contains("untouched"), "{e}");
                assert_eq!(contents(&ro_last), ro_before);
                assert_eq!(read_state(&ro_last).unwrap().epoch, 1);
            }
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // A leftover temporary folder of an interrupted save does not stop the next one.
        std::fs::create_dir_all(d.join(".last.tmp/junk")).unwrap();
        save(&last, &cfg, &vs, &opt, &state(3), None).unwrap();
        assert_eq!(read_state(&last).unwrap().epoch, 3);
        assert_eq!(contents(&prev_path(&last)), before);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
