//! Native CPU inference of the collapsed network: a direct convolution that streams the frame
//! row by row through all layers at once, with one inner block per instruction set behind a
//! runtime dispatch.
//!
//! libtorch runs each layer over the whole frame (or a stripe) before the next, so the 16-channel
//! activations of a 1080p frame (130 MB) go through memory once per layer. Here every layer keeps
//! only the few input rows its kernel needs (a ring of `k` rows; `f0`, needed again by the
//! residual after the last block, keeps `m + 3`), and a row flows through all `m + 2` layers while
//! it is still in L2. The frame is cut into column tiles (and one row band per thread), each
//! widened by the receptive-field radius so that a tile's output equals the whole frame's; the
//! widened borders are recomputed, the only extra work.
//!
//! Layout: planar rows (`[channel][column]`), pixels in the SIMD lanes. A register block is
//! `XB` pixels × 4 output channels; per input channel and tap it costs a few unaligned loads,
//! 4 weight broadcasts and `XB/lanes × 4` FMAs, for any channel count that is a multiple of 4 —
//! the 1-channel input conv, the 16→16 blocks and the 16→4 output conv alike, and also
//! channel-pruned (f = 12, 8) models. The rings, tiles, bands and threads are shared by all
//! variants ([`Isa`]); only the inner block differs:
//!
//! * `avx512` — 64 px (4 zmm) × 4 channels, 16 accumulators; also bf16 (`vdpbf16ps`);
//! * `avx2` — AVX2+FMA, 16 ymm registers: 24 px (3 ymm) × 4 channels, 12 accumulators;
//! * `portable` — safe Rust on fixed-size arrays, vectorised by the compiler for the target's
//!   baseline (SSE2 on x86-64, NEON on aarch64); correct on any CPU.
//!
//! The best variant of the CPU is detected once; `SESR_NATIVE_ISA=avx512|avx2|portable` forces
//! one (refused when the CPU lacks it). The arithmetic is the model's, in float32 with a
//! different summation order: outputs match libtorch to float rounding.

mod avx2;
mod avx512;
pub mod int8;
mod portable;

use crate::collapsed_weights::{CollapsedWeights, ConvWeights, Precision};
use crate::pool::Pool;
use crate::sample::{Depth, Sample};
use std::sync::OnceLock;

/// Left padding of every ring row: the largest kernel radius (5×5).
const PAD: usize = 2;
/// Target compute width of a column tile, halo included. Measured best of 256–2000 for the AVX2
/// kernel on a 2-core EPYC (512 KB L2 a core) and for the AVX-512 one on a Xeon (2 MB L2): the
/// rows a layer reads at a time stay in L2; narrower tiles recompute more halo.
const TILE_WIDTH: usize = 512;

/// An inner-block variant of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F (and AVX512-BF16 for bf16).
    Avx512,
    /// AVX2 with FMA.
    Avx2,
    /// Safe Rust, any CPU.
    Portable,
}

impl Isa {
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Whether this CPU can run the variant.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => false,
            Isa::Portable => true,
        }
    }

    /// The fastest variant this CPU runs (detected once).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| Isa::ALL.into_iter().find(|i| i.available()).unwrap_or(Isa::Portable))
    }

    /// The variant to use: `SESR_NATIVE_ISA` when set (an error if the CPU lacks it or the value
    /// is unknown), else [`best`](Self::best).
    pub fn selected() -> Result<Isa, String> {
        match std::env::var("SESR_NATIVE_ISA") {
            Ok(v) if !v.trim().is_empty() && v.trim() != "auto" => {
                let isa: Isa = v.parse()?;
                if !isa.available() {
                    return Err(format!("SESR_NATIVE_ISA={v}: this CPU cannot run the {} kernel", isa.name()));
                }
                Ok(isa)
            }
            _ => Ok(Isa::best()),
        }
    }

    /// Pixels per register block.
    fn block_width(self) -> usize {
        match self {
            Isa::Avx512 => avx512::XB,
            Isa::Avx2 => avx2::XB,
            Isa::Portable => portable::XB,
        }
    }
}

impl std::str::FromStr for Isa {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown kernel variant '{s}' (expected avx512, avx2 or portable)"))
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One convolution with its weights regrouped for the kernel.
#[derive(Debug, Clone)]
struct Layer {
    cin: usize,
    cout: usize,
    k: usize,
    /// `[cout/4][cin][k][k][4]`: the 4 output channels of a register block side by side.
    w: Vec<f32>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    /// bf16 weights `[cout/4][cin/2][k][k][4]`, each word the pair (channel 2q, 2q+1) of one
    /// output channel, for `vdpbf16ps` (an odd last channel is paired with zero).
    wb: Vec<u32>,
    bias: Vec<f32>,
    /// PReLU slopes (blocks only).
    alpha: Option<Vec<f32>>,
    /// Integer weights and requantisation (integer mode only).
    q: Option<int8::LayerQuant>,
}

impl Layer {
    fn new(c: &ConvWeights, alpha: Option<&[f32]>) -> Self {
        let (cout, cin, k) = (c.cout, c.cin, c.k);
        let weight = &c.weight;
        assert_eq!(weight.len(), cout * cin * k * k);
        let mut w = Vec::with_capacity(weight.len());
        for cb in 0..cout / 4 {
            for ci in 0..cin {
                for t in 0..k * k {
                    for j in 0..4 {
                        w.push(weight[((cb * 4 + j) * cin + ci) * k * k + t]);
                    }
                }
            }
        }
        let mut wb = Vec::with_capacity(weight.len() / 2 + cout * k * k);
        for cb in 0..cout / 4 {
            for q in 0..cin.div_ceil(2) {
                for t in 0..k * k {
                    for j in 0..4 {
                        let at = |ci: usize| if ci < cin { weight[((cb * 4 + j) * cin + ci) * k * k + t] } else { 0.0 };
                        wb.push(bf16_bits(at(2 * q)) as u32 | (bf16_bits(at(2 * q + 1)) as u32) << 16);
                    }
                }
            }
        }
        Layer { cin, cout, k, w, wb, bias: c.bias.clone(), alpha: alpha.map(<[f32]>::to_vec), q: None }
    }
}

/// bfloat16 bits of `v`, rounded to nearest even (as `vcvtneps2bf16` does for finite values).
fn bf16_bits(v: f32) -> u16 {
    if v.is_nan() {
        return 0x7FC0;
    }
    let b = v.to_bits();
    (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// The integer weights of every conv and the activation grids of every layer's input.
type Int8Source = (Vec<int8::QuantConv>, Vec<Vec<int8::ActQuant>>);

/// The collapsed SESR network prepared for [`NativeSesr::upscale`].
#[derive(Debug, Clone)]
pub struct NativeSesr {
    scale: usize,
    /// Input conv, the `m` blocks, output conv.
    layers: Vec<Layer>,
    /// Output channel of sub-pixel `dy·s + dx` (the model's depth-to-space order).
    shuffle: Vec<usize>,
    /// Activations and weights in bfloat16 (accumulation, PReLU and residuals in float32).
    bf16: bool,
    /// 8-bit activations and weights, int32 sums ([`int8`]).
    int8: bool,
    isa: Isa,
    /// Target compute width of a column tile, halo included.
    tile_width: usize,
    /// Per ring, the word of each channel row's padding ([`pad_words`](Self::pad_words)).
    pads: Vec<Vec<u32>>,
    /// The integer block's `vpdpbusd`, if any (int8 on x86-64).
    vnni: int8::Vnni,
    /// The integer weights of every conv and the activation grids of every layer's input
    /// (integer mode only), which [`lay_out_int8`](Self::lay_out_int8) lays out.
    int8_src: Option<std::sync::Arc<Int8Source>>,
}

/// The output channel holding sub-pixel (`dy`, `dx`) of an `s`×`s` block: one
/// `pixel_shuffle(2)` for ×2; two in a row for ×4, so the last one's offsets are the major index.
fn shuffle_channel(s: usize, dy: usize, dx: usize) -> usize {
    match s {
        4 => ((dy % 2) * 2 + dx % 2) * 4 + (dy / 2) * 2 + dx / 2,
        _ => dy * s + dx,
    }
}

/// Why a model cannot run natively (it still runs through libtorch).
pub fn unsupported_reason(weights: &CollapsedWeights) -> Option<String> {
    let c = &weights.cfg;
    if !c.f.is_multiple_of(4) {
        return Some(format!("f = {} is not a multiple of 4", c.f));
    }
    if c.m == 0 {
        return Some("m = 0".into());
    }
    if c.scale != 2 && c.scale != 4 {
        return Some(format!("scale {} (2 or 4 supported)", c.scale));
    }
    None
}

/// Whether the CPU can run the native kernel in bfloat16 (AVX512-BF16).
pub fn cpu_supports_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        Isa::Avx512.available() && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl NativeSesr {
    /// Prepares `weights` in float32 with the [selected](Isa::selected) variant. Errors say
    /// why the model is not supported.
    pub fn new(weights: &CollapsedWeights) -> Result<Self, String> {
        Self::with_options(weights, Precision::Fp32, Isa::selected()?)
    }

    /// As [`new`](Self::new), computing in `precision`: fp32, or bf16 (activations and weights
    /// rounded to bfloat16, products accumulated in float32; needs AVX512-BF16).
    pub fn with_precision(weights: &CollapsedWeights, precision: Precision) -> Result<Self, String> {
        Self::with_options(weights, precision, Isa::selected()?)
    }

    /// As [`with_precision`](Self::with_precision), with the inner block of `isa`.
    pub fn with_options(weights: &CollapsedWeights, precision: Precision, isa: Isa) -> Result<Self, String> {
        if let Some(why) = unsupported_reason(weights) {
            return Err(why);
        }
        if !isa.available() {
            return Err(format!("this CPU cannot run the {isa} kernel"));
        }
        let bf16 = match precision {
            Precision::Fp32 => false,
            Precision::Bf16 if isa == Isa::Avx512 && cpu_supports_bf16() => true,
            Precision::Bf16 => return Err("bf16 needs the avx512 kernel on a CPU with AVX512-BF16".into()),
            Precision::Fp16 => return Err("fp16 is not supported on the CPU (use bf16)".into()),
            Precision::Int8 => return Err("int8 needs calibrated activation ranges (NativeSesr::with_int8)".into()),
        };
        let mut layers = vec![Layer::new(&weights.input, None)];
        for (conv, alpha) in &weights.blocks {
            layers.push(Layer::new(conv, Some(alpha)));
        }
        layers.push(Layer::new(&weights.output, None));
        let s = weights.cfg.scale;
        let shuffle = (0..s * s).map(|i| shuffle_channel(s, i / s, i % s)).collect();
        let mut net = NativeSesr {
            scale: s,
            layers,
            shuffle,
            bf16,
            int8: false,
            isa,
            tile_width: 0,
            pads: Vec::new(),
            vnni: int8::Vnni::None,
            int8_src: None,
        };
        net.tile_width = net.default_tile_width();
        net.pads = net.ring_pads();
        Ok(net)
    }

    /// The network in integers (see [`int8`]): `acts[l][c]` quantises channel `c` of the input
    /// of layer `l` (`acts[0]` is ignored: the network input is exactly `(2Y − 255)/510`).
    /// The block is the best this CPU has for `isa` ([`int8::Vnni::detect_for`]); the layouts
    /// follow it (`lay_out_int8`).
    pub fn with_int8(weights: &CollapsedWeights, acts: &[Vec<int8::ActQuant>], isa: Isa) -> Result<Self, String> {
        let mut net = Self::with_options(weights, Precision::Fp32, isa)?;
        let n = net.layers.len();
        if acts.len() != n {
            return Err(format!("{} activation quantisations for {n} layers", acts.len()));
        }
        let mut acts = acts.to_vec();
        acts[0] = vec![int8::input_quant()];
        for (l, a) in acts.iter().enumerate() {
            if a.len() != net.layers[l].cin {
                return Err(format!("layer {l}: {} channel quantisations for {} channels", a.len(), net.layers[l].cin));
            }
            if let Some(bad) = a.iter().find(|a| !(a.scale.is_finite() && a.scale > 0.0 && (0..=255).contains(&a.zero)))
            {
                return Err(format!("invalid activation quantisation {bad:?}"));
            }
        }
        net.int8_src = Some(std::sync::Arc::new((int8::integer_layers(weights, &acts), acts)));
        net.int8 = true;
        net.tile_width = net.default_tile_width();
        net.vnni = int8::Vnni::detect_for(isa);
        net.lay_out_int8();
        Ok(net)
    }

    /// Lays the integer weights out for the block that runs ([`int8::LayerQuant`]): quads of
    /// bytes between the blocks; int16 pairs into the input conv (its input is exact); into
    /// the output conv (8-bit weights: 7-bit ones cost 0.03 dB there) quads where `vpdpbusd`
    /// runs (u8 × s8 without int16 saturation), int16 pairs for the plain AVX2 block, whose
    /// `vpmaddubsw` would saturate. Both compute the same integers: `Σ w·(q − z)` in pairs,
    /// `Σ w·q − Σ w·z` in quads.
    fn lay_out_int8(&mut self) {
        let Some(src) = self.int8_src.clone() else { return };
        let (qcs, acts) = &*src;
        let n = self.layers.len();
        let vnni = self.vnni != int8::Vnni::None;
        let quad = |l: usize| l > 0 && l < n && (l + 1 < n || vnni);
        for (l, qc) in qcs.iter().enumerate() {
            let out: &[int8::ActQuant] = if l + 1 < n { &acts[l + 1] } else { &[] };
            let (layer, a, r) = (&self.layers[l], &acts[l], &acts[1]);
            let (cout, cin, k, alpha) = (layer.cout, layer.cin, layer.k, layer.alpha.as_deref());
            let q = int8::LayerQuant::new(qc.clone(), cout, cin, k, a, out, r, alpha, quad(l), quad(l + 1));
            // The zmm block reads the one-channel input in pairs of pixels.
            let tap_pairs = l == 0 && cin == 1 && self.vnni == int8::Vnni::Zmm;
            self.layers[l].q = Some(if tap_pairs { q.with_tap_pairs(qc, k) } else { q });
        }
        self.pads = self.ring_pads();
    }

    /// The integer network on the plain AVX2 block even where the CPU has VNNI (to compare the
    /// two: they compute the same integers).
    pub fn without_vnni(mut self) -> Self {
        self.vnni = int8::Vnni::None;
        self.lay_out_int8();
        self
    }

    /// Which integer block runs: `avx-vnni`, `avx512-vnni`, `avx2` or `scalar` (`None`: not
    /// in int8).
    pub fn int8_block(&self) -> Option<&'static str> {
        match (self.int8, self.isa) {
            (false, _) => None,
            (true, Isa::Portable) => Some("scalar"),
            (true, _) => Some(self.vnni.name()),
        }
    }

    /// [`TILE_WIDTH`], or 4× that in integers, whose rings hold a quarter of the bytes: the same
    /// L2 footprint, less halo (measured 6 % faster at 720p on a 2-core Zen 4, whole-width
    /// tiles against three). `SESR_NATIVE_TILE` overrides, for measuring.
    fn default_tile_width(&self) -> usize {
        match std::env::var("SESR_NATIVE_TILE").ok().and_then(|v| v.parse::<usize>().ok()) {
            Some(w) => w.max(16),
            None if self.int8 => 4 * TILE_WIDTH,
            None => TILE_WIDTH,
        }
    }

    /// (slots, channel rows) of ring `l`, the input of layer `l`.
    fn ring_shape(&self, l: usize) -> (usize, usize) {
        let n = self.layers.len();
        let slots = match l {
            0 => 5,
            1 => self.blocks() + 3,
            l if l == n - 1 => 5,
            _ => 3,
        };
        // bf16 rings hold channel pairs, one 32-bit word per pixel and pair; int8 rings quads
        // of bytes or int16 pairs as the layer reads them (`lay_out_int8`).
        let ch = self.layers[l].cin;
        let quads = self.int8 && self.layers[l].q.as_ref().is_some_and(|q| q.quad);
        (
            slots,
            if quads {
                ch.div_ceil(4)
            } else if self.paired() {
                ch.div_ceil(2)
            } else {
                ch
            },
        )
    }

    pub fn scale(&self) -> usize {
        self.scale
    }

    /// The inner-block variant this network runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn tile_width(&self) -> usize {
        self.tile_width
    }

    /// Rings of 32-bit words holding several channels (bf16 pairs, int8 pairs and quads).
    fn paired(&self) -> bool {
        self.bf16 || self.int8
    }

    /// The word that fills ring `l`'s padding, per channel row: 0, or in integer mode each
    /// channel's zero point (the value that stands for 0).
    fn pad_words(&self, l: usize) -> &[u32] {
        &self.pads[l]
    }

    /// [`pad_words`](Self::pad_words) of every ring, computed.
    fn ring_pads(&self) -> Vec<Vec<u32>> {
        (0..self.layers.len())
            .map(|l| match self.layers[l].q.as_ref().filter(|q| self.int8 && q.quad) {
                Some(q) => q.pad.clone(),
                None => vec![0; self.ring_shape(l).1],
            })
            .collect()
    }

    /// Whether the network runs in integers.
    pub fn is_int8(&self) -> bool {
        self.int8
    }

    pub fn precision(&self) -> Precision {
        if self.int8 {
            Precision::Int8
        } else if self.bf16 {
            Precision::Bf16
        } else {
            Precision::Fp32
        }
    }

    /// Receptive-field radius in input pixels: `2 + m + 2`.
    pub fn radius(&self) -> usize {
        self.layers.iter().map(|l| l.k / 2).sum()
    }

    /// Multiply-accumulates per input pixel.
    pub fn macs_per_pixel(&self) -> usize {
        self.layers.iter().map(|l| l.cin * l.cout * l.k * l.k).sum()
    }

    fn blocks(&self) -> usize {
        self.layers.len() - 2
    }

    /// Upscales an 8-bit luma plane (`w`×`h`, row stride `stride`) into `dst` (`sw`×`sh`, row
    /// stride `dst_stride`): the model on Y/255, clamped, rounded to 8 bits. Runs one row band
    /// per workspace in `ws` (at least one) on `pool`; workspaces keep their buffers between
    /// calls, so a steady stream of same-size frames allocates no frame-sized memory.
    #[allow(clippy::too_many_arguments)]
    pub fn upscale(
        &self,
        src: &[u8],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u8],
        dst_stride: usize,
        ws: &mut [Workspace],
        pool: &Pool,
    ) {
        self.upscale_samples(src, stride, w, h, dst, dst_stride, Depth::U8, ws, pool)
    }

    /// As [`upscale`](Self::upscale) for 16-bit samples holding `depth` (e.g. 10-bit video):
    /// the model on value/(2^bits − 1), rounded back to the same depth, strides in samples.
    /// Float precisions only (the int8 kernel's input grid is 8-bit).
    #[allow(clippy::too_many_arguments)]
    pub fn upscale_u16(
        &self,
        src: &[u16],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u16],
        dst_stride: usize,
        depth: Depth,
        ws: &mut [Workspace],
        pool: &Pool,
    ) {
        assert!(!self.int8, "the int8 kernel takes 8-bit samples");
        self.upscale_samples(src, stride, w, h, dst, dst_stride, depth, ws, pool)
    }

    #[allow(clippy::too_many_arguments)]
    fn upscale_samples<T: Sample>(
        &self,
        src: &[T],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [T],
        dst_stride: usize,
        depth: Depth,
        ws: &mut [Workspace],
        pool: &Pool,
    ) {
        let s = self.scale;
        assert!(!ws.is_empty(), "at least one workspace");
        if w == 0 || h == 0 {
            return;
        }
        // Rows must not overlap: bands write disjoint row ranges of `dst`.
        assert!(stride >= w && dst_stride >= w * s, "row stride smaller than the row");
        assert!(src.len() >= (h - 1) * stride + w, "source plane too small");
        assert!(dst.len() >= (h * s - 1) * dst_stride + w * s, "destination plane too small");
        let r = self.radius();
        // Row bands: one per workspace, unless the frame is too short to be worth splitting.
        let bands = ws.len().min(h.div_ceil(4 * r).max(1));
        let xb = self.isa.block_width();
        let cols = w.div_ceil(self.tile_width.saturating_sub(2 * r).max(xb));
        let src = SrcPlane { data: src, stride, depth };
        // Each band gets the destination rows it writes.
        let mut jobs = Vec::with_capacity(bands);
        let mut rest = dst;
        let mut rest_row = 0;
        for (band, ws) in ws.iter_mut().take(bands).enumerate() {
            let (r0, r1) = split(h, bands, band);
            let len = if band + 1 == bands { rest.len() } else { (r1 * s - rest_row) * dst_stride };
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            rest_row = r1 * s;
            jobs.push((r0, r1, ws, mine));
        }
        pool.run(jobs, |(r0, r1, ws, band_dst)| {
            for c in 0..cols {
                let (x0, x1) = split(w, cols, c);
                let tile = Tile {
                    x0,
                    x1,
                    r0,
                    r1,
                    a: x0.saturating_sub(r),
                    b: (x1 + r).min(w),
                    ra: r0.saturating_sub(r),
                    rb: (r1 + r).min(h),
                    xb,
                };
                self.run_tile(&src, &tile, ws, band_dst, r0 * s, dst_stride);
            }
        });
    }

    /// Streams one tile through all layers; `dst` holds the destination from row `dst_row0`.
    fn run_tile<T: Sample>(
        &self,
        src: &SrcPlane<T>,
        t: &Tile,
        ws: &mut Workspace,
        dst: &mut [T],
        dst_row0: usize,
        dst_stride: usize,
    ) {
        ws.prepare(self, t.cw());
        let s = self.scale;
        let last = self.layers.len() - 1;
        let n = t.x1 - t.x0;
        // The output conv runs only on the rows of the tile's own band.
        for gy in t.r0..t.r1 {
            let y = gy - t.ra;
            self.fill(src, t, ws, last, y + 2);
            let Workspace { rings, pads, out, stride, .. } = ws;
            self.compute(rings, pads, last, y, t, out, *stride);
            // Residual + x, clamp, rounding to the sample depth, pixel shuffle into the destination.
            let srow = &src.data[gy * src.stride + t.x0..gy * src.stride + t.x1];
            for dy in 0..s {
                let o = (gy * s + dy - dst_row0) * dst_stride;
                let drow = &mut dst[o + t.x0 * s..o + t.x1 * s];
                let orow = |dx: usize| {
                    let c = self.shuffle[dy * s + dx] * *stride + PAD + t.x0 - t.a;
                    &out[c..c + n]
                };
                if s == 2 {
                    out_row(drow, [orow(0), orow(1)], srow, src.depth);
                } else {
                    out_row(drow, [orow(0), orow(1), orow(2), orow(3)], srow, src.depth);
                }
            }
        }
    }

    /// Makes ring `l` (the input of layer `l`) hold rows up to `upto` (clipped to the tile).
    fn fill<T: Sample>(&self, src: &SrcPlane<T>, t: &Tile, ws: &mut Workspace, l: usize, upto: usize) {
        let upto = upto.min(t.ht() - 1);
        while ws.have[l] <= upto {
            let y = ws.have[l];
            let slot = ws.rings[l].slot(y);
            if l == 0 {
                // x − 0.5 over the tile's columns; the padding stays zero.
                let gy = t.ra + y;
                let row = &src.data[gy * src.stride + t.a..gy * src.stride + t.b];
                let dst = &mut ws.rings[0].data[slot + PAD..slot + PAD + t.wt()];
                let depth = src.depth;
                let centred = |v: T| (2 * depth.value(v) as i32 - 255) as i16 as u16 as u32;
                if self.layers[0].q.as_ref().is_some_and(|q| q.tap_pairs) {
                    // Pixel pairs (x, x + 1) of 2Y − 255 from x = −1 (the padding is 0).
                    let dst = &mut ws.rings[0].data[slot + PAD - 1..slot + PAD + t.wt()];
                    let mut prev = 0;
                    for (d, &v) in dst.iter_mut().zip(row) {
                        let c = centred(v);
                        *d = f32::from_bits(prev | c << 16);
                        prev = c;
                    }
                    dst[t.wt()] = f32::from_bits(prev);
                } else if self.int8 {
                    // The pair (2Y − 255, 0): x − ½ exactly, on the 1/510 grid (8-bit samples).
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = f32::from_bits(centred(v));
                    }
                } else if self.bf16 {
                    // The pair (x − 0.5, 0): the input conv has one channel.
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = f32::from_bits(bf16_bits(depth.to_unit(v) - 0.5) as u32);
                    }
                } else {
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = depth.to_unit(v) - 0.5;
                    }
                }
            } else {
                let k = self.layers[l - 1].k;
                self.fill(src, t, ws, l - 1, y + k / 2);
                let (lo, hi) = ws.rings.split_at_mut(l);
                let len = hi[0].slot_len;
                let out = &mut hi[0].data[slot..slot + len];
                self.compute(lo, &ws.pads, l - 1, y, t, out, ws.stride);
            }
            let ring = &mut ws.rings[l];
            ring.tag[slot / ring.slot_len] = y as isize;
            ws.have[l] += 1;
        }
    }

    /// Row `y` of layer `l` from `rings[l]` (rows outside the tile read `pads[l]`), into `out`
    /// (`cout` rows of `cs` floats, data at `PAD`), with the layer's PReLU, the `f0` residual
    /// (`rings[1]`) after the last block, and the columns past the tile set to padding (they
    /// are the next layer's).
    #[allow(clippy::too_many_arguments)]
    fn compute(&self, rings: &[Ring], pads: &[Vec<f32>], l: usize, y: usize, t: &Tile, out: &mut [f32], cs: usize) {
        let (ht, wt, cw) = (t.ht(), t.wt(), t.cw());
        let layer = &self.layers[l];
        let p = layer.k / 2;
        let ring = &rings[l];
        let mut rows: [&[f32]; 5] = [&pads[l]; 5];
        for (dy, row) in rows.iter_mut().enumerate().take(layer.k) {
            let r = y as isize + dy as isize - p as isize;
            if r >= 0 && (r as usize) < ht {
                *row = ring.row(r as usize);
            }
        }
        let residual = (l == self.blocks()).then(|| rings[1].row(y));
        let post = Post { alpha: layer.alpha.as_deref(), residual };
        // The output conv writes float32 for the final stage; the others feed the next layer.
        let to_ring = l + 1 < self.layers.len();
        let (in_rows, out_rows) = if self.int8 {
            (self.ring_shape(l).1, if to_ring { self.ring_shape(l + 1).1 } else { layer.cout })
        } else if self.bf16 {
            (layer.cin.div_ceil(2), if to_ring { layer.cout / 2 } else { layer.cout })
        } else {
            (layer.cin, layer.cout)
        };
        // What the inner blocks rely on (they index without bounds checks).
        assert!(cs >= PAD + cw + PAD && cw.is_multiple_of(t.xb) && layer.cout.is_multiple_of(4));
        assert!(rows.iter().take(layer.k).all(|r| r.len() >= in_rows * cs) && out.len() >= out_rows * cs);
        assert!(residual.is_none_or(|r| r.len() >= in_rows * cs));
        if let Some(q) = layer.q.as_ref().filter(|_| self.int8) {
            assert!(cw.is_multiple_of(16) || self.isa == Isa::Portable);
            match (self.isa, layer.k) {
                // SAFETY: as below; AVX-512 CPUs have AVX2; `vnni` was detected on this CPU.
                (Isa::Avx512 | Isa::Avx2, 3) => unsafe {
                    int8::conv_row_avx2::<3>(&rows, cs, layer, q, cw, out, &post, to_ring, self.vnni)
                },
                (Isa::Avx512 | Isa::Avx2, 5) => unsafe {
                    int8::conv_row_avx2::<5>(&rows, cs, layer, q, cw, out, &post, to_ring, self.vnni)
                },
                (_, 3) => int8::conv_row::<3>(&rows, cs, layer, q, cw, out, &post, to_ring),
                (_, 5) => int8::conv_row::<5>(&rows, cs, layer, q, cw, out, &post, to_ring),
                (_, k) => unreachable!("kernel size {k}"),
            }
        } else {
            match (self.isa, self.bf16, layer.k) {
                // SAFETY (all arms): extents checked above; the variant was checked available
                // (`Isa::available`) when the network was built.
                (Isa::Avx512, false, 3) => unsafe { avx512::conv_row::<3>(&rows, cs, layer, cw, out, &post) },
                (Isa::Avx512, false, 5) => unsafe { avx512::conv_row::<5>(&rows, cs, layer, cw, out, &post) },
                (Isa::Avx512, true, 3) => unsafe {
                    avx512::conv_row_bf16::<3>(&rows, cs, layer, cw, out, &post, to_ring)
                },
                (Isa::Avx512, true, 5) => unsafe {
                    avx512::conv_row_bf16::<5>(&rows, cs, layer, cw, out, &post, to_ring)
                },
                (Isa::Avx2, _, 3) => unsafe { avx2::conv_row::<3>(&rows, cs, layer, cw, out, &post) },
                (Isa::Avx2, _, 5) => unsafe { avx2::conv_row::<5>(&rows, cs, layer, cw, out, &post) },
                (Isa::Portable, _, 3) => portable::conv_row::<3>(&rows, cs, layer, cw, out, &post),
                (Isa::Portable, _, 5) => portable::conv_row::<5>(&rows, cs, layer, cw, out, &post),
                (_, _, k) => unreachable!("kernel size {k}"),
            }
        }
        let pad = if to_ring { self.pad_words(l + 1) } else { &[] };
        for r in 0..out_rows {
            out[r * cs + PAD + wt..r * cs + PAD + cw].fill(f32::from_bits(pad.get(r).copied().unwrap_or(0)));
        }
    }
}

/// One destination row from the output conv's `S` rows of sub-pixels `dx`: residual + x, clamp,
/// rounding to the sample depth and the pixel shuffle,
/// `drow[x·S + dx] = from_unit(orows[dx][x] + to_unit(srow[x]))`. In chunks of 64 pixels:
/// contiguous loops, which vectorise (compiled with AVX2 where the CPU has it), then the shuffle.
fn out_row<T: Sample, const S: usize>(drow: &mut [T], orows: [&[f32]; S], srow: &[T], depth: Depth) {
    const C: usize = 64;
    crate::with_avx2(
        #[inline(always)]
        || {
            for (c, (dchunk, schunk)) in drow.chunks_mut(C * S).zip(srow.chunks(C)).enumerate() {
                let m = schunk.len();
                let mut xs = [0f32; C];
                for (a, &v) in xs.iter_mut().zip(schunk) {
                    *a = depth.to_unit(v);
                }
                let mut samples = [[T::default(); C]; S];
                for (row, orow) in samples.iter_mut().zip(orows) {
                    for ((d, &o), &x) in row.iter_mut().zip(&orow[c * C..c * C + m]).zip(&xs) {
                        *d = depth.from_unit(o + x);
                    }
                }
                for (i, d) in dchunk.chunks_exact_mut(S).enumerate() {
                    for (dx, d) in d.iter_mut().enumerate() {
                        *d = samples[dx][i];
                    }
                }
            }
        },
    )
}

/// `[lo, hi)` of part `i` of `n` near-equal parts of `len`.
fn split(len: usize, n: usize, i: usize) -> (usize, usize) {
    (len * i / n, len * (i + 1) / n)
}

struct SrcPlane<'a, T> {
    data: &'a [T],
    stride: usize,
    depth: Depth,
}

/// Output rectangle `[x0, x1) × [r0, r1)` and the input rectangle `[a, b) × [ra, rb)` it reads.
struct Tile {
    x0: usize,
    x1: usize,
    r0: usize,
    r1: usize,
    a: usize,
    b: usize,
    ra: usize,
    rb: usize,
    /// Register block width of the kernel variant.
    xb: usize,
}

impl Tile {
    /// Input width and height.
    fn wt(&self) -> usize {
        self.b - self.a
    }

    fn ht(&self) -> usize {
        self.rb - self.ra
    }

    /// Compute width: the input width rounded up to whole register blocks.
    fn cw(&self) -> usize {
        self.wt().div_ceil(self.xb) * self.xb
    }
}

/// Rows of one layer's input, `slots` of them, each `ch` channels × `stride` floats.
#[derive(Debug, Default)]
struct Ring {
    slots: usize,
    slot_len: usize,
    data: Vec<f32>,
    tag: Vec<isize>,
}

impl Ring {
    fn slot(&self, y: usize) -> usize {
        (y % self.slots) * self.slot_len
    }

    fn row(&self, y: usize) -> &[f32] {
        let s = self.slot(y);
        assert_eq!(self.tag[s / self.slot_len], y as isize, "ring row {y} was overwritten before use");
        &self.data[s..s + self.slot_len]
    }
}

/// Per-thread buffers of [`NativeSesr::upscale`], reused across frames.
#[derive(Debug, Default)]
pub struct Workspace {
    stride: usize,
    rings: Vec<Ring>,
    have: Vec<usize>,
    /// Per ring, one row of its padding (what rows outside the tile read).
    pads: Vec<Vec<f32>>,
    /// The padding words `pads` was built from.
    pad_key: Vec<Vec<u32>>,
    out: Vec<f32>,
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * (self.rings.iter().map(|r| r.data.len()).sum::<usize>()
            + self.pads.iter().map(Vec::len).sum::<usize>()
            + self.out.len())
    }

    /// Sizes the buffers for tiles of compute width `cw` (buffers only grow, so a stream of
    /// same-size frames allocates only on its first frame), fills them with padding (zero, or
    /// the zero points in integer mode: the padding columns must read as 0) and marks every
    /// ring empty: ready for a new tile.
    fn prepare(&mut self, model: &NativeSesr, cw: usize) {
        let needed = (PAD + cw + PAD).div_ceil(16) * 16;
        let n = model.layers.len();
        let fits = self.stride >= needed
            && self.rings.len() == n
            && (0..n).all(|l| {
                let (slots, ch) = model.ring_shape(l);
                self.rings[l].slots == slots && self.rings[l].slot_len == ch * self.stride
            })
            && self.out.len() == model.layers[n - 1].cout * self.stride
            && self.pad_key == model.pads;
        if !fits {
            let stride = needed.max(self.stride);
            self.stride = stride;
            self.rings = (0..n)
                .map(|l| {
                    let (slots, ch) = model.ring_shape(l);
                    Ring { slots, slot_len: ch * stride, data: vec![0.0; slots * ch * stride], tag: vec![-1; slots] }
                })
                .collect();
            self.pad_key = model.pads.clone();
            self.pads = (0..n)
                .map(|l| {
                    let words = model.pad_words(l);
                    words.iter().flat_map(|&w| std::iter::repeat_n(f32::from_bits(w), stride)).collect()
                })
                .collect();
            self.out = vec![0.0; model.layers[n - 1].cout * stride];
            self.have = vec![0; n];
        }
        for (r, pad) in self.rings.iter_mut().zip(&self.pads) {
            for slot in r.data.chunks_mut(r.slot_len) {
                slot.copy_from_slice(pad);
            }
            r.tag.fill(-1);
        }
        self.have.fill(0);
    }
}

/// What is applied to a layer's output before it is stored.
struct Post<'a> {
    alpha: Option<&'a [f32]>,
    /// `f0`'s row, added after the last block (same layout as the output).
    residual: Option<&'a [f32]>,
}
