//! Start-up time and peak memory of `sesrupscale` as users run it (a command, not a test):
//! `gst-launch-1.0 -v videotestsrc ! NV12 WxH ! <element> ! fakesink silent=false`, each row
//! its own process, with the plugin from this build (`GST_PLUGIN_PATH`). Start-up is from
//! launching the process to the first buffer reaching the sink (GStreamer init, model load and
//! first frame included); peak RSS from `/usr/bin/time`; whether the element logged that
//! libtorch came into the process. GStreamer's bicubic (`videoscale method=catrom`) for
//! reference. (A Rust test harness would link libtorch itself, hence the child processes.)
//!
//! `cargo run --release -p gst-plugin-sesr --example startup -- [--size 1920x1080] [--frames 30]`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

/// (start-up s, wall s, peak RSS MiB, libtorch loaded)
fn run(middle: &str, w: usize, h: usize, frames: usize, plugins: &str) -> (f64, f64, f64, bool) {
    let pipeline = format!(
        "videotestsrc num-buffers={frames} pattern=smpte ! video/x-raw,format=NV12,width={w},height={h},framerate=30/1 \
         ! {middle} ! fakesink silent=false sync=false"
    );
    let t0 = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "MAXRSS %M", "gst-launch-1.0", "-v"])
        .args(pipeline.split_whitespace())
        .env("GST_PLUGIN_PATH", plugins)
        .env("GST_DEBUG", "sesrupscale:4")
        .env("GST_DEBUG_NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/time and gst-launch-1.0");
    let mut first = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        if first.is_none() && line.contains("chain") && line.contains("fakesink") {
            first = Some(t0.elapsed().as_secs_f64());
        }
    }
    let out = child.wait_with_output().unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{middle}: {err}");
    let rss = err
        .lines()
        .find_map(|l| l.strip_prefix("MAXRSS "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN);
    (first.unwrap_or(f64::NAN), wall, rss, err.contains("libtorch loaded"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let frames: usize = arg(&args, "--frames", "30").parse().unwrap();
    let (w, h) = arg(&args, "--size", "1920x1080")
        .split_once('x')
        .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
        .unwrap();
    let plugins = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release");
    // Bring GStreamer's registry up to date first, so that no row pays for a plugin scan.
    let _ = Command::new("gst-inspect-1.0").arg("sesrupscale").env("GST_PLUGIN_PATH", plugins).output();
    let cases = [
        ("sesrupscale (default: auto, native)", "sesrupscale".to_string()),
        ("sesrupscale backend=libtorch", "sesrupscale backend=libtorch".to_string()),
        (
            "videoscale method=catrom",
            format!("videoscale method=catrom ! video/x-raw,width={},height={}", 2 * w, 2 * h),
        ),
    ];
    println!("{w}x{h} NV12 -> x2, {frames} frames, gst-launch-1.0, each row its own process");
    println!("| element | start-up to 1st buffer s | wall for all frames s | peak RSS MiB | libtorch loaded |");
    println!("|---|---|---|---|---|");
    for (name, middle) in cases {
        let (startup, wall, rss, torch) = run(&middle, w, h, frames, plugins);
        println!("| {name} | {startup:.3} | {wall:.2} | {rss:.0} | {} |", if torch { "yes" } else { "no" });
    }
}
