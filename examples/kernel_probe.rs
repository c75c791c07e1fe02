//! Times one configuration of the native kernel alone (no libtorch, no GStreamer): for
//! profilers (`perf record`) and quick A/B runs while working on an inner block.
//!
//! `cargo run --release --example kernel_probe -- [fp32|int8] [WxH] [frames] [threads] [model.pt]`

use sesr::native::{Isa, NativeSesr, Workspace};
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mode = a.get(1).map_or("fp32", String::as_str);
    let (w, h) =
        a.get(2).and_then(|s| s.split_once('x')).map_or((960, 540), |(w, h)| (w.parse().unwrap(), h.parse().unwrap()));
    let frames: usize = a.get(3).map_or(10, |s| s.parse().unwrap());
    let threads: usize = a.get(4).map_or(1, |s| s.parse().unwrap());
    let pt = a.get(5).map_or("models/sesr_m5_x2.pt", String::as_str);
    let wts = sesr::weights::ExportedWeights::read(std::path::Path::new(pt), false).expect("model").weights;
    let net = match mode {
        "int8" => {
            let probe = sesr::engine::texture(64, 48);
            let acts = sesr::native::int8::calibrate(&wts, &[(&probe[..], 64, 48)]);
            NativeSesr::with_int8(&wts, &acts, Isa::selected().unwrap()).unwrap()
        }
        _ => NativeSesr::new(&wts).unwrap(),
    };
    let pool = sesr::pool::Pool::shared(threads).unwrap();
    let mut ws: Vec<_> = (0..pool.threads()).map(|_| Workspace::new()).collect();
    let src = sesr::engine::texture(w, h);
    let s = net.scale();
    let mut dst = vec![0u8; w * h * s * s];
    net.upscale(&src, w, w, h, &mut dst, w * s, &mut ws, &pool);
    let t = Instant::now();
    for _ in 0..frames {
        net.upscale(&src, w, w, h, &mut dst, w * s, &mut ws, &pool);
    }
    let dt = t.elapsed().as_secs_f64() / frames as f64;
    let gmacs = (w * h * net.macs_per_pixel()) as f64 / dt / 1e9;
    let block = net.int8_block().unwrap_or("float");
    println!("{mode} {} ({block}) {w}x{h} threads {threads}: {:.2} fps, {:.1} GMAC/s", net.isa(), 1.0 / dt, gmacs);
}
