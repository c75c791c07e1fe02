//! AMSGrad (Adam with the running maximum of the second moment), PyTorch's formulation,
//! with a state that can be saved and restored for exact resumption.

use anyhow::{anyhow, Result};
use std::path::Path;
use tch::{nn::VarStore, Tensor};

pub struct AmsGrad {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub t: i64,
    /// (name, parameter, m, v, v_max), sorted by name.
    slots: Vec<(String, Tensor, Tensor, Tensor, Tensor)>,
}

impl AmsGrad {
    pub fn new(vs: &VarStore, lr: f64, eps: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(n, p)| {
                let z = || p.zeros_like().detach();
                (n, p.shallow_clone(), z(), z(), z())
            })
            .collect();
        AmsGrad { lr, beta1: 0.9, beta2: 0.999, eps, t: 0, slots }
    }

    pub fn zero_grad(&mut self) {
        for (_, p, ..) in &self.slots {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    pub fn step(&mut self) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        tch::no_grad(|| {
            for (_, p, m, v, vmax) in &mut self.slots {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).g_add_(&(g.square() * (1.0 - b2)));
                vmax.copy_(&vmax.maximum(v));
                let denom = vmax.sqrt() / bc2.sqrt() + self.eps;
                let _ = p.g_sub_(&(&*m / &denom * (self.lr / bc1)));
            }
        });
    }

    /// Saves m, v, v_max of every parameter (safetensors); `t` goes in the trainer's state.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named = Vec::new();
        for (n, _, m, v, vmax) in &self.slots {
            named.push((format!("m/{n}"), m.shallow_clone()));
            named.push((format!("v/{n}"), v.shallow_clone()));
            named.push((format!("vmax/{n}"), vmax.shallow_clone()));
        }
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    pub fn load(&mut self, path: &Path, t: i64) -> Result<()> {
        let map: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
        tch::no_grad(|| -> Result<()> {
            for (n, _, m, v, vmax) in &mut self.slots {
                for (prefix, dst) in [("m", m), ("v", v), ("vmax", vmax)] {
                    let src = map
                        .get(&format!("{prefix}/{n}"))
                        .ok_or_else(|| anyhow!("{}: optimiser state lacks {prefix}/{n}", path.display()))?;
                    dst.copy_(src);
                }
            }
            Ok(())
        })?;
        self.t = t;
        Ok(())
    }
}
