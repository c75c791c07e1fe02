//! End-to-end tests of the trainer binary on small real images (no ../shared needed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer")).args(args).output().expect("run trainer")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sesr-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Tiles of the shipped photos (real image content), one grey, one JPEG, plus a corrupt file
/// and an image too small for a crop.
fn make_data(dir: &Path) {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/images");
    let img = image::open(assets.join("astronaut.png")).unwrap().to_rgb8();
    for (i, (x, y)) in [(0u32, 0u32), (200, 100), (300, 300)].into_iter().enumerate() {
        let tile = image::imageops::crop_imm(&img, x, y, 96, 80).to_image();
        tile.save(dir.join(format!("tile{i}.png"))).unwrap();
    }
    let coffee = image::open(assets.join("coffee.png")).unwrap();
    coffee.crop_imm(100, 100, 90, 90).to_luma8().save(dir.join("grey.png")).unwrap();
    coffee.crop_imm(300, 50, 100, 72).to_rgb8().save(dir.join("photo.jpg")).unwrap();
    std::fs::write(dir.join("corrupt.png"), b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    image::RgbImage::new(20, 20).save(dir.join("tiny.png")).unwrap();
}

/// A tiny recipe for fast runs.
const RECIPE: [&str; 8] = ["--crop", "16", "--crops-per-image", "4", "--batch", "4", "--device", "cpu"];
const SMALL: [&str; 10] =
    ["--model", "m3", "--crop", "16", "--crops-per-image", "4", "--batch", "4", "--device", "cpu"];

fn with_recipe<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(RECIPE);
    v
}

#[test]
fn train_resume_export_eval_upscale() {
    let d = tmp("flow");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let run = d.join("run");
    let (data_s, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());

    let mut args = vec!["train", "--data", data_s, "--val", data_s, "--out", run_s, "--epochs", "1"];
    args.extend(SMALL);
    let o = trainer(&args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("corrupt.png") && t.contains("tiny.png"), "bad files are named: {t}");
    assert!(run.join("last/model.safetensors").is_file() && run.join("best/state.json").is_file());
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.lines().next().unwrap().contains("psnr_data"));

    // Resume to epoch 2: same folder, one more metrics row, state advanced.
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--val", data_s, "--resume", run_s, "--epochs", "2"]));
    assert!(o.status.success(), "{}", text(&o));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("last/state.json")).unwrap()).unwrap();
    assert_eq!(state["epoch"], 2);
    assert_eq!(std::fs::read_to_string(run.join("metrics.csv")).unwrap().lines().count(), 3);

    // A diverging run stops with a clear error and leaves the last good checkpoint alone.
    let before = std::fs::read(run.join("last/model.safetensors")).unwrap();
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--resume", run_s, "--epochs", "3", "--lr", "1e30"]));
    assert!(!o.status.success());
    assert!(text(&o).contains("loss became"), "{}", text(&o));
    assert_eq!(std::fs::read(run.join("last/model.safetensors")).unwrap(), before);

    // Structured pruning to f = 12, one epoch of fine-tuning, export: a narrower model.
    let narrow = d.join("narrow");
    let o = trainer(&["shrink", run_s, "--channels", "12", "--out", narrow.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--resume", narrow.to_str().unwrap(), "--epochs", "1"]));
    assert!(o.status.success(), "{}", text(&o));
    let npt = d.join("narrow.pt");
    let o = trainer(&["export", narrow.to_str().unwrap(), "--out", npt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("narrow.json")).unwrap()).unwrap();
    assert_eq!(side["config"]["f"], 12);
    assert_eq!(side["collapsed_weights"], 25 * 12 + 9 * 144 * 3 + 25 * 12 * 4);
    let o = trainer(&["shrink", run_s, "--channels", "17", "--out", narrow.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("--channels"), "{}", text(&o));

    // Export: TorchScript + sidecar, usable at sizes other than the traced one.
    let pt = d.join("m3.pt");
    let o = trainer(&["export", run_s, "--out", pt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("m3.json")).unwrap()).unwrap();
    assert_eq!(side["scale"], 2);
    assert_eq!(side["collapsed_weights"], 8912);
    let m = tch::CModule::load(&pt).unwrap();
    for (h, w) in [(1, 1), (9, 4), (33, 17)] {
        let x = tch::Tensor::rand([1, 1, h, w], (tch::Kind::Float, tch::Device::Cpu));
        let y = tch::no_grad(|| m.forward_ts(&[x])).unwrap();
        assert_eq!(y.size(), [1, 1, 2 * h, 2 * w]);
    }

    // Eval of the model and of bicubic, as JSON.
    let o = trainer(&["eval", data_s, "--model", pt.to_str().unwrap(), "--json", "--device", "cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let psnr = j["sets"][0]["psnr_y"].as_f64().unwrap();
    assert!(psnr > 15.0 && psnr < 60.0, "{psnr}");
    assert_eq!(j["sets"][0]["images"], 6, "five usable images plus tiny.png, which is still scorable");
    let o = trainer(&["eval", data_s, "--method", "bicubic"]);
    assert!(o.status.success() && text(&o).contains("bicubic"), "{}", text(&o));
    // The self-ensemble of the model scores (and is said to be) the x8 mean; bicubic's is itself.
    let x8 = |args: &[&str]| {
        let o = trainer(&[&["eval", data_s, "--json"], args].concat());
        assert!(o.status.success(), "{}", text(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (j["self_ensemble"].as_bool().unwrap(), j["sets"][0]["psnr_y"].as_f64().unwrap())
    };
    let (said, ens) = x8(&["--model", pt.to_str().unwrap(), "--device", "cpu", "--self-ensemble"]);
    assert!(said && ens > 15.0 && (ens - psnr).abs() > 1e-6 && (ens - psnr).abs() < 2.0, "x8 {ens} vs {psnr}");
    // (As a table: an image of the set is flat, bicubic scores it infinite, JSON writes null.)
    let scores = |args: &[&str]| {
        let o = trainer(&[&["eval", data_s, "--method", "bicubic"], args].concat());
        assert!(o.status.success(), "{}", text(&o));
        let t = String::from_utf8_lossy(&o.stdout).into_owned();
        let row = t.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>();
        (row[row.len() - 2].to_string(), row[row.len() - 1].to_string(), t.contains("bicubic x8"))
    };
    let (b1, b8) = (scores(&[]), scores(&["--self-ensemble"]));
    assert!(!b1.2 && b8.2 && (&b1.0, &b1.1) == (&b8.0, &b8.1), "bicubic {b1:?} vs x8 {b8:?}");
    // The float32 weights beside the .pt run in the element's native kernel: the same model,
    // only the 8-bit Y input of the element differs from the protocol's float Y.
    assert!(d.join("m3.safetensors").is_file());
    {
        let o = trainer(&["eval", data_s, "--model", pt.to_str().unwrap(), "--json", "--native", "fp32"]);
        assert!(o.status.success(), "{}", text(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let native = j["sets"][0]["psnr_y"].as_f64().unwrap();
        assert!((native - psnr).abs() < 0.3, "native {native} vs libtorch {psnr}");
        let o = trainer(&["eval", data_s, "--model", npt.to_str().unwrap(), "--native", "fp32"]);
        assert!(o.status.success(), "f = 12 runs natively too: {}", text(&o));
        // The integer kernel, calibrated on the training folder: close to float32, and it
        // refuses to run uncalibrated.
        let o = trainer(&[
            "eval",
            data_s,
            "--model",
            pt.to_str().unwrap(),
            "--json",
            "--native",
            "int8",
            "--calib",
            data_s,
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let int8 = j["sets"][0]["psnr_y"].as_f64().unwrap();
        assert!((int8 - native).abs() < 1.0 && int8 != native, "int8 {int8} vs native fp32 {native}");
        let o = trainer(&["eval", data_s, "--model", pt.to_str().unwrap(), "--native", "int8"]);
        assert!(!o.status.success() && text(&o).contains("--calib"), "{}", text(&o));
        // `calibrate` stores the calibration in the sidecar, for the element's precision=int8.
        let o = trainer(&["calibrate", pt.to_str().unwrap(), "--calib", data_s]);
        assert!(o.status.success() && text(&o).contains("int8 calibration"), "{}", text(&o));
        let side: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("m3.json")).unwrap()).unwrap();
        let layers = side["int8"]["activations"].as_array().unwrap();
        assert_eq!(layers.len(), side["config"]["m"].as_u64().unwrap() as usize + 2);
        // …and `eval --native int8` then runs from it without --calib.
        let o = trainer(&["eval", data_s, "--model", pt.to_str().unwrap(), "--json", "--native", "int8"]);
        assert!(o.status.success(), "{}", text(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let stored = j["sets"][0]["psnr_y"].as_f64().unwrap();
        assert!((stored - native).abs() < 1.0, "int8 from the sidecar {stored} vs native fp32 {native}");
        let o = trainer(&["calibrate", pt.to_str().unwrap(), "--calib", d.join("nothing-here").to_str().unwrap()]);
        assert!(!o.status.success() && text(&o).contains("nothing-here"), "{}", text(&o));
        // The export's sidecar records the digests the element trusts the weights by.
        let side: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("m3.json")).unwrap()).unwrap();
        let digest = side["pt_sha256"].as_str().unwrap();
        assert_eq!(digest, sesr::weights::sha256_hex(&std::fs::read(&pt).unwrap()));
    }

    // Upscale one image.
    let out = d.join("up.png");
    let o = trainer(&[
        "upscale",
        data.join("tile0.png").to_str().unwrap(),
        out.to_str().unwrap(),
        "--model",
        pt.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let up = image::open(&out).unwrap();
    assert_eq!((up.width(), up.height()), (192, 160));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn interrupted_run_resumes_mid_epoch() {
    let d = tmp("steps");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let (data_s, run) = (data.to_str().unwrap(), d.join("run"));
    let mut args = vec!["train", "--data", data_s, "--out", run.to_str().unwrap(), "--epochs", "1", "--max-steps", "2"];
    args.extend(SMALL);
    let o = trainer(&args);
    assert!(o.status.success(), "{}", text(&o));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("last/state.json")).unwrap()).unwrap();
    assert_eq!((state["epoch"].as_u64(), state["step"].as_u64()), (Some(0), Some(2)));
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--resume", run.to_str().unwrap(), "--epochs", "1"]));
    assert!(o.status.success(), "{}", text(&o));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("last/state.json")).unwrap()).unwrap();
    assert_eq!((state["epoch"].as_u64(), state["step"].as_u64()), (Some(1), Some(0)));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn clear_errors_for_bad_input() {
    let d = tmp("bad");
    std::fs::write(d.join("broken.png"), b"nope").unwrap();
    let o =
        trainer(&["train", "--data", d.to_str().unwrap(), "--out", d.join("run").to_str().unwrap(), "--device", "cpu"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("no usable training image") && t.contains("broken.png"), "{t}");
    assert!(!t.contains("panicked"), "{t}");

    let o = trainer(&["eval", d.to_str().unwrap(), "--model", d.join("missing.pt").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("missing.pt"), "{}", text(&o));
    let fake = d.join("fake.pt");
    std::fs::write(&fake, b"not torchscript").unwrap();
    let o = trainer(&["upscale", "x.png", "y.png", "--model", fake.to_str().unwrap(), "--device", "cpu"]);
    assert!(!o.status.success() && text(&o).contains("not a loadable TorchScript model"), "{}", text(&o));
    let o = trainer(&["train", "--data", d.to_str().unwrap(), "--device", "cuda:7"]);
    assert!(!o.status.success() && text(&o).contains("cuda"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"));
    // Options that only mean something with another are refused before any work, naming it.
    for (flag, needs) in [
        (&["--teacher-self-ensemble"][..], "--teacher"),
        (&["--distill-weight", "0.5"][..], "--teacher"),
        (&["--ema-restart"][..], "--resume"),
    ] {
        let mut args = vec!["train", "--data", d.to_str().unwrap(), "--out", "/nonexistent/run"];
        args.extend_from_slice(flag);
        let o = trainer(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{flag:?}: {t}");
        assert!(t.contains(needs) && t.contains("required"), "{flag:?}: {t}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_cleanly() {
    let d = tmp("sigint");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let run = d.join("run");
    // Many steps per epoch so that the interrupt lands mid-epoch.
    let child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["train", "--data", data.to_str().unwrap(), "--out", run.to_str().unwrap(), "--epochs", "5"])
        .args(["--model", "m3", "--crop", "16", "--crops-per-image", "4000", "--batch", "4", "--device", "cpu"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let t = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("checkpoint saved"), "{t}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("last/state.json")).unwrap()).unwrap();
    assert_eq!(state["epoch"], 0);
    assert!(state["step"].as_u64().unwrap() > 0, "{state}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn exported_model_loads_in_python() {
    // The venv of scripts/setup.sh has PyTorch; skipped where no such Python is around.
    let Some(venv) = std::env::var_os("VIRTUAL_ENV") else {
        eprintln!("SKIPPED: no VIRTUAL_ENV with torch");
        return;
    };
    let python = PathBuf::from(venv).join("bin/python");
    let d = tmp("py");
    let pt = d.join("m.pt");
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let m = sesr::ExpandedSesr::new(&vs.root(), sesr::Preset::M3.config(2));
    m.collapse_detached().export_torchscript(&pt).unwrap();
    let script = "import sys, torch\nm = torch.jit.load(sys.argv[1])\nfor h, w in [(1, 1), (7, 10), (33, 5)]:\n    y = m(torch.rand(1, 1, h, w))\n    assert tuple(y.shape) == (1, 1, 2 * h, 2 * w), y.shape\n    assert y.dtype == torch.float32 and 0 <= y.min() and y.max() <= 1\nprint('ok')\n";
    let o = Command::new(python).args(["-c", script, pt.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok"), "{}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn prune_rounds_resume_and_export() {
    let d = tmp("prune");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let run = d.join("run");
    let (data_s, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());
    let args = |rounds: &'static str| {
        let mut a = vec!["prune", "--data", data_s, "--val", data_s, "--out", run_s, "--rounds", rounds];
        a.extend(["--epochs-per-round", "3", "--rewind-epoch", "1", "--crop", "16", "--crops-per-image", "4"]);
        a.extend(["--batch", "4", "--device", "cpu", "--model", "m3"]);
        a
    };
    let o = trainer(&args("2"));
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(run.join("prune.csv")).unwrap();
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let sp: Vec<f64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    assert_eq!(sp[0], 0.0);
    assert!((sp[1] - 0.2).abs() < 0.01 && (sp[2] - 0.36).abs() < 0.01, "{sp:?}");
    assert!(run.join("rewind/model.safetensors").is_file() && run.join("round2/mask.safetensors").is_file());
    assert!(run.join("prune.png").is_file());
    // Rerunning with more rounds continues after the completed ones.
    let o = trainer(&args("3"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("round 0 ("), "round 0 must not run again: {}", text(&o));
    assert_eq!(std::fs::read_to_string(run.join("prune.csv")).unwrap().lines().count(), 5);
    // The pruned model exports with its mask folded in, and runs like any other.
    let pt = d.join("pruned.pt");
    let o = trainer(&["export", run.join("round3").to_str().unwrap(), "--out", pt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("pruned.json")).unwrap()).unwrap();
    assert!((side["sparsity"].as_f64().unwrap() - 0.488).abs() < 0.01, "{side}");
    let o = trainer(&["eval", data_s, "--model", pt.to_str().unwrap(), "--device", "cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

/// Files of a folder with their bytes, sorted.
fn folder_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

/// A corrupt `last` at `--resume` is named with the previous checkpoint, which resumes; a save
/// that hits a full disk fails with the reason and leaves the checkpoints already saved as
/// they were (the disk: a small tmpfs in a private mount namespace, where `unshare` allows it).
#[test]
fn corrupt_resume_and_full_disk() {
    let d = tmp("faults");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let (data_s, run) = (data.to_str().unwrap(), d.join("run"));
    let run_s = run.to_str().unwrap();
    let mut args = vec!["train", "--data", data_s, "--out", run_s, "--epochs", "2"];
    args.extend(SMALL);
    let o = trainer(&args);
    assert!(o.status.success(), "{}", text(&o));
    let state = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap()
    };
    let (last, prev) = (run.join("last"), run.join("last.prev"));
    assert_eq!((state(&last)["epoch"].as_u64(), state(&prev)["epoch"].as_u64()), (Some(2), Some(1)));

    // Full disk: a tmpfs holding the run with 64 KiB to spare, far less than a checkpoint.
    let used_kib = std::process::Command::new("du").args(["-sk", run_s]).output().unwrap();
    let used_kib: u64 = String::from_utf8_lossy(&used_kib.stdout).split_whitespace().next().unwrap().parse().unwrap();
    let (mnt, after) = (d.join("mnt"), d.join("after"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&after).unwrap();
    let script = format!(
        "mount -t tmpfs -o size={}k tmpfs {m} || exit 77; cp -a {run_s}/. {m}/ || exit 77; \
         {trainer} train --data {data_s} --resume {m} --epochs 3 {recipe}; echo \"rc=$?\"; cp -a {m}/. {a}/",
        used_kib + 64,
        m = mnt.display(),
        a = after.display(),
        trainer = env!("CARGO_BIN_EXE_trainer"),
        recipe = RECIPE.join(" ")
    );
    match std::process::Command::new("unshare").args(["-rm", "sh", "-c", &script]).output() {
        Ok(o) if o.status.code() != Some(77) && o.status.success() => {
            let t = text(&o);
            assert!(t.contains("rc=1"), "the save should fail: {t}");
            assert!(t.contains("cannot write checkpoint") && t.contains("untouched"), "{t}");
            assert!(!t.contains("panicked"), "{t}");
            assert_eq!(folder_bytes(&after.join("last")), folder_bytes(&last), "last changed");
            assert_eq!(folder_bytes(&after.join("last.prev")), folder_bytes(&prev), "last.prev changed");
            // What the full disk left resumes.
            let o = trainer(&with_recipe(&[
                "train",
                "--data",
                data_s,
                "--resume",
                after.to_str().unwrap(),
                "--epochs",
                "3",
            ]));
            assert!(o.status.success(), "{}", text(&o));
            assert_eq!(state(&after.join("last"))["epoch"].as_u64(), Some(3));
        }
        other => eprintln!("SKIPPED the full disk: no private tmpfs here ({other:?})"),
    }

    // A corrupt `last`: named, with the previous checkpoint to resume from.
    let w = std::fs::read(last.join("model.safetensors")).unwrap();
    std::fs::write(last.join("model.safetensors"), &w[..w.len() / 3]).unwrap();
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--resume", run_s, "--epochs", "3"]));
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains(&last.join("model.safetensors").display().to_string()) && t.contains("corrupt"), "{t}");
    assert!(t.contains(&format!("--resume {}", prev.display())), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--resume", prev.to_str().unwrap(), "--epochs", "3"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(state(&last)["epoch"].as_u64(), Some(3));
    // Epochs 2 and 3 were saved: the damaged `last` was set aside, not kept as the previous one.
    assert_eq!(state(&prev)["epoch"].as_u64(), Some(2));
    assert!(run.join("last.corrupt/model.safetensors").is_file());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ecb_blocks_distillation_and_replacing_an_export() {
    let d = tmp("ecb");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let data_s = data.to_str().unwrap();
    let teacher = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/sesr_m5_x2.pt");
    let teacher_s = teacher.to_str().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = d.join(name);
        let mut a = vec!["train", "--data", data_s, "--out", out.to_str().unwrap(), "--epochs", "1"];
        a.extend(["--max-steps", "3", "--threads", "1", "--seed", "4"]);
        a.extend(SMALL);
        a.extend(extra);
        let o = trainer(&a);
        assert!(o.status.success(), "{}", text(&o));
        (out, text(&o))
    };
    let weights = |run: &Path| std::fs::read(run.join("last/model.safetensors")).unwrap();

    // Distillation changes the steps; a zero weight is the plain recipe, bit for bit.
    let (plain, _) = run("plain", &[]);
    let (w0, _) = run("w0", &["--teacher", teacher_s, "--distill-weight", "0"]);
    let (w1, t) = run("w1", &["--teacher", teacher_s, "--distill-weight", "1"]);
    assert!(t.contains("distilling from"), "{t}");
    assert_eq!(weights(&plain), weights(&w0));
    assert_ne!(weights(&plain), weights(&w1));
    let recipe = std::fs::read_to_string(w1.join("recipe.jsonl")).unwrap();
    assert!(recipe.contains("sesr_m5_x2.pt") && recipe.contains("\"distill_weight\":1.0"), "{recipe}");

    // ECB blocks: the checkpoint names its block kind, resuming keeps it, a conflicting
    // --block is refused, and the export is an ordinary SESR model of the same size.
    let (ecb, _) = run("ecb", &["--block", "ecb"]);
    let cfg = std::fs::read_to_string(ecb.join("last/config.json")).unwrap();
    assert!(cfg.contains("\"block\": \"ecb\""), "{cfg}");
    assert!(!std::fs::read_to_string(plain.join("last/config.json")).unwrap().contains("block"));
    assert!(std::fs::metadata(ecb.join("last/model.safetensors")).unwrap().len() > weights(&plain).len() as u64);
    let ecb_s = ecb.to_str().unwrap();
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--resume", ecb_s, "--epochs", "1", "--block", "plain"]));
    assert!(!o.status.success() && text(&o).contains("ecb blocks"), "{}", text(&o));
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--val", data_s, "--resume", ecb_s, "--epochs", "1"]));
    assert!(o.status.success(), "{}", text(&o));

    let pt = d.join("model.pt");
    let pt_s = pt.to_str().unwrap();
    let o = trainer(&["export", ecb_s, "--out", pt_s]);
    assert!(o.status.success(), "{}", text(&o));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("model.json")).unwrap()).unwrap();
    assert_eq!(side["collapsed_weights"], 8912);
    assert_eq!(side["training_block"], "ecb");
    assert!(side["config"].get("block").is_none(), "the exported model is plain SESR: {side}");
    assert_eq!(side["training_recipe"].as_array().map(|a| a.len()), Some(2), "start + resume: {side}");
    let o = trainer(&["eval", data_s, "--model", pt_s, "--native", "fp32"]);
    assert!(o.status.success(), "the native kernel runs an ECB-trained export: {}", text(&o));

    // An existing model is overwritten only with --replace, which also brings the run's curves.
    let before = std::fs::read(&pt).unwrap();
    let o = trainer(&["export", plain.to_str().unwrap(), "--out", pt_s]);
    assert!(!o.status.success() && text(&o).contains("--replace"), "{}", text(&o));
    assert_eq!(std::fs::read(&pt).unwrap(), before, "a refused export leaves the model alone");
    let o = trainer(&["export", ecb_s, "--out", pt_s, "--replace"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.join("model.metrics.csv").is_file() && d.join("model.plot.png").is_file());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn qat_fine_tunes_resumes_and_exports_integer_weights() {
    let d = tmp("qat");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let data_s = data.to_str().unwrap();
    let (float, qat) = (d.join("float"), d.join("qat"));
    let (float_s, qat_s) = (float.to_str().unwrap(), qat.to_str().unwrap());
    let mut a = vec!["train", "--data", data_s, "--val", data_s, "--out", float_s, "--epochs", "1", "--threads", "1"];
    a.extend(SMALL);
    let o = trainer(&a);
    assert!(o.status.success(), "{}", text(&o));

    // QAT needs a trained run to start from.
    let mut a = vec!["train", "--qat", "--data", data_s, "--out", qat_s, "--epochs", "1"];
    a.extend(SMALL);
    let o = trainer(&a);
    assert!(!o.status.success() && text(&o).contains("--init"), "{}", text(&o));

    let qat_run = |epochs: &str, start: &[&str]| {
        let mut a = vec!["train", "--data", data_s, "--val", data_s, "--epochs", epochs, "--threads", "1"];
        a.extend(start);
        a.extend(SMALL);
        trainer(&a)
    };
    let start = ["--qat", "--init", float_s, "--out", qat_s, "--lr", "1e-5"];
    let o = qat_run("1", &start);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("int8 kernel before QAT") && t.contains("epoch 1/1"), "{t}");
    let grids = std::fs::read_to_string(qat.join("int8.json")).unwrap();
    assert!(grids.contains("\"qat\": true"), "{grids}");
    // Starting a second QAT run over it is refused (it would recalibrate under trained weights).
    let o = qat_run("1", &start);
    assert!(!o.status.success() && text(&o).contains("--resume"), "{}", text(&o));
    // Resuming keeps the grids (not recalibrated) and the QAT forward.
    let o = qat_run("2", &["--resume", qat_s]);
    let t = text(&o);
    assert!(o.status.success() && t.contains("QAT on the activation grids") && t.contains("epoch 2/2"), "{t}");
    assert_eq!(std::fs::read_to_string(qat.join("int8.json")).unwrap(), grids);
    let recipe = std::fs::read_to_string(qat.join("recipe.jsonl")).unwrap();
    assert!(recipe.lines().next().unwrap().contains("\"qat\":true"), "{recipe}");
    // Damaged grids are a clear error, and nothing of the run is touched.
    std::fs::write(qat.join("int8.json"), &grids[..grids.len() / 2]).unwrap();
    let before = folder_bytes(&qat.join("last"));
    let o = qat_run("3", &["--resume", qat_s]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("int8.json") && t.contains("not an int8 calibration"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert_eq!(folder_bytes(&qat.join("last")), before);
    std::fs::write(qat.join("int8.json"), &grids).unwrap();

    // The export carries the grids and the integer weights; the int8 kernel runs it from the
    // sidecar alone, and scores what the run's last validation scored (best = an epoch's weights).
    let pt = d.join("q.pt");
    let pt_s = pt.to_str().unwrap();
    let o = trainer(&["export", qat_s, "--out", pt_s]);
    assert!(o.status.success() && text(&o).contains("integer weights"), "{}", text(&o));
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("q.json")).unwrap()).unwrap();
    assert_eq!(side["int8"]["qat"], true);
    let layers = side["int8"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 5, "input, 3 blocks, output");
    let q = layers[2]["q"].as_array().unwrap();
    assert_eq!(q.len(), 16 * 16 * 9);
    assert!(q.iter().all(|v| v.as_i64().is_some_and(|v| v.abs() <= 63)), "7-bit weights between the blocks");
    let o = trainer(&["eval", data_s, "--model", pt_s, "--native", "int8"]);
    assert!(o.status.success(), "{}", text(&o));
    // Integers that are not the kernel's own quantisation of the weights are refused.
    let mut bad = side.clone();
    let v = bad["int8"]["layers"][1]["q"][0].as_i64().unwrap();
    bad["int8"]["layers"][1]["q"][0] = serde_json::json!(if v > 0 { v - 1 } else { v + 1 });
    std::fs::write(d.join("q.json"), serde_json::to_string(&bad).unwrap()).unwrap();
    let o = trainer(&["eval", data_s, "--model", pt_s, "--native", "int8"]);
    assert!(!o.status.success() && text(&o).contains("differ from the kernel"), "{}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

/// The named tensors of a safetensors file.
fn tensors(p: &Path) -> Vec<(String, tch::Tensor)> {
    let mut v = tch::Tensor::read_safetensors(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn max_diff(a: &[(String, tch::Tensor)], b: &[(String, tch::Tensor)]) -> f64 {
    assert_eq!(a.iter().map(|t| &t.0).collect::<Vec<_>>(), b.iter().map(|t| &t.0).collect::<Vec<_>>());
    a.iter().zip(b).map(|((_, x), (_, y))| (x - y).abs().max().double_value(&[])).fold(0.0, f64::max)
}

#[test]
fn weight_average_resumes_exactly_and_checkpoints_average() {
    let d = tmp("ema");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let data_s = data.to_str().unwrap();
    let train = |run: &Path, extra: &[&str]| {
        let mut a = vec!["train", "--data", data_s, "--val", data_s, "--out", run.to_str().unwrap()];
        a.extend(["--threads", "1", "--seed", "3"]);
        a.extend(SMALL);
        a.extend(extra);
        let o = trainer(&a);
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };

    // Straight through two epochs with an average.
    let straight = d.join("straight");
    let t = train(&straight, &["--epochs", "2", "--ema", "0.5"]);
    assert!(t.contains("weight average with decay 0.5"), "{t}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("last/state.json")).unwrap()).unwrap();
    assert_eq!(state["ema"].as_f64(), Some(0.5));
    let (raw, avg) =
        (tensors(&straight.join("last/model.safetensors")), tensors(&straight.join("last/ema.safetensors")));
    assert!(max_diff(&raw, &avg) > 1e-6, "the average is not the raw weights");
    // `best/` holds the scored weights (the average of its epoch) and no second set.
    assert!(!straight.join("best/ema.safetensors").exists());
    let best_epoch =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(straight.join("best/state.json")).unwrap())
            .unwrap()["epoch"]
            .as_u64();
    if best_epoch == Some(2) {
        assert_eq!(max_diff(&tensors(&straight.join("best/model.safetensors")), &avg), 0.0);
    }
    let recipe = std::fs::read_to_string(straight.join("recipe.jsonl")).unwrap();
    assert!(recipe.contains("\"ema\":0.5"), "{recipe}");

    // A cosine schedule sets each epoch's lr (epochs 1–3 of 3 from 1e-3 to 0: 1e-3, 7.5e-4, 2.5e-4).
    let cos = d.join("cos");
    // (With the MSE loss, recorded in the run's recipe.)
    let t =
        train(&cos, &["--epochs", "3", "--lr", "1e-3", "--lr-schedule", "cosine", "--lr-min", "0", "--loss", "mse"]);
    let recipe = std::fs::read_to_string(cos.join("recipe.jsonl")).unwrap();
    assert!(recipe.contains("\"loss\":\"mse\"") && !recipe.contains("\"loss\":\"l1\""), "{recipe}");
    let recipe = std::fs::read_to_string(straight.join("recipe.jsonl")).unwrap();
    assert!(recipe.contains("\"loss\":\"l1\""), "{recipe}");
    for (e, lr) in [(1, "1.000e-3"), (2, "7.500e-4"), (3, "2.500e-4")] {
        assert!(t.contains(&format!("epoch {e}/3: lr {lr},")), "{t}");
    }
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--lr", "1e-4", "--lr-min", "1e-3"]));
    assert!(!o.status.success() && text(&o).contains("--lr-min"), "{}", text(&o));
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--rescale", "0.9,1.5"]));
    assert!(!o.status.success() && text(&o).contains("1.5: a factor in (0, 1)"), "{}", text(&o));

    // Interrupted mid-epoch, then resumed without --ema: the run keeps its average and ends
    // where the straight run ended, bit for bit.
    let split = d.join("split");
    let split_s = split.to_str().unwrap();
    let resume = |epochs: &str, extra: &[&str]| {
        let mut a = vec!["train", "--data", data_s, "--val", data_s, "--resume", split_s, "--epochs", epochs];
        a.extend(["--threads", "1"]);
        a.extend(extra);
        trainer(&with_recipe(&a))
    };
    train(&split, &["--epochs", "2", "--ema", "0.5", "--max-steps", "7"]);
    assert!(split.join("last/ema.safetensors").is_file());
    let o = resume("2", &["--model", "m3"]);
    assert!(o.status.success() && text(&o).contains("weight average (decay 0.5) resumed"), "{}", text(&o));
    assert_eq!(max_diff(&tensors(&split.join("last/model.safetensors")), &raw), 0.0);
    assert_eq!(max_diff(&tensors(&split.join("last/ema.safetensors")), &avg), 0.0);

    // `export --ema` writes the average of `last/`; without it a run exports its weights.
    let o = trainer(&["export", split.to_str().unwrap(), "--ema", "--out", d.join("ema.pt").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let side = std::fs::read_to_string(d.join("ema.json")).unwrap();
    assert!(side.contains("\"weight_average\": \"ema.safetensors\""), "{side}");
    let raw_last = split.join("last");
    let o = trainer(&["export", raw_last.to_str().unwrap(), "--out", d.join("raw.pt").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(std::fs::read(d.join("ema.safetensors")).unwrap(), std::fs::read(d.join("raw.safetensors")).unwrap());
    let o = trainer(&["export", cos.to_str().unwrap(), "--ema", "--out", d.join("none.pt").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("ema.safetensors"), "{}", text(&o));

    // A lost average is a clear error naming the checkpoint.
    std::fs::remove_file(split.join("last/ema.safetensors")).unwrap();
    let o = resume("3", &[]);
    assert!(!o.status.success() && text(&o).contains("missing or corrupt"), "{}", text(&o));
    assert!(text(&o).contains("--ema-restart"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    // `--ema-restart` goes on with a new average at the resumed weights, the run's decay kept.
    let o = resume("3", &["--ema-restart"]);
    assert!(o.status.success() && text(&o).contains("decay 0.5, from the current weights (restarted)"), "{}", text(&o));
    assert!(split.join("last/ema.safetensors").is_file());
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--resume", cos.to_str().unwrap(), "--ema-restart"]));
    assert!(!o.status.success() && text(&o).contains("keeps no weight average"), "{}", text(&o));

    // `average`: the element-wise mean, a checkpoint that evaluates and exports.
    let other = d.join("other");
    train(&other, &["--epochs", "1"]);
    let out = d.join("avg");
    let o = trainer(&[
        "average",
        straight.join("last").to_str().unwrap(),
        other.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (a, b) = (tensors(&straight.join("last/model.safetensors")), tensors(&other.join("last/model.safetensors")));
    let want: Vec<(String, tch::Tensor)> =
        a.iter().zip(&b).map(|((n, x), (_, y))| (n.clone(), (x + y) / 2.0)).collect();
    assert!(max_diff(&tensors(&out.join("model.safetensors")), &want) < 1e-7);
    let o = trainer(&["eval", data_s, "--model", out.to_str().unwrap(), "--device", "cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = trainer(&["export", out.to_str().unwrap(), "--out", d.join("avg.pt").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // Refused: an existing output, and checkpoints of different models.
    let o = trainer(&["average", straight.to_str().unwrap(), other.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("exists"), "{}", text(&o));
    let m5 = d.join("m5");
    let mut a = vec!["train", "--data", data_s, "--out", m5.to_str().unwrap(), "--epochs", "1", "--max-steps", "1"];
    a.extend(RECIPE);
    let o = trainer(&a);
    assert!(o.status.success(), "{}", text(&o));
    let o =
        trainer(&["average", straight.to_str().unwrap(), m5.to_str().unwrap(), "-o", d.join("x").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("only checkpoints of one model"), "{}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

/// `best_psnr` ranks epochs on one set of validation folders: a resume on other folders scores
/// `best/` on them first (the kept score is then what `eval` gives `best/` there), and a resume
/// on the same folders does not score it again.
#[test]
fn resume_on_other_validation_folders_scores_best_again() {
    let d = tmp("rescore");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/images");
    let coffee = image::open(assets.join("coffee.png")).unwrap().to_rgb8();
    image::imageops::crop_imm(&coffee, 200, 150, 64, 48).to_image().save(other.join("cup.png")).unwrap();
    let run = d.join("run");
    let (data_s, other_s, run_s) = (data.to_str().unwrap(), other.to_str().unwrap(), run.to_str().unwrap());
    let state = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("last/state.json")).unwrap()).unwrap()
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap().display().to_string();

    let mut args = vec!["train", "--data", data_s, "--val", data_s, "--out", run_s, "--epochs", "1"];
    args.extend(SMALL);
    let o = trainer(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(state()["val_data"], serde_json::json!([canonical(&data)]));
    let first = state()["best_psnr"].as_f64().unwrap();

    let o = trainer(&with_recipe(&["train", "--data", data_s, "--val", other_s, "--resume", run_s, "--epochs", "2"]));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("best/ (epoch 1) scored on these validation folders"), "{t}");
    let s = state();
    assert_eq!(s["val_data"], serde_json::json!([canonical(&other)]));
    let kept = s["best_psnr"].as_f64().unwrap();
    let o = trainer(&["eval", other_s, "--model", run.join("best").to_str().unwrap(), "--json", "--device", "cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let there = j["sets"][0]["psnr_y"].as_f64().unwrap();
    assert!((kept - there).abs() < 1e-4, "kept best {kept} vs best/ scored on the other folder {there}");
    assert!((kept - first).abs() > 0.01, "the two folders score differently: {first} vs {kept}");

    // The same folders again (named another way): nothing to score again.
    let other_alias = format!("{}/../other", data_s);
    let o =
        trainer(&with_recipe(&["train", "--data", data_s, "--val", &other_alias, "--resume", run_s, "--epochs", "3"]));
    assert!(o.status.success() && !text(&o).contains("scored on these"), "{}", text(&o));
    // A resume without validation keeps the folders the best score belongs to.
    let o = trainer(&with_recipe(&["train", "--data", data_s, "--resume", run_s, "--epochs", "4"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(state()["val_data"], serde_json::json!([canonical(&other)]));
    let _ = std::fs::remove_dir_all(&d);
}

/// `degrade` writes decoded-luma pairs (a corrupt photo named and skipped), the same bytes again
/// on a rerun and on a resumed one; `train` reads them beside clean folders and validates on
/// coded copies; `eval --degrade` scores coded input deterministically, and coded input scores
/// lower than clean; bad specs are refused naming what is wrong.
#[test]
fn degraded_pairs_train_and_evaluate() {
    let d = tmp("degrade");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_data(&data);
    let (mix, again) = (d.join("mix"), d.join("again"));
    let (data_s, mix_s, again_s) = (data.to_str().unwrap(), mix.to_str().unwrap(), again.to_str().unwrap());
    let o = trainer(&["degrade", "--data", data_s, "--out", mix_s, "--copies", "3", "--seed", "7"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("corrupt.png"), "the corrupt photo is named: {t}");
    let manifest = std::fs::read_to_string(mix.join("manifest.csv")).unwrap();
    // 6 readable photos (tiles, grey, JPEG, tiny) x 3 copies.
    assert_eq!(manifest.lines().count(), 1 + 6 * 3, "{manifest}");
    let lr = folder_bytes(&mix.join("mix_train_LR_luma/X2"));
    assert_eq!(lr.len(), 18);
    let o = trainer(&["degrade", "--data", data_s, "--out", again_s, "--copies", "3", "--seed", "7"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(folder_bytes(&again.join("mix_train_LR_luma/X2")), lr, "the same seed, the same pictures");
    assert_eq!(std::fs::read_to_string(again.join("manifest.csv")).unwrap(), manifest);
    // An interrupted run: missing files are written again, the same as before.
    let first = mix.join("mix_train_LR_luma/X2").join(&lr[0].0);
    std::fs::remove_file(&first).unwrap();
    let o = trainer(&["degrade", "--data", data_s, "--out", mix_s, "--copies", "3", "--seed", "7"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(folder_bytes(&mix.join("mix_train_LR_luma/X2")), lr);

    let run = d.join("run");
    let mut args = vec!["train", "--data", data_s, mix_s, "--val", data_s, "--val-degrade", "jpeg:50"];
    args.extend(["--out", run.to_str().unwrap(), "--epochs", "1"]);
    args.extend(SMALL);
    let o = trainer(&args);
    assert!(o.status.success(), "{}", text(&o));
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(metrics.lines().next().unwrap().ends_with("psnr_data,psnr_data@jpeg:50"), "{metrics}");

    // Scored on the photo tiles (the black `tiny.png` scores an infinite PSNR at every input).
    let tiles = d.join("tiles");
    std::fs::create_dir_all(&tiles).unwrap();
    for i in 0..3 {
        std::fs::copy(data.join(format!("tile{i}.png")), tiles.join(format!("tile{i}.png"))).unwrap();
    }
    let tiles_s = tiles.to_str().unwrap();
    let eval = |extra: &[&str]| {
        let mut a = vec!["eval", tiles_s, "--method", "bicubic", "--json", "--degrade", "clean", "h264:36", "jpeg:30"];
        a.extend(extra);
        let o = trainer(&a);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["inputs"].as_array().unwrap().iter().map(|i| i["sets"][0]["psnr_y"].as_f64().unwrap()).collect::<Vec<_>>()
    };
    let (a, b) = (eval(&[]), eval(&[]));
    assert_eq!(a, b, "deterministic");
    assert!(a[1] < a[0] - 0.5 && a[2] < a[0] - 0.5, "coded input scores lower than clean: {a:?}");

    for (spec, needle) in [("h264:99", "0..=50"), ("av1:30", "unknown codec"), ("jpeg:60:inter", "no inter frames")] {
        let o = trainer(&["eval", data_s, "--method", "bicubic", "--degrade", spec]);
        assert_eq!(o.status.code(), Some(2), "{spec}");
        assert!(text(&o).contains(needle), "{spec}: {}", text(&o));
    }
    std::fs::remove_dir_all(&d).unwrap();
}
