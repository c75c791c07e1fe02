//! GStreamer plugin `sesr`: real-time SESR super-resolution.
//!
//! Element `sesrupscale` upscales NV12/I420 video: the Y plane through a collapsed SESR model
//! (TorchScript, run by libtorch), the chroma planes bicubically.
//!
//! ```text
//! gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! sesrupscale ! videoconvert ! autovideosink
//! ```

use gst::glib;

pub mod backend;
pub mod caps;
pub mod meta;
mod sesrupscale;

pub use sesrupscale::SesrUpscale;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    if let Some(dir) = plugin.filename().as_deref().and_then(std::path::Path::parent) {
        let _ = backend::PLUGIN_DIR.set(dir.to_path_buf());
    }
    sesrupscale::register(plugin)
}

gst::plugin_define!(
    sesr,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("CARGO_PKG_NAME")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    "2026-11-24"
);
