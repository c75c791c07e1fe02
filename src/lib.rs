//! # sesr — the shared core of the SESR super-resolution project
//!
//! SESR (Super-Efficient Super-Resolution, Bhardwaj et al., MLSys 2022) is a tiny CNN whose
//! *collapsible linear blocks* are trained over-parameterised (k×k conv to `p` channels, then a
//! 1×1 conv back) and collapsed analytically into single small convolutions for inference.
//!
//! This crate holds what the GStreamer element and the trainer share, and knows nothing of
//! either: the model in both forms and the exact collapse between them ([`model`]), model
//! hyper-parameters ([`config`]), colour conversion ([`color`]), MATLAB-compatible bicubic
//! resampling ([`resize`]), metrics ([`metrics`]), image loading and the scoring protocol of SR
//! papers ([`image_io`], [`protocol`]), and inference: the exported weights ([`weights`]), the
//! native streaming kernel for every CPU ([`native`]), the backends and chroma scaler of the
//! element ([`engine`]) on shared worker threads ([`pool`]).
//!
//! Cargo feature `torch` (default): libtorch, i.e. the trainable model ([`model`]), pruning and
//! the libtorch backend. Without it the crate is plain Rust (the native backend, resampling,
//! metrics) and builds for any target, aarch64 included.

mod collapsed_weights;
pub mod color;
pub mod config;
pub mod engine;
pub mod image_io;
pub mod metrics;
#[cfg(feature = "torch")]
pub mod model;
pub mod native;
pub mod onnx;
pub mod plane;
pub mod pool;
pub mod protocol;
#[cfg(feature = "torch")]
pub mod prune;
#[cfg(feature = "torch")]
pub mod qat;
pub mod resize;
pub mod sample;
#[cfg(feature = "torch")]
pub mod tensor;
pub mod weights;

pub use config::{Preset, SesrConfig};
#[cfg(feature = "torch")]
pub use model::{CollapsedSesr, ExpandedSesr};
pub use plane::{Plane, RgbPlanes};

/// Errors of the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: cannot decode image: {reason}")]
    Image { path: String, reason: String },
    #[error("model: {0}")]
    Model(String),
    #[cfg(feature = "torch")]
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `f` compiled with AVX2 and FMA where the CPU has them (an `#[inline(always)]` closure is
/// inlined into a function with those features), else as it is: for plain loops that vectorise
/// wider and round with an instruction. The values are the same either way (Rust does not
/// contract `a * b + c` into FMA).
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { run(f) };
        }
    }
    f()
}

/// CPU threads to use when none are asked for: the CPUs this process may run on.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
