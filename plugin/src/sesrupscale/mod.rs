//! # `sesrupscale`
//!
//! Upscales NV12 or I420 video by the scale of a collapsed SESR model (×2 or ×4): the luma
//! plane through the model (libtorch, CPU or CUDA), the chroma planes bicubically, respecting
//! the chroma siting of the caps. Output format equals input format; width and height are
//! multiplied by the model's scale; pixel-aspect-ratio, framerate, colorimetry and chroma-site
//! are carried over. The default model (SESR-M5 ×2) is compiled into the plugin.
//!
//! ```text
//! gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! video/x-raw,format=NV12 \
//!     ! sesrupscale ! videoconvert ! autovideosink
//! gst-launch-1.0 videotestsrc ! video/x-raw,width=640,height=360,format=I420 \
//!     ! sesrupscale model-location=my_model.pt device=cuda ! fakesink
//! ```
//!
//! Properties: `model-location` (TorchScript file; empty = embedded default), `device`
//! (`auto`, `cpu`, `cuda`, `cuda:N`), `num-threads` (libtorch CPU threads, 0 = libtorch's
//! default), read-only `scale`. Model-affecting properties can be changed in NULL and READY.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SesrUpscale(ObjectSubclass<imp::SesrUpscale>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "sesrupscale", gst::Rank::NONE, SesrUpscale::static_type())
}
