//! Real GStreamer tests of `sesrupscale`: harness tests on NV12/I420 frames of a real photo,
//! pipelines for state cycles, errors and an end-to-end file transcode.

use gst::prelude::*;
use gst_video::prelude::*;
use sesr::resize::{resize_plane, Contributions};
use sesr::Plane;
use std::path::{Path, PathBuf};
use std::sync::Once;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstsesr::plugin_register_static().unwrap();
    });
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sesr-el-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A planar 4:2:0 frame.
#[derive(Debug, Clone)]
struct Yuv {
    w: usize,
    h: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl Yuv {
    fn cw(&self) -> usize {
        self.w.div_ceil(2)
    }
    fn ch(&self) -> usize {
        self.h.div_ceil(2)
    }
}

/// A crop of the astronaut photo as Y, and its colour channels subsampled as U, V.
fn photo_frame(w: usize, h: usize, x0: u32, y0: u32) -> Yuv {
    let img = image::open(root().join("assets/images/astronaut.png")).unwrap().to_rgb8();
    let px = |x: usize, y: usize| img.get_pixel(x0 + x as u32, y0 + y as u32).0;
    let y = (0..h).flat_map(|yy| (0..w).map(move |xx| (xx, yy))).map(|(x, y)| px(x, y)[1]).collect();
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let u = (0..ch).flat_map(|yy| (0..cw).map(move |xx| (xx, yy))).map(|(x, y)| px(2 * x, 2 * y)[2]).collect();
    let v = (0..ch).flat_map(|yy| (0..cw).map(move |xx| (xx, yy))).map(|(x, y)| px(2 * x, 2 * y)[0]).collect();
    Yuv { w, h, y, u, v }
}

/// A buffer of the frame with `pad` extra bytes per row (and a GstVideoMeta describing it).
fn to_buffer(f: &Yuv, format: gst_video::VideoFormat, pad: usize) -> gst::Buffer {
    let (cw, ch) = (f.cw(), f.ch());
    let ys = f.w + pad;
    let nv12 = format == gst_video::VideoFormat::Nv12;
    let cs = if nv12 { 2 * cw + pad } else { cw + pad };
    let mut data = vec![0u8; ys * f.h + cs * ch * if nv12 { 1 } else { 2 }];
    for r in 0..f.h {
        data[r * ys..r * ys + f.w].copy_from_slice(&f.y[r * f.w..(r + 1) * f.w]);
    }
    let c0 = ys * f.h;
    for r in 0..ch {
        for x in 0..cw {
            if nv12 {
                data[c0 + r * cs + 2 * x] = f.u[r * cw + x];
                data[c0 + r * cs + 2 * x + 1] = f.v[r * cw + x];
            } else {
                data[c0 + r * cs + x] = f.u[r * cw + x];
                data[c0 + cs * ch + r * cs + x] = f.v[r * cw + x];
            }
        }
    }
    let mut buf = gst::Buffer::from_mut_slice(data);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::ZERO);
        let (offsets, strides): (Vec<usize>, Vec<i32>) = if nv12 {
            (vec![0, c0], vec![ys as i32, cs as i32])
        } else {
            (vec![0, c0, c0 + cs * ch], vec![ys as i32, cs as i32, cs as i32])
        };
        gst_video::VideoMeta::add_full(
            b,
            gst_video::VideoFrameFlags::empty(),
            format,
            f.w as u32,
            f.h as u32,
            &offsets,
            &strides,
        )
        .unwrap();
    }
    buf
}

/// Reads a buffer of the given caps back into planes (strides honoured).
fn from_buffer(buf: gst::Buffer, caps: &gst::Caps) -> Yuv {
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let frame = gst_video::VideoFrame::from_buffer_readable(buf, &info).unwrap();
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let st = frame.plane_stride();
    let plane = |p: u32, rw: usize, rh: usize| {
        let d = frame.plane_data(p).unwrap();
        (0..rh).flat_map(|r| d[r * st[p as usize] as usize..][..rw].to_vec()).collect::<Vec<u8>>()
    };
    if info.format() == gst_video::VideoFormat::Nv12 {
        let uv = plane(1, 2 * cw, ch);
        Yuv {
            w,
            h,
            y: plane(0, w, h),
            u: uv.iter().step_by(2).copied().collect(),
            v: uv.iter().skip(1).step_by(2).copied().collect(),
        }
    } else {
        Yuv { w, h, y: plane(0, w, h), u: plane(1, cw, ch), v: plane(2, cw, ch) }
    }
}

/// Independent reference of the luma: the element's default model (the embedded
/// compressed-input SESR-M5 x2) as its TorchScript file, run directly by tch.
fn reference_luma(f: &Yuv) -> Vec<u8> {
    model_luma("models/sesr_m5_x2_compressed.pt", f)
}

/// The luma of the TorchScript model `model` (relative to the repository) run by tch.
fn model_luma(model: &str, f: &Yuv) -> Vec<u8> {
    let m = tch::CModule::load(root().join(model)).unwrap();
    let x: Vec<f32> = f.y.iter().map(|&v| v as f32 / 255.0).collect();
    let t = tch::Tensor::from_slice(&x).view([1, 1, f.h as i64, f.w as i64]);
    let y = tch::no_grad(|| m.forward_ts(&[t])).unwrap();
    let y = Vec::<f32>::try_from(y.reshape([-1])).unwrap();
    y.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
}

/// Reference chroma: bicubic ×2 with the siting's source offset, written out per siting.
fn reference_chroma(c: &[u8], cw: usize, ch: usize, ocw: usize, och: usize, h_cosited: bool) -> Vec<u8> {
    // Centred chroma: MATLAB's ×2 mapping. Co-sited (MPEG-2) horizontally: output chroma j sits on
    // output luma 2j, i.e. input luma j − ¼, i.e. input chroma j/2 − ⅛.
    let hc = if h_cosited {
        Contributions::affine(cw, ocw, 0.5, -0.125, 1.0)
    } else {
        Contributions::matlab(cw, ocw, 2.0, true)
    };
    let vc = Contributions::matlab(ch, och, 2.0, true);
    let p = Plane::from_vec(cw, ch, c.iter().map(|&v| v as f32).collect());
    resize_plane(&p, &hc, &vc, false).data.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    sesr::metrics::byte_diff(a, b).0
}

fn caps_str(format: &str, w: usize, h: usize, site: &str) -> String {
    format!("video/x-raw,format={format},width={w},height={h},framerate=30/1,chroma-site={site}")
}

/// Both backends run on every machine (the native kernel has a variant for every CPU).
fn backends() -> Vec<&'static str> {
    vec!["native", "libtorch"]
}

/// A harness around `sesrupscale` with two worker threads and `backend`, its source caps set.
fn two_thread_harness(backend: &str, caps: &str) -> gst_check::Harness {
    let el = gst::ElementFactory::make("sesrupscale")
        .property("num-threads", 2u32)
        .property_from_str("backend", backend)
        .build()
        .unwrap();
    let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    hs.set_src_caps_str(caps);
    hs
}

#[allow(clippy::too_many_arguments)]
fn run_harness_case(
    format: gst_video::VideoFormat,
    w: usize,
    h: usize,
    pad: usize,
    site: &str,
    stripe_rows: u32,
    backend: &str,
) {
    // Model-affecting properties are set before the harness starts the element.
    let el = gst::ElementFactory::make("sesrupscale")
        .property("stripe-rows", stripe_rows)
        .property_from_str("backend", backend)
        .build()
        .unwrap();
    let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    hs.set_src_caps_str(&caps_str(format.to_str(), w, h, site));
    let f = photo_frame(w, h, 180, 90);
    let out = hs.push_and_pull(to_buffer(&f, format, pad)).unwrap();
    let caps = hs.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (2 * w as i32, 2 * h as i32));
    assert_eq!(s.get::<&str>("format").unwrap(), format.to_str());
    assert_eq!(s.get::<&str>("chroma-site").unwrap(), site);
    assert_eq!(hs.element().unwrap().property::<String>("active-backend"), backend);
    let isa = hs.element().unwrap().property::<String>("active-isa");
    let want_isa = if backend == "native" { sesr::native::Isa::selected().unwrap().name() } else { "" };
    assert_eq!(isa, want_isa);
    let o = from_buffer(out, &caps);
    let ctx = format!("{format:?} {w}x{h} pad {pad} {site} stripes {stripe_rows} {backend}");
    assert!(max_diff(&o.y, &reference_luma(&f)) <= 1, "{ctx}: luma differs from the model");
    let (ocw, och) = (o.cw(), o.ch());
    let cos = site == "mpeg2";
    assert!(max_diff(&o.u, &reference_chroma(&f.u, f.cw(), f.ch(), ocw, och, cos)) <= 1, "{ctx}: U");
    assert!(max_diff(&o.v, &reference_chroma(&f.v, f.cw(), f.ch(), ocw, och, cos)) <= 1, "{ctx}: V");
    // The model does something a bicubic luma would not: not a trivial copy.
    assert!(o.y.iter().any(|&v| v != o.y[0]));
}

#[test]
fn nv12_and_i420_match_the_references() {
    init();
    for format in [gst_video::VideoFormat::Nv12, gst_video::VideoFormat::I420] {
        for (w, h, pad) in [(64, 48, 0), (33, 17, 0), (40, 30, 24), (1, 1, 0), (7, 3, 5)] {
            for site in ["jpeg", "mpeg2"] {
                for backend in backends() {
                    run_harness_case(format, w, h, pad, site, 0, backend);
                }
            }
        }
    }
}

#[test]
fn striped_frames_match_the_references() {
    init();
    for rows in [1, 4, 11] {
        run_harness_case(gst_video::VideoFormat::Nv12, 40, 30, 8, "mpeg2", rows, "libtorch");
    }
}

#[test]
fn renegotiation_flush_and_eos() {
    init();
    let mut hs = gst_check::Harness::new("sesrupscale");
    hs.set_src_caps_str(&caps_str("I420", 32, 24, "jpeg"));
    let out = hs.push_and_pull(to_buffer(&photo_frame(32, 24, 0, 0), gst_video::VideoFormat::I420, 0)).unwrap();
    assert_eq!(out.size(), 64 * 48 * 3 / 2);
    // New resolution mid-stream.
    hs.set_src_caps_str(&caps_str("I420", 20, 10, "jpeg"));
    let out = hs.push_and_pull(to_buffer(&photo_frame(20, 10, 0, 0), gst_video::VideoFormat::I420, 0)).unwrap();
    assert_eq!(out.size(), 40 * 20 * 3 / 2);
    let caps = hs.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(caps.structure(0).unwrap().get::<i32>("width").unwrap(), 40);
    // Flush (as a seek does), then data flows again.
    assert!(hs.push_event(gst::event::FlushStart::new()));
    assert!(hs.push_event(gst::event::FlushStop::new(true)));
    hs.push_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
    let out = hs.push_and_pull(to_buffer(&photo_frame(20, 10, 5, 5), gst_video::VideoFormat::I420, 0)).unwrap();
    assert_eq!(out.size(), 40 * 20 * 3 / 2);
    assert!(hs.push_event(gst::event::Eos::new()));
    let mut saw_eos = false;
    while let Some(ev) = hs.try_pull_event() {
        saw_eos |= ev.type_() == gst::EventType::Eos;
    }
    assert!(saw_eos);
}

/// Runs a pipeline to EOS or error; returns the error text, if any.
fn run_pipeline(desc: &str) -> Result<(), String> {
    let p = gst::parse::launch(desc).map_err(|e| e.to_string())?;
    let r = run_to_end(&p);
    p.set_state(gst::State::Null).unwrap();
    r
}

fn run_to_end(p: &gst::Element) -> Result<(), String> {
    let bus = p.bus().unwrap();
    if let Err(e) = p.set_state(gst::State::Playing) {
        // The error message, when posted, says more than the failed state change.
        if let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error]) {
            if let gst::MessageView::Error(err) = msg.view() {
                return Err(format!("{} ({:?})", err.error(), err.debug()));
            }
        }
        return Err(e.to_string());
    }
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Eos(..) => return Ok(()),
            gst::MessageView::Error(err) => return Err(format!("{} ({:?})", err.error(), err.debug())),
            _ => {}
        }
    }
    Err("timeout".into())
}

#[test]
fn state_cycles_and_two_instances() {
    init();
    let p = gst::parse::launch(
        "videotestsrc num-buffers=3 ! video/x-raw,format=NV12,width=24,height=16 ! sesrupscale name=s ! fakesink",
    )
    .unwrap();
    for _ in 0..3 {
        run_to_end(&p).unwrap();
        p.set_state(gst::State::Null).unwrap();
    }
    let s = p.downcast_ref::<gst::Bin>().unwrap().by_name("s").unwrap();
    assert_eq!(s.property::<u32>("scale"), 2);
    assert!(s.property::<bool>("qos"), "QoS is on by default");
    // Striped processing through the element gives the same frames (see also the engine test).
    s.set_property("stripe-rows", 3u32);
    run_to_end(&p).unwrap();
    p.set_state(gst::State::Null).unwrap();
    // Two instances chained: x4 overall, checked by a caps filter that would fail otherwise.
    run_pipeline(
        "videotestsrc num-buffers=2 ! video/x-raw,format=I420,width=20,height=12 ! sesrupscale ! sesrupscale \
         ! video/x-raw,width=80,height=48 ! fakesink",
    )
    .unwrap();
}

/// Writes a TorchScript module made by tracing `f` on `example`.
fn trace_to(path: &Path, example: tch::Tensor, f: impl Fn(&tch::Tensor) -> tch::Tensor) {
    let mut closure = |inputs: &[tch::Tensor]| vec![f(&inputs[0])];
    let m = tch::no_grad(|| tch::CModule::create_by_tracing("Bad", "forward", &[example], &mut closure)).unwrap();
    m.save(path).unwrap();
}

#[test]
fn errors_are_clear() {
    init();
    let d = tmp("errors");
    let base = "videotestsrc num-buffers=1 ! video/x-raw,format=NV12,width=16,height=16 ! sesrupscale";
    let e = run_pipeline(&format!("{base} model-location=/nonexistent/model.pt ! fakesink")).unwrap_err();
    assert!(e.contains("/nonexistent/model.pt") && e.contains("no such file"), "{e}");

    let corrupt = d.join("corrupt.pt");
    std::fs::write(&corrupt, b"this is not a model").unwrap();
    let e = run_pipeline(&format!("{base} model-location={} ! fakesink", corrupt.display())).unwrap_err();
    assert!(e.contains("corrupt.pt") && e.contains("not a loadable"), "{e}");

    // Wrong output shape: an identity model.
    let ident = d.join("identity.pt");
    trace_to(&ident, tch::Tensor::rand([1, 1, 8, 8], (tch::Kind::Float, tch::Device::Cpu)), |x| x * 1.0);
    let e = run_pipeline(&format!("{base} model-location={} ! fakesink", ident.display())).unwrap_err();
    assert!(e.contains("identity.pt") && e.contains("incompatible"), "{e}");

    // Wrong channel count: a model for RGB input.
    let rgb = d.join("rgb.pt");
    let w = tch::Tensor::rand([4, 3, 3, 3], (tch::Kind::Float, tch::Device::Cpu));
    trace_to(&rgb, tch::Tensor::rand([1, 3, 8, 8], (tch::Kind::Float, tch::Device::Cpu)), move |x| {
        x.conv2d(&w, None::<tch::Tensor>, [1, 1], [1, 1], [1, 1], 1).pixel_shuffle(2)
    });
    let e = run_pipeline(&format!("{base} model-location={} ! fakesink", rgb.display())).unwrap_err();
    assert!(e.contains("rgb.pt") && e.contains("does not accept"), "{e}");

    if !tch::Cuda::is_available() {
        let e = run_pipeline(&format!("{base} device=cuda ! fakesink")).unwrap_err();
        assert!(e.contains("CUDA is not available"), "{e}");
    }
    let e = run_pipeline(&format!("{base} device=tpu ! fakesink")).unwrap_err();
    assert!(e.contains("unknown device"), "{e}");

    let e = run_pipeline(
        "videotestsrc num-buffers=1 ! video/x-raw,format=I420,width=16,height=16,interlace-mode=interleaved \
         ! sesrupscale ! fakesink",
    )
    .unwrap_err();
    assert!(e.to_lowercase().contains("interlace"), "{e}");

    // Caps it cannot do: an odd output size for a x2 element fails negotiation.
    let e = run_pipeline(
        "videotestsrc num-buffers=1 ! video/x-raw,format=NV12,width=16,height=16 ! sesrupscale \
         ! video/x-raw,width=33 ! fakesink",
    )
    .unwrap_err();
    // Refused when linking (x2 has no 33-pixel output) or, later, by negotiation.
    assert!(e.contains("can't handle caps") || e.contains("negotiat"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn scale_four_model() {
    init();
    let d = tmp("x4");
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let m = sesr::ExpandedSesr::new(&vs.root(), sesr::Preset::M3.config(4));
    let pt = d.join("m3x4.pt");
    m.collapse_detached().export_torchscript(&pt).unwrap();
    let p = gst::parse::launch(&format!(
        "videotestsrc num-buffers=2 ! video/x-raw,format=NV12,width=10,height=6 ! sesrupscale name=s model-location={} \
         ! video/x-raw,width=40,height=24 ! fakesink",
        pt.display()
    ))
    .unwrap();
    run_to_end(&p).unwrap();
    let s = p.downcast_ref::<gst::Bin>().unwrap().by_name("s").unwrap();
    assert_eq!(s.property::<u32>("scale"), 4);
    p.set_state(gst::State::Null).unwrap();
    std::fs::remove_dir_all(&d).unwrap();

    // The shipped SESR-M5 ×4 as `pipelines/x4-540p-to-2160p.sh` runs it: 960×540 → 3840×2160.
    let p = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=I420,width=960,height=540 \
         ! sesrupscale name=s model-location={} ! video/x-raw,width=3840,height=2160 ! fakesink",
        root().join("models/sesr_m5_x4.pt").display()
    ))
    .unwrap();
    run_to_end(&p).unwrap();
    let s = p.downcast_ref::<gst::Bin>().unwrap().by_name("s").unwrap();
    assert_eq!((s.property::<u32>("scale"), s.property::<String>("active-backend").as_str()), (4, "native"));
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn end_to_end_mp4() {
    init();
    let d = tmp("e2e");
    let (input, output) = (d.join("in.mp4"), d.join("out.mp4"));
    let photo = root().join("assets/images/astronaut.png");
    run_pipeline(&format!(
        "filesrc location={} ! pngdec ! imagefreeze num-buffers=6 ! videoconvert ! videoscale \
         ! video/x-raw,width=96,height=64,framerate=6/1 ! x264enc ! mp4mux ! filesink location={}",
        photo.display(),
        input.display()
    ))
    .unwrap();
    run_pipeline(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! sesrupscale ! videoconvert ! x264enc ! mp4mux \
         ! filesink location={}",
        input.display(),
        output.display()
    ))
    .unwrap();
    let disc = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(30)).unwrap();
    let uri = glib::filename_to_uri(&output, None).unwrap();
    let info = disc.discover_uri(&uri).unwrap();
    let v = info.video_streams();
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].width(), v[0].height()), (192, 128));
    assert!(info.duration().unwrap() >= gst::ClockTime::from_mseconds(900));
    std::fs::remove_dir_all(&d).unwrap();
}

/// The element's own library links no libtorch, and a pipeline on the native backend never
/// loads it: the element logs whether libtorch came into its process (checked in a child
/// `gst-launch-1.0`, since this test binary links libtorch itself).
#[test]
fn native_pipelines_run_without_libtorch() {
    let profile = root().join("target").join(if cfg!(debug_assertions) { "debug" } else { "release" });
    let lib = profile.join("libgstsesr.so");
    if !lib.is_file() || std::process::Command::new("gst-launch-1.0").arg("--version").output().is_err() {
        eprintln!("SKIPPED: {} or gst-launch-1.0 missing (build the plugin first)", lib.display());
        return;
    }
    let needed = std::process::Command::new("readelf").arg("-d").arg(&lib).output().unwrap();
    let needed = String::from_utf8_lossy(&needed.stdout);
    assert!(needed.contains("libgstvideo"), "readelf: {needed}");
    assert!(!needed.contains("libtorch") && !needed.contains("libc10"), "the element links libtorch: {needed}");
    let launch = |backend: &str| {
        let out = std::process::Command::new("gst-launch-1.0")
            .env("GST_PLUGIN_PATH", &profile)
            .env("GST_DEBUG", "sesrupscale:4")
            .env("GST_DEBUG_NO_COLOR", "1")
            .args(["-q", "videotestsrc", "num-buffers=2", "!", "video/x-raw,format=NV12,width=64,height=48"])
            .args(["!", "sesrupscale", &format!("backend={backend}"), "!", "fakesink"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{backend}: {log}");
        log
    };
    let log = launch("native");
    assert!(log.contains("no libtorch in this process"), "{log}");
    // The libtorch backend opens libsesrtorch.so when asked for (if it was built).
    if profile.join("libsesrtorch.so").is_file() {
        let log = launch("libtorch");
        assert!(log.contains("libtorch loaded: libtorch backend requested"), "{log}");
    } else {
        eprintln!("SKIPPED the libtorch half: libsesrtorch.so not built");
    }
}

/// The other 8-bit YUV layouts: NV21 (VU interleaved), YV12 (V before U), Y42B (4:2:2), Y444
/// and GRAY8, each through the element: luma equals the model's, every chroma component equals
/// the bicubic ×2 of the input component (centred siting: MATLAB's ×2 mapping in every
/// direction, subsampled or not).
#[test]
fn more_yuv_layouts() {
    use gst_video::VideoFormat as F;
    init();
    let (w, h) = (64usize, 48usize);
    let photo = photo_frame(w, h, 150, 120);
    let img = image::open(root().join("assets/images/astronaut.png")).unwrap().to_rgb8();
    let chroma_value = |x: usize, y: usize, c: usize| img.get_pixel(100 + x as u32, 60 + y as u32).0[c * 2];
    let cases = backends().into_iter().flat_map(|b| [F::Nv21, F::Yv12, F::Y42b, F::Y444, F::Gray8].map(|f| (b, f)));
    for (backend, format) in cases {
        let mut hs = two_thread_harness(backend, &caps_str(format.to_str(), w, h, "jpeg"));
        let info = gst_video::VideoInfo::builder(format, w as u32, h as u32).build().unwrap();
        let mut buf = gst::Buffer::with_size(info.size()).unwrap();
        // Input planes: luma from the photo, each chroma component from another of its channels.
        let mut comps: Vec<(u32, usize, usize, usize, usize, Vec<u8>)> = Vec::new(); // (plane, step, offset, cw, ch, data)
        {
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::ZERO);
            let mut fr = gst_video::VideoFrameRef::from_buffer_ref_writable(b, &info).unwrap();
            let strides: Vec<usize> = fr.plane_stride().iter().map(|&s| s as usize).collect();
            let fi = info.format_info();
            for p in 0..fr.n_planes() {
                let d = fr.plane_data_mut(p).unwrap();
                if p == 0 {
                    for r in 0..h {
                        d[r * strides[0]..r * strides[0] + w].copy_from_slice(&photo.y[r * w..(r + 1) * w]);
                    }
                    continue;
                }
                let (sx, sy) = (1usize << fi.w_sub()[p as usize], 1usize << fi.h_sub()[p as usize]);
                let (cw, ch) = (w.div_ceil(sx), h.div_ceil(sy));
                let step = if matches!(format, F::Nv21) { 2 } else { 1 };
                for c in 0..step {
                    let data: Vec<u8> = (0..ch)
                        .flat_map(|y| (0..cw).map(move |x| (x, y)))
                        .map(|(x, y)| chroma_value(x, y, c + p as usize - 1))
                        .collect();
                    for y in 0..ch {
                        for x in 0..cw {
                            d[y * strides[p as usize] + x * step + c] = data[y * cw + x];
                        }
                    }
                    comps.push((p, step, c, cw, ch, data));
                }
            }
        }
        let out = hs.push_and_pull(buf).unwrap();
        let caps = hs.sinkpad().unwrap().current_caps().unwrap();
        let s = caps.structure(0).unwrap();
        assert_eq!(s.get::<&str>("format").unwrap(), format.to_str());
        assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (2 * w as i32, 2 * h as i32));
        let oinfo = gst_video::VideoInfo::from_caps(&caps).unwrap();
        let fr = gst_video::VideoFrame::from_buffer_readable(out, &oinfo).unwrap();
        let st: Vec<usize> = fr.plane_stride().iter().map(|&s| s as usize).collect();
        let y0 = fr.plane_data(0).unwrap();
        let y: Vec<u8> = (0..2 * h).flat_map(|r| y0[r * st[0]..r * st[0] + 2 * w].to_vec()).collect();
        assert!(max_diff(&y, &reference_luma(&photo)) <= 1, "{format:?} {backend}: luma differs from the model");
        assert_eq!(hs.element().unwrap().property::<String>("active-backend"), backend);
        assert_eq!(comps.len(), if format == F::Gray8 { 0 } else { 2 }, "{format:?}");
        for (p, step, c, cw, ch, data) in comps {
            let (ocw, och) = (2 * cw, 2 * ch);
            let d = fr.plane_data(p).unwrap();
            let got: Vec<u8> = (0..och)
                .flat_map(|y| (0..ocw).map(move |x| (x, y)))
                .map(|(x, y)| d[y * st[p as usize] + x * step + c])
                .collect();
            let want = reference_chroma(&data, cw, ch, ocw, och, false);
            assert!(max_diff(&got, &want) <= 1, "{format:?} {backend} plane {p} component {c}: chroma differs");
        }
    }
}

/// Runs `f` on a copy of the shipped SESR-M5 x2 triple (`.pt`, `.json`, `.safetensors`) in
/// `dir` named `name`, damaged by `damage`; returns the `.pt`.
fn damaged_model(dir: &Path, name: &str, damage: impl FnOnce(&Path, &Path, &Path)) -> PathBuf {
    let pt = dir.join(format!("{name}.pt"));
    let (json, st) = (pt.with_extension("json"), pt.with_extension("safetensors"));
    for (from, to) in [("pt", &pt), ("json", &json), ("safetensors", &st)] {
        std::fs::copy(root().join(format!("models/sesr_m5_x2.{from}")), to).unwrap();
    }
    damage(&pt, &json, &st);
    pt
}

/// Edits the sidecar's JSON.
fn edit_sidecar(json: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(json, v.to_string()).unwrap();
}

/// Writes `value` over the first float of the safetensors data section (a weight of whichever
/// tensor the file stores first).
fn poison_weights(st: &Path, value: f32) {
    let mut b = std::fs::read(st).unwrap();
    let header = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    b[8 + header..8 + header + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(st, b).unwrap();
}

/// Hostile model files, each through a real pipeline: every one is an element error that names
/// the file at fault (the `.pt`, its `.json` sidecar or its `.safetensors` weights) and says
/// why, never a crash. Weights problems are errors on the native backend; `auto` falls back to
/// the TorchScript file (which is intact) or errors, and never crashes either.
#[test]
fn hostile_model_files() {
    init();
    let d = tmp("hostile");
    let pipeline = |pt: &Path, backend: &str| {
        run_pipeline(&format!(
            "videotestsrc num-buffers=1 ! video/x-raw,format=I420,width=16,height=12 \
             ! sesrupscale backend={backend} model-location={} ! fakesink",
            pt.display()
        ))
    };
    let real = std::fs::read(root().join("models/sesr_m5_x2.pt")).unwrap();
    let mut tried = 0usize;

    // TorchScript files: truncated anywhere, garbage, a zip of garbage, empty. No weights beside
    // them: the libtorch backend loads the file itself.
    let mut junk = vec![0u8; 4096];
    let mut x = 0x2545F491u32;
    for b in junk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend(&junk);
    let mut pts: Vec<(String, Vec<u8>)> = [0, 1, 64, real.len() / 3, real.len() / 2, real.len() - 100, real.len() - 1]
        .into_iter()
        .map(|n| (format!("truncated{n}"), real[..n].to_vec()))
        .collect();
    pts.push(("garbage".into(), junk.clone()));
    pts.push(("zipjunk".into(), zip));
    for (name, bytes) in pts {
        let pt = d.join(format!("{name}.pt"));
        std::fs::write(&pt, bytes).unwrap();
        for backend in ["auto", "libtorch"] {
            let e = pipeline(&pt, backend).unwrap_err();
            assert!(e.contains(&format!("{name}.pt")) && e.contains("not a loadable"), "{name} {backend}: {e}");
            tried += 1;
        }
    }

    // TorchScript modules that run but break the contract.
    let two = d.join("two_channels.pt");
    let w2 = tch::Tensor::rand([4, 2, 3, 3], (tch::Kind::Float, tch::Device::Cpu));
    trace_to(&two, tch::Tensor::rand([1, 2, 8, 8], (tch::Kind::Float, tch::Device::Cpu)), move |x| {
        x.conv2d(&w2, None::<tch::Tensor>, [1, 1], [1, 1], [1, 1], 1).pixel_shuffle(2)
    });
    let x3 = d.join("scale3.pt");
    let w3 = tch::Tensor::rand([9, 1, 3, 3], (tch::Kind::Float, tch::Device::Cpu));
    trace_to(&x3, tch::Tensor::rand([1, 1, 8, 8], (tch::Kind::Float, tch::Device::Cpu)), move |x| {
        x.conv2d(&w3, None::<tch::Tensor>, [1, 1], [1, 1], [1, 1], 1).pixel_shuffle(3)
    });
    let nan = d.join("nan.pt");
    let wn = tch::Tensor::full([4, 1, 3, 3], f64::NAN, (tch::Kind::Float, tch::Device::Cpu));
    trace_to(&nan, tch::Tensor::rand([1, 1, 8, 8], (tch::Kind::Float, tch::Device::Cpu)), move |x| {
        x.conv2d(&wn, None::<tch::Tensor>, [1, 1], [1, 1], [1, 1], 1).pixel_shuffle(2)
    });
    let inf = d.join("inf.pt");
    trace_to(&inf, tch::Tensor::rand([1, 1, 8, 8], (tch::Kind::Float, tch::Device::Cpu)), |x| {
        (x.repeat([1, 4, 1, 1]) * f64::INFINITY).pixel_shuffle(2)
    });
    for (pt, why) in [
        (&two, "does not accept"),
        (&x3, "scale 3 is not supported"),
        (&nan, "NaN or infinite"),
        (&inf, "NaN or infinite"),
    ] {
        for backend in ["auto", "libtorch"] {
            let e = pipeline(pt, backend).unwrap_err();
            let name = pt.file_name().unwrap().to_str().unwrap();
            assert!(e.contains(name) && e.contains(why), "{name} {backend}: {e}");
            tried += 1;
        }
    }

    // Sidecars and weights beside an intact TorchScript file.
    type Damage = Box<dyn Fn(&Path, &Path, &Path)>;
    let cases: Vec<(&str, &str, &str, Damage)> = vec![
        (
            "st_truncated",
            "safetensors",
            "weights",
            Box::new(|_, _, st| {
                let b = std::fs::read(st).unwrap();
                std::fs::write(st, &b[..b.len() - 7]).unwrap();
            }),
        ),
        ("st_empty", "safetensors", "weights", Box::new(|_, _, st| std::fs::write(st, b"").unwrap())),
        ("st_garbage", "safetensors", "weights", Box::new(|_, _, st| std::fs::write(st, [0xffu8; 64]).unwrap())),
        (
            "st_wrong_shapes",
            "safetensors",
            "missing tensor",
            Box::new(|_, _, st| {
                // SESR-M3's weights under SESR-M5's sidecar: three blocks where five are declared.
                std::fs::copy(root().join("models/sesr_m3_x2.safetensors"), st).unwrap();
            }),
        ),
        ("st_nan", "safetensors", "non-finite", Box::new(|_, _, st| poison_weights(st, f32::NAN))),
        ("st_inf", "safetensors", "non-finite", Box::new(|_, _, st| poison_weights(st, f32::NEG_INFINITY))),
        ("json_garbage", "json", "sidecar", Box::new(|_, j, _| std::fs::write(j, b"{\"config\": [").unwrap())),
        ("json_empty", "json", "sidecar", Box::new(|_, j, _| std::fs::write(j, b"").unwrap())),
        ("json_not_utf8", "json", "UTF-8", Box::new(|_, j, _| std::fs::write(j, [0xc3u8, 0x28]).unwrap())),
        (
            "json_absurd",
            "json",
            "absurd",
            Box::new(|_, j, _| edit_sidecar(j, |v| v["config"]["m"] = serde_json::json!(1_000_000_000_000u64))),
        ),
        (
            "json_huge_f",
            "json",
            "absurd",
            Box::new(|_, j, _| edit_sidecar(j, |v| v["config"]["f"] = serde_json::json!(u64::MAX))),
        ),
        (
            "json_scale3",
            "json",
            "scale must be 2 or 4",
            Box::new(|_, j, _| {
                edit_sidecar(j, |v| {
                    v["config"]["scale"] = serde_json::json!(3);
                    v["scale"] = serde_json::json!(3);
                })
            }),
        ),
        (
            "json_scale_disagrees",
            "json",
            "disagrees",
            Box::new(|_, j, _| edit_sidecar(j, |v| v["scale"] = serde_json::json!(4))),
        ),
        // The sidecar's config says x4 and seven blocks; the tensors are x2 with five.
        (
            "json_vs_tensors",
            "safetensors",
            "tensor",
            Box::new(|_, j, _| {
                edit_sidecar(j, |v| {
                    v["config"]["scale"] = serde_json::json!(4);
                    v["scale"] = serde_json::json!(4);
                })
            }),
        ),
        (
            "json_vs_blocks",
            "safetensors",
            "unexpected tensor",
            Box::new(|_, j, _| edit_sidecar(j, |v| v["config"]["m"] = serde_json::json!(4))),
        ),
        ("json_no_weights", "safetensors", "no weights", Box::new(|_, _, st| std::fs::remove_file(st).unwrap())),
    ];
    for (name, file, why, damage) in cases {
        let pt = damaged_model(&d, name, damage);
        let e = pipeline(&pt, "native").unwrap_err();
        assert!(e.contains(&format!("{name}.{file}")) && e.contains(why), "{name}: {e}");
        tried += 1;
        // auto: the weights are not used; the intact TorchScript file runs in libtorch.
        pipeline(&pt, "auto").unwrap_or_else(|e| panic!("{name} auto: {e}"));
        tried += 1;
    }
    // The count for BENCHMARKS.md.
    eprintln!("hostile model files tried through the element: {tried}, none crashed");
    assert_eq!(tried, 58, "cases tried");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Output sizes the element cannot produce are refused at caps time with the sizes: an 8K input
/// at x4 (a 30720x17280 output), or a 16400-pixel-wide output at x2.
#[test]
fn oversized_output_is_refused_at_caps_time() {
    init();
    let d = tmp("oversize");
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let m = sesr::ExpandedSesr::new(&vs.root(), sesr::Preset::M3.config(4));
    let pt = d.join("m3x4.pt");
    m.collapse_detached().export_torchscript(&pt).unwrap();
    let e = run_pipeline(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=NV12,width=7680,height=4320 \
         ! sesrupscale model-location={} ! fakesink",
        pt.display()
    ))
    .unwrap_err();
    assert!(e.contains("7680x4320 at x4") && e.contains("30720x17280") && e.contains("16384"), "{e}");
    let e = run_pipeline(
        "videotestsrc num-buffers=1 ! video/x-raw,format=GRAY8,width=8200,height=8 ! sesrupscale ! fakesink",
    )
    .unwrap_err();
    assert!(e.contains("8200x8 at x2") && e.contains("16400x16"), "{e}");
    // The largest output that fits runs.
    run_pipeline("videotestsrc num-buffers=1 ! video/x-raw,format=GRAY8,width=8192,height=2 ! sesrupscale ! fakesink")
        .unwrap();
    std::fs::remove_dir_all(&d).unwrap();
}

/// A libtorch error while a frame runs (here an allocation libtorch cannot make, as CUDA out of
/// memory would be) is an element error naming the model, not a crash: the model allocates
/// width³ floats, a few MiB at the sizes probed when it loads, terabytes for an 8192-pixel row.
#[test]
fn libtorch_errors_at_run_time_are_element_errors() {
    init();
    let d = tmp("oom");
    let pt = d.join("oom.pt");
    trace_to(&pt, tch::Tensor::rand([1, 1, 8, 8], (tch::Kind::Float, tch::Device::Cpu)), |x| {
        let f = x.sum_dim_intlist(2, false, tch::Kind::Float).flatten(0, -1);
        let cube = (f.unsqueeze(1) * f.unsqueeze(0)).unsqueeze(2) * &f;
        x.repeat([1, 4, 1, 1]).pixel_shuffle(2) + cube.sum(tch::Kind::Float) * 0.0
    });
    let pipeline = |w: usize| {
        run_pipeline(&format!(
            "videotestsrc num-buffers=1 ! video/x-raw,format=GRAY8,width={w},height=2 \
             ! sesrupscale model-location={} ! fakesink",
            pt.display()
        ))
    };
    pipeline(64).unwrap();
    let e = pipeline(8192).unwrap_err();
    eprintln!("run-time libtorch error: {e}");
    assert!(e.contains("oom.pt") && e.contains("inference") && e.contains("memory"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// A frame the element cannot read safely (a bottom-up luma plane: negative row stride) is an
/// element error, not a panic or an out-of-bounds read.
#[test]
fn negative_strides_are_an_element_error() {
    init();
    let el = gst::ElementFactory::make("sesrupscale").build().unwrap();
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    hs.set_src_caps_str(&caps_str("I420", 16, 8, "jpeg"));
    let mut buf = gst::Buffer::with_size(16 * 8 * 3 / 2).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::ZERO);
        // Luma rows bottom-up: the first row is the last in memory.
        gst_video::VideoMeta::add_full(
            b,
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::I420,
            16,
            8,
            &[16 * 7, 128, 160],
            &[-16, 8, 8],
        )
        .unwrap();
    }
    assert_eq!(hs.push(buf), Err(gst::FlowError::Error));
    let msg = bus.pop_filtered(&[gst::MessageType::Error]).expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else { unreachable!() };
    assert!(err.error().to_string().contains("Negative row stride -16"), "{:?}", err.error());
    el.set_bus(None);
}

/// `precision=int8` runs the shipped model's calibrated integer kernel (luma within a few levels
/// of float32's, not equal); `auto` picks int8 only on VNNI CPUs; the libtorch backend refuses it.
#[test]
fn int8_precision() {
    init();
    let (w, h) = (64, 48);
    let f = photo_frame(w, h, 180, 90);
    let luma = |precision: &str, backend: &str| -> Result<Vec<u8>, String> {
        let el = gst::ElementFactory::make("sesrupscale")
            .property_from_str("precision", precision)
            .property_from_str("backend", backend)
            .build()
            .unwrap();
        let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        hs.set_src_caps_str(&caps_str("NV12", w, h, "jpeg"));
        let out = hs.push_and_pull(to_buffer(&f, gst_video::VideoFormat::Nv12, 0)).map_err(|e| format!("{e:?}"))?;
        let caps = hs.sinkpad().unwrap().current_caps().unwrap();
        Ok(from_buffer(out, &caps).y)
    };
    let fp32 = luma("fp32", "native").unwrap();
    let int8 = luma("int8", "native").unwrap();
    // Quantisation moves a few samples by more than the rest: bound the mean and the worst
    // (the embedded compressed-input model measures mean 0.25, worst 15 levels here; its PSNR-Y
    // cost is 0.00-0.03 dB on coded input and 0.04-0.13 dB on clean, `docs/training.md`).
    let worst = max_diff(&fp32, &int8);
    let mean = fp32.iter().zip(&int8).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>() / fp32.len() as f64;
    eprintln!("int8 vs fp32: mean {mean:.3}, worst {worst} levels");
    assert!(fp32 != int8 && mean <= 0.5 && worst <= 20, "int8 vs fp32: mean {mean:.3}, worst {worst} levels");
    let auto = luma("auto", "native").unwrap();
    assert_eq!(auto == int8, sesr::native::int8::cpu_has_vnni(), "auto picks int8 only with VNNI");
    if !sesr::native::int8::cpu_has_vnni() {
        // Without VNNI auto runs its float: bf16 where that measures clearly faster here.
        let float = if sesr::engine::bf16_measures_faster() { luma("bf16", "native").unwrap() } else { fp32.clone() };
        assert!(auto == float, "auto without VNNI");
    }
    let e = run_pipeline(
        "videotestsrc num-buffers=1 ! video/x-raw,format=NV12,width=64,height=48 ! \
         sesrupscale precision=int8 backend=libtorch ! fakesink",
    )
    .err()
    .unwrap();
    assert!(e.contains("native-backend setting"), "the libtorch backend runs models as exported: {e}");
    // 10-bit video: int8 is refused at caps time naming the format; auto runs it (in float:
    // bf16 where it measures clearly faster than fp32 on this CPU).
    let ten_bit = |precision: &str| {
        run_pipeline(&format!(
            "videotestsrc num-buffers=1 ! video/x-raw,format=P010_10LE,width=64,height=48 ! \
             sesrupscale precision={precision} ! video/x-raw,width=128,height=96 ! fakesink"
        ))
    };
    let e = ten_bit("int8").err().unwrap();
    assert!(e.contains("P010_10LE") && e.contains("10-bit"), "{e}");
    ten_bit("auto").unwrap();
    // `auto` shows what it picked, and picks again when the caps change: float for 10-bit
    // video, then what it picks for 8-bit (int8 with VNNI) when the stream goes back.
    let el = gst::ElementFactory::make("sesrupscale").property_from_str("precision", "auto").build().unwrap();
    let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    let active = |hs: &gst_check::Harness| hs.element().unwrap().property::<String>("active-precision");
    let float = if sesr::engine::bf16_measures_faster() { "bf16" } else { "fp32" };
    let eight_bit = if sesr::native::int8::cpu_has_vnni() { "int8" } else { float };
    hs.set_src_caps_str(&caps_str("NV12", w, h, "jpeg"));
    hs.push_and_pull(to_buffer(&f, gst_video::VideoFormat::Nv12, 0)).unwrap();
    assert_eq!(active(&hs), eight_bit);
    hs.set_src_caps_str(&caps_str("P010_10LE", w, h, "jpeg"));
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::P01010le, w as u32, h as u32).build().unwrap();
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    buf.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(33));
    hs.push_and_pull(buf).unwrap();
    assert_eq!(active(&hs), float, "10-bit video runs in float");
    hs.set_src_caps_str(&caps_str("NV12", w, h, "jpeg"));
    let mut buf = to_buffer(&f, gst_video::VideoFormat::Nv12, 0);
    buf.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(66));
    let back = hs.push_and_pull(buf).unwrap();
    assert_eq!(active(&hs), eight_bit, "8-bit video again: auto picks as at the start");
    let caps = hs.sinkpad().unwrap().current_caps().unwrap();
    if eight_bit != "bf16" {
        assert_eq!(from_buffer(back, &caps).y, if eight_bit == "int8" { int8 } else { fp32 });
    }
    if eight_bit != "int8" {
        println!("SKIPPED: auto's return to int8 after 10-bit video needs a VNNI CPU (checked: it stays {float} here)");
    }
    for precision in ["fp32", "int8"] {
        let el = gst::ElementFactory::make("sesrupscale").property_from_str("precision", precision).build().unwrap();
        let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        hs.set_src_caps_str(&caps_str("NV12", w, h, "jpeg"));
        hs.push_and_pull(to_buffer(&f, gst_video::VideoFormat::Nv12, 0)).unwrap();
        assert_eq!(active(&hs), precision);
        hs.element().unwrap().set_state(gst::State::Null).unwrap();
        assert_eq!(active(&hs), "", "empty once stopped");
    }
}

#[test]
fn metas_are_kept_and_rescaled() {
    init();
    let el = gst::ElementFactory::make("sesrupscale").build().unwrap();
    let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
    let (w, h) = (32, 24);
    hs.set_src_caps_str(&caps_str("I420", w, h, "jpeg"));
    let mut buf = to_buffer(&photo_frame(w, h, 180, 90), gst_video::VideoFormat::I420, 4);
    {
        let b = buf.get_mut().unwrap();
        gst_video::VideoRegionOfInterestMeta::add(b, "face", (4, 6, 10, 8));
        gst_video::VideoCropMeta::add(b, (2, 2, 28, 20));
        let reference = gst::Caps::new_empty_simple("timestamp/x-test");
        gst::ReferenceTimestampMeta::add(b, &reference, gst::ClockTime::from_seconds(7), None);
    }
    let out = hs.push_and_pull(buf).unwrap();
    // Size-tagged metas are rescaled ×2, like videoconvertscale does.
    let roi = out.meta::<gst_video::VideoRegionOfInterestMeta>().expect("the region of interest is kept");
    assert_eq!((roi.rect(), roi.roi_type()), ((8, 12, 20, 16), "face"));
    let crop = out.meta::<gst_video::VideoCropMeta>().expect("the crop is kept");
    assert_eq!(crop.rect(), (4, 4, 56, 40));
    // A meta without tags is copied.
    let ts = out.meta::<gst::ReferenceTimestampMeta>().expect("the reference timestamp is kept");
    assert_eq!(ts.timestamp(), gst::ClockTime::from_seconds(7));
    // The input's GstVideoMeta (32 wide, padded) is not carried over.
    assert!(out.iter_meta::<gst_video::VideoMeta>().all(|m| m.width() == 2 * w as u32));
}

/// 10-bit video: P010_10LE (10 bits in the high bits of each word, interleaved UV) and
/// I420_10LE (low bits, planar), in both backends. The input is the 8-bit photo frame at 10
/// bits (v·1023/255, rounded); the output must match the 8-bit path within rounding (≤ 1 level
/// in 8-bit units) and use the 10-bit precision (values an 8-bit path cannot give). The caps keep
/// their colorimetry and HDR fields.
#[test]
fn ten_bit_formats() {
    use gst_video::VideoFormat as F;
    init();
    let to10 = |v: u8| ((v as u32 * 1023 + 127) / 255) as u16;
    let hdr = "colorimetry=bt2100-pq,mastering-display-info=(string)\"35400:14600:8500:39850:6550:2300:15635:16450:10000000:50\",content-light-level=(string)\"1000:400\"";
    let cases = backends()
        .into_iter()
        .flat_map(|b| [(F::P01010le, 6u32), (F::I42010le, 0)].map(|f| (b, f)))
        .flat_map(|(b, f)| [(64usize, 48usize), (37, 23)].map(|size| (b, f, size)));
    for (backend, (format, shift), (w, h)) in cases {
        let photo = photo_frame(w, h, 150, 120);
        let mut hs = two_thread_harness(
            backend,
            &format!(
                "video/x-raw,format={},width={w},height={h},framerate=30/1,chroma-site=jpeg,{hdr}",
                format.to_str()
            ),
        );
        let info = gst_video::VideoInfo::builder(format, w as u32, h as u32).build().unwrap();
        let mut buf = gst::Buffer::with_size(info.size()).unwrap();
        let word = |v: u8| (to10(v) << shift).to_le_bytes();
        {
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::ZERO);
            let mut fr = gst_video::VideoFrameRef::from_buffer_ref_writable(b, &info).unwrap();
            let st: Vec<usize> = fr.plane_stride().iter().map(|&s| s as usize).collect();
            let y = fr.plane_data_mut(0).unwrap();
            for r in 0..h {
                for x in 0..w {
                    y[r * st[0] + 2 * x..][..2].copy_from_slice(&word(photo.y[r * w + x]));
                }
            }
            let (cw, ch) = (photo.cw(), photo.ch());
            if format == F::P01010le {
                let uv = fr.plane_data_mut(1).unwrap();
                for r in 0..ch {
                    for x in 0..cw {
                        uv[r * st[1] + 4 * x..][..2].copy_from_slice(&word(photo.u[r * cw + x]));
                        uv[r * st[1] + 4 * x + 2..][..2].copy_from_slice(&word(photo.v[r * cw + x]));
                    }
                }
            } else {
                for (p, data) in [(1u32, &photo.u), (2, &photo.v)] {
                    let d = fr.plane_data_mut(p).unwrap();
                    for r in 0..ch {
                        for x in 0..cw {
                            d[r * st[p as usize] + 2 * x..][..2].copy_from_slice(&word(data[r * cw + x]));
                        }
                    }
                }
            }
        }
        let out = hs.push_and_pull(buf).unwrap();
        let ctx = format!("{format:?} {backend} {w}x{h}");
        let caps = hs.sinkpad().unwrap().current_caps().unwrap();
        let s = caps.structure(0).unwrap();
        assert_eq!(s.get::<&str>("format").unwrap(), format.to_str(), "{ctx}");
        assert_eq!((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()), (2 * w as i32, 2 * h as i32));
        assert_eq!(s.get::<&str>("colorimetry").unwrap(), "bt2100-pq", "{ctx}");
        assert_eq!(s.get::<&str>("content-light-level").unwrap(), "1000:400", "{ctx}");
        assert!(s.get::<&str>("mastering-display-info").unwrap().starts_with("35400:14600"), "{ctx}");
        assert_eq!(hs.element().unwrap().property::<String>("active-backend"), backend);
        let oinfo = gst_video::VideoInfo::from_caps(&caps).unwrap();
        let fr = gst_video::VideoFrame::from_buffer_readable(out, &oinfo).unwrap();
        let st: Vec<usize> = fr.plane_stride().iter().map(|&s| s as usize).collect();
        let sample = |p: u32, r: usize, byte: usize| {
            let d = fr.plane_data(p).unwrap();
            (u16::from_le_bytes([d[r * st[p as usize] + byte], d[r * st[p as usize] + byte + 1]]) >> shift) & 1023
        };
        // Luma against the 8-bit path.
        let want = reference_luma(&photo);
        let (mut worst, mut sum, mut fine) = (0f32, 0f32, 0usize);
        for r in 0..2 * h {
            for x in 0..2 * w {
                let v = sample(0, r, 2 * x);
                let d = (v as f32 * 255.0 / 1023.0 - want[r * 2 * w + x] as f32).abs();
                (worst, sum) = (worst.max(d), sum + d);
                fine += (v % 4 != 0) as usize;
            }
        }
        // The 8-bit reference is itself rounded (±0.5) and its input differs from the 10-bit
        // one by up to half a 10-bit step, which the model's sharpening amplifies.
        let mean = sum / (4 * w * h) as f32;
        assert!(worst <= 1.5 && mean <= 0.4, "{ctx}: luma differs from the 8-bit path by {worst} levels (mean {mean})");
        assert!(fine > w * h, "{ctx}: only {fine} luma values use the 10-bit precision");
        // Chroma against the 8-bit bicubic.
        let (cw, ch) = (photo.cw(), photo.ch());
        let (ocw, och) = ((2 * w).div_ceil(2), (2 * h).div_ceil(2));
        for (c, data) in [(0usize, &photo.u), (1, &photo.v)] {
            let want = reference_chroma(data, cw, ch, ocw, och, false);
            let mut worst = 0f32;
            for r in 0..och {
                for x in 0..ocw {
                    let v = if format == F::P01010le {
                        sample(1, r, 4 * x + 2 * c)
                    } else {
                        sample(1 + c as u32, r, 2 * x)
                    };
                    worst = worst.max((v as f32 * 255.0 / 1023.0 - want[r * ocw + x] as f32).abs());
                }
            }
            assert!(worst <= 1.0, "{ctx}: chroma {c} differs from the 8-bit bicubic by {worst} levels");
        }
    }
}

/// `artifact-reduction` picks the embedded model: `on` runs the compressed-input model, `off`
/// the clean one (each equal to its TorchScript module run by tch), `on` is the default, and a
/// `model-location` wins over it.
#[test]
fn artifact_reduction_picks_the_embedded_model() {
    init();
    let (w, h) = (96, 64);
    let f = photo_frame(w, h, 200, 120);
    let caps = caps_str("I420", w, h, "jpeg");
    let run = |props: &[(&str, &str)]| {
        let mut b = gst::ElementFactory::make("sesrupscale").property_from_str("backend", "native");
        for (k, v) in props {
            b = b.property_from_str(k, v);
        }
        let el = b.build().unwrap();
        let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        hs.set_src_caps_str(&caps);
        let out = hs.push_and_pull(to_buffer(&f, gst_video::VideoFormat::I420, 0)).unwrap();
        from_buffer(out, &hs.sinkpad().unwrap().current_caps().unwrap()).y
    };
    let el = gst::ElementFactory::make("sesrupscale").build().unwrap();
    assert_eq!(el.property_value("artifact-reduction").serialize().unwrap().as_str(), "on");
    let default = run(&[]);
    let on = run(&[("artifact-reduction", "on")]);
    let off = run(&[("artifact-reduction", "off")]);
    assert_eq!(default, on, "artifact-reduction=on is the default");
    assert!(max_diff(&on, &model_luma("models/sesr_m5_x2_compressed.pt", &f)) <= 1, "on: the compressed-input model");
    assert!(max_diff(&off, &model_luma("models/sesr_m5_x2.pt", &f)) <= 1, "off: the clean model");
    let differ = on.iter().zip(&off).filter(|(a, b)| a != b).count();
    assert!(differ > on.len() / 10, "the two embedded models are different models ({differ} samples differ)");
    // A model file wins over the property.
    let clean = root().join("models/sesr_m5_x2.pt").display().to_string();
    assert_eq!(run(&[("artifact-reduction", "on"), ("model-location", &clean)]), off);
}
