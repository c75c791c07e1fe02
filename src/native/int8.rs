//! Integer inference: 8-bit activations × 8-bit weights, 32-bit sums.
//!
//! Quantisation (what a QAT forward has to model, and what [`reference`] computes):
//! * weights per output channel, symmetric: `w ≈ sw[co] · q`, `q ∈ [−127, 127]`;
//! * each layer's input per channel, asymmetric 8-bit: `a[ci] ≈ s[ci] · (q − z[ci])`,
//!   `q ∈ [0, 255]`; the network input `Y/255 − ½` is exactly `(2Y − 255)/510`. The input
//!   scales are folded into the weights before these are quantised: `w[co][ci]·s[ci] ≈ sw[co]·q_w`;
//! * a layer: `acc = Σ q_w · (q_a − z)` (exact in int32), `y = f32(acc) · sw[co] + b[co]`,
//!   PReLU, `+ f0` after the last block (`f0` as quantised for its own ring), then the next
//!   layer's quantisation, `q = clamp(round_even(y / s') + z', 0, 255)`; the output conv's `y`
//!   goes on in float32 (`+ x`, clamp, 8-bit rounding) as in the float kernel.
//!
//! Rings hold `(q − z)` as i16 in channel pairs, one 32-bit word per pixel and pair (the bf16
//! layout): `vpmaddwd` multiplies a pair of activations by a pair of weights and adds both
//! products into one int32 lane — exact, no int16 saturation (|q − z| ≤ 255, |q_w| ≤ 127).

use super::{Layer, Post, PAD};

/// Activation quantisation of one layer's input: `a ≈ scale · (q − zero)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActQuant {
    pub scale: f32,
    pub zero: i32,
}

impl ActQuant {
    /// The 8-bit grid covering `[lo, hi]` (widened to include 0).
    pub fn from_range(lo: f32, hi: f32) -> ActQuant {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = ((hi - lo) / 255.0).max(1e-8);
        let zero = (-lo / scale).round().clamp(0.0, 255.0) as i32;
        ActQuant { scale, zero }
    }

    /// `(q − zero)` of `y`, as the kernels compute it (`inv` = 1/scale in f32).
    #[inline]
    pub fn quantise(y: f32, inv: f32, zero: i32) -> i16 {
        let q = (y * inv).clamp(-1e9, 1e9).round_ties_even() as i32 + zero;
        (q.clamp(0, 255) - zero) as i16
    }
}

/// What a layer needs in integer mode.
#[derive(Debug, Clone)]
pub(super) struct LayerQuant {
    /// `[cout/4][cin/2][k][k][4]` words: the i16 weight pair (2q, 2q+1) of one output channel.
    pub w: Vec<u32>,
    /// `sw[co]` per output channel (the input scales are folded into the weights).
    pub scale: Vec<f32>,
    /// Per output channel: 1 / the next layer's input scale, and its zero point (layers that
    /// feed a ring; empty for the output conv).
    pub out_inv: Vec<f32>,
    pub out_zero: Vec<i32>,
    /// Per channel, the scale of the `f0` ring (the residual added after the last block).
    pub res_scale: Vec<f32>,
}

impl LayerQuant {
    /// Quantises OIHW `weight` (times the input scales) per output channel; `input`: this
    /// layer's input quantisation per channel, `out` the next layer's (empty for the output
    /// conv), `res` the `f0` scales per channel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        weight: &[f32],
        cout: usize,
        cin: usize,
        k: usize,
        input: &[ActQuant],
        out: &[ActQuant],
        res: &[f32],
    ) -> Self {
        let per = cin * k * k;
        let folded: Vec<f32> = weight.iter().enumerate().map(|(i, &w)| w * input[(i / (k * k)) % cin].scale).collect();
        let mut sw = Vec::with_capacity(cout);
        let mut q = vec![0i16; weight.len()];
        for co in 0..cout {
            let m = folded[co * per..(co + 1) * per].iter().fold(0f32, |a, &v| a.max(v.abs()));
            let s = if m > 0.0 { m / 127.0 } else { 1.0 };
            sw.push(s);
            for i in 0..per {
                q[co * per + i] = (folded[co * per + i] / s).round_ties_even().clamp(-127.0, 127.0) as i16;
            }
        }
        let mut w = Vec::with_capacity(cout * cin.div_ceil(2) * k * k);
        for cb in 0..cout / 4 {
            for p in 0..cin.div_ceil(2) {
                for t in 0..k * k {
                    for j in 0..4 {
                        let at = |ci: usize| if ci < cin { q[((cb * 4 + j) * cin + ci) * k * k + t] } else { 0 };
                        w.push(at(2 * p) as u16 as u32 | (at(2 * p + 1) as u16 as u32) << 16);
                    }
                }
            }
        }
        LayerQuant {
            w,
            scale: sw,
            out_inv: out.iter().map(|a| 1.0 / a.scale).collect(),
            out_zero: out.iter().map(|a| a.zero).collect(),
            res_scale: res.to_vec(),
        }
    }
}

/// The float value of `(acc, co)` after bias, PReLU and the residual — the order every variant
/// follows, so that they agree bit for bit.
#[inline]
fn finish(acc: i32, co: usize, layer: &Layer, q: &LayerQuant, res: Option<i16>) -> f32 {
    let mut y = acc as f32 * q.scale[co] + layer.bias[co];
    if let Some(al) = &layer.alpha {
        y = y.max(0.0) + al[co] * y.min(0.0);
    }
    if let Some(r) = res {
        y += r as f32 * q.res_scale[co];
    }
    y
}

/// The i16 pair of word `w`: (low, high).
#[inline]
fn pair(w: u32) -> (i32, i32) {
    (w as u16 as i16 as i32, (w >> 16) as u16 as i16 as i32)
}

/// One output row of a k×k convolution in integers (see the module docs); safe Rust, the
/// reference of the SIMD variants and the portable variant itself. Rows hold i16 pairs in
/// 32-bit words (`f32` slots holding the bits); `out` the same (`to_ring`) or float32.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_row<const K: usize>(
    rows: &[&[f32]; 5],
    cs: usize,
    layer: &Layer,
    q: &LayerQuant,
    cw: usize,
    out: &mut [f32],
    post: &Post,
    to_ring: bool,
) {
    let p = K / 2;
    let pairs = layer.cin.div_ceil(2);
    let mut acc = vec![0i32; 4 * cw];
    for cb in 0..layer.cout / 4 {
        acc.fill(0);
        let mut wi = cb * pairs * K * K * 4;
        for qp in 0..pairs {
            for row in rows.iter().take(K) {
                let base = qp * cs + PAD - p;
                for dx in 0..K {
                    let seg = &row[base + dx..base + dx + cw];
                    for j in 0..4 {
                        let (w0, w1) = pair(q.w[wi + j]);
                        for (a, &x) in acc[j * cw..(j + 1) * cw].iter_mut().zip(seg) {
                            let (x0, x1) = pair(x.to_bits());
                            *a += x0 * w0 + x1 * w1;
                        }
                    }
                    wi += 4;
                }
            }
        }
        for j in 0..4 {
            let co = cb * 4 + j;
            for i in 0..cw {
                let at = PAD + i;
                let res = post.residual.map(|r| {
                    let (lo, hi) = pair(r[(co / 2) * cs + at].to_bits());
                    if co % 2 == 0 {
                        lo as i16
                    } else {
                        hi as i16
                    }
                });
                let y = finish(acc[j * cw + i], co, layer, q, res);
                if to_ring {
                    let v = ActQuant::quantise(y, q.out_inv[co], q.out_zero[co]) as u16 as u32;
                    let slot = &mut out[(co / 2) * cs + at];
                    let old = slot.to_bits();
                    let word = if co % 2 == 0 { (old & 0xFFFF_0000) | v } else { (old & 0xFFFF) | v << 16 };
                    *slot = f32::from_bits(word);
                } else {
                    out[co * cs + at] = y;
                }
            }
        }
    }
}

/// [`conv_row`] with AVX2: `vpmaddwd` on channel pairs, 4 vectors of 8 pixels × 2 output
/// channels (8 int32 accumulators), then the same float steps as [`finish`], vectorised.
///
/// # Safety
/// As [`super::avx512::conv_row`] with rows in channel pairs (`out` too when `to_ring`), `cw` a
/// multiple of 32, and AVX2 present; the channels of a pair are written together (J = 2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
pub(super) unsafe fn conv_row_avx2<const K: usize>(
    rows: &[&[f32]; 5],
    cs: usize,
    layer: &Layer,
    q: &LayerQuant,
    cw: usize,
    out: &mut [f32],
    post: &Post,
    to_ring: bool,
) {
    use std::arch::x86_64::*;
    const J: usize = 2;
    const V: usize = 4;
    let p = K / 2;
    let pairs = layer.cin.div_ceil(2);
    let zero = _mm256_setzero_si256();
    let fzero = _mm256_setzero_ps();
    let out = out.as_mut_ptr();
    for xb in (0..cw).step_by(8 * V) {
        for cb in 0..layer.cout / 4 {
            for half in 0..4 / J {
                let mut acc = [[zero; V]; J];
                let mut wp = q.w.as_ptr().add(cb * pairs * K * K * 4 + half * J);
                for qp in 0..pairs {
                    for row in rows.iter().take(K) {
                        let base = (row.as_ptr() as *const i32).add(qp * cs + PAD - p + xb);
                        for dx in 0..K {
                            let mut w = [zero; J];
                            for j in 0..J {
                                w[j] = _mm256_set1_epi32(*wp.add(j) as i32);
                            }
                            for v in 0..V {
                                let x = _mm256_loadu_si256(base.add(dx + v * 8) as *const __m256i);
                                for j in 0..J {
                                    acc[j][v] = _mm256_add_epi32(acc[j][v], _mm256_madd_epi16(x, w[j]));
                                }
                            }
                            wp = wp.add(4);
                        }
                    }
                }
                let mut ys = [[_mm256_setzero_ps(); V]; J];
                for j in 0..J {
                    let co = cb * 4 + half * J + j;
                    let scale = _mm256_set1_ps(q.scale[co]);
                    let bias = _mm256_set1_ps(layer.bias[co]);
                    let slope = layer.alpha.as_ref().map(|al| _mm256_set1_ps(al[co]));
                    for v in 0..V {
                        let at = PAD + xb + v * 8;
                        let mut y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[j][v]), scale), bias);
                        if let Some(s) = slope {
                            y = _mm256_add_ps(_mm256_max_ps(y, fzero), _mm256_mul_ps(s, _mm256_min_ps(y, fzero)));
                        }
                        if let Some(r) = post.residual {
                            let word =
                                _mm256_loadu_si256((r.as_ptr() as *const i32).add((co / 2) * cs + at) as *const _);
                            // The i16 of this channel, sign-extended.
                            let v16 = if co.is_multiple_of(2) {
                                _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(word))
                            } else {
                                _mm256_srai_epi32::<16>(word)
                            };
                            y = _mm256_add_ps(
                                y,
                                _mm256_mul_ps(_mm256_cvtepi32_ps(v16), _mm256_set1_ps(q.res_scale[co])),
                            );
                        }
                        ys[j][v] = y;
                    }
                }
                // Channels (even, odd) of one pair: quantised and stored as one word each pixel.
                let co = cb * 4 + half * J;
                for v in 0..V {
                    let at = PAD + xb + v * 8;
                    if to_ring {
                        let quant = |y: __m256, c: usize| {
                            let t = _mm256_mul_ps(y, _mm256_set1_ps(q.out_inv[c]));
                            let t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-1e9)), _mm256_set1_ps(1e9));
                            // round-to-nearest-even (MXCSR default), + zero, clamp, − zero.
                            let qv = _mm256_add_epi32(_mm256_cvtps_epi32(t), _mm256_set1_epi32(q.out_zero[c]));
                            let qv = _mm256_min_epi32(_mm256_max_epi32(qv, zero), _mm256_set1_epi32(255));
                            _mm256_sub_epi32(qv, _mm256_set1_epi32(q.out_zero[c]))
                        };
                        let word = _mm256_or_si256(
                            _mm256_and_si256(quant(ys[0][v], co), _mm256_set1_epi32(0xFFFF)),
                            _mm256_slli_epi32::<16>(quant(ys[1][v], co + 1)),
                        );
                        _mm256_storeu_si256((out as *mut i32).add((co / 2) * cs + at) as *mut __m256i, word);
                    } else {
                        for j in 0..J {
                            _mm256_storeu_ps(out.add((co + j) * cs + at), ys[j][v]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn conv_row_avx2<const K: usize>(
    _rows: &[&[f32]; 5],
    _cs: usize,
    _layer: &Layer,
    _q: &LayerQuant,
    _cw: usize,
    _out: &mut [f32],
    _post: &Post,
    _to_ring: bool,
) {
    unreachable!("Isa::Avx2 is never available off x86-64")
}

/// 'Same' zero-padded k×k convolution in float32 (calibration only: plain loops).
fn conv_f32(x: &[f32], h: usize, w: usize, c: &crate::weights::ConvWeights) -> Vec<f32> {
    let (k, p) = (c.k, c.k / 2);
    let mut y = vec![0f32; c.cout * h * w];
    for co in 0..c.cout {
        let out = &mut y[co * h * w..(co + 1) * h * w];
        out.fill(c.bias[co]);
        for ci in 0..c.cin {
            let plane = &x[ci * h * w..(ci + 1) * h * w];
            for dy in 0..k {
                for dx in 0..k {
                    let wv = c.weight[((co * c.cin + ci) * k + dy) * k + dx];
                    for yy in 0..h {
                        let sy = yy as isize + dy as isize - p as isize;
                        if sy < 0 || sy as usize >= h {
                            continue;
                        }
                        let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                        let dst = &mut out[yy * w..(yy + 1) * w];
                        let lo = p.saturating_sub(dx);
                        let hi = (w + p).saturating_sub(dx).min(w);
                        for xx in lo..hi {
                            dst[xx] += wv * src[xx + dx - p];
                        }
                    }
                }
            }
        }
    }
    y
}

/// The 8-bit grid for `samples` that minimises the quantisation error: the range `[lo, hi]`
/// shrunk by a common factor (clipping the rare extremes buys resolution for the rest).
fn best_grid(samples: &[f32], lo: f32, hi: f32) -> ActQuant {
    let mut best = (f64::INFINITY, ActQuant::from_range(lo, hi));
    for step in 0..24 {
        let f = 1.0 - step as f32 * 0.03;
        let q = ActQuant::from_range(lo * f, hi * f);
        let inv = 1.0 / q.scale;
        let err: f64 = samples
            .iter()
            .map(|&v| {
                let d = ActQuant::quantise(v, inv, q.zero) as f32 * q.scale - v;
                (d * d) as f64
            })
            .sum();
        if err < best.0 {
            best = (err, q);
        }
    }
    best.1
}

/// Post-training calibration: each layer's input over `planes` (8-bit luma `(data, w, h)`, e.g.
/// LR crops of training images) in the float network, per channel, as the 8-bit grid of least
/// squared error ([`best_grid`]). Returns per layer one [`ActQuant`] per input channel (the
/// first layer's, the network input, is fixed by the kernel).
pub fn calibrate(weights: &crate::weights::CollapsedWeights, planes: &[(&[u8], usize, usize)]) -> Vec<Vec<ActQuant>> {
    let f = weights.cfg.f;
    let n = weights.blocks.len() + 2;
    // [layer][channel]
    let mut lo = vec![vec![0f32; f]; n];
    let mut hi = vec![vec![0f32; f]; n];
    let mut samples: Vec<Vec<Vec<f32>>> = vec![vec![Vec::new(); f]; n];
    let mut see = |l: usize, v: &[f32], plane: usize| {
        for (i, &x) in v.iter().enumerate() {
            let c = i / plane;
            lo[l][c] = lo[l][c].min(x);
            hi[l][c] = hi[l][c].max(x);
            // Every 5th value (prime: all positions) is kept for the error.
            if i % 5 == 0 {
                samples[l][c].push(x);
            }
        }
    };
    for &(data, w, h) in planes {
        let x: Vec<f32> = data[..w * h].iter().map(|&v| v as f32 / 255.0 - 0.5).collect();
        let f0 = conv_f32(&x, h, w, &weights.input);
        see(1, &f0, w * h);
        let mut cur = f0.clone();
        for (i, (c, alpha)) in weights.blocks.iter().enumerate() {
            cur = conv_f32(&cur, h, w, c);
            for (j, v) in cur.iter_mut().enumerate() {
                let a = alpha[j / (h * w)];
                *v = v.max(0.0) + a * v.min(0.0);
            }
            if i + 1 == weights.blocks.len() {
                for (v, f) in cur.iter_mut().zip(&f0) {
                    *v += f;
                }
            }
            see(i + 2, &cur, w * h);
        }
    }
    let mut acts: Vec<Vec<ActQuant>> =
        (0..n).map(|l| (0..f).map(|c| best_grid(&samples[l][c], lo[l][c], hi[l][c])).collect()).collect();
    acts[0] = vec![ActQuant { scale: 1.0 / 510.0, zero: 0 }];
    acts
}
