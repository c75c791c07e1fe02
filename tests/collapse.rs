//! The collapse is exact: expanded and collapsed networks compute the same function, and the
//! collapse-in-graph training forward yields the expanded network's gradients.

use sesr::{ExpandedSesr, Preset};
use tch::{nn, Device, Kind, Tensor};

mod common;
use common::{random_model, random_model_kind, rng_lock};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn expanded_equals_collapsed_for_every_preset_scale_and_size() {
    let _rng = rng_lock();
    let sizes = [(1, 1), (1, 3), (5, 1), (7, 5), (12, 9), (17, 16)];
    for preset in Preset::ALL {
        for scale in [2, 4] {
            let cfg = preset.config(scale);
            let (_vs, model) = random_model(cfg, 7 + scale as i64);
            let collapsed = model.collapse_detached();
            for (h, w) in sizes {
                let x = Tensor::rand([2, 1, h, w], (Kind::Float, Device::Cpu));
                let (e, c) = tch::no_grad(|| (model.forward_expanded(&x), collapsed.forward_unclamped(&x)));
                assert_eq!(e.size(), [2, 1, h * scale as i64, w * scale as i64]);
                let d = max_abs_diff(&e, &c);
                // The check must see a non-trivial function, not a constant.
                let spread = (e.max() - e.min()).double_value(&[]);
                assert!(spread > 1e-3, "{preset} x{scale} {h}x{w}: output is flat ({spread})");
                // float32 rounding of two summation orders, relative to the output's magnitude
                // (XL's random outputs reach several units; 1e-5 absolute failed once at 1.19e-5).
                let mag = e.abs().max().double_value(&[]).max(1.0);
                assert!(
                    d <= 1e-5 * mag,
                    "{preset} x{scale} {h}x{w}: max |expanded − collapsed| = {d:e} (output up to {mag:.2})"
                );
            }
        }
    }
}

#[test]
fn biases_matter_so_dropping_them_would_fail() {
    let _rng = rng_lock();
    // The reference code's collapse drops b1 (its issue #14); make sure our test would catch it.
    let (_vs, model) = random_model(Preset::M3.config(2), 3);
    let mut wrong = model.collapse_detached();
    let b = &model.input;
    let w2 = b.project.weight.reshape([16, 256]);
    wrong.input.bias = tch::no_grad(|| w2.mv(&Tensor::zeros([256], (Kind::Float, Device::Cpu))) + &b.project.bias);
    let x = Tensor::rand([1, 1, 9, 9], (Kind::Float, Device::Cpu));
    let d = tch::no_grad(|| max_abs_diff(&model.forward_expanded(&x), &wrong.forward_unclamped(&x)));
    assert!(d > 1e-3, "dropping b1 changed the output by only {d:e}");
}

#[test]
fn collapse_in_graph_gradients_equal_expanded_gradients() {
    let _rng = rng_lock();
    // In float64: PReLU has a kink at 0, and float32 rounding differences between the two forms
    // could move a pre-activation across it and change that element's gradient legitimately.
    for (preset, scale) in [(Preset::M3, 2), (Preset::M11, 4), (Preset::XL, 2)] {
        let cfg = preset.config(scale);
        let (vs, model) = random_model_kind(cfg, 11, Kind::Double);
        let x = Tensor::rand([3, 1, 10, 11], (Kind::Double, Device::Cpu));
        let target = Tensor::rand([3, 1, 10 * scale as i64, 11 * scale as i64], (Kind::Double, Device::Cpu));
        let grads = |forward: &dyn Fn(&Tensor) -> Tensor| {
            let vars = vs.trainable_variables();
            for v in &vars {
                let mut g = v.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            // Squared error keeps the gradient smooth (L1's sign flips at ties would not be).
            let loss = (forward(&x) - &target).square().mean(Kind::Double);
            loss.backward();
            vars.iter().map(|v| v.grad().copy()).collect::<Vec<_>>()
        };
        let ge = grads(&|x| model.forward_expanded(x));
        let gc = grads(&|x| model.forward_collapsing(x));
        let names: Vec<String> = vs.variables().into_keys().collect();
        assert_eq!(ge.len(), names.len());
        for (i, (a, b)) in ge.iter().zip(&gc).enumerate() {
            let scale_ = a.abs().max().double_value(&[]).max(1e-8);
            let d = max_abs_diff(a, b);
            assert!(scale_ > 0.0);
            assert!(d <= 1e-9 * scale_ + 1e-12, "{preset} x{scale} grad {i}: diff {d:e} (max {scale_:e})");
        }
    }
}

#[test]
fn collapsed_weight_counts_match_the_spec() {
    let _rng = rng_lock();
    let expected =
        [(Preset::M3, 8_912), (Preset::M5, 13_520), (Preset::M7, 18_128), (Preset::M11, 27_344), (Preset::XL, 105_376)];
    for (preset, n) in expected {
        let (_vs, model) = random_model(preset.config(2), 1);
        let c = model.collapse_detached();
        assert_eq!(c.weight_count(), n, "{preset}");
        assert_eq!(c.weight_count(), preset.config(2).collapsed_weights());
        assert_eq!(c.blocks.len(), preset.dims().0);
    }
    let (_vs, m) = random_model(Preset::M5.config(4), 1);
    assert_eq!(m.collapse_detached().weight_count(), 25 * 16 + 9 * 256 * 5 + 25 * 16 * 16);
}

#[test]
fn fresh_models_follow_the_reference_init() {
    let _rng = rng_lock();
    let cfg = Preset::M5.config(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ExpandedSesr::new(&vs.root(), cfg);
    for (name, t) in vs.variables() {
        if name.ends_with("bias") || name.ends_with("prelu.weight") {
            assert_eq!(t.abs().max().double_value(&[]), 0.0, "{name} must start at zero");
        } else {
            let s = t.size();
            let bound = (6.0 / ((s[0] + s[1]) * s[2] * s[3]) as f64).sqrt();
            let mx = t.abs().max().double_value(&[]);
            assert!(mx <= bound && mx > 0.8 * bound, "{name}: max {mx}, Glorot bound {bound}");
        }
    }
    // PReLU at 0 makes a fresh residual block a ReLU.
    assert!(model.alphas.iter().all(|a| a.size() == [16]));
}

#[test]
fn safetensors_and_torchscript_round_trip() {
    let _rng = rng_lock();
    let cfg = Preset::M3.config(2);
    let (_vs, model) = random_model(cfg, 5);
    let c = model.collapse_detached();
    let dir = std::env::temp_dir().join(format!("sesr-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let st = dir.join("m3.safetensors");
    c.save_safetensors(&st).unwrap();
    let back = sesr::CollapsedSesr::load_safetensors(cfg, &st).unwrap();
    // The wrong config is refused with the tensor named.
    let err = sesr::CollapsedSesr::load_safetensors(Preset::M5.config(2), &st).unwrap_err().to_string();
    assert!(err.contains("block3"), "{err}");

    let pt = dir.join("m3.pt");
    c.export_torchscript(&pt).unwrap();
    let ts = tch::CModule::load(&pt).unwrap();
    for (h, w) in [(1, 1), (7, 13), (31, 8)] {
        let x = Tensor::rand([1, 1, h, w], (Kind::Float, Device::Cpu));
        let (a, b, t) = tch::no_grad(|| (c.forward(&x), back.forward(&x), ts.forward_ts(&[&x]).unwrap()));
        assert_eq!(t.size(), [1, 1, 2 * h, 2 * w]);
        assert_eq!(max_abs_diff(&a, &b), 0.0);
        assert!(max_abs_diff(&a, &t) <= 1e-6);
        assert!(t.min().double_value(&[]) >= 0.0 && t.max().double_value(&[]) <= 1.0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reduced_precision_exports_keep_the_float_contract() {
    let _rng = rng_lock();
    let (_vs, model) = random_model(Preset::M3.config(2), 9);
    let c = model.collapse_detached();
    let x = Tensor::rand([1, 1, 13, 9], (Kind::Float, Device::Cpu));
    let reference = tch::no_grad(|| c.forward(&x));
    for p in [sesr::model::Precision::Bf16, sesr::model::Precision::Fp16] {
        let m = c.to_torchscript_with(p).unwrap();
        let y = tch::no_grad(|| m.forward_ts(&[&x])).unwrap();
        assert_eq!(y.kind(), Kind::Float, "{p:?}");
        assert_eq!(y.size(), [1, 1, 26, 18]);
        let d = max_abs_diff(&y, &reference);
        assert!(d > 0.0 && d < 0.05, "{p:?}: {d}");
    }
    assert!("int4".parse::<sesr::model::Precision>().is_err());
    // int8 is the native kernel's (calibrated), never a TorchScript export.
    assert_eq!("int8".parse::<sesr::model::Precision>().unwrap(), sesr::model::Precision::Int8);
}

#[test]
fn channel_selection_is_exact_and_shrinks_the_model() {
    let _rng = rng_lock();
    let (_vs, model) = random_model(Preset::M3.config(2), 21);
    let x = Tensor::rand([1, 1, 11, 7], (Kind::Float, Device::Cpu));
    // Keeping every channel changes nothing.
    let all: Vec<i64> = (0..16).collect();
    let vs2 = nn::VarStore::new(Device::Cpu);
    let same = model.select_channels(&vs2.root(), &all);
    let d = tch::no_grad(|| max_abs_diff(&model.forward_expanded(&x), &same.forward_expanded(&x)));
    assert!(d < 1e-6, "{d}");
    // Keeping 12: the expanded narrow net equals its own collapse, has f = 12 weights, and
    // differs from the full net (channels really went).
    let keep = sesr::model::top_channels(&model.collapse_detached(), 12);
    assert_eq!(keep.len(), 12);
    let vs3 = nn::VarStore::new(Device::Cpu);
    let narrow = model.select_channels(&vs3.root(), &keep);
    assert_eq!(narrow.cfg.f, 12);
    let c = narrow.collapse_detached();
    assert_eq!(c.weight_count(), narrow.cfg.collapsed_weights());
    assert_eq!(c.weight_count(), 25 * 12 + 9 * 144 * 3 + 25 * 12 * 4);
    let (e, k, full) =
        tch::no_grad(|| (narrow.forward_expanded(&x), c.forward_unclamped(&x), model.forward_expanded(&x)));
    assert!(max_abs_diff(&e, &k) <= 1e-5);
    assert!(max_abs_diff(&e, &full) > 1e-4);
}
