//! Integer inference: 8-bit activations × 7-bit weights, 32-bit sums.
//!
//! Quantisation (what a QAT forward has to model, and what `conv_row` computes):
//! * weights per output channel, symmetric: `w ≈ sw[co] · q`, `q ∈ [−63, 63]` (7 bits: see
//!   below; the input conv, whose input is exact, keeps `[−127, 127]`);
//! * each layer's input per channel, asymmetric 8-bit: `a[ci] ≈ s[ci] · (q − z[ci])`,
//!   `q ∈ [0, 255]`; the network input `Y/255 − ½` is exactly `(2Y − 255)/510`. The input
//!   scales are folded into the weights before these are quantised: `w[co][ci]·s[ci] ≈ sw[co]·q_w`;
//! * a layer: `acc = Σ q_w · (q_a − z)` (exact in int32), `y = f32(acc) · sw[co] + b[co]`,
//!   PReLU, `+ f0` after the last block (`f0` as quantised for its own ring), then the next
//!   layer's quantisation, `q = clamp(round_even(y / s') + z', 0, 255)`; the output conv's `y`
//!   goes on in float32 (`+ x`, clamp, 8-bit rounding) as in the float kernel.
//!
//! Layouts. The rings after the input conv hold `q` itself, four channels to a 32-bit word
//! (byte `i` = channel `4·quad + i`), and their padding holds each channel's zero point, so a
//! border tap adds `q_w · z` — taken back by a per-output-channel constant, `corr = Σ q_w · z`.
//! `vpmaddubsw` multiplies the four unsigned bytes of a pixel by four signed weight bytes and
//! adds them in pairs into int16 (`2 · 255 · 63 < 2¹⁵`: never saturates with 7-bit weights),
//! `vpmaddwd` by ones adds the pairs into int32: 32 multiply-accumulates in 3 instructions, where
//! float32 FMA does 8 in one. (`vpdpbusd` of AVX-VNNI does all three in one.) The input conv
//! reads the exact `2Y − 255` as int16 in a pair word `(2Y − 255, 0)` with `vpmaddwd`. The
//! output conv (8-bit weights) reads int16 pairs `q − z` without VNNI; with VNNI it reads quads
//! like the blocks (`vpdpbusd` does not saturate), and the zmm block reads the input conv's one
//! channel in pairs of neighbouring pixels against pairs of horizontal taps
//! (`LayerQuant::with_tap_pairs`). Every layout gives the same integer sums
//! (`NativeSesr::lay_out_int8` picks them for the block that runs).
//!
//! Blocks: scalar (the reference, and the portable variant), AVX2 (ymm, 16 pixels × 4 output
//! channels), the same with AVX-VNNI or AVX512-VNNI on ymm, and in the AVX-512 variant
//! AVX512-VNNI on zmm (64 pixels × 4 channels, its inner step in assembly, its end of block
//! in zmm). All compute the same integers and end through the same float steps (`finish`,
//! vectorised in `finish_block` and `finish_block512`), so they agree bit for bit
//! (`tests/native_reference.rs`). [`crate::qat`] models this arithmetic for training.

use super::{Layer, Post, PAD};
use crate::collapsed_weights::{CollapsedWeights, ConvWeights};

/// Largest weight magnitude of the layers with 8-bit activations (7 bits: no int16 saturation
/// in `vpmaddubsw`).
pub const QW_MAX: i32 = 63;
/// Largest weight magnitude of the input conv (int16 activations, `vpmaddwd`).
pub const QW_MAX_INPUT: i32 = 127;

/// Activation quantisation of one layer's input: `a ≈ scale · (q − zero)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActQuant {
    pub scale: f32,
    pub zero: i32,
    /// The channel's mean over the calibration data (0 if unknown): the weights' rounding
    /// error times it is taken off the bias (bias correction).
    #[serde(default)]
    pub mean: f32,
}

impl ActQuant {
    /// The 8-bit grid covering `[lo, hi]` (widened to include 0).
    pub fn from_range(lo: f32, hi: f32) -> ActQuant {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = ((hi - lo) / 255.0).max(1e-8);
        let zero = (-lo / scale).round().clamp(0.0, 255.0) as i32;
        ActQuant { scale, zero, mean: 0.0 }
    }

    /// `q` of `y` (`inv` = 1/scale in f32), as the kernels compute it.
    #[inline]
    pub fn quantise_u8(y: f32, inv: f32, zero: i32) -> u8 {
        ((y * inv).clamp(-1e9, 1e9).round_ties_even() as i32 + zero).clamp(0, 255) as u8
    }

    /// `(q − zero)` of `y`.
    #[inline]
    pub fn quantise(y: f32, inv: f32, zero: i32) -> i16 {
        (Self::quantise_u8(y, inv, zero) as i32 - zero) as i16
    }
}

/// The integer kernel's calibration, as a model's sidecar stores it (its `"int8"` object,
/// written by `trainer calibrate`, or by `trainer export` for a QAT run).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Int8Calibration {
    /// Per layer, the quantisation of each input channel ([`calibrate`]'s result).
    pub activations: Vec<Vec<ActQuant>>,
    /// How many images' crops it was calibrated on, and their folders.
    #[serde(default)]
    pub images: usize,
    #[serde(default)]
    pub folders: Vec<String>,
    /// Whether the weights were fine-tuned for these grids (`trainer train --qat`).
    #[serde(default)]
    pub qat: bool,
    /// The integer weights the grids give, per conv (input, blocks, output: [`QuantConv`]), for
    /// other runtimes; when present they must be what the kernel computes ([`Self::check`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<QuantConv>,
}

impl Int8Calibration {
    /// A calibration with its integer weights (`layers`) for `weights`.
    pub fn new(
        weights: &CollapsedWeights,
        activations: Vec<Vec<ActQuant>>,
        images: usize,
        folders: Vec<String>,
        qat: bool,
    ) -> Self {
        let layers = integer_layers(weights, &activations);
        Int8Calibration { activations, images, folders, qat, layers }
    }

    /// The `"int8"` object of a sidecar's text (`None` when the model carries none).
    pub fn from_sidecar(text: &str) -> Result<Option<Self>, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("sidecar: {e}"))?;
        match v.get("int8") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(c) => {
                serde_json::from_value(c.clone()).map(Some).map_err(|e| format!("sidecar int8 calibration: {e}"))
            }
        }
    }

    /// Whether the stored integer weights (if any) are those the kernel derives from `weights`
    /// and the grids: a sidecar whose weights file was replaced, or one written by another
    /// quantiser, is refused rather than run with other integers than it states.
    pub fn check(&self, weights: &CollapsedWeights) -> Result<(), String> {
        if self.layers.is_empty() {
            return Ok(());
        }
        if self.activations.len() != weights.blocks.len() + 2 {
            return Err(format!(
                "sidecar int8 calibration: {} layers of grids for {} convs",
                self.activations.len(),
                weights.blocks.len() + 2
            ));
        }
        let ours = integer_layers(weights, &self.activations);
        match ours.iter().zip(&self.layers).position(|(a, b)| a != b) {
            None if ours.len() == self.layers.len() => Ok(()),
            None => Err(format!("sidecar int8 weights: {} layers for {} convs", self.layers.len(), ours.len())),
            Some(l) => Err(format!(
                "sidecar int8 weights of layer {l} differ from the kernel's quantisation of the weights file (recalibrate with `trainer calibrate`)"
            )),
        }
    }
}

/// The integer weights of every conv (input, blocks, output) under the grids `acts` (`acts[0]`,
/// the network input's, is fixed: `(2Y − 255)/510`).
pub fn integer_layers(weights: &CollapsedWeights, acts: &[Vec<ActQuant>]) -> Vec<QuantConv> {
    let convs: Vec<&ConvWeights> = std::iter::once(&weights.input)
        .chain(weights.blocks.iter().map(|(c, _)| c))
        .chain(std::iter::once(&weights.output))
        .collect();
    let n = convs.len();
    let input = [input_quant()];
    convs
        .into_iter()
        .enumerate()
        .map(|(l, c)| {
            let a: &[ActQuant] = if l == 0 { &input } else { &acts[l] };
            quantise_conv(&c.weight, &c.bias, c.cout, c.cin, c.k, a, layer_qmax(l, n))
        })
        .collect()
}

/// The network input's grid: `x − ½ = (2Y − 255)/510`, exact for 8-bit `Y`.
pub fn input_quant() -> ActQuant {
    ActQuant { scale: 1.0 / 510.0, zero: 0, mean: 0.0 }
}

/// Whether the CPU has VNNI (`vpdpbusd`): AVX-VNNI, or AVX512-VNNI with AVX512VL.
pub fn cpu_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avxvnni")
            || (std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512vl"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What a layer needs in integer mode.
#[derive(Debug, Clone)]
pub(super) struct LayerQuant {
    /// Whether the input is in quads of 8-bit `q` (the blocks), or in int16 pairs (the input
    /// conv: `(2Y − 255, 0)`; the output conv: `q − z`).
    pub quad: bool,
    /// Whether the output (to a ring) is in quads, or in pairs `q − z` (for the output conv).
    pub out_quad: bool,
    /// One input channel in pairs of neighbouring pixels, `(x, x + 1)`, and the weights in
    /// pairs of horizontal taps (`vpdpwssd` on zmm: [`LayerQuant::with_tap_pairs`]).
    pub tap_pairs: bool,
    /// Quads: `[cout/4][cin/4][k][k][4]` words, the 4 signed weight bytes (channels 4q..4q+3)
    /// of one output channel. Pairs: `[cout/4][cin/2][k][k][4]`, the i16 pair (2q, 2q+1).
    pub w: Vec<u32>,
    /// `Σ q_w · z` over the input channels and taps, per output channel (quads; else 0).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // read by the x86 blocks only
    pub corr: Vec<i32>,
    /// The padding words of this layer's input ring, per quad (quads only).
    pub pad: Vec<u32>,
    /// Whether `|y · out_inv|` stays under the quantisation's bound (±10⁹) for any input, so
    /// that a block may skip that clamp ([`LayerQuant::new`] bounds it from the weights; only
    /// the x86 VNNI blocks have that clamp).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub in_range: bool,
    /// The end of block's constants per output channel, gathered per quad of output channels
    /// (channel `co` at `ends[co / 4]`, lane `co % 4`): every block reads them there, the zmm
    /// one without bounds checks or branches.
    pub ends: Vec<QuadEnd>,
}

/// The end-of-block constants of one quad of output channels `4·cb + j`, lane `j`: what
/// [`finish`] and the quantisation read (slopes 0 without PReLU, the `out` and `res` values 0
/// where the layer has none).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct QuadEnd {
    /// `sw[co]` (the input scales are folded into the weights).
    pub scale: [f32; 4],
    /// The bias less the weights' expected rounding error, `Σ (w_q − w) · mean(input)`.
    pub bias: [f32; 4],
    /// The PReLU slopes (read by the zmm block; the others read [`Layer::alpha`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub alpha: [f32; 4],
    /// 1 / the next layer's input scale, and its zero point (layers that feed a ring).
    pub out_inv: [f32; 4],
    pub out_zero: [i32; 4],
    /// The scale and zero point of the `f0` ring (the residual added after the last block).
    pub res_scale: [f32; 4],
    pub res_zero: [i32; 4],
}

/// One conv's weights in integers: `w[co][ci]·s_in[ci] ≈ scale[co] · q`, and the bias less the
/// weights' expected rounding error ([`quantise_conv`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantConv {
    /// `sw[co]`, per output channel.
    pub scale: Vec<f32>,
    /// OIHW, in `[−qmax, qmax]`.
    pub q: Vec<i32>,
    /// The bias less `Σ (q·sw/s_in − w) · mean(input)` (bias correction), per output channel.
    pub bias: Vec<f32>,
}

/// The largest weight magnitude of layer `l` of `n`: 7 bits between the blocks (8-bit
/// activations in quads, `vpmaddubsw`), 8 bits for the input and output convs (int16 pairs).
pub fn layer_qmax(l: usize, n: usize) -> i32 {
    if l > 0 && l + 1 < n {
        QW_MAX
    } else {
        QW_MAX_INPUT
    }
}

/// Quantises OIHW `weight` times the input scales per output channel to `[−qmax, qmax]` (see
/// the module docs): the integer kernel's weights, and those a QAT forward trains through.
pub fn quantise_conv(
    weight: &[f32],
    bias: &[f32],
    cout: usize,
    cin: usize,
    k: usize,
    input: &[ActQuant],
    qmax: i32,
) -> QuantConv {
    let per = cin * k * k;
    let qmax = qmax as f32;
    let folded: Vec<f32> = weight.iter().enumerate().map(|(i, &w)| w * input[(i / (k * k)) % cin].scale).collect();
    let mut sw = Vec::with_capacity(cout);
    let mut q = vec![0i32; weight.len()];
    for co in 0..cout {
        let row = &folded[co * per..(co + 1) * per];
        let m = row.iter().fold(0f32, |a, &v| a.max(v.abs()));
        // The grid of least squared error among max-abs ones shrunk by up to 30 %: clipping
        // a few large weights buys resolution for the others (worth 0.0x dB at 7 bits).
        let err = |s: f32| -> f64 {
            row.iter().map(|&v| ((v / s).round_ties_even().clamp(-qmax, qmax) * s - v) as f64).map(|d| d * d).sum()
        };
        let s = if m > 0.0 {
            (0..16)
                .map(|i| m * (1.0 - 0.02 * i as f32) / qmax)
                .min_by(|&a, &b| err(a).total_cmp(&err(b)))
                .unwrap_or(m / qmax)
        } else {
            1.0
        };
        sw.push(s);
        for i in 0..per {
            q[co * per + i] = (row[i] / s).round_ties_even().clamp(-qmax, qmax) as i32;
        }
    }
    let bias = (0..cout)
        .map(|co| {
            let mut e = 0f64;
            for (ci, a) in input.iter().enumerate().take(cin) {
                for t in 0..k * k {
                    let i = (co * cin + ci) * k * k + t;
                    e += (q[i] as f64 * sw[co] as f64 / a.scale as f64 - weight[i] as f64) * a.mean as f64;
                }
            }
            (bias[co] as f64 - e) as f32
        })
        .collect();
    QuantConv { scale: sw, q, bias }
}

impl LayerQuant {
    /// Lays out a conv's integer weights ([`integer_layers`]) for the blocks; `input`: this
    /// layer's input quantisation per channel, `out` the next layer's (empty for the output
    /// conv), `res` the `f0` ring's, `alpha` the PReLU slopes; `quad`/`out_quad`: input/output
    /// in quads of bytes (else int16 pairs).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        qc: QuantConv,
        cout: usize,
        cin: usize,
        k: usize,
        input: &[ActQuant],
        out: &[ActQuant],
        res: &[ActQuant],
        alpha: Option<&[f32]>,
        quad: bool,
        out_quad: bool,
    ) -> Self {
        let QuantConv { scale: sw, q, bias } = qc;
        let at = |co: usize, ci: usize, t: usize| if ci < cin { q[(co * cin + ci) * k * k + t] } else { 0 };
        let group = if quad { 4 } else { 2 };
        let mut w = Vec::with_capacity(cout * cin.div_ceil(group) * k * k);
        for cb in 0..cout / 4 {
            for g in 0..cin.div_ceil(group) {
                for t in 0..k * k {
                    for j in 0..4 {
                        let co = cb * 4 + j;
                        w.push(if quad {
                            (0..4).fold(0u32, |word, i| word | (at(co, 4 * g + i, t) as i8 as u8 as u32) << (8 * i))
                        } else {
                            at(co, 2 * g, t) as i16 as u16 as u32 | (at(co, 2 * g + 1, t) as i16 as u16 as u32) << 16
                        });
                    }
                }
            }
        }
        // |acc| ≤ 255 · Σ|q_w| (inputs q − z, or 2Y − 255, within ±255); then the bias, PReLU
        // (|slope| may exceed 1) and the residual (within ±255 steps of its grid).
        let slope = |co: usize| alpha.map_or(1.0, |a| (a[co] as f64).abs().max(1.0));
        let in_range = out.len() == cout
            && (0..cout).all(|co| {
                let wsum: f64 = q[co * cin * k * k..(co + 1) * cin * k * k].iter().map(|&w| w.abs() as f64).sum();
                let y = (255.0 * wsum * sw[co] as f64 + (bias[co] as f64).abs()) * slope(co)
                    + res.get(co).map_or(0.0, |r| 255.0 * r.scale as f64);
                let t = y / out[co].scale as f64;
                t.is_finite() && t < 0.5e9
            });
        let corr = (0..cout)
            .map(|co| {
                if !quad {
                    return 0;
                }
                (0..cin).map(|ci| (0..k * k).map(|t| at(co, ci, t)).sum::<i32>() * input[ci].zero).sum()
            })
            .collect();
        let ends = (0..cout / 4)
            .map(|cb| {
                let f = |v: &dyn Fn(usize) -> Option<f32>| std::array::from_fn(|j| v(cb * 4 + j).unwrap_or(0.0));
                let i = |v: &dyn Fn(usize) -> Option<i32>| std::array::from_fn(|j| v(cb * 4 + j).unwrap_or(0));
                QuadEnd {
                    scale: f(&|co| Some(sw[co])),
                    bias: f(&|co| Some(bias[co])),
                    alpha: f(&|co| alpha.map(|a| a[co])),
                    out_inv: f(&|co| out.get(co).map(|a| 1.0 / a.scale)),
                    out_zero: i(&|co| out.get(co).map(|a| a.zero)),
                    res_scale: f(&|co| res.get(co).map(|a| a.scale)),
                    res_zero: i(&|co| res.get(co).map(|a| a.zero)),
                }
            })
            .collect();
        LayerQuant {
            quad,
            out_quad,
            w,
            corr,
            pad: if quad { (0..cin.div_ceil(4)).map(|g| pad_word(input, g)).collect() } else { Vec::new() },
            in_range,
            tap_pairs: false,
            ends,
        }
    }

    /// The input conv (one channel, int16) with its input in pairs of neighbouring pixels and
    /// its weights in pairs of horizontal taps, `[cout/4][k][⌈k/2⌉][4]`, the word of output
    /// channel `co` at row `dy` and pair `p` holding taps `(2p, 2p + 1)` (0 past the kernel):
    /// `⌈k/2⌉` instead of `k` multiply-adds a row, the same integers.
    pub fn with_tap_pairs(mut self, qc: &QuantConv, k: usize) -> Self {
        assert!(!self.quad && self.corr.iter().all(|&c| c == 0) && qc.q.len() == self.ends.len() * 4 * k * k);
        let at = |co: usize, dy: usize, dx: usize| if dx < k { qc.q[(co * k + dy) * k + dx] } else { 0 };
        let mut w = Vec::new();
        for cb in 0..self.ends.len() {
            for dy in 0..k {
                for p in 0..k.div_ceil(2) {
                    for j in 0..4 {
                        let co = cb * 4 + j;
                        w.push(
                            at(co, dy, 2 * p) as i16 as u16 as u32 | (at(co, dy, 2 * p + 1) as i16 as u16 as u32) << 16,
                        );
                    }
                }
            }
        }
        self.w = w;
        self.tap_pairs = true;
        self
    }
}

/// The padding word of a ring of quads: each channel's zero point (0 past the channels).
pub(super) fn pad_word(acts: &[ActQuant], quad: usize) -> u32 {
    (0..4).fold(0, |w, i| w | acts.get(4 * quad + i).map_or(0, |a| a.zero as u32 & 0xFF) << (8 * i))
}

/// The float value of `(acc, co)` after bias, PReLU and the residual — the order every variant
/// follows, so that they agree bit for bit.
#[inline]
fn finish(acc: i32, co: usize, layer: &Layer, q: &LayerQuant, res: Option<u8>) -> f32 {
    let (e, j) = (&q.ends[co / 4], co % 4);
    let mut y = acc as f32 * e.scale[j] + e.bias[j];
    if let Some(al) = &layer.alpha {
        y = y.max(0.0) + al[co] * y.min(0.0);
    }
    if let Some(r) = res {
        y += (r as i32 - e.res_zero[j]) as f32 * e.res_scale[j];
    }
    y
}

/// The i16 pair of word `w`: (low, high).
#[inline]
fn pair(w: u32) -> (i32, i32) {
    (w as u16 as i16 as i32, (w >> 16) as u16 as i16 as i32)
}

/// Byte `i` of word `w`, unsigned or signed.
#[inline]
fn byte(w: u32, i: usize) -> i32 {
    (w >> (8 * i)) as u8 as i32
}

#[inline]
fn sbyte(w: u32, i: usize) -> i32 {
    (w >> (8 * i)) as u8 as i8 as i32
}

/// One output row of a k×k convolution in integers (see the module docs); safe Rust, the
/// reference of the SIMD variants and the portable variant itself. Rows hold 32-bit words
/// (`f32` slots holding the bits): quads of `q` (or the input pair); `out` quads (`to_ring`)
/// or float32.
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
    assert!(!q.tap_pairs, "tap pairs are the zmm block's");
    let p = K / 2;
    let groups = layer.cin.div_ceil(if q.quad { 4 } else { 2 });
    let zeros: Vec<i32> =
        if q.quad { (0..groups * 4).map(|c| byte(q.pad_in(c / 4), c % 4)).collect() } else { Vec::new() };
    let mut acc = vec![0i32; 4 * cw];
    for cb in 0..layer.cout / 4 {
        let e = &q.ends[cb];
        acc.fill(0);
        let mut wi = cb * groups * K * K * 4;
        for g in 0..groups {
            for row in rows.iter().take(K) {
                let base = g * cs + PAD - p;
                for dx in 0..K {
                    let seg = &row[base + dx..base + dx + cw];
                    for j in 0..4 {
                        let wq = q.w[wi + j];
                        for (a, &x) in acc[j * cw..(j + 1) * cw].iter_mut().zip(seg) {
                            let x = x.to_bits();
                            *a += if q.quad {
                                (0..4).map(|i| sbyte(wq, i) * (byte(x, i) - zeros[4 * g + i])).sum::<i32>()
                            } else {
                                let ((x0, x1), (w0, w1)) = (pair(x), pair(wq));
                                x0 * w0 + x1 * w1
                            };
                        }
                    }
                    wi += 4;
                }
            }
        }
        for i in 0..cw {
            let at = PAD + i;
            let mut word = 0u32;
            for j in 0..4 {
                let co = cb * 4 + j;
                let res = post.residual.map(|r| byte(r[cb * cs + at].to_bits(), j) as u8);
                let y = finish(acc[j * cw + i], co, layer, q, res);
                if !to_ring {
                    out[co * cs + at] = y;
                } else if q.out_quad {
                    word |= (ActQuant::quantise_u8(y, e.out_inv[j], e.out_zero[j]) as u32) << (8 * j);
                } else {
                    let v = ActQuant::quantise(y, e.out_inv[j], e.out_zero[j]) as u16 as u32;
                    word |= v << (16 * (j % 2));
                    if j % 2 == 1 {
                        out[(co / 2) * cs + at] = f32::from_bits(std::mem::take(&mut word));
                    }
                }
            }
            if to_ring && q.out_quad {
                out[cb * cs + at] = f32::from_bits(word);
            }
        }
    }
}

impl LayerQuant {
    /// The padding word of quad `g` of this layer's input (its channels' zero points).
    fn pad_in(&self, g: usize) -> u32 {
        self.pad.get(g).copied().unwrap_or(0)
    }
}
/// [`conv_row`] with AVX2: a register block of 16 pixels (2 ymm) × the 4 output channels of a
/// quad (8 int32 accumulators): per quad of input channels and tap, 2 loads, 4 weight
/// broadcasts and 8 × (`vpmaddubsw`, `vpmaddwd` by ones, `vpaddd`) — or, for the input conv's
/// int16 pairs, 8 × (`vpmaddwd`, `vpaddd`). Then the same float steps as [`finish`], vectorised,
/// and the 4 channels packed into one word per pixel (`vpackssdw`, `vpackuswb` saturate to
/// 0..255 as the reference's clamp does).
///
/// # Safety
/// As [`super::avx512::conv_row`] with rows of 32-bit words (quads, or pairs when `!q.quad`),
/// `out` in quads when `to_ring`, `cw` a multiple of 16, and AVX2 present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn conv_row_avx2<const K: usize>(
    rows: &[&[f32]; 5],
    cs: usize,
    layer: &Layer,
    q: &LayerQuant,
    cw: usize,
    out: &mut [f32],
    post: &Post,
    to_ring: bool,
    vnni: Vnni,
) {
    assert!(!q.tap_pairs || vnni == Vnni::Zmm, "tap pairs are the zmm block's");
    match (q.quad, vnni) {
        (true, Vnni::None) => conv_row_avx2_g::<K, true, 0>(rows, cs, layer, q, cw, out, post, to_ring),
        (true, Vnni::Vex) => conv_row_avx2_g::<K, true, 1>(rows, cs, layer, q, cw, out, post, to_ring),
        (true, Vnni::Evex) => conv_row_avx2_g::<K, true, 2>(rows, cs, layer, q, cw, out, post, to_ring),
        (true, Vnni::Zmm) => conv_row_vnni512::<K, QUADS>(rows, cs, layer, q, cw, out, post, to_ring),
        (false, Vnni::Zmm) if q.tap_pairs => {
            conv_row_vnni512::<K, TAP_PAIRS>(rows, cs, layer, q, cw, out, post, to_ring)
        }
        (false, Vnni::Zmm) => conv_row_vnni512::<K, PAIRS>(rows, cs, layer, q, cw, out, post, to_ring),
        (false, _) => conv_row_avx2_g::<K, false, 0>(rows, cs, layer, q, cw, out, post, to_ring),
    }
}

/// Which `vpdpbusd` the integer AVX2 block uses for quads, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vnni {
    /// `vpmaddubsw` + `vpmaddwd` + `vpaddd`.
    None,
    /// AVX-VNNI (VEX-encoded, Intel client CPUs since Alder Lake).
    Vex,
    /// AVX512-VNNI with AVX512VL (EVEX-encoded on ymm: Xeon since Cascade Lake, AMD Zen 4/5).
    Evex,
    /// AVX512-VNNI on zmm, 64 pixels × 4 output channels (the AVX-512 variant's tiles).
    Zmm,
}

impl Vnni {
    /// The best this CPU has.
    pub fn detect() -> Vnni {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avxvnni") {
                return Vnni::Vex;
            }
            if has!("avx512vnni") && has!("avx512vl") {
                return Vnni::Evex;
            }
        }
        Vnni::None
    }

    /// The best for the network's variant `isa`: the 512-bit block needs the AVX-512 variant's
    /// tiles (multiples of 64 pixels).
    pub fn detect_for(isa: super::Isa) -> Vnni {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if isa == super::Isa::Avx512 && has!("avx512vnni") && has!("avx512bw") && has!("avx512f") {
                return Vnni::Zmm;
            }
        }
        if isa == super::Isa::Portable {
            Vnni::None
        } else {
            Vnni::detect()
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Vnni::None => "avx2",
            Vnni::Vex => "avx-vnni",
            Vnni::Evex => "avx512-vnni-ymm",
            Vnni::Zmm => "avx512-vnni",
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn conv_row_avx2_g<const K: usize, const QUAD: bool, const VNNI: u8>(
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
    const V: usize = 2;
    let p = K / 2;
    let groups = layer.cin.div_ceil(if QUAD { 4 } else { 2 });
    let zero = _mm256_setzero_si256();
    let ones = _mm256_set1_epi16(1);
    let out = out.as_mut_ptr();
    for xb in (0..cw).step_by(8 * V) {
        for cb in 0..layer.cout / 4 {
            let mut acc = [[zero; V]; 4];
            let mut wp = q.w.as_ptr().add(cb * groups * K * K * 4);
            for g in 0..groups {
                for row in rows.iter().take(K) {
                    let base = (row.as_ptr() as *const i32).add(g * cs + PAD - p + xb);
                    for dx in 0..K {
                        if QUAD && VNNI == 1 {
                            vnni_step_vex(&mut acc, base.add(dx), wp);
                        } else if QUAD && VNNI == 2 {
                            vnni_step_evex(&mut acc, base.add(dx), wp);
                        } else if QUAD {
                            quad_step(&mut acc, base.add(dx), wp, ones);
                        } else {
                            pair_step(&mut acc, base.add(dx), wp);
                        }
                        wp = wp.add(4);
                    }
                }
            }
            finish_block::<V>(&acc, xb, cb, cs, layer, q, out, post, to_ring);
        }
    }
}

/// The end of an integer register block, `acc[j][v]` (output channel `4·cb + j`, pixels
/// `xb + 8v ..`): the same float steps as [`finish`], vectorised, then the next layer's
/// quantisation with the 4 channels packed into one word per pixel (`vpackssdw`, `vpackuswb`
/// saturate to 0..255 as the reference's clamp does), or int16 pairs, or float32 out.
///
/// # Safety
/// As [`conv_row_avx2`], for the `8·V` pixels from `xb`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn finish_block<const V: usize>(
    acc: &[[std::arch::x86_64::__m256i; V]; 4],
    xb: usize,
    cb: usize,
    cs: usize,
    layer: &Layer,
    q: &LayerQuant,
    out: *mut f32,
    post: &Post,
    to_ring: bool,
) {
    use std::arch::x86_64::*;
    let zero = _mm256_setzero_si256();
    let fzero = _mm256_setzero_ps();
    // Byte 4·ch + px of a lane → byte 4·px + ch: the 4 channels of a pixel side by side.
    let interleave = _mm256_setr_epi8(
        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
    );
    let e = &q.ends[cb];
    let mut ys = [[fzero; V]; 4];
    for j in 0..4 {
        let co = cb * 4 + j;
        let corr = _mm256_set1_epi32(q.corr[co]);
        let scale = _mm256_set1_ps(e.scale[j]);
        let bias = _mm256_set1_ps(e.bias[j]);
        let slope = layer.alpha.as_ref().map(|al| _mm256_set1_ps(al[co]));
        for v in 0..V {
            let at = PAD + xb + v * 8;
            let a = _mm256_sub_epi32(acc[j][v], corr);
            let mut y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a), scale), bias);
            if let Some(s) = slope {
                y = _mm256_add_ps(_mm256_max_ps(y, fzero), _mm256_mul_ps(s, _mm256_min_ps(y, fzero)));
            }
            if let Some(r) = post.residual {
                let word = _mm256_loadu_si256((r.as_ptr() as *const i32).add(cb * cs + at) as *const _);
                let shifted = _mm256_srlv_epi32(word, _mm256_set1_epi32(8 * j as i32));
                let b = _mm256_and_si256(shifted, _mm256_set1_epi32(0xFF));
                let d = _mm256_sub_epi32(b, _mm256_set1_epi32(e.res_zero[j]));
                y = _mm256_add_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(e.res_scale[j])));
            }
            ys[j][v] = y;
        }
    }
    for v in 0..V {
        let at = PAD + xb + v * 8;
        let quant = |j: usize| {
            let t = _mm256_mul_ps(ys[j][v], _mm256_set1_ps(e.out_inv[j]));
            let t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-1e9)), _mm256_set1_ps(1e9));
            // Round to nearest even (MXCSR default), + zero.
            _mm256_add_epi32(_mm256_cvtps_epi32(t), _mm256_set1_epi32(e.out_zero[j]))
        };
        if to_ring && q.out_quad {
            // The packs saturate to 0..255: the clamp.
            let lo = _mm256_packs_epi32(quant(0), quant(1));
            let hi = _mm256_packs_epi32(quant(2), quant(3));
            let word = _mm256_shuffle_epi8(_mm256_packus_epi16(lo, hi), interleave);
            _mm256_storeu_si256((out as *mut i32).add(cb * cs + at) as *mut __m256i, word);
        } else if to_ring {
            // Pairs (q − z) of channels (0, 1) and (2, 3).
            let centred = |j: usize| {
                let qv = _mm256_min_epi32(_mm256_max_epi32(quant(j), zero), _mm256_set1_epi32(255));
                _mm256_sub_epi32(qv, _mm256_set1_epi32(e.out_zero[j]))
            };
            for h in 0..2 {
                let word = _mm256_or_si256(
                    _mm256_and_si256(centred(2 * h), _mm256_set1_epi32(0xFFFF)),
                    _mm256_slli_epi32::<16>(centred(2 * h + 1)),
                );
                _mm256_storeu_si256((out as *mut i32).add((cb * 2 + h) * cs + at) as *mut __m256i, word);
            }
        } else {
            for j in 0..4 {
                _mm256_storeu_ps(out.add((cb * 4 + j) * cs + at), ys[j][v]);
            }
        }
    }
}

/// The input layouts of [`conv_row_vnni512`]: quads of bytes, int16 channel pairs, int16 pixel
/// pairs with tap-pair weights ([`LayerQuant::with_tap_pairs`]).
#[cfg(target_arch = "x86_64")]
const QUADS: u8 = 0;
#[cfg(target_arch = "x86_64")]
const PAIRS: u8 = 1;
#[cfg(target_arch = "x86_64")]
const TAP_PAIRS: u8 = 2;

/// [`conv_row_avx2`]'s block on zmm with AVX512-VNNI: 64 pixels (4 zmm) × the 4 output
/// channels of a quad, 16 int32 accumulators; per quad of input channels (`QUAD`) or int16 pair
/// and tap, 4 loads, 4 weight broadcasts and 16 `vpdpbusd` (u8 × s8) or `vpdpwssd` (i16 × i16).
/// The sums are the same integers; the end of the block is [`finish_block`] on the
/// accumulators' 256-bit halves, so every variant agrees bit for bit.
///
/// # Safety
/// As [`conv_row_avx2`] with `cw` a multiple of 64 and AVX-512F/BW and AVX512-VNNI present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn conv_row_vnni512<const K: usize, const INPUT: u8>(
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
    let p = K / 2;
    let groups = layer.cin.div_ceil(if INPUT == QUADS { 4 } else { 2 });
    assert_eq!(q.tap_pairs, INPUT == TAP_PAIRS);
    // With VNNI every ring between layers holds quads (`NativeSesr::lay_out_int8`).
    assert!(!to_ring || q.out_quad, "the zmm block writes quads");
    assert!(post.residual.is_none_or(|r| r.len() >= cs * layer.cout / 4) && q.ends.len() == layer.cout / 4);
    let out = out.as_mut_ptr();
    let residual = post.residual.map_or(std::ptr::null(), |r| r.as_ptr() as *const i32);
    let end = end512(layer.alpha.is_some(), post.residual.is_some(), to_ring, !q.in_range);
    for xb in (0..cw).step_by(64) {
        for cb in 0..layer.cout / 4 {
            // The sums start at `−corr` (the zero points' share; 0 for pairs).
            let mut acc = [[_mm512_setzero_si512(); 4]; 4];
            for (j, a) in acc.iter_mut().enumerate() {
                *a = [_mm512_set1_epi32(-q.corr[cb * 4 + j]); 4];
            }
            let taps = if INPUT == TAP_PAIRS { K * K.div_ceil(2) } else { K * K };
            let mut wp = q.w.as_ptr().add(cb * groups * taps * 4);
            for g in 0..groups {
                for row in rows.iter().take(K) {
                    let base = (row.as_ptr() as *const i32).add(g * cs + PAD - p + xb);
                    if INPUT == TAP_PAIRS {
                        for dx in (0..K).step_by(2) {
                            vnni512_step_pair(&mut acc, base.add(dx), wp);
                            wp = wp.add(4);
                        }
                        continue;
                    }
                    for dx in 0..K {
                        if INPUT == QUADS {
                            vnni512_step_quad(&mut acc, base.add(dx), wp);
                        } else {
                            vnni512_step_pair(&mut acc, base.add(dx), wp);
                        }
                        wp = wp.add(4);
                    }
                }
            }
            let at = PAD + xb;
            let (dst, res) = if to_ring {
                (out.add(cb * cs + at), residual.wrapping_add(cb * cs + at))
            } else {
                (out.add(cb * 4 * cs + at), residual)
            };
            // A copy: the accumulators' own address must not escape (they would live in memory).
            let sums = acc;
            end(&sums, &q.ends[cb], dst, cs, res);
        }
    }
}

/// The four instructions of [`vnni512_step`] for output channel `$j` (its weight word
/// broadcast in `w$j`): `acc[j][v] $op= w[j] · x[v]` for the 4 vectors.
#[cfg(target_arch = "x86_64")]
macro_rules! vnni512_channel {
    ($op:literal, $j:literal) => {
        concat!(
            vnni512_tap!($op, $j, "0"),
            "\n",
            vnni512_tap!($op, $j, "1"),
            "\n",
            vnni512_tap!($op, $j, "2"),
            "\n",
            vnni512_tap!($op, $j, "3"),
        )
    };
}

/// One instruction of [`vnni512_channel`]: accumulator `a$j$v` from vector `x$v` and weight
/// `w$j`.
#[cfg(target_arch = "x86_64")]
macro_rules! vnni512_tap {
    ($op:literal, $j:literal, $v:literal) => {
        concat!($op, " {a", $j, $v, "}, {x", $v, "}, {w", $j, "}")
    };
}

/// One quad of input channels (or int16 pair) at one tap on zmm: `acc[j][v] += w[j] · x[v]` for
/// 64 pixels (`x`, 4 loads) and 4 output channels (`w`, 4 weight words, each broadcast once
/// into a register: 8 loads a step where broadcasts embedded in the 16 `vpdpbusd`/`vpdpwssd`
/// made 20; measured 2–3 % faster on a Zen 4). In assembly so that the 16 accumulators stay in
/// registers: compiled from intrinsics, they were stored to the stack at every tap once the
/// block's end grew (measured 0.6× the speed).
macro_rules! vnni512_step {
    ($name:ident, $op:literal) => {
        /// # Safety
        /// `x` readable for 64 words, `w` for 4, AVX512-VNNI present.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vnni")]
        #[inline]
        unsafe fn $name(acc: &mut [[std::arch::x86_64::__m512i; 4]; 4], x: *const i32, w: *const u32) {
            std::arch::asm!(
                "vmovdqu32 {x0}, zmmword ptr [{xp}]",
                "vmovdqu32 {x1}, zmmword ptr [{xp} + 64]",
                "vmovdqu32 {x2}, zmmword ptr [{xp} + 128]",
                "vmovdqu32 {x3}, zmmword ptr [{xp} + 192]",
                "vpbroadcastd {w0}, dword ptr [{wp}]",
                "vpbroadcastd {w1}, dword ptr [{wp} + 4]",
                "vpbroadcastd {w2}, dword ptr [{wp} + 8]",
                "vpbroadcastd {w3}, dword ptr [{wp} + 12]",
                vnni512_channel!($op, "0"),
                vnni512_channel!($op, "1"),
                vnni512_channel!($op, "2"),
                vnni512_channel!($op, "3"),
                xp = in(reg) x,
                wp = in(reg) w,
                a00 = inout(zmm_reg) acc[0][0],
                a01 = inout(zmm_reg) acc[0][1],
                a02 = inout(zmm_reg) acc[0][2],
                a03 = inout(zmm_reg) acc[0][3],
                a10 = inout(zmm_reg) acc[1][0],
                a11 = inout(zmm_reg) acc[1][1],
                a12 = inout(zmm_reg) acc[1][2],
                a13 = inout(zmm_reg) acc[1][3],
                a20 = inout(zmm_reg) acc[2][0],
                a21 = inout(zmm_reg) acc[2][1],
                a22 = inout(zmm_reg) acc[2][2],
                a23 = inout(zmm_reg) acc[2][3],
                a30 = inout(zmm_reg) acc[3][0],
                a31 = inout(zmm_reg) acc[3][1],
                a32 = inout(zmm_reg) acc[3][2],
                a33 = inout(zmm_reg) acc[3][3],
                x0 = out(zmm_reg) _,
                x1 = out(zmm_reg) _,
                x2 = out(zmm_reg) _,
                x3 = out(zmm_reg) _,
                w0 = out(zmm_reg) _,
                w1 = out(zmm_reg) _,
                w2 = out(zmm_reg) _,
                w3 = out(zmm_reg) _,
                options(nostack, readonly, preserves_flags),
            );
        }
    };
}

vnni512_step!(vnni512_step_quad, "vpdpbusd");
vnni512_step!(vnni512_step_pair, "vpdpwssd");

/// An instance of [`finish_block512`]: `(acc, ends, out, cs, residual)`.
#[cfg(target_arch = "x86_64")]
type End512 = unsafe fn(&[[std::arch::x86_64::__m512i; 4]; 4], &QuadEnd, *mut f32, usize, *const i32);

/// The [`finish_block512`] for a layer: with PReLU (`alpha`), the residual (`res`), quads out
/// (`ring`, else float32) and the upper clamp (`clamp`), each decided once per row.
#[cfg(target_arch = "x86_64")]
fn end512(alpha: bool, res: bool, ring: bool, clamp: bool) -> End512 {
    macro_rules! pick {
        ($(($a:literal, $r:literal, $g:literal, $c:literal)),*) => {
            match (alpha, res, ring, clamp) {
                $(($a, $r, $g, $c) => finish_block512::<$a, $r, $g, $c>,)*
            }
        };
    }
    pick!(
        (false, false, false, false),
        (false, false, false, true),
        (false, false, true, false),
        (false, false, true, true),
        (false, true, false, false),
        (false, true, false, true),
        (false, true, true, false),
        (false, true, true, true),
        (true, false, false, false),
        (true, false, false, true),
        (true, false, true, false),
        (true, false, true, true),
        (true, true, false, false),
        (true, true, false, true),
        (true, true, true, false),
        (true, true, true, true)
    )
}

/// [`finish_block`] on zmm for quads or float32 out, from sums that already hold `−corr`: the
/// same float steps in the same order, so the same values bit for bit. Specialised by the
/// layer's steps (see [`end512`]), its constants gathered per quad (`e`): no branch and no
/// bounds check between the sums and the store. `out` is the block's first pixel in its first
/// row (the quad's ring row, or channel `4·cb`'s float row; rows `cs` apart), `residual` the
/// block's first `f0` word (unread without `RES`).
///
/// # Safety
/// As [`conv_row_vnni512`], for the 64 pixels from `out` (and `residual`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
#[allow(clippy::needless_range_loop)]
unsafe fn finish_block512<const ALPHA: bool, const RES: bool, const RING: bool, const CLAMP: bool>(
    acc: &[[std::arch::x86_64::__m512i; 4]; 4],
    e: &QuadEnd,
    out: *mut f32,
    cs: usize,
    residual: *const i32,
) {
    use std::arch::x86_64::*;
    let fzero = _mm512_setzero_ps();
    // As in `finish_block`, per 128-bit lane: byte 4·ch + px → byte 4·px + ch.
    let interleave = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    // One 16-pixel column at a time, its 4 channels in registers.
    for v in 0..4 {
        let word = if RES { _mm512_loadu_si512(residual.add(v * 16) as *const _) } else { _mm512_setzero_si512() };
        let mut ys = [fzero; 4];
        for j in 0..4 {
            let mut y = _mm512_add_ps(
                _mm512_mul_ps(_mm512_cvtepi32_ps(acc[j][v]), _mm512_set1_ps(e.scale[j])),
                _mm512_set1_ps(e.bias[j]),
            );
            if ALPHA {
                // `max(y, 0) + s·min(y, 0)` as a masked product: the same values (a zero's
                // sign aside, which no later step sees).
                let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(y, fzero);
                y = _mm512_mask_mul_ps(y, lt, _mm512_set1_ps(e.alpha[j]), y);
            }
            if RES {
                let b = match j {
                    0 => _mm512_and_si512(word, _mm512_set1_epi32(0xFF)),
                    1 => _mm512_and_si512(_mm512_srli_epi32::<8>(word), _mm512_set1_epi32(0xFF)),
                    2 => _mm512_and_si512(_mm512_srli_epi32::<16>(word), _mm512_set1_epi32(0xFF)),
                    _ => _mm512_srli_epi32::<24>(word),
                };
                let d = _mm512_sub_epi32(b, _mm512_set1_epi32(e.res_zero[j]));
                y = _mm512_add_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(e.res_scale[j])));
            }
            ys[j] = y;
        }
        if !RING {
            for j in 0..4 {
                _mm512_storeu_ps(out.add(j * cs + v * 16), ys[j]);
            }
            continue;
        }
        let mut qs = [_mm512_setzero_si512(); 4];
        for j in 0..4 {
            let mut t = _mm512_mul_ps(ys[j], _mm512_set1_ps(e.out_inv[j]));
            // Below −2³¹ (and NaN: `min` returns its second operand) converts to −2³¹, which
            // the packs take to 0 as `finish_block`'s clamp does: only the upper end needs it,
            // and only where the weights do not bound it already.
            if CLAMP {
                t = _mm512_min_ps(_mm512_set1_ps(1e9), t);
            }
            // Round to nearest even (MXCSR default), + zero.
            qs[j] = _mm512_add_epi32(_mm512_cvtps_epi32(t), _mm512_set1_epi32(e.out_zero[j]));
        }
        // The packs saturate to 0..255: the clamp.
        let lo = _mm512_packs_epi32(qs[0], qs[1]);
        let hi = _mm512_packs_epi32(qs[2], qs[3]);
        let word = _mm512_shuffle_epi8(_mm512_packus_epi16(lo, hi), interleave);
        _mm512_storeu_si512((out as *mut i32).add(v * 16) as *mut _, word);
    }
}

/// The assembly of [`quad_step`] and [`pair_step`]: 2 loads of 8 words, then for each of the 4
/// output channels the sequence `$channel` (`quad_channel` or `pair_channel`) into its two
/// accumulators; `$ones` (the int16 ones of `vpmaddwd`) for the quad sequence.
#[cfg(target_arch = "x86_64")]
macro_rules! ymm_step_asm {
    ($channel:ident, $acc:ident, $x:ident, $w:ident $(, $ones:ident)?) => {
        std::arch::asm!(
            "vmovdqu {x0}, ymmword ptr [{xp}]",
            "vmovdqu {x1}, ymmword ptr [{xp} + 32]",
            $channel!("0", ""),
            $channel!("1", " + 4"),
            $channel!("2", " + 8"),
            $channel!("3", " + 12"),
            xp = in(reg) $x,
            wp = in(reg) $w,
            $(ones = in(ymm_reg) $ones,)?
            a00 = inout(ymm_reg) $acc[0][0],
            a01 = inout(ymm_reg) $acc[0][1],
            a10 = inout(ymm_reg) $acc[1][0],
            a11 = inout(ymm_reg) $acc[1][1],
            a20 = inout(ymm_reg) $acc[2][0],
            a21 = inout(ymm_reg) $acc[2][1],
            a30 = inout(ymm_reg) $acc[3][0],
            a31 = inout(ymm_reg) $acc[3][1],
            x0 = out(ymm_reg) _,
            x1 = out(ymm_reg) _,
            w = out(ymm_reg) _,
            t0 = out(ymm_reg) _,
            t1 = out(ymm_reg) _,
            options(nostack, readonly, preserves_flags),
        )
    };
}

/// [`quad_step`]'s sequence for output channel `$j` (weight word at `[wp$off]`): broadcast,
/// `vpmaddubsw` (u8 × s8 pairs into int16), `vpmaddwd` by ones (into int32), accumulate.
#[cfg(target_arch = "x86_64")]
macro_rules! quad_channel {
    ($j:literal, $off:literal) => {
        concat!(
            ymm_broadcast!($off),
            "vpmaddubsw {t0}, {x0}, {w}\n",
            "vpmaddubsw {t1}, {x1}, {w}\n",
            "vpmaddwd {t0}, {t0}, {ones}\n",
            "vpmaddwd {t1}, {t1}, {ones}\n",
            ymm_accumulate!($j),
        )
    };
}

/// [`pair_step`]'s sequence for output channel `$j`: broadcast, `vpmaddwd` (i16 × i16 pairs
/// into int32), accumulate.
#[cfg(target_arch = "x86_64")]
macro_rules! pair_channel {
    ($j:literal, $off:literal) => {
        concat!(ymm_broadcast!($off), "vpmaddwd {t0}, {x0}, {w}\n", "vpmaddwd {t1}, {x1}, {w}\n", ymm_accumulate!($j))
    };
}

/// The first instruction of [`quad_channel`] and [`pair_channel`]: the weight word at
/// `[wp$off]` to all 8 lanes of `w`.
#[cfg(target_arch = "x86_64")]
macro_rules! ymm_broadcast {
    ($off:literal) => {
        concat!("vpbroadcastd {w}, dword ptr [{wp}", $off, "]\n")
    };
}

/// The last two of [`quad_channel`] and [`pair_channel`]: the products `t0`, `t1` added to
/// output channel `$j`'s accumulators.
#[cfg(target_arch = "x86_64")]
macro_rules! ymm_accumulate {
    ($j:literal) => {
        concat!("vpaddd {a", $j, "0}, {a", $j, "0}, {t0}\n", "vpaddd {a", $j, "1}, {a", $j, "1}, {t1}")
    };
}

/// One quad of input channels at one tap: `acc[j][v] += Σ₄ w[j] · x[v]` for 16 pixels (`x`)
/// and 4 output channels (`w`, 4 weight words). In assembly so that the 8 accumulators stay in
/// registers: compiled from intrinsics, the unrolled taps spilled them to the stack (measured
/// 1.45× fp32 with spills).
///
/// # Safety
/// `x` readable for 16 words, `w` for 4, AVX2 present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn quad_step(
    acc: &mut [[std::arch::x86_64::__m256i; 2]; 4],
    x: *const i32,
    w: *const u32,
    ones: std::arch::x86_64::__m256i,
) {
    ymm_step_asm!(quad_channel, acc, x, w, ones);
}

/// [`quad_step`] with VNNI: one `vpdpbusd` (u8 × s8, four products summed into int32, no
/// saturation) per 8 accumulators' worth of (`vpmaddubsw`, `vpmaddwd`, `vpaddd`) — the same
/// integers. `$enc` is `{vex} ` for AVX-VNNI, empty for EVEX (AVX512-VNNI + VL).
macro_rules! vnni_step {
    ($name:ident, $enc:literal, $doc:literal) => {
        #[doc = $doc]
        ///
        /// # Safety
        /// As [`quad_step`], and the CPU has that VNNI.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[inline]
        unsafe fn $name(acc: &mut [[std::arch::x86_64::__m256i; 2]; 4], x: *const i32, w: *const u32) {
            std::arch::asm!(
                "vmovdqu {x0}, ymmword ptr [{xp}]",
                "vmovdqu {x1}, ymmword ptr [{xp} + 32]",
                "vpbroadcastd {w0}, dword ptr [{wp}]",
                "vpbroadcastd {w1}, dword ptr [{wp} + 4]",
                concat!($enc, "vpdpbusd {a00}, {x0}, {w0}"),
                concat!($enc, "vpdpbusd {a01}, {x1}, {w0}"),
                concat!($enc, "vpdpbusd {a10}, {x0}, {w1}"),
                concat!($enc, "vpdpbusd {a11}, {x1}, {w1}"),
                "vpbroadcastd {w0}, dword ptr [{wp} + 8]",
                "vpbroadcastd {w1}, dword ptr [{wp} + 12]",
                concat!($enc, "vpdpbusd {a20}, {x0}, {w0}"),
                concat!($enc, "vpdpbusd {a21}, {x1}, {w0}"),
                concat!($enc, "vpdpbusd {a30}, {x0}, {w1}"),
                concat!($enc, "vpdpbusd {a31}, {x1}, {w1}"),
                xp = in(reg) x,
                wp = in(reg) w,
                a00 = inout(ymm_reg) acc[0][0],
                a01 = inout(ymm_reg) acc[0][1],
                a10 = inout(ymm_reg) acc[1][0],
                a11 = inout(ymm_reg) acc[1][1],
                a20 = inout(ymm_reg) acc[2][0],
                a21 = inout(ymm_reg) acc[2][1],
                a30 = inout(ymm_reg) acc[3][0],
                a31 = inout(ymm_reg) acc[3][1],
                x0 = out(ymm_reg) _,
                x1 = out(ymm_reg) _,
                w0 = out(ymm_reg) _,
                w1 = out(ymm_reg) _,
                options(nostack, readonly, preserves_flags),
            );
        }
    };
}

vnni_step!(vnni_step_vex, "{{vex}} ", "AVX-VNNI step.");
vnni_step!(vnni_step_evex, "", "AVX512-VNNI (VL) step.");

/// [`quad_step`] for int16 pairs: `vpmaddwd` and `vpaddd`.
///
/// # Safety
/// As [`quad_step`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn pair_step(acc: &mut [[std::arch::x86_64::__m256i; 2]; 4], x: *const i32, w: *const u32) {
    ymm_step_asm!(pair_channel, acc, x, w);
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
    _vnni: Vnni,
) {
    unreachable!("Isa::Avx2 is never available off x86-64")
}

/// 'Same' zero-padded k×k convolution in float32 (calibration only: plain loops).
fn conv_f32(x: &[f32], h: usize, w: usize, c: &ConvWeights) -> Vec<f32> {
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
/// squared error (`best_grid`). Returns per layer one [`ActQuant`] per input channel (the
/// first layer's, the network input, is fixed by the kernel).
pub fn calibrate(weights: &CollapsedWeights, planes: &[(&[u8], usize, usize)]) -> Vec<Vec<ActQuant>> {
    let f = weights.cfg.f;
    let n = weights.blocks.len() + 2;
    // [layer][channel]
    let mut lo = vec![vec![0f32; f]; n];
    let mut hi = vec![vec![0f32; f]; n];
    let mut samples: Vec<Vec<Vec<f32>>> = vec![vec![Vec::new(); f]; n];
    let mut sums = vec![vec![(0f64, 0usize); f]; n];
    let mut see = |l: usize, v: &[f32], plane: usize| {
        for (i, &x) in v.iter().enumerate() {
            let c = i / plane;
            sums[l][c].0 += x as f64;
            sums[l][c].1 += 1;
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
    let mut acts: Vec<Vec<ActQuant>> = (0..n)
        .map(|l| {
            (0..f)
                .map(|c| {
                    let (sum, count) = sums[l][c];
                    let mean = if count > 0 { (sum / count as f64) as f32 } else { 0.0 };
                    ActQuant { mean, ..best_grid(&samples[l][c], lo[l][c], hi[l][c]) }
                })
                .collect()
        })
        .collect();
    acts[0] = vec![input_quant()];
    acts
}
