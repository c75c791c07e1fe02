//! Soak of `sesrupscale` (a command, not a test): hours of use in minutes. A paced source
//! through a `tee` into two `sesrupscale` instances, for `--minutes N` (default 10), with
//! renegotiation across sizes and formats every `--renegotiate K` buffers, flushing seeks,
//! PLAYING → NULL → PLAYING cycles, and `model-location` swaps in READY. It samples the
//! process's RSS and thread count every `--sample S` seconds and prints the curve, the frames,
//! renegotiations, seeks, cycles and swaps; it fails (exit 1) if any error is posted, if frames
//! stop, or if RSS grows more than 5 % after the warm-up (the first fifth of the run): the
//! peak of the second half against the peak from warm-up to half-time.
//!
//! The plugin is loaded from the build folder as users load it (`GST_PLUGIN_PATH`), so this
//! process holds no libtorch unless the element loads it.
//!
//! `cargo run --release -p gst-plugin-sesr --example soak -- [--minutes 10] [--renegotiate 40]
//!  [--sample 1] [--max-growth 5]`

use gst::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// The (format, width, height) the source cycles through.
const SHAPES: [(&str, u32, u32); 6] = [
    ("NV12", 320, 180),
    ("I420", 256, 144),
    ("Y444", 160, 120),
    ("NV21", 352, 288),
    ("GRAY8", 320, 240),
    ("Y42B", 200, 150),
];

fn caps(i: usize) -> gst::Caps {
    let (f, w, h) = SHAPES[i % SHAPES.len()];
    gst::Caps::builder("video/x-raw")
        .field("format", f)
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // glibc gives threads their own malloc arenas (up to 8 per core), so a process whose threads
    // come and go (every state cycle restarts GStreamer's streaming threads and the element's
    // workers) sees its RSS creep up until all arenas exist: measured here, +6 % in 3 minutes
    // with the default, flat with MALLOC_ARENA_MAX=2. The soak runs itself with 2 arenas (unless
    // MALLOC_ARENA_MAX is set) so that its curve shows leaks, not arenas.
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(&args[1..])
            .env("MALLOC_ARENA_MAX", "2")
            .status()
            .expect("re-running the soak");
        std::process::exit(status.code().unwrap_or(1));
    }
    let minutes: f64 = arg(&args, "--minutes", "10").parse().expect("--minutes N");
    let every: u64 = arg(&args, "--renegotiate", "40").parse().expect("--renegotiate K");
    // Allowed RSS growth after warm-up, in %. Short runs need more: the buffer pools of the
    // shape being played swing a ~25 MiB process by a few MiB.
    let max_growth: f64 = arg(&args, "--max-growth", "5").parse().expect("--max-growth PERCENT");
    // Sampled often enough that each window sees the buffers of every shape at their peak.
    let sample = Duration::from_secs_f64(arg(&args, "--sample", "1").parse().expect("--sample S"));
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let plugins = format!("{}/../target/{profile}", env!("CARGO_MANIFEST_DIR"));
    std::env::set_var("GST_PLUGIN_PATH", &plugins);
    gst::init().unwrap();
    if gst::ElementFactory::find("sesrupscale").is_none() {
        eprintln!("soak: sesrupscale not found in {plugins} (cargo build -p gst-plugin-sesr first)");
        std::process::exit(1);
    }
    let m3 = format!("{}/../models/sesr_m3_x2.pt", env!("CARGO_MANIFEST_DIR"));
    let p = gst::parse::launch(
        "videotestsrc pattern=ball name=src ! capsfilter name=cf ! tee name=t \
         t. ! queue ! sesrupscale name=a ! fakesink name=sa sync=true \
         t. ! queue ! sesrupscale name=b num-threads=1 ! fakesink name=sb sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let cf = p.by_name("cf").unwrap();
    cf.set_property("caps", caps(0));
    let frames = Arc::new(AtomicU64::new(0));
    let f2 = frames.clone();
    p.by_name("sa").unwrap().static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        f2.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let (t0, total) = (Instant::now(), Duration::from_secs_f64(minutes * 60.0));
    let (mut renegotiations, mut seeks, mut cycles, mut swaps, mut errors) = (0u64, 0u64, 0u64, 0u64, Vec::new());
    let mut shape = 0usize;
    let mut next_reneg = every;
    let mut last_sample = Instant::now();
    let mut curve: Vec<(f64, f64, usize, u64)> = vec![(0.0, rss_mib(), threads(), 0)];
    let mut step = 0u64;
    let mut last_frames = 0u64;
    let mut last_progress = Instant::now();
    while t0.elapsed() < total {
        if let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(50), &[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                errors.push(format!("{}: {:?}", e.error(), e.debug()));
                break;
            }
        }
        let n = frames.load(Ordering::Relaxed);
        if n >= next_reneg {
            shape += 1;
            cf.set_property("caps", caps(shape));
            renegotiations += 1;
            next_reneg = n + every;
            step += 1;
            // Every 3rd renegotiation a flushing seek, every 5th a state cycle, every 7th a
            // model swap in READY (M3 ↔ the embedded M5).
            if step.is_multiple_of(3) {
                p.seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::ZERO).unwrap();
                seeks += 1;
            }
            if step.is_multiple_of(5) {
                p.set_state(gst::State::Null).unwrap();
                p.set_state(gst::State::Playing).unwrap();
                cycles += 1;
            }
            if step.is_multiple_of(7) {
                p.set_state(gst::State::Ready).unwrap();
                let a = p.by_name("a").unwrap();
                let next = if a.property::<String>("model-location").is_empty() { m3.clone() } else { String::new() };
                a.set_property("model-location", &next);
                p.set_state(gst::State::Playing).unwrap();
                swaps += 1;
            }
        }
        if last_sample.elapsed() >= sample {
            last_sample = Instant::now();
            let n = frames.load(Ordering::Relaxed);
            curve.push((t0.elapsed().as_secs_f64(), rss_mib(), threads(), n));
            if n != last_frames {
                last_frames = n;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > Duration::from_secs(10) {
                errors.push("no frame in the last 10 s".to_string());
                break;
            }
        }
    }
    p.set_state(gst::State::Null).unwrap();
    let final_rss = rss_mib();
    println!("soak: {minutes} min, two instances behind a tee, {} shapes", SHAPES.len());
    println!("| t s | RSS MiB | threads | frames (instance a) |");
    println!("|---|---|---|---|");
    // At most ~30 rows of the curve (all samples count for the verdict).
    let stride = curve.len().div_ceil(30).max(1);
    for (i, (t, r, th, n)) in curve.iter().enumerate() {
        if i % stride == 0 || i + 1 == curve.len() {
            println!("| {t:.0} | {r:.1} | {th} | {n} |");
        }
    }
    let frames = frames.load(Ordering::Relaxed);
    let peak = curve.iter().map(|c| c.1).fold(0.0, f64::max);
    // RSS after warm-up: frame sizes change every few seconds, so single samples swing with
    // the buffers of the current shape; a leak shows as a higher peak late in the run. Compare
    // the highest RSS of the second half with the highest between warm-up (the first fifth)
    // and half-time.
    let t = total.as_secs_f64();
    let window = |a: f64, b: f64| curve.iter().filter(|c| c.0 >= a && c.0 <= b).map(|c| c.1).fold(f64::NAN, f64::max);
    let warm = window(t / 5.0, t / 2.0);
    let last = window(t / 2.0 + 1e-9, f64::INFINITY);
    let growth = (last - warm) / warm * 100.0;
    println!(
        "frames {frames}, renegotiations {renegotiations}, flushing seeks {seeks}, PLAYING-NULL-PLAYING cycles {cycles}, \
         model swaps {swaps}, errors {}; peak RSS after warm-up to half-time {warm:.1} MiB, in the second half {last:.1} MiB ({growth:+.2} %), \
         peak {peak:.1} MiB, after NULL {final_rss:.1} MiB",
        errors.len()
    );
    for e in &errors {
        println!("error: {e}");
    }
    if !errors.is_empty() || growth.is_nan() || growth > max_growth || frames == 0 {
        println!("soak: FAILED");
        std::process::exit(1);
    }
    println!("soak: ok");
}
