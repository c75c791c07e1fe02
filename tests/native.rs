//! The native kernel computes the collapsed network: every variant's 8-bit output matches
//! libtorch's forward of the same model, and does not depend on how the frame is cut into
//! tiles and threads. Variants this CPU cannot run are reported as skipped.

use sesr::metrics::byte_diff;
use sesr::native::{cpu_supports_bf16, Isa, NativeSesr, Workspace};
use sesr::pool::Pool;
use sesr::weights::{CollapsedWeights, Precision};
use sesr::{CollapsedSesr, Preset, SesrConfig};
use tch::{Kind, Tensor};

mod common;

/// A collapsed network with random kernels, biases and PReLU slopes.
fn random_collapsed(cfg: SesrConfig, seed: i64) -> CollapsedSesr {
    let _g = common::rng_lock();
    common::random_model(cfg, seed).1.collapse_detached()
}

fn weights(model: &CollapsedSesr) -> CollapsedWeights {
    model.to_weights().unwrap()
}

/// A test picture: gradients, an edge and pseudo-random texture, every value 0..=255 likely.
fn picture(w: usize, h: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let base = (x * 255 / w.max(1) + y * 97 / h.max(1)) % 256;
            let edge = if (x + y / 2) % 23 < 11 { 60 } else { 0 };
            ((base + edge + (state % 41) as usize) % 256) as u8
        })
        .collect()
}

/// libtorch's answer: the model on Y/255, clamped, rounded.
fn reference(model: &CollapsedSesr, src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let x = Tensor::from_slice(src).to_kind(Kind::Float).reshape([1, 1, h as i64, w as i64]) / 255.0;
    let y = tch::no_grad(|| model.forward(&x));
    let y = (y * 255.0).round().clamp(0.0, 255.0).to_kind(Kind::Uint8).flatten(0, -1);
    Vec::<u8>::try_from(&y).unwrap()
}

fn native(net: &NativeSesr, src: &[u8], w: usize, h: usize, threads: usize) -> Vec<u8> {
    let s = net.scale();
    // A padded destination stride, as GStreamer buffers may have.
    let dst_stride = w * s + 5;
    let mut dst = vec![0u8; dst_stride * h * s];
    let mut ws: Vec<Workspace> = (0..threads).map(|_| Workspace::new()).collect();
    net.upscale(src, w, w, h, &mut dst, dst_stride, &mut ws, &Pool::shared(threads).unwrap());
    dst.chunks(dst_stride).flat_map(|r| r[..w * s].to_vec()).collect()
}

/// The variants this CPU runs; the others are reported as skipped.
fn variants(test: &str) -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|isa| {
            let ok = isa.available();
            if !ok {
                eprintln!("{test}: SKIPPED for the {isa} kernel (this CPU lacks it)");
            }
            ok
        })
        .collect()
}

#[test]
fn every_variant_matches_libtorch_for_presets_scales_widths_and_sizes() {
    let cfgs = [
        Preset::M3.config(2),
        Preset::M5.config(2),
        Preset::M5.config(4),
        // Channel-pruned widths (structured pruning keeps f a multiple of 4).
        SesrConfig::new(3, 12, 64, 2).unwrap(),
        SesrConfig::new(3, 8, 64, 2).unwrap(),
        // One block: f0 is both its input and the residual.
        SesrConfig::new(1, 8, 16, 2).unwrap(),
    ];
    let sizes = [(1, 1), (7, 3), (70, 17), (130, 64), (1100, 40)];
    for isa in variants("matches libtorch") {
        for (i, cfg) in cfgs.into_iter().enumerate() {
            let model = random_collapsed(cfg, 11 + i as i64);
            let net = NativeSesr::with_options(&weights(&model), Precision::Fp32, isa).unwrap();
            assert_eq!((net.radius(), net.isa()), (cfg.m + 4, isa));
            for (w, h) in sizes {
                let src = picture(w, h, (w * h) as u32);
                let want = reference(&model, &src, w, h);
                let got = native(&net, &src, w, h, 2);
                let (worst, diff) = byte_diff(&got, &want);
                // Different summation order: only values on a rounding boundary may differ, by one.
                assert!(worst <= 1, "{isa} {cfg:?} {w}x{h}: differs by up to {worst}");
                assert!(
                    diff * 200 <= want.len().max(200),
                    "{isa} {cfg:?} {w}x{h}: {diff} of {} values differ",
                    want.len()
                );
                // And the output is not trivially flat.
                let (lo, hi) = (want.iter().min().unwrap(), want.iter().max().unwrap());
                assert!(w * h < 100 || hi - lo > 50, "{cfg:?} {w}x{h}: flat output {lo}..{hi}");
            }
        }
        eprintln!("matches libtorch: {isa} kernel tested");
    }
}

#[test]
fn output_does_not_depend_on_tiles_or_threads() {
    let model = random_collapsed(Preset::M5.config(2), 5);
    for isa in variants("tiles and threads") {
        let net = NativeSesr::with_options(&weights(&model), Precision::Fp32, isa).unwrap();
        // Wide enough for several column tiles, tall enough for several row bands.
        let (w, h) = (1500, 120);
        assert!(w > 2 * net.tile_width());
        let src = picture(w, h, 9);
        let one = native(&net, &src, w, h, 1);
        for threads in [2, 3, 5] {
            assert!(
                one == native(&net, &src, w, h, threads),
                "{isa}, {threads} threads: output differs from one thread"
            );
        }
        // Buffers reused across frames of different sizes give the same answer as fresh ones.
        let mut ws = vec![Workspace::new(), Workspace::new()];
        let pool = Pool::shared(2).unwrap();
        for (w2, h2) in [(1500, 120), (33, 9), (1500, 120)] {
            let src2 = picture(w2, h2, 9);
            let mut dst = vec![0u8; w2 * 2 * h2 * 2];
            net.upscale(&src2, w2, w2, h2, &mut dst, w2 * 2, &mut ws, &pool);
            assert!(dst == native(&net, &src2, w2, h2, 1), "{isa} {w2}x{h2} with reused workspaces");
        }
        eprintln!("tiles and threads: {isa} kernel tested");
    }
}

#[test]
fn variants_agree_with_each_other() {
    let model = random_collapsed(Preset::M3.config(4), 8);
    let (w, h) = (333, 50);
    let src = picture(w, h, 4);
    let outs: Vec<(Isa, Vec<u8>)> = variants("variants agree")
        .into_iter()
        .map(|isa| {
            (isa, native(&NativeSesr::with_options(&weights(&model), Precision::Fp32, isa).unwrap(), &src, w, h, 2))
        })
        .collect();
    for (isa, out) in &outs[1..] {
        let (worst, diff) = byte_diff(out, &outs[0].1);
        assert!(worst <= 1 && diff * 200 <= out.len(), "{isa} vs {}: {diff} differ by up to {worst}", outs[0].0);
    }
}

#[test]
fn forcing_a_variant() {
    let w = weights(&random_collapsed(Preset::M3.config(2), 2));
    for isa in Isa::ALL {
        let r = NativeSesr::with_options(&w, Precision::Fp32, isa);
        assert_eq!(r.is_ok(), isa.available(), "{isa}: {:?}", r.err());
        assert_eq!(isa.name().parse::<Isa>().unwrap(), isa);
    }
    assert!("sse9".parse::<Isa>().unwrap_err().contains("avx512, avx2 or portable"));
    // Without SESR_NATIVE_ISA the best variant of the CPU is picked; the portable one always runs.
    assert!(Isa::best().available() && Isa::Portable.available());
}

#[test]
fn native_refuses_widths_it_cannot_vectorise() {
    let model = random_collapsed(SesrConfig::new(3, 6, 16, 2).unwrap(), 1);
    let err = NativeSesr::new(&weights(&model)).unwrap_err();
    assert!(err.contains("multiple of 4"), "{err}");
}

#[test]
fn bf16_stays_close_to_float32() {
    if !cpu_supports_bf16() {
        eprintln!("bf16: SKIPPED (no AVX512-BF16 on this CPU)");
        return;
    }
    let cfgs = [Preset::M5.config(2), Preset::M3.config(4), SesrConfig::new(3, 12, 64, 2).unwrap()];
    for (i, cfg) in cfgs.into_iter().enumerate() {
        let model = random_collapsed(cfg, 21 + i as i64);
        let net = NativeSesr::with_options(&weights(&model), Precision::Bf16, Isa::Avx512).unwrap();
        assert_eq!(net.precision(), Precision::Bf16);
        // 1100 wide: several column tiles.
        for (w, h) in [(5, 3), (200, 50), (1100, 30)] {
            let src = picture(w, h, 3);
            let want = reference(&model, &src, w, h);
            let got = native(&net, &src, w, h, 2);
            let (worst, _) = byte_diff(&got, &want);
            let mse = got.iter().zip(&want).map(|(&a, &b)| ((a as f64) - (b as f64)).powi(2)).sum::<f64>()
                / want.len() as f64;
            let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10();
            eprintln!("{cfg:?} {w}x{h}: bf16 vs float32 max {worst}, PSNR {psnr:.1} dB");
            // bfloat16 keeps 8 significant bits: a few levels at worst, far below visible.
            assert!(worst <= 8 && psnr > 45.0, "{cfg:?} {w}x{h}: max {worst}, PSNR {psnr:.1} dB");
            // And it is not just the float32 answer (the bf16 path really ran).
            assert!(w * h < 100 || got != want, "{cfg:?} {w}x{h}: identical to float32");
        }
    }
}

/// 16-bit samples: the same kernel on 10-bit values (P010's high bits and the low bits) equals
/// libtorch on value/1023 within one 10-bit level, and 16-bit words holding 8-bit values give
/// exactly the 8-bit path's output.
#[test]
fn sixteen_bit_samples_match_libtorch_at_ten_bits() {
    use sesr::sample::Depth;
    let model = random_collapsed(Preset::M3.config(2), 11);
    let (w, h, s) = (45usize, 29usize, 2usize);
    let pic = picture(w, h, 5);
    // 10-bit values spread over the whole range (not only multiples of 4).
    let v10: Vec<u16> =
        pic.iter().enumerate().map(|(i, &v)| ((v as u32 * 4 + (i as u32 % 4)).min(1023)) as u16).collect();
    let x = Tensor::from_slice(&v10.iter().map(|&v| v as f32 / 1023.0).collect::<Vec<_>>())
        .reshape([1, 1, h as i64, w as i64]);
    let y = tch::no_grad(|| model.forward(&x)).flatten(0, -1);
    let want: Vec<f32> = Vec::<f32>::try_from(&y).unwrap().iter().map(|v| v * 1023.0).collect();
    for isa in variants("sixteen_bit_samples_match_libtorch_at_ten_bits") {
        let net = NativeSesr::with_options(&weights(&model), Precision::Fp32, isa).unwrap();
        let pool = Pool::shared(2).unwrap();
        let mut ws = vec![Workspace::new(), Workspace::new()];
        for depth in [Depth::P010, Depth::LSB10] {
            let src: Vec<u16> = v10.iter().map(|&v| v << depth.shift).collect();
            let dst_stride = w * s + 3;
            let mut dst = vec![0u16; dst_stride * h * s];
            net.upscale_u16(&src, w, w, h, &mut dst, dst_stride, depth, &mut ws, &pool);
            let mut worst = 0f32;
            for r in 0..h * s {
                for c in 0..w * s {
                    let got = dst[r * dst_stride + c];
                    assert_eq!(got & !((1023u16) << depth.shift), 0, "{isa} {depth:?}: bits outside the field");
                    worst = worst.max(((got >> depth.shift) as f32 - want[r * w * s + c]).abs());
                }
            }
            assert!(worst <= 1.0, "{isa} {depth:?}: {worst} levels from libtorch");
        }
        // 8-bit values in 16-bit words: the 8-bit path bit for bit.
        let words: Vec<u16> = pic.iter().map(|&v| v as u16).collect();
        let mut dst = vec![0u16; w * s * h * s];
        net.upscale_u16(&words, w, w, h, &mut dst, w * s, Depth::U8, &mut ws, &pool);
        let bytes = native(&net, &pic, w, h, 2);
        assert!(dst.iter().zip(&bytes).all(|(&a, &b)| a == b as u16), "{isa}: 16-bit words of 8-bit values differ");
    }
}
