use crate::backend::ModelRunner as Engine;
use crate::caps::{map_caps, output_size, Way};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use sesr::engine::{ChromaScaler, ChromaSiting};
use sesr::sample::Depth;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("sesrupscale", gst::DebugColorFlags::empty(), Some("SESR super-resolution upscaler"))
});

const DEFAULT_DEVICE: &str = "auto";

#[derive(Debug, Clone, PartialEq)]
struct Settings {
    model_location: String,
    artifact_reduction: super::SesrArtifactReduction,
    device: String,
    backend: super::SesrBackend,
    precision: super::SesrPrecision,
    num_threads: u32,
    stripe_rows: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model_location: String::new(),
            artifact_reduction: super::SesrArtifactReduction::default(),
            device: DEFAULT_DEVICE.into(),
            backend: super::SesrBackend::Auto,
            precision: super::SesrPrecision::Fp32,
            num_threads: 0,
            stripe_rows: 0,
        }
    }
}

/// The formats `sesrupscale` takes (and gives back, unchanged).
const FORMATS: [gst_video::VideoFormat; 9] = [
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Nv21,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Yv12,
    gst_video::VideoFormat::Y42b,
    gst_video::VideoFormat::Y444,
    gst_video::VideoFormat::Gray8,
    gst_video::VideoFormat::P01010le,
    gst_video::VideoFormat::I42010le,
];

/// Where the value sits in a 16-bit sample of the 10-bit formats (`None`: 8-bit samples).
fn sample_depth(format: gst_video::VideoFormat) -> Option<Depth> {
    match format {
        gst_video::VideoFormat::P01010le => Some(Depth::P010),
        gst_video::VideoFormat::I42010le => Some(Depth::LSB10),
        _ => None,
    }
}

/// A mapped plane's bytes as 16-bit samples (the formats are little-endian, checked at build
/// time to be the host's order); `None` when the mapping is not 2-byte aligned.
fn as_u16(b: &[u8]) -> Option<&[u16]> {
    // SAFETY: any two bytes are a valid u16; `align_to` gives the aligned middle part.
    let (head, mid, _) = unsafe { b.align_to::<u16>() };
    head.is_empty().then_some(mid)
}

fn as_u16_mut(b: &mut [u8]) -> Option<&mut [u16]> {
    // SAFETY: as `as_u16`.
    let (head, mid, _) = unsafe { b.align_to_mut::<u16>() };
    head.is_empty().then_some(mid)
}

#[cfg(not(target_endian = "little"))]
compile_error!("the 10-bit formats (P010_10LE, I420_10LE) are read as host-order words: little-endian hosts only");

/// Negotiated geometry of one stream.
struct Geometry {
    /// The negotiated input and output (format, sizes; metas are rescaled between them).
    infos: (gst_video::VideoInfo, gst_video::VideoInfo),
    /// `None` for GRAY8.
    chroma: Option<Chroma>,
}

/// The chroma planes of a stream: their scaler and sizes.
struct Chroma {
    scaler: ChromaScaler,
    /// Input and output chroma plane sizes, in samples.
    input: (usize, usize),
    output: (usize, usize),
    /// Samples per chroma sample in a plane row: 2 for interleaved UV (NV12, NV21, P010), else 1.
    step: usize,
}

/// Whether a plane of `len` bytes with rows of `stride` bytes holds `rows` rows of `row_bytes`
/// bytes (checked arithmetic: a plane too small for its geometry is refused, not indexed).
fn plane_fits(len: usize, stride: usize, row_bytes: usize, rows: usize) -> bool {
    if rows == 0 || row_bytes == 0 {
        return true;
    }
    stride >= row_bytes
        && (rows - 1).checked_mul(stride).and_then(|v| v.checked_add(row_bytes)).is_some_and(|n| n <= len)
}

/// Two distinct planes of a writable frame at once (U and V are scaled in parallel).
fn two_planes_mut<'a>(
    frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    a: u32,
    b: u32,
) -> Result<(&'a mut [u8], &'a mut [u8]), glib::BoolError> {
    if a == b {
        return Err(glib::bool_error!("plane {a} asked for twice"));
    }
    let (pa, la) = frame.plane_data_mut(a).map(|p| (p.as_mut_ptr(), p.len()))?;
    let (pb, lb) = frame.plane_data_mut(b).map(|p| (p.as_mut_ptr(), p.len()))?;
    // SAFETY: distinct planes of a mapped video frame are disjoint memory, mapped while `frame`
    // is borrowed (what gst-video's `planes_data_mut` does, without its unwrap).
    unsafe { Ok((std::slice::from_raw_parts_mut(pa, la), std::slice::from_raw_parts_mut(pb, lb))) }
}

struct State {
    engine: Engine,
    geometry: Option<Geometry>,
    /// `precision=auto` reloaded the model in float (fp32, or bf16 where it measures faster)
    /// for 10-bit caps (the integer kernel takes 8-bit samples): 8-bit caps later load it as
    /// `auto` again.
    fp32_for_10bit: bool,
}

#[derive(Default)]
pub struct SesrUpscale {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// The loaded model's scale (0 until a model is loaded).
    scale: AtomicU32,
    /// The backend of the running model ("" until started).
    active_backend: Mutex<&'static str>,
    /// The native kernel variant of the running model ("" until started or with libtorch).
    active_isa: Mutex<&'static str>,
    /// The native kernel's arithmetic ("" until started or with libtorch).
    active_precision: Mutex<&'static str>,
    /// A model loaded before `start()` to learn its scale for caps queries, with the settings
    /// it was loaded with: `start()` takes it instead of loading the same file again.
    preloaded: Mutex<Option<(Settings, Engine)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SesrUpscale {
    /// Shows what runs the model in the read-only `active-*` properties.
    fn publish(&self, engine: Option<&Engine>) {
        use sesr::weights::Precision as P;
        *lock(&self.active_backend) = engine.map(|e| e.backend_name()).unwrap_or("");
        *lock(&self.active_isa) = engine.and_then(|e| e.isa()).map(|i| i.name()).unwrap_or("");
        *lock(&self.active_precision) = match engine.and_then(|e| e.precision()) {
            Some(P::Fp32) => "fp32",
            Some(P::Bf16) => "bf16",
            Some(P::Fp16) => "fp16",
            Some(P::Int8) => "int8",
            None => "",
        };
    }

    /// Loads the model of the current settings.
    fn load_engine(&self) -> Result<Engine, gst::ErrorMessage> {
        self.load_engine_as(None)
    }

    /// Loads the model of the current settings, in `precision` instead of the setting's.
    fn load_engine_as(&self, precision: Option<super::SesrPrecision>) -> Result<Engine, gst::ErrorMessage> {
        let mut settings = lock(&self.settings).clone();
        if let Some(p) = precision {
            settings.precision = p;
        }
        let location = (!settings.model_location.is_empty()).then(|| PathBuf::from(&settings.model_location));
        let engine = Engine::load(
            location.as_deref(),
            settings.artifact_reduction.into(),
            &settings.device,
            settings.backend.into(),
            settings.num_threads as usize,
            settings.precision.into(),
        )
        .map_err(|e| {
            // Every load error names the model file (the engine's own messages mostly do).
            let e = match &location {
                Some(p) if !e.contains(&p.display().to_string()) => format!("model '{}': {e}", p.display()),
                _ => e,
            };
            gst::error_msg!(gst::ResourceError::OpenRead, ("Could not load SESR {}", e))
        })?;
        gst::info!(
            CAT,
            imp = self,
            "loaded {} (x{}), device {}, {} backend, precision {:?} (asked {:?})",
            location.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "embedded model".into()),
            engine.scale(),
            settings.device,
            engine.backend_name(),
            engine.precision(),
            settings.precision
        );
        match &engine.libtorch_reason {
            Some(why) => gst::info!(CAT, imp = self, "libtorch loaded: {}", why),
            None => gst::info!(CAT, imp = self, "no libtorch in this process"),
        }
        match (engine.isa(), &engine.fallback_reason) {
            (Some(isa), _) => gst::info!(
                CAT,
                imp = self,
                "native kernel: {} on {} threads; weights trusted: {}",
                isa,
                engine.threads(),
                engine.trust()
            ),
            (None, Some(why)) => gst::info!(CAT, imp = self, "libtorch backend: {}", why),
            (None, None) => {}
        }
        if self.scale.swap(engine.scale() as u32, Ordering::SeqCst) != engine.scale() as u32 {
            self.obj().notify("scale");
        }
        Ok(engine)
    }

    /// The scale for caps negotiation: that of the loaded model, else of the configured one.
    /// A model that cannot be loaded is reported by `start()` with its reason; until then
    /// (linking in NULL state) the default scale keeps pipelines constructible.
    fn negotiation_scale(&self) -> i32 {
        let s = self.scale.load(Ordering::SeqCst);
        if s != 0 {
            return s as i32;
        }
        match self.load_engine() {
            Ok(e) => {
                let scale = e.scale() as i32;
                *lock(&self.preloaded) = Some((lock(&self.settings).clone(), e));
                scale
            }
            Err(e) => {
                gst::debug!(CAT, imp = self, "no model yet ({:?}); assuming x2 for caps", e);
                2
            }
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for SesrUpscale {
    const NAME: &'static str = "GstSesrUpscale";
    type Type = super::SesrUpscale;
    type ParentType = gst_video::VideoFilter;
}

/// Chroma siting of the caps. The `chroma-site` string is read directly (GStreamer 1.22's
/// `VideoInfo` reports "mpeg2" as NONE), falling back to the parsed flags.
fn chroma_siting(caps: &gst::Caps, info: &gst_video::VideoInfo) -> ChromaSiting {
    let field = caps.structure(0).and_then(|s| s.get::<&str>("chroma-site").ok());
    if let Some(site) = field {
        let parts: Vec<&str> = site.split('+').collect();
        let has = |p: &str| parts.contains(&p);
        return match site {
            "jpeg" | "none" => ChromaSiting::default(),
            "mpeg2" => ChromaSiting { h_cosited: true, v_cosited: false },
            "dv" | "cosited" => ChromaSiting { h_cosited: true, v_cosited: true },
            _ => ChromaSiting { h_cosited: has("h-cosited"), v_cosited: has("v-cosited") },
        };
    }
    let site = info.chroma_site();
    ChromaSiting {
        h_cosited: site.contains(gst_video::VideoChromaSite::H_COSITED),
        v_cosited: site.contains(gst_video::VideoChromaSite::V_COSITED),
    }
}

impl ObjectImpl for SesrUpscale {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model-location")
                    .nick("Model location")
                    .blurb("TorchScript file of a collapsed SESR model (empty: the embedded SESR-M5 x2 that artifact-reduction picks)")
                    .default_value(Some(""))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder::<super::SesrArtifactReduction>("artifact-reduction")
                    .nick("Artifact reduction")
                    .blurb("Which embedded model runs: on, the one trained on decoded H.264/HEVC/VP9/MPEG-2/JPEG pictures (it also removes coding artifacts); off, the one trained on clean pictures. model-location, when set, wins")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb("Where the model runs: auto, cpu, cuda or cuda:N")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder::<super::SesrBackend>("backend")
                    .nick("Backend")
                    .blurb("What runs the model: auto, native (the project's CPU kernel) or libtorch")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder::<super::SesrPrecision>("precision")
                    .nick("Precision")
                    .blurb(
                        "Arithmetic of the native backend: fp32; bf16 (AVX512-BF16 CPUs); int8 (models carrying an \
                         int8 calibration); auto (int8 where calibrated and the CPU has VNNI, else bf16 where it \
                         measures clearly faster than fp32 on this CPU, else fp32). libtorch runs a model as exported",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("num-threads")
                    .nick("Threads")
                    .blurb("CPU threads: the native backend's own; libtorch's are process-wide (0: all cores / libtorch's default)")
                    .maximum(1024)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stripe-rows")
                    .nick("Stripe rows")
                    .blurb("libtorch backend: input rows run through the model at a time, with the receptive-field halo (0: automatic: ~128 kpx a stripe on the CPU, the whole frame with 8-bit copies on a GPU); bounds memory for 4K/8K")
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("active-backend")
                    .nick("Active backend")
                    .blurb("The backend running the model: native or libtorch (empty until started)")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("active-isa")
                    .nick("Active kernel variant")
                    .blurb("The native kernel's instruction set: avx512, avx2 or portable (detected at run time; SESR_NATIVE_ISA forces one); empty with libtorch or until started")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("active-precision")
                    .nick("Active precision")
                    .blurb("The native kernel's arithmetic: fp32, bf16 or int8 (what precision=auto picked; 10-bit video runs in float); empty with libtorch or until started")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("scale")
                    .nick("Scale")
                    .blurb("Upscaling factor of the loaded model (0 until loaded)")
                    .maximum(8)
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        match pspec.name() {
            // GObject checks the value's type against the pspec before calling this: the `Err`
            // arms are unreachable, and ignored rather than unwrapped.
            "model-location" => {
                settings.model_location = value.get::<Option<String>>().ok().flatten().unwrap_or_default();
                // A new model may have another scale: forget the old one.
                self.scale.store(0, Ordering::SeqCst);
            }
            "artifact-reduction" => settings.artifact_reduction = value.get().unwrap_or(settings.artifact_reduction),
            "device" => {
                settings.device = value.get::<Option<String>>().ok().flatten().unwrap_or_else(|| DEFAULT_DEVICE.into())
            }
            "backend" => settings.backend = value.get().unwrap_or(settings.backend),
            "precision" => settings.precision = value.get().unwrap_or(settings.precision),
            "num-threads" => settings.num_threads = value.get().unwrap_or(settings.num_threads),
            "stripe-rows" => settings.stripe_rows = value.get().unwrap_or(settings.stripe_rows),
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "model-location" => settings.model_location.to_value(),
            "artifact-reduction" => settings.artifact_reduction.to_value(),
            "device" => settings.device.to_value(),
            "backend" => settings.backend.to_value(),
            "precision" => settings.precision.to_value(),
            "num-threads" => settings.num_threads.to_value(),
            "active-backend" => lock(&self.active_backend).to_value(),
            "active-isa" => lock(&self.active_isa).to_value(),
            "active-precision" => lock(&self.active_precision).to_value(),
            "stripe-rows" => settings.stripe_rows.to_value(),
            "scale" => self.scale.load(Ordering::SeqCst).to_value(),
            // Unreachable (GObject asks only for the properties above): a default value.
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Late frames are dropped in live pipelines instead of piling up.
        self.obj().set_property("qos", true);
    }
}

impl GstObjectImpl for SesrUpscale {}

impl ElementImpl for SesrUpscale {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "SESR super-resolution upscaler",
                "Filter/Converter/Video/Scaler",
                "Upscales YUV video (NV12, NV21, I420, YV12, Y42B, Y444, GRAY8, P010_10LE, I420_10LE) x2 or x4: luma with a collapsed SESR network (native CPU kernel or libtorch), chroma bicubic. Example: gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! sesrupscale ! videoconvert ! autovideosink",
                "sesr developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().format_list(FORMATS).build();
            vec![
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps).unwrap(),
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps).unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for SesrUpscale {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let engine = match lock(&self.preloaded).take() {
            Some((loaded_with, engine)) if loaded_with == settings => engine,
            _ => self.load_engine()?,
        };
        self.publish(Some(&engine));
        *lock(&self.state) = Some(State { engine, geometry: None, fp32_for_10bit: false });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        self.publish(None);
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let scale = self.negotiation_scale();
        let way = if direction == gst::PadDirection::Sink { Way::Up } else { Way::Down };
        let mut other = map_caps(caps, scale, way);
        if let Some(filter) = filter {
            other = filter.intersect_with_mode(&other, gst::CapsIntersectMode::First);
        }
        gst::debug!(
            CAT,
            imp = self,
            "transformed {} caps {} into {}",
            if way == Way::Up { "sink" } else { "src" },
            caps,
            other
        );
        Some(other)
    }

    /// Keeps the input's metas the way GStreamer's scalers do ([`crate::meta::meta_action`]):
    /// size-dependent ones (regions of interest, crops…) rescaled ×s, the others copied or left
    /// to the base class. The output's own `GstVideoMeta` describes its layout; the input's is
    /// never carried over.
    fn transform_meta<'a>(
        &self,
        outbuf: &mut gst::BufferRef,
        meta: gst::MetaRef<'a, gst::Meta>,
        inbuf: &'a gst::BufferRef,
    ) -> bool {
        use crate::meta::{meta_action, MetaAction};
        use gst::meta::MetaAPI;
        if meta.api() == gst_video::VideoMeta::meta_api() {
            return false;
        }
        let tags: Vec<&str> = meta.tags().iter().map(|t| t.as_str()).collect();
        match meta_action(&tags) {
            MetaAction::Copy => true,
            MetaAction::Parent => self.parent_transform_meta(outbuf, meta, inbuf),
            MetaAction::Scale => {
                let infos = lock(&self.state).as_ref().and_then(|s| s.geometry.as_ref().map(|g| g.infos.clone()));
                if let Some((i, o)) = infos {
                    let t = gst_video::video_meta::VideoMetaTransformScale::new(&i, &o);
                    if let Err(e) = meta.transform(outbuf, &t) {
                        gst::debug!(CAT, imp = self, "dropped a {} meta: {e}", meta.api().name());
                    }
                }
                false
            }
        }
    }

    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        // Frames with padded strides (GstVideoMeta) are welcome.
        query.add_allocation_meta::<gst_video::VideoMeta>(None);
        self.parent_propose_allocation(decide_query, query)
    }
}

impl VideoFilterImpl for SesrUpscale {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if in_info.interlace_mode() != gst_video::VideoInterlaceMode::Progressive {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                (
                    "Interlaced video ({:?}) is not supported: deinterlace it first (e.g. with `deinterlace`)",
                    in_info.interlace_mode()
                )
            );
            return Err(gst::loggable_error!(CAT, "interlaced input refused"));
        }
        let mut state = lock(&self.state);
        let state = state.as_mut().ok_or_else(|| gst::loggable_error!(CAT, "set_info before start"))?;
        if sample_depth(in_info.format()).is_some() && state.engine.precision() == Some(sesr::weights::Precision::Int8)
        {
            // The integer kernel's input grid is 8-bit: `auto` runs 10-bit streams in float (bf16
            // where it measures clearly faster than fp32 here), an explicit `int8` is refused
            // with the format named.
            if lock(&self.settings).precision != super::SesrPrecision::Auto {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "{} is 10-bit video and precision=int8 takes 8-bit samples: use precision=fp32 or auto",
                        in_info.format().to_str()
                    )
                );
                return Err(gst::loggable_error!(CAT, "int8 with 10-bit input refused"));
            }
            let float = if sesr::engine::bf16_measures_faster() {
                super::SesrPrecision::Bf16
            } else {
                super::SesrPrecision::Fp32
            };
            gst::info!(
                CAT,
                imp = self,
                "precision=auto: {} is 10-bit, running {float:?} instead of int8 (bf16 against fp32 on this CPU: {:?})",
                in_info.format().to_str(),
                sesr::engine::bf16_probe()
            );
            state.engine = self.load_engine_as(Some(float)).map_err(|e| {
                self.post_error_message(e);
                gst::loggable_error!(CAT, "could not reload the model in float")
            })?;
            state.fp32_for_10bit = true;
            self.publish(Some(&state.engine));
        } else if sample_depth(in_info.format()).is_none() && state.fp32_for_10bit {
            // Back to 8-bit video: precision=auto may pick int8 again.
            state.engine = self.load_engine().map_err(|e| {
                self.post_error_message(e);
                gst::loggable_error!(CAT, "could not reload the model")
            })?;
            state.fp32_for_10bit = false;
            self.publish(Some(&state.engine));
            gst::info!(
                CAT,
                imp = self,
                "precision=auto: {} is 8-bit again, reloaded the model ({})",
                in_info.format().to_str(),
                *lock(&self.active_precision)
            );
        }
        let s = state.engine.scale() as u32;
        // Sizes are checked here, at caps time: an output the element cannot produce (an 8K
        // input at x4) is an element error with the sizes, before any frame.
        let (ow, oh) = match output_size(in_info.width(), in_info.height(), s) {
            Ok(size) => size,
            Err(why) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("Cannot upscale: {}", why));
                return Err(gst::loggable_error!(CAT, "output too large"));
            }
        };
        if in_info.format() != out_info.format() || out_info.width() != ow || out_info.height() != oh {
            return Err(gst::loggable_error!(CAT, "caps {} -> {} are not a x{} upscale", incaps, outcaps, s));
        }
        let siting = chroma_siting(incaps, in_info);
        let chroma = (in_info.format() != gst_video::VideoFormat::Gray8).then(|| {
            // Subsampling of the chroma planes (log2), from the format.
            let fi = in_info.format_info();
            let sub = |v: Option<&u32>| 1usize << v.copied().unwrap_or(0).min(2);
            let (sx, sy) = (sub(fi.w_sub().get(1)), sub(fi.h_sub().get(1)));
            let (w, h, ow, oh) = (in_info.width() as usize, in_info.height() as usize, ow as usize, oh as usize);
            let input = (w.div_ceil(sx), h.div_ceil(sy));
            let output = (ow.div_ceil(sx), oh.div_ceil(sy));
            let interleaved = matches!(
                in_info.format(),
                gst_video::VideoFormat::Nv12 | gst_video::VideoFormat::Nv21 | gst_video::VideoFormat::P01010le
            );
            Chroma {
                scaler: ChromaScaler::with_subsampling(
                    input.0,
                    input.1,
                    output.0,
                    output.1,
                    s as usize,
                    siting,
                    (sx, sy),
                    state.engine.pool(),
                ),
                input,
                output,
                step: if interleaved { 2 } else { 1 },
            }
        });
        state.geometry = Some(Geometry { infos: (in_info.clone(), out_info.clone()), chroma });
        gst::info!(
            CAT,
            imp = self,
            "upscaling {}x{} -> {}x{} {:?}, chroma siting {:?}",
            in_info.width(),
            in_info.height(),
            out_info.width(),
            out_info.height(),
            in_info.format(),
            siting
        );
        Ok(())
    }

    fn transform_frame(
        &self,
        inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
        outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let stripe_rows = lock(&self.settings).stripe_rows as usize;
        let mut state = lock(&self.state);
        let State { engine, geometry, .. } = state.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        engine.stripe_rows = stripe_rows;
        let geometry = geometry.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let (w, h) = (inframe.width() as usize, inframe.height() as usize);
        // Row strides of planes 0..3 (0 for a plane the format lacks; negative strides refused).
        let strides = |s: &[i32]| -> Result<[usize; 3], gst::FlowError> {
            let mut out = [0usize; 3];
            for (o, &v) in out.iter_mut().zip(s) {
                *o = usize::try_from(v).map_err(|_| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ("Negative row stride {} not supported", v)
                    );
                    gst::FlowError::Error
                })?;
            }
            Ok(out)
        };
        let in_strides = strides(inframe.plane_stride())?;
        let out_strides = strides(outframe.plane_stride())?;
        let map_err = |e: glib::BoolError| {
            gst::error!(CAT, imp = self, "cannot map plane: {}", e);
            gst::FlowError::Error
        };
        let y_in = inframe.plane_data(0).map_err(map_err)?;
        let y_out = outframe.plane_data_mut(0).map_err(map_err)?;
        // 16-bit formats: planes as words, strides in samples.
        let even = |strides: &[usize; 3]| strides.iter().all(|s| s % 2 == 0);
        let (bps, depth) = match sample_depth(geometry.infos.0.format()) {
            Some(d) if even(&in_strides) && even(&out_strides) => (2, Some(d)),
            Some(_) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("10-bit planes with odd row strides"));
                return Err(gst::FlowError::Error);
            }
            None => (1, None),
        };
        let unaligned = || {
            gst::element_imp_error!(self, gst::StreamError::Format, ("10-bit plane not aligned to 16-bit samples"));
            gst::FlowError::Error
        };
        let luma = match depth {
            None => engine.upscale_luma(y_in, in_strides[0], w, h, y_out, out_strides[0]),
            Some(d) => {
                let (a, b) = (as_u16(y_in).ok_or_else(unaligned)?, as_u16_mut(y_out).ok_or_else(unaligned)?);
                engine.upscale_luma16(a, in_strides[0] / 2, w, h, b, out_strides[0] / 2, d)
            }
        };
        if let Err(e) = luma {
            let model = lock(&self.settings).model_location.clone();
            let model = if model.is_empty() { "the embedded model".to_string() } else { model };
            gst::element_imp_error!(self, gst::LibraryError::Failed, ("SESR inference ({}) failed: {}", model, e));
            return Err(gst::FlowError::Error);
        }
        let Some(chroma) = geometry.chroma.as_mut() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        // Chroma planes against the negotiated sizes, before the scaler indexes them.
        let ((iw, ih), (ow, oh), step) = (chroma.input, chroma.output, chroma.step);
        let too_small = |what: &str, plane: usize| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("{} chroma plane {} too small for {}x{} samples (stride {})", what, plane, iw, ih, in_strides[plane])
            );
            gst::FlowError::Error
        };
        match step {
            // Interleaved chroma (NV12, NV21, P010): both orders (UV, VU) are scaled alike.
            2 => {
                let uv_in = inframe.plane_data(1).map_err(map_err)?;
                let uv_out = outframe.plane_data_mut(1).map_err(map_err)?;
                if !plane_fits(uv_in.len(), in_strides[1], iw * step * bps, ih) {
                    return Err(too_small("input", 1));
                }
                if !plane_fits(uv_out.len(), out_strides[1], ow * step * bps, oh) {
                    return Err(too_small("output", 1));
                }
                match depth {
                    None => chroma.scaler.scale_interleaved(uv_in, in_strides[1], uv_out, out_strides[1]),
                    Some(d) => {
                        let (a, b) = (as_u16(uv_in).ok_or_else(unaligned)?, as_u16_mut(uv_out).ok_or_else(unaligned)?);
                        chroma.scaler.scale_interleaved_samples(a, in_strides[1] / 2, b, out_strides[1] / 2, d);
                    }
                }
            }
            _ => {
                let u_in = inframe.plane_data(1).map_err(map_err)?;
                let v_in = inframe.plane_data(2).map_err(map_err)?;
                let (u_out, v_out) = two_planes_mut(outframe, 1, 2).map_err(map_err)?;
                for (plane, len) in [(1, u_in.len()), (2, v_in.len())] {
                    if !plane_fits(len, in_strides[plane], iw * bps, ih) {
                        return Err(too_small("input", plane));
                    }
                }
                for (plane, len) in [(1, u_out.len()), (2, v_out.len())] {
                    if !plane_fits(len, out_strides[plane], ow * bps, oh) {
                        return Err(too_small("output", plane));
                    }
                }
                match depth {
                    None => chroma.scaler.scale_planes(
                        (u_in, in_strides[1]),
                        (v_in, in_strides[2]),
                        (u_out, out_strides[1]),
                        (v_out, out_strides[2]),
                    ),
                    Some(d) => {
                        let (ui, vi) = (as_u16(u_in).ok_or_else(unaligned)?, as_u16(v_in).ok_or_else(unaligned)?);
                        let (uo, vo) =
                            (as_u16_mut(u_out).ok_or_else(unaligned)?, as_u16_mut(v_out).ok_or_else(unaligned)?);
                        chroma.scaler.scale_planes_samples(
                            (ui, in_strides[1] / 2),
                            (vi, in_strides[2] / 2),
                            (uo, out_strides[1] / 2),
                            (vo, out_strides[2] / 2),
                            d,
                        );
                    }
                }
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
