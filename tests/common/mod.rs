//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use sesr::{ExpandedSesr, SesrConfig};
use tch::{nn, Device, Kind, Tensor};

/// libtorch's generator is global and tests run on parallel threads: each test holds this lock
/// so that its seeded draws are reproducible.
pub static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// An expanded network with random kernels, non-zero biases and non-zero PReLU slopes.
pub fn random_model(cfg: SesrConfig, seed: i64) -> (nn::VarStore, ExpandedSesr) {
    random_model_kind(cfg, seed, Kind::Float)
}

pub fn random_model_kind(cfg: SesrConfig, seed: i64, kind: Kind) -> (nn::VarStore, ExpandedSesr) {
    tch::manual_seed(seed);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = ExpandedSesr::new(&vs.root(), cfg);
    vs.set_kind(kind);
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.ends_with("bias") {
                t.copy_(&(Tensor::rand_like(&t) * 0.2 - 0.1));
            } else if name.ends_with("prelu.weight") {
                t.copy_(&(Tensor::rand_like(&t) * 0.6 - 0.1));
            }
        }
    });
    (vs, model)
}
