//! The collapsed network's weights as plain float32 arrays, free of libtorch: what `trainer
//! export` writes beside a TorchScript file (`X.safetensors` + the sidecar `X.json`) and what the
//! native kernel runs.
//!
//! The sidecar may record SHA-256 digests of the TorchScript file and of the weights file as
//! exported (`pt_sha256`, `weights_sha256`): when both files still have them, the weights are
//! known to be the TorchScript model's own and the native backend trusts them without running
//! libtorch. Without digests (older exports) or when a file changed, the engine checks the
//! weights against the TorchScript module on a probe frame instead.

pub use crate::collapsed_weights::{CollapsedWeights, ConvWeights, Precision};
use crate::config::SesrConfig;
use crate::Error;
use std::path::{Path, PathBuf};

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The float32 collapsed weights `trainer export` writes beside a TorchScript file `X.pt`
/// (`X.safetensors`), with the config and precision of the sidecar `X.json`.
#[derive(Debug, Clone)]
pub struct ExportedWeights {
    pub weights: CollapsedWeights,
    /// The precision the TorchScript file itself computes in (the weights are float32).
    pub precision: Precision,
    /// Whether the sidecar's digests show that these weights are the TorchScript file's own:
    /// `Some(true)` both files are as exported, `Some(false)` one changed since, `None` the
    /// sidecar has no digests (or no TorchScript file was given).
    pub digests_match: Option<bool>,
    /// The int8 calibration `trainer calibrate` stored in the sidecar (`Ok(None)`: none); a
    /// damaged one is an error only for the int8 path that needs it.
    pub int8: Result<Option<crate::native::int8::Int8Calibration>, String>,
}

/// Why `path` cannot be opened as a model file, in words (`None`: it is a regular file, or a
/// link to one). A directory, a device (`/dev/null`) or a FIFO is named as such rather than
/// reported as a missing file; reading a FIFO would also block until something writes to it.
pub fn model_file_problem(path: &Path) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some("no such file".into()),
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    let kind = if t.is_dir() {
        "a directory"
    } else {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_fifo() {
                "a FIFO (named pipe)"
            } else if t.is_socket() {
                "a socket"
            } else {
                "a special file"
            }
        }
        #[cfg(not(unix))]
        "a special file"
    };
    Some(format!("is {kind}, not a model file"))
}

/// `X.json` and `X.safetensors` beside `X.pt`.
pub fn sidecar_paths(pt: &Path) -> (PathBuf, PathBuf) {
    (pt.with_extension("json"), pt.with_extension("safetensors"))
}

impl ExportedWeights {
    /// From the sidecar's text and the weights file's bytes; `pt`: the TorchScript file's
    /// bytes, to compare with the sidecar's digests.
    pub fn from_bytes(sidecar: &str, weights: &[u8], pt: Option<&[u8]>) -> Result<Self, Error> {
        let (cfg, precision, digests) = parse_sidecar(sidecar).map_err(|e| Error::Model(format!("sidecar: {e}")))?;
        let weights_model = CollapsedWeights::from_safetensors_bytes(cfg, weights).map_err(|e| match e {
            Error::Model(m) if m.starts_with("weights") => Error::Model(m),
            e => Error::Model(format!("weights: {}", model_text(&e))),
        })?;
        let digests_match = match (pt, digests) {
            (Some(pt), Some((dp, dw))) => Some(sha256_hex(pt) == dp && sha256_hex(weights) == dw),
            _ => None,
        };
        let int8 = crate::native::int8::Int8Calibration::from_sidecar(sidecar)
            .and_then(|c| c.map(|c| c.check(&weights_model).map(|()| c)).transpose());
        Ok(ExportedWeights { weights: weights_model, precision, digests_match, int8 })
    }

    /// The weights beside `pt`, with its digests compared when `check_pt` (reads `pt`). Errors
    /// name the file at fault (`X.json`, `X.safetensors` or `X.pt`).
    pub fn read(pt: &Path, check_pt: bool) -> Result<Self, Error> {
        let (sj, sw) = sidecar_paths(pt);
        let read =
            |f: &Path| std::fs::read(f).map_err(|e| Error::Model(format!("no weights for it: {}: {e}", f.display())));
        let (sidecar, weights) = (read(&sj)?, read(&sw)?);
        let sidecar =
            String::from_utf8(sidecar).map_err(|_| Error::Model(format!("{}: sidecar: not UTF-8", sj.display())))?;
        let pt_bytes = if check_pt {
            Some(std::fs::read(pt).map_err(|e| Error::Io { path: pt.display().to_string(), source: e })?)
        } else {
            None
        };
        Self::from_bytes(&sidecar, &weights, pt_bytes.as_deref()).map_err(|e| {
            let m = model_text(&e);
            let file = if m.starts_with("sidecar") { &sj } else { &sw };
            Error::Model(format!("{}: {m}", file.display()))
        })
    }
}

/// The text of an error without the `model: ` prefix of [`Error::Model`].
fn model_text(e: &Error) -> String {
    match e {
        Error::Model(m) => m.clone(),
        e => e.to_string(),
    }
}

/// SHA-256 digests recorded in a sidecar: of the TorchScript file, and of the weights file.
type Digests = (String, String);

/// The sidecar's config (validated), precision, and digests when it records both.
fn parse_sidecar(text: &str) -> Result<(SesrConfig, Precision, Option<Digests>), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let config = obj.get("config").ok_or("no \"config\"")?;
    let cfg: SesrConfig = serde_json::from_value(config.clone()).map_err(|e| format!("config: {e}"))?;
    cfg.validate().map_err(|e| format!("config: {e}"))?;
    // The top-level scale, when recorded, must be the config's.
    if let Some(s) = obj.get("scale") {
        if s.as_u64() != Some(cfg.scale as u64) {
            return Err(format!("\"scale\": {s} disagrees with the config's scale {}", cfg.scale));
        }
    }
    let precision = match obj.get("precision") {
        Some(p) => serde_json::from_value(p.clone()).map_err(|e| format!("precision: {e}"))?,
        None => Precision::Fp32,
    };
    let digest = |k: &str| obj.get(k).and_then(|d| d.as_str()).map(str::to_string);
    let digests = digest("pt_sha256").zip(digest("weights_sha256"));
    Ok((cfg, precision, digests))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(cfg: SesrConfig) -> CollapsedWeights {
        let named = CollapsedWeights::layout(&cfg)
            .into_iter()
            .enumerate()
            .map(|(i, (n, s))| {
                let len = s.iter().product::<usize>();
                (n, s, (0..len).map(|j| ((i * 31 + j * 7) % 13) as f32 * 0.01 - 0.06).collect())
            })
            .collect();
        CollapsedWeights::from_named(cfg, named).unwrap()
    }

    #[test]
    fn safetensors_round_trip_and_hostile_files() {
        let cfg = SesrConfig::new(2, 8, 16, 2).unwrap();
        let w = weights(cfg);
        let bytes = w.to_safetensors_bytes().unwrap();
        assert_eq!(CollapsedWeights::from_safetensors_bytes(cfg, &bytes).unwrap(), w);
        // Another config's shapes, truncation, garbage, a NaN: each refused with a reason.
        let other = SesrConfig::new(3, 8, 16, 2).unwrap();
        let e = CollapsedWeights::from_safetensors_bytes(other, &bytes).unwrap_err().to_string();
        assert!(e.contains("missing tensor 'block2"), "{e}");
        let e = CollapsedWeights::from_safetensors_bytes(cfg, &bytes[..bytes.len() / 2]).unwrap_err().to_string();
        assert!(e.contains("weights"), "{e}");
        assert!(CollapsedWeights::from_safetensors_bytes(cfg, b"garbage").is_err());
        let mut nan = w.clone();
        nan.blocks[1].1[3] = f32::NAN;
        let e = CollapsedWeights::from_safetensors_bytes(cfg, &nan.to_safetensors_bytes().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("block1.alpha") && e.contains("non-finite"), "{e}");
    }

    #[test]
    fn digests_tell_whether_files_changed() {
        let cfg = SesrConfig::new(1, 4, 8, 2).unwrap();
        let bytes = weights(cfg).to_safetensors_bytes().unwrap();
        let pt = b"pretend torchscript";
        let sidecar = serde_json::json!({
            "config": cfg, "precision": "fp32",
            "pt_sha256": sha256_hex(pt), "weights_sha256": sha256_hex(&bytes),
        })
        .to_string();
        let ok = ExportedWeights::from_bytes(&sidecar, &bytes, Some(pt)).unwrap();
        assert_eq!(ok.digests_match, Some(true));
        let changed = ExportedWeights::from_bytes(&sidecar, &bytes, Some(b"another model")).unwrap();
        assert_eq!(changed.digests_match, Some(false));
        let none = ExportedWeights::from_bytes(&sidecar, &bytes, None).unwrap();
        assert_eq!(none.digests_match, None);
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    mod hostile {
        //! Property tests: whatever the sidecar and weights files hold, parsing returns an error
        //! or weights that satisfy the config, and never panics.
        use super::*;
        use proptest::prelude::*;

        /// Cases per property; BENCHMARKS.md counts them.
        const CASES: u32 = 2000;

        fn small_cfg() -> impl Strategy<Value = SesrConfig> {
            (1..=3usize, prop_oneof![Just(4usize), Just(8)], prop_oneof![Just(2usize), Just(4)])
                .prop_map(|(m, f, scale)| SesrConfig::new(m, f, 16, scale).unwrap())
        }

        fn sidecar(cfg: &SesrConfig, weights: &[u8]) -> String {
            serde_json::json!({
                "config": cfg, "precision": "fp32", "scale": cfg.scale,
                "pt_sha256": sha256_hex(b"pt"), "weights_sha256": sha256_hex(weights),
            })
            .to_string()
        }

        /// Accepted weights are whole and finite, in the sidecar's shapes.
        fn check_accepted(e: &ExportedWeights) -> Result<(), TestCaseError> {
            let w = &e.weights;
            for (name, shape, data) in w.named() {
                prop_assert_eq!(data.len(), shape.iter().product::<usize>(), "{}", name);
                prop_assert!(data.iter().all(|v| v.is_finite()), "{}", name);
            }
            prop_assert_eq!(w.named().len(), CollapsedWeights::layout(&w.cfg).len());
            Ok(())
        }

        /// A JSON value of any kind, nested a little.
        fn any_json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<u64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                "[a-z0-9]{0,8}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                    proptest::collection::btree_map(
                        prop_oneof![
                            Just("config".to_string()),
                            Just("m".to_string()),
                            Just("f".to_string()),
                            Just("p".to_string()),
                            Just("scale".to_string()),
                            Just("precision".to_string()),
                            "[a-z]{1,6}"
                        ],
                        inner,
                        0..5
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            #[test]
            fn garbage_never_panics(text in ".{0,64}", json in any_json(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                prop_assert!(ExportedWeights::from_bytes(&text, &bytes, None).is_err());
                let _ = ExportedWeights::from_bytes(&json.to_string(), &bytes, Some(&bytes));
                // A safetensors header of any length, followed by whatever bytes.
                let mut st = (bytes.len() as u64).to_le_bytes().to_vec();
                st.extend(&bytes);
                let cfg = SesrConfig::new(1, 4, 8, 2).unwrap();
                prop_assert!(ExportedWeights::from_bytes(&sidecar(&cfg, &st), &st, None).is_err());
            }

            #[test]
            fn any_sidecar_config_is_checked_against_the_tensors(
                cfg in small_cfg(),
                m in prop_oneof![0..6u64, any::<u64>()],
                f in prop_oneof![0..12u64, any::<u64>()],
                p in prop_oneof![Just(16u64), any::<u64>()],
                scale in prop_oneof![0..6u64, any::<u64>()],
            ) {
                let bytes = weights(cfg).to_safetensors_bytes().unwrap();
                let text = serde_json::json!({"config": {"m": m, "f": f, "p": p, "scale": scale}}).to_string();
                match ExportedWeights::from_bytes(&text, &bytes, None) {
                    Ok(e) => {
                        check_accepted(&e)?;
                        // Only the config the tensors were made for (p is training-time only).
                        prop_assert_eq!((e.weights.cfg.m, e.weights.cfg.f, e.weights.cfg.scale), (cfg.m, cfg.f, cfg.scale));
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }

            #[test]
            fn damaged_weights_are_refused_or_whole(
                cfg in small_cfg(),
                cut in any::<prop::sample::Index>(),
                flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            ) {
                let good = weights(cfg).to_safetensors_bytes().unwrap();
                let side = sidecar(&cfg, &good);
                // Truncated anywhere: always refused, and said to be about the weights.
                let short = &good[..cut.index(good.len())];
                let e = ExportedWeights::from_bytes(&side, short, None).unwrap_err().to_string();
                prop_assert!(e.contains("weights") || e.contains("tensor"), "{}", e);
                // Bytes overwritten anywhere (header or data): refused, or accepted whole and finite.
                let mut bad = good.clone();
                for (i, v) in &flips {
                    let i = i.index(bad.len());
                    bad[i] = *v;
                }
                match ExportedWeights::from_bytes(&side, &bad, Some(b"pt")) {
                    Ok(e) => {
                        check_accepted(&e)?;
                        // The sidecar's digest no longer matches changed weights.
                        prop_assert_eq!(e.digests_match, Some(bad == good));
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }

            #[test]
            fn non_finite_and_misshapen_tensors_are_named(
                cfg in small_cfg(),
                which in any::<prop::sample::Index>(),
                at in any::<prop::sample::Index>(),
                bad in prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)],
                extra in 1..3usize,
            ) {
                let w = weights(cfg);
                let named = w.named();
                let t = which.index(named.len());
                let name = named[t].0.clone();
                // One non-finite value.
                let mut arrays: Vec<(String, Vec<usize>, Vec<f32>)> =
                    named.iter().map(|(n, s, d)| (n.clone(), s.clone(), d.to_vec())).collect();
                let i = at.index(arrays[t].2.len());
                arrays[t].2[i] = bad;
                let e = CollapsedWeights::from_named(cfg, arrays.clone()).unwrap_err().to_string();
                prop_assert!(e.contains(&name) && e.contains("non-finite"), "{}", e);
                // One tensor in another shape (more output channels), through the file format.
                arrays[t].2[i] = 0.0;
                arrays[t].1[0] += extra;
                let len = arrays[t].1.iter().product::<usize>();
                arrays[t].2.resize(len, 0.0);
                let views: Vec<(String, Vec<usize>, Vec<u8>)> = arrays
                    .iter()
                    .map(|(n, s, d)| (n.clone(), s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect()))
                    .collect();
                let views: Vec<(String, safetensors::tensor::TensorView)> = views
                    .iter()
                    .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap()))
                    .collect();
                let bytes = safetensors::tensor::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), &None).unwrap();
                let e = ExportedWeights::from_bytes(&sidecar(&cfg, &bytes), &bytes, None).unwrap_err().to_string();
                prop_assert!(e.contains(&name) && e.contains("shape"), "{}", e);
            }
        }

        #[test]
        fn sidecar_scale_must_agree_and_be_two_or_four() {
            let cfg = SesrConfig::new(1, 4, 8, 2).unwrap();
            let bytes = weights(cfg).to_safetensors_bytes().unwrap();
            let text = serde_json::json!({"config": cfg, "scale": 4}).to_string();
            let e = ExportedWeights::from_bytes(&text, &bytes, None).unwrap_err().to_string();
            assert!(e.contains("sidecar") && e.contains("disagrees"), "{e}");
            let text = serde_json::json!({"config": {"m": 1, "f": 4, "p": 8, "scale": 3}}).to_string();
            let e = ExportedWeights::from_bytes(&text, &bytes, None).unwrap_err().to_string();
            assert!(e.contains("scale must be 2 or 4"), "{e}");
            let text =
                serde_json::json!({"config": {"m": 1_000_000_000_000u64, "f": 4, "p": 8, "scale": 2}}).to_string();
            let e = ExportedWeights::from_bytes(&text, &bytes, None).unwrap_err().to_string();
            assert!(e.contains("absurd"), "{e}");
        }

        #[test]
        fn read_names_the_file_at_fault() {
            let dir = std::env::temp_dir().join(format!("sesr-weights-read-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let pt = dir.join("m.pt");
            std::fs::write(&pt, b"pt").unwrap();
            let cfg = SesrConfig::new(1, 4, 8, 2).unwrap();
            let bytes = weights(cfg).to_safetensors_bytes().unwrap();
            std::fs::write(dir.join("m.safetensors"), &bytes).unwrap();
            std::fs::write(dir.join("m.json"), b"{\"config\": 7}").unwrap();
            let e = ExportedWeights::read(&pt, true).unwrap_err().to_string();
            assert!(e.contains("m.json") && e.contains("sidecar"), "{e}");
            std::fs::write(dir.join("m.json"), sidecar(&cfg, &bytes)).unwrap();
            std::fs::write(dir.join("m.safetensors"), &bytes[..bytes.len() - 1]).unwrap();
            let e = ExportedWeights::read(&pt, true).unwrap_err().to_string();
            assert!(e.contains("m.safetensors") && e.contains("weights"), "{e}");
            std::fs::write(dir.join("m.safetensors"), &bytes).unwrap();
            assert!(ExportedWeights::read(&pt, true).is_ok());
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn model_paths_that_are_no_files_are_named() {
        let dir = std::env::temp_dir().join(format!("sesr-weights-kinds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.pt");
        std::fs::write(&file, b"pt").unwrap();
        assert_eq!(model_file_problem(&file), None);
        assert_eq!(model_file_problem(&dir.join("absent.pt")).as_deref(), Some("no such file"));
        assert_eq!(model_file_problem(&dir).as_deref(), Some("is a directory, not a model file"));
        #[cfg(unix)]
        {
            let link = dir.join("link.pt");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            assert_eq!(model_file_problem(&link), None, "a link to a file is a file");
            assert_eq!(model_file_problem(Path::new("/dev/null")).as_deref(), Some("is a device, not a model file"));
            let fifo = dir.join("fifo.pt");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                assert_eq!(model_file_problem(&fifo).as_deref(), Some("is a FIFO (named pipe), not a model file"));
            } else {
                eprintln!("SKIPPED: mkfifo unavailable");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
