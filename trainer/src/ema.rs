//! An exponential moving average of the weights (Polyak averaging, as timm's `ModelEmaV2` or
//! TensorFlow's `ExponentialMovingAverage`): after every optimiser step each shadow variable
//! moves to `decay · shadow + (1 − decay) · weight`. Late in training the single-epoch weights
//! wander around a plateau; their average usually scores above any one of them.
//!
//! The shadow is of the expanded variables, so it collapses like the weights themselves. A
//! run's `last/` keeps it as `ema.safetensors` beside the raw weights (which training goes on
//! from); validation, `best/` and so `export` use the shadow.

use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use tch::{nn::VarStore, Tensor};

pub const FILE: &str = "ema.safetensors";

pub struct Ema {
    pub decay: f64,
    /// (name, variable, shadow), sorted by name.
    slots: Vec<(String, Tensor, Tensor)>,
}

impl Ema {
    /// A shadow starting at the variables' current values.
    pub fn new(vs: &VarStore, decay: f64) -> Result<Self> {
        if !(decay > 0.0 && decay < 1.0) {
            bail!("the EMA decay must lie in (0, 1), e.g. 0.999; got {decay}");
        }
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars.into_iter().map(|(n, p)| {
            let s = tch::no_grad(|| p.detach().copy());
            (n, p, s)
        });
        Ok(Ema { decay, slots: slots.collect() })
    }

    /// One step of the average (call after each optimiser step).
    pub fn update(&mut self) {
        let d = self.decay;
        tch::no_grad(|| {
            for (_, p, s) in &mut self.slots {
                let _ = s.g_mul_scalar_(d).g_add_(&(&*p * (1.0 - d)));
            }
        });
    }

    /// Exchanges the variables' values with the shadow's: call once to score or save the
    /// average, and again to go back to the training weights.
    pub fn swap(&mut self) {
        tch::no_grad(|| {
            for (_, p, s) in &mut self.slots {
                let w = p.detach().copy();
                p.copy_(s);
                s.copy_(&w);
            }
        });
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let named: Vec<(&str, &Tensor)> = self.slots.iter().map(|(n, _, s)| (n.as_str(), s)).collect();
        Tensor::write_safetensors(&named, path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Loads a shadow saved by [`Ema::save`], checked against the variables before it is copied.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let map: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .into_iter()
            .collect();
        for (n, p, _) in &self.slots {
            let t = map.get(n).ok_or_else(|| anyhow!("{}: the average lacks {n}", path.display()))?;
            if t.size() != p.size() || t.kind() != p.kind() {
                bail!(
                    "{}: {n} is {:?} {:?}, the model's {:?} {:?}",
                    path.display(),
                    t.kind(),
                    t.size(),
                    p.kind(),
                    p.size()
                );
            }
        }
        tch::no_grad(|| {
            for (n, _, s) in &mut self.slots {
                s.copy_(&map[n]);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (VarStore, Tensor) {
        let vs = VarStore::new(tch::Device::Cpu);
        let w = vs.root().var("w", &[3], tch::nn::Init::Const(1.0));
        (vs, w)
    }

    #[test]
    fn update_moves_the_shadow_towards_the_weights_and_swap_exchanges() {
        let (vs, mut w) = store();
        let mut ema = Ema::new(&vs, 0.75).unwrap();
        tch::no_grad(|| w.copy_(&Tensor::from_slice(&[5.0f32, 1.0, -3.0])));
        ema.update(); // 0.75·1 + 0.25·w
        ema.update();
        ema.swap();
        let got: Vec<f32> = Vec::try_from(&w).unwrap();
        // shadow after two steps: w + (1 − w)·0.75²
        let want = [5.0 - 4.0 * 0.5625, 1.0, -3.0 + 4.0 * 0.5625];
        for (g, e) in got.iter().zip(want) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        ema.swap();
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![5.0, 1.0, -3.0]);
    }

    #[test]
    fn save_load_round_trip_and_mismatch_is_refused() {
        let (vs, mut w) = store();
        let mut ema = Ema::new(&vs, 0.5).unwrap();
        tch::no_grad(|| w.copy_(&Tensor::from_slice(&[3.0f32, 3.0, 3.0])));
        ema.update();
        let p = std::env::temp_dir().join(format!("sesr-ema-{}.safetensors", std::process::id()));
        ema.save(&p).unwrap();
        let mut back = Ema::new(&vs, 0.5).unwrap();
        back.load(&p).unwrap();
        back.swap();
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![2.0, 2.0, 2.0]);
        let other = VarStore::new(tch::Device::Cpu);
        let _ = other.root().var("w", &[4], tch::nn::Init::Const(0.0));
        let err = Ema::new(&other, 0.5).unwrap().load(&p).unwrap_err().to_string();
        assert!(err.contains("[4]") || err.contains("[3]"), "{err}");
        assert!(Ema::new(&vs, 1.0).is_err() && Ema::new(&vs, 0.0).is_err());
        let _ = std::fs::remove_file(p);
    }
}
