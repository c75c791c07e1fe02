//! The models compiled into the crate: the clean and the compressed-input SESR-M5 ×2, each as
//! float32 weights with their sidecar (the native backend) and, with libtorch, as TorchScript.
//! [`Embedded`](super::Embedded) picks one.

/// The default model compiled in: collapsed SESR-M5 ×2 (see `models/`).
#[cfg(feature = "torch")]
pub static DEFAULT_MODEL: &[u8] = include_bytes!("../../models/sesr_m5_x2.pt");
/// Its float32 weights and sidecar, for the native backend.
pub(super) static DEFAULT_WEIGHTS: &[u8] = include_bytes!("../../models/sesr_m5_x2.safetensors");
pub(super) static DEFAULT_SIDECAR: &str = include_str!("../../models/sesr_m5_x2.json");
/// The compressed-input model compiled in beside it: the same network fine-tuned on LR pictures
/// decoded from real codecs (see `models/` and `trainer degrade`).
#[cfg(feature = "torch")]
pub static COMPRESSED_MODEL: &[u8] = include_bytes!("../../models/sesr_m5_x2_compressed.pt");
pub(super) static COMPRESSED_WEIGHTS: &[u8] = include_bytes!("../../models/sesr_m5_x2_compressed.safetensors");
pub(super) static COMPRESSED_SIDECAR: &str = include_str!("../../models/sesr_m5_x2_compressed.json");
