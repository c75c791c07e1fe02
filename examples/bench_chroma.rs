//! Speed of the element's chroma upscale (bicubic, NV12's interleaved UV plane, one thread):
//! the FIR path of integer upscales against the same tables gathering every output's taps,
//! alternated in one run. Prints a table (median ms of a frame's chroma, and the ratio).
//!
//! `cargo run --release -p sesr --no-default-features --example bench_chroma -- [--frames N] [--sizes 1280x720,1920x1080]`

use sesr::engine::chroma_map_sub;
use sesr::resize::{resize_rows, Contributions, U8Layout};
use sesr::sample::Depth;
use std::time::Instant;

fn arg(name: &str, default: &str) -> String {
    let a: Vec<String> = std::env::args().collect();
    a.iter().position(|x| x == name).and_then(|i| a.get(i + 1)).cloned().unwrap_or_else(|| default.into())
}

fn main() {
    let frames: usize = arg("--frames", "30").parse().unwrap();
    let sizes = arg("--sizes", "1280x720,1920x1080");
    println!("chroma x2 of NV12 (U and V of the interleaved plane, one thread), median of {frames} frames");
    println!("| luma input | chroma in → out | gathering ms | FIR ms | gathering / FIR |");
    println!("|---|---|---|---|---|");
    for s in sizes.split(',') {
        let (w, h) = s.split_once('x').unwrap();
        let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
        let (cw, ch) = (w / 2, h / 2);
        let (ow, oh) = (2 * cw, 2 * ch);
        let (hs, ho) = chroma_map_sub(2, 2, false);
        let (vs, vo) = chroma_map_sub(2, 2, false);
        let fir = Contributions::affine(cw, ow, hs, ho, 1.0);
        let gathering = fir.gathering();
        let v = Contributions::affine(ch, oh, vs, vo, 1.0);
        let src: Vec<u8> = (0..ch * 2 * cw).map(|i| ((i * 7) % 251) as u8).collect();
        let mut dst = vec![0u8; oh * 2 * ow];
        let mut tmp = Vec::new();
        let mut frame = |h: &Contributions| {
            let t0 = Instant::now();
            for plane in 0..2 {
                let sl = U8Layout { stride: 2 * cw, step: 2, offset: plane };
                let dl = U8Layout { stride: 2 * ow, step: 2, offset: plane };
                resize_rows(&src, sl, &mut dst, dl, h, &v, 0..oh, Depth::U8, &mut tmp);
            }
            t0.elapsed().as_secs_f64() * 1e3
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..frames {
            a.push(frame(&gathering));
            b.push(frame(&fir));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|x, y| x.total_cmp(y));
            v[v.len() / 2]
        };
        let (ga, fi) = (median(&mut a), median(&mut b));
        println!("| {w}x{h} | {cw}x{ch} → {ow}x{oh} | {ga:.2} | {fi:.2} | {:.2} |", ga / fi);
    }
}
