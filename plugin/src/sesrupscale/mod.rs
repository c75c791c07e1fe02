//! # `sesrupscale`
//!
//! Upscales YUV video by the scale of a collapsed SESR model (×2 or ×4): the luma plane
//! through the model (the native CPU kernel — AVX-512, AVX2 or portable, fp32/bf16/int8 — or
//! libtorch on the CPU or CUDA), the chroma planes bicubically, respecting the chroma siting of
//! the caps. Formats: NV12, NV21, I420, YV12, Y42B, Y444, GRAY8 and the 10-bit P010_10LE and
//! I420_10LE (kept at 10 bits throughout). Output format equals input format; width and height
//! are multiplied by the model's scale; pixel-aspect-ratio, framerate, colorimetry, chroma-site
//! and the HDR fields (`mastering-display-info`, `content-light-level`) are carried over, and
//! metas are kept as `videoconvertscale` keeps them (regions of interest and crops rescaled).
//! Two SESR-M5 ×2 models are compiled into the plugin: one trained for decoded (compressed)
//! video, the default, and one trained on clean pictures (`artifact-reduction=off`). Output sides are at most 16384
//! pixels (`caps::MAX_OUTPUT_SIDE`): a larger output (an 8K input at ×4) is refused at caps
//! time with an element error giving the sizes.
//!
//! Errors never panic the streaming thread: a model that cannot load (missing, corrupt,
//! incompatible, non-finite weights, a sidecar that disagrees with its weights) is an element
//! error naming the file at fault; a libtorch failure while a frame runs (out of memory) is an
//! element error with libtorch's reason.
//!
//! ```text
//! gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! video/x-raw,format=NV12 \
//!     ! sesrupscale ! videoconvert ! autovideosink
//! gst-launch-1.0 filesrc location=low-bitrate.mp4 ! decodebin ! sesrupscale artifact-reduction=on \
//!     ! videoconvert ! autovideosink
//! gst-launch-1.0 videotestsrc ! video/x-raw,width=640,height=360,format=I420 \
//!     ! sesrupscale model-location=my_model.pt device=cuda ! fakesink
//! gst-launch-1.0 videotestsrc ! video/x-raw,width=960,height=540,format=P010_10LE \
//!     ! sesrupscale model-location=models/sesr_m5_x4.pt ! video/x-raw,width=3840,height=2160 ! fakesink
//! ```
//!
//! Properties: `model-location` (TorchScript file; empty = the embedded model),
//! `artifact-reduction` (`on`, the default: the embedded model trained for decoded, compressed
//! video; `off`: the one trained on clean pictures), `device`
//! (`auto`, `cpu`, `cuda`, `cuda:N`), `backend` (`auto`, `native`, `libtorch`: the native
//! backend runs on every CPU from the `.safetensors` weights that `trainer export` writes beside
//! the `.pt`), `precision` (`fp32`; `bf16` on AVX512-BF16; `int8` for models with an int8
//! calibration, 8-bit video; `auto`), `num-threads` (CPU threads, 0 = all cores),
//! `stripe-rows` (libtorch stripes), read-only `scale`, `active-backend`, `active-isa` and `active-precision`. Model-affecting properties can be changed in NULL
//! and READY.

use gst::glib;
use gst::prelude::*;

mod imp;

/// The `backend` property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSesrBackend")]
pub enum SesrBackend {
    #[default]
    #[enum_value(
        name = "Auto: native when the model's weights are beside it (and the device is the CPU), else libtorch",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "Native: the row-streaming CPU kernel (AVX-512, AVX2+FMA or portable, picked at run time)",
        nick = "native"
    )]
    Native = 1,
    #[enum_value(name = "libtorch: the TorchScript model (CPU or CUDA)", nick = "libtorch")]
    Libtorch = 2,
}

/// The `artifact-reduction` property: which embedded model runs (when `model-location` is empty).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSesrArtifactReduction")]
pub enum SesrArtifactReduction {
    #[enum_value(name = "Off: the model trained on clean (bicubic-downscaled) pictures", nick = "off")]
    Off = 0,
    #[default]
    #[enum_value(
        name = "On: the model trained on pictures decoded from H.264, HEVC, VP8/VP9, MPEG-2 and JPEG (for decoded video)",
        nick = "on"
    )]
    On = 1,
}

impl From<SesrArtifactReduction> for sesr::engine::Embedded {
    fn from(a: SesrArtifactReduction) -> Self {
        match a {
            SesrArtifactReduction::Off => sesr::engine::Embedded::Clean,
            SesrArtifactReduction::On => sesr::engine::Embedded::Compressed,
        }
    }
}

/// The `precision` property: the native backend's arithmetic.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSesrPrecision")]
pub enum SesrPrecision {
    #[default]
    #[enum_value(name = "float32", nick = "fp32")]
    Fp32 = 0,
    #[enum_value(name = "bfloat16 activations and weights, float32 sums (native backend, AVX512-BF16)", nick = "bf16")]
    Bf16 = 1,
    #[enum_value(
        name = "8-bit activations and weights, int32 sums (native backend; needs the model's int8 calibration: \
                `trainer calibrate`)",
        nick = "int8"
    )]
    Int8 = 2,
    #[enum_value(
        name = "int8 when the model carries its calibration and the CPU has VNNI, else bf16 where it measures \
                clearly faster than fp32 on this CPU, else fp32",
        nick = "auto"
    )]
    Auto = 3,
}

/// `None`: auto.
impl From<SesrPrecision> for Option<sesr::weights::Precision> {
    fn from(p: SesrPrecision) -> Self {
        match p {
            SesrPrecision::Fp32 => Some(sesr::weights::Precision::Fp32),
            SesrPrecision::Bf16 => Some(sesr::weights::Precision::Bf16),
            SesrPrecision::Int8 => Some(sesr::weights::Precision::Int8),
            SesrPrecision::Auto => None,
        }
    }
}

impl From<SesrBackend> for sesr::engine::Backend {
    fn from(b: SesrBackend) -> Self {
        match b {
            SesrBackend::Auto => sesr::engine::Backend::Auto,
            SesrBackend::Native => sesr::engine::Backend::Native,
            SesrBackend::Libtorch => sesr::engine::Backend::Libtorch,
        }
    }
}

glib::wrapper! {
    pub struct SesrUpscale(ObjectSubclass<imp::SesrUpscale>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "sesrupscale", gst::Rank::NONE, SesrUpscale::static_type())
}
