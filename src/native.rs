//! Native CPU inference of the collapsed network: an AVX-512 direct convolution that streams the
//! frame row by row through all layers at once.
//!
//! libtorch runs each layer over the whole frame (or a stripe) before the next, so the 16-channel
//! activations of a 1080p frame (130 MB) go through memory once per layer. Here every layer keeps
//! only the few input rows its kernel needs (a ring of `k` rows; `f0`, needed again by the
//! residual after the last block, keeps `m + 3`), and a row flows through all `m + 2` layers while
//! it is still in L2. The frame is cut into column tiles (and one row band per thread), each
//! widened by the receptive-field radius so that a tile's output equals the whole frame's; the
//! widened borders are recomputed, the only extra work.
//!
//! Layout: planar rows (`[channel][column]`), pixels in the SIMD lanes. One register block is 64
//! pixels × 4 output channels (16 accumulators); per input channel and tap it costs 4 unaligned
//! loads, 4 weight broadcasts and 16 FMAs, for any channel count that is a multiple of 4 — the
//! 1-channel input conv, the 16→16 blocks and the 16→4 output conv alike, and also channel-pruned
//! (f = 12, 8) models.
//!
//! The arithmetic is the model's, in float32 with a different summation order: outputs match
//! libtorch to float rounding (tested ≤ 1e-4 before quantisation to 8 bits).

use crate::model::{CollapsedSesr, Precision};
use tch::Tensor;

/// Left padding of every ring row: the largest kernel radius (5×5).
const PAD: usize = 2;
/// Pixels per register block (4 vectors of 16 lanes).
const XB: usize = 64;
/// Target compute width of a column tile, halo included: ~20 rows of 16-channel activations of
/// this width fit in a core's L2 (2 MB on the development machine).
const TILE_WIDTH: usize = 512;

/// One convolution with its weights regrouped for the kernel.
#[derive(Debug, Clone)]
struct Layer {
    cin: usize,
    cout: usize,
    k: usize,
    /// `[cout/4][cin][k][k][4]`: the 4 output channels of a register block side by side.
    w: Vec<f32>,
    /// bf16 weights `[cout/4][cin/2][k][k][4]`, each word the pair (channel 2q, 2q+1) of one
    /// output channel, for `vdpbf16ps` (an odd last channel is paired with zero).
    wb: Vec<u32>,
    bias: Vec<f32>,
    /// PReLU slopes (blocks only).
    alpha: Option<Vec<f32>>,
}

impl Layer {
    /// From an OIHW weight.
    fn new(weight: &[f32], bias: &[f32], alpha: Option<&[f32]>, cout: usize, cin: usize, k: usize) -> Self {
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
        Layer { cin, cout, k, w, wb, bias: bias.to_vec(), alpha: alpha.map(<[f32]>::to_vec) }
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
pub fn unsupported_reason(model: &CollapsedSesr) -> Option<String> {
    if !cpu_supported() {
        return Some("this CPU has no AVX-512F".into());
    }
    let c = &model.cfg;
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
        cpu_supported() && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU can run the native kernel.
pub fn cpu_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn floats(t: &Tensor) -> Vec<f32> {
    let t = t.detach().to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).contiguous().flatten(0, -1);
    Vec::<f32>::try_from(&t).expect("a float tensor converts to Vec<f32>")
}

impl NativeSesr {
    /// Prepares `model` (any device or precision; computed in float32). Errors say why the
    /// model or this CPU is not supported.
    pub fn new(model: &CollapsedSesr) -> Result<Self, String> {
        Self::with_precision(model, Precision::Fp32)
    }

    /// As [`new`](Self::new), computing in `precision`: fp32, or bf16 (activations and weights
    /// rounded to bfloat16, products accumulated in float32; needs AVX512-BF16).
    pub fn with_precision(model: &CollapsedSesr, precision: Precision) -> Result<Self, String> {
        if let Some(why) = unsupported_reason(model) {
            return Err(why);
        }
        let bf16 = match precision {
            Precision::Fp32 => false,
            Precision::Bf16 if cpu_supports_bf16() => true,
            Precision::Bf16 => return Err("this CPU has no AVX512-BF16".into()),
            Precision::Fp16 => return Err("fp16 is not supported on the CPU (use bf16)".into()),
        };
        let c = &model.cfg;
        let (f, s2) = (c.f, c.out_channels());
        let mut layers = vec![Layer::new(&floats(&model.input.weight), &floats(&model.input.bias), None, f, 1, 5)];
        for (conv, alpha) in &model.blocks {
            let a = floats(alpha);
            layers.push(Layer::new(&floats(&conv.weight), &floats(&conv.bias), Some(&a), f, f, 3));
        }
        layers.push(Layer::new(&floats(&model.output.weight), &floats(&model.output.bias), None, s2, f, 5));
        let s = c.scale;
        let shuffle = (0..s * s).map(|i| shuffle_channel(s, i / s, i % s)).collect();
        Ok(NativeSesr { scale: s, layers, shuffle, bf16 })
    }

    pub fn scale(&self) -> usize {
        self.scale
    }

    pub fn precision(&self) -> Precision {
        if self.bf16 {
            Precision::Bf16
        } else {
            Precision::Fp32
        }
    }

    /// Receptive-field radius in input pixels: `2 + m + 2`.
    pub fn radius(&self) -> usize {
        self.layers.iter().map(|l| l.k / 2).sum()
    }

    fn blocks(&self) -> usize {
        self.layers.len() - 2
    }

    /// Upscales an 8-bit luma plane (`w`×`h`, row stride `stride`) into `dst` (`sw`×`sh`, row
    /// stride `dst_stride`): the model on Y/255, clamped, rounded to 8 bits. Uses one thread per
    /// workspace in `ws` (at least one); workspaces keep their buffers between calls, so a
    /// steady stream of same-size frames allocates nothing.
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
    ) {
        let s = self.scale;
        assert!(!ws.is_empty(), "at least one workspace");
        if w == 0 || h == 0 {
            return;
        }
        // Rows must not overlap: threads write disjoint rectangles of `dst`.
        assert!(stride >= w && dst_stride >= w * s, "row stride smaller than the row");
        assert!(src.len() >= (h - 1) * stride + w, "source plane too small");
        assert!(dst.len() >= (h * s - 1) * dst_stride + w * s, "destination plane too small");
        let r = self.radius();
        // Row bands: one per thread, unless the frame is too short to be worth splitting.
        let bands = ws.len().min(h.div_ceil(4 * r).max(1));
        let cols = w.div_ceil(TILE_WIDTH.saturating_sub(2 * r).max(XB));
        let dst_ptr = SendPtr(dst.as_mut_ptr());
        let src = SrcPlane { data: src, stride, w };
        let work = |band: usize, ws: &mut Workspace| {
            let (r0, r1) = split(h, bands, band);
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
                };
                // SAFETY: tiles of different (band, column) write disjoint output rectangles of
                // `dst`, whose extent was checked above; `dst` outlives the scope below.
                unsafe { self.run_tile(&src, &tile, ws, dst_ptr, dst_stride) };
            }
        };
        if bands == 1 {
            work(0, &mut ws[0]);
        } else {
            std::thread::scope(|sc| {
                let mut it = ws.iter_mut().enumerate().take(bands);
                let first = it.next().expect("bands ≥ 1");
                for (band, ws) in it {
                    let work = &work;
                    sc.spawn(move || work(band, ws));
                }
                work(first.0, first.1);
            });
        }
    }

    /// Streams one tile through all layers.
    ///
    /// # Safety
    /// `dst` must point to a plane of at least `(h·s − 1)·dst_stride + w·s` bytes that no other
    /// thread writes inside this tile's output rectangle.
    unsafe fn run_tile(&self, src: &SrcPlane, t: &Tile, ws: &mut Workspace, dst: SendPtr, dst_stride: usize) {
        ws.prepare(self, t.cw());
        let s = self.scale;
        let last = self.layers.len() - 1;
        // The output conv runs only on the rows of the tile's own band.
        for gy in t.r0..t.r1 {
            let y = gy - t.ra;
            self.fill(src, t, ws, last, y + 2);
            let out = ws.out.as_mut_ptr();
            self.compute(ws, last, y, t, out);
            // Residual + x, clamp, 8-bit rounding, pixel shuffle into the destination.
            let srow = &src.data[gy * src.stride..gy * src.stride + src.w];
            for dy in 0..s {
                let drow = dst.0.add((gy * s + dy) * dst_stride);
                for (x, &y8) in srow.iter().enumerate().take(t.x1).skip(t.x0) {
                    let xv = y8 as f32 * (1.0 / 255.0);
                    let i = PAD + x - t.a;
                    for dx in 0..s {
                        let v = (ws.out[self.shuffle[dy * s + dx] * ws.stride + i] + xv).clamp(0.0, 1.0);
                        *drow.add(x * s + dx) = (v * 255.0).round() as u8;
                    }
                }
            }
        }
    }

    /// Makes ring `l` (the input of layer `l`) hold rows up to `upto` (clipped to the tile).
    unsafe fn fill(&self, src: &SrcPlane, t: &Tile, ws: &mut Workspace, l: usize, upto: usize) {
        let upto = upto.min(t.ht() - 1);
        while ws.have[l] <= upto {
            let y = ws.have[l];
            let slot = ws.rings[l].slot(y);
            if l == 0 {
                // x − 0.5 over the tile's columns; the padding stays zero.
                let gy = t.ra + y;
                let row = &src.data[gy * src.stride + t.a..gy * src.stride + t.b];
                let dst = &mut ws.rings[0].data[slot + PAD..slot + PAD + t.wt()];
                if self.bf16 {
                    // The pair (x − 0.5, 0): the input conv has one channel.
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = f32::from_bits(bf16_bits(v as f32 * (1.0 / 255.0) - 0.5) as u32);
                    }
                } else {
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = v as f32 * (1.0 / 255.0) - 0.5;
                    }
                }
            } else {
                let k = self.layers[l - 1].k;
                self.fill(src, t, ws, l - 1, y + k / 2);
                let out = ws.rings[l].data.as_mut_ptr().add(slot);
                self.compute(ws, l - 1, y, t, out);
            }
            let ring = &mut ws.rings[l];
            ring.tag[slot / ring.slot_len] = y as isize;
            ws.have[l] += 1;
        }
    }

    /// Row `y` of layer `l` from ring `l`, into `out` (`cout` rows of the workspace stride, data
    /// at `PAD`), with the layer's PReLU, the `f0` residual after the last block, and the columns
    /// past the tile zeroed (they are the next layer's padding).
    unsafe fn compute(&self, ws: &Workspace, l: usize, y: usize, t: &Tile, out: *mut f32) {
        let (ht, wt, cw, out_cs) = (t.ht(), t.wt(), t.cw(), ws.stride);
        let layer = &self.layers[l];
        let p = layer.k / 2;
        let ring = &ws.rings[l];
        let mut rows = [ws.zero.as_ptr(); 5];
        for (dy, row) in rows.iter_mut().enumerate().take(layer.k) {
            let r = y as isize + dy as isize - p as isize;
            if r >= 0 && (r as usize) < ht {
                *row = ring.row(r as usize).as_ptr();
            }
        }
        let residual = if l == self.blocks() {
            let f0 = &ws.rings[1];
            Some(f0.row(y).as_ptr())
        } else {
            None
        };
        let post = Post { alpha: layer.alpha.as_deref(), residual, residual_cs: ws.stride };
        // The output conv writes float32 for the final stage; the others feed the next layer.
        let to_ring = l + 1 < self.layers.len();
        match (self.bf16, layer.k) {
            (false, 3) => conv_row::<3>(&rows, ws.stride, layer, cw, out, out_cs, &post),
            (false, 5) => conv_row::<5>(&rows, ws.stride, layer, cw, out, out_cs, &post),
            (true, 3) => conv_row_bf16::<3>(&rows, ws.stride, layer, cw, out, out_cs, &post, to_ring),
            (true, 5) => conv_row_bf16::<5>(&rows, ws.stride, layer, cw, out, out_cs, &post, to_ring),
            (_, k) => unreachable!("kernel size {k}"),
        }
        let out_rows = if self.bf16 && to_ring { layer.cout / 2 } else { layer.cout };
        for r in 0..out_rows {
            std::ptr::write_bytes(out.add(r * out_cs + PAD + wt), 0, cw - wt);
        }
    }
}

/// `[lo, hi)` of part `i` of `n` near-equal parts of `len`.
fn split(len: usize, n: usize, i: usize) -> (usize, usize) {
    (len * i / n, len * (i + 1) / n)
}

struct SrcPlane<'a> {
    data: &'a [u8],
    stride: usize,
    w: usize,
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
        self.wt().div_ceil(XB) * XB
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut u8);
// SAFETY: used only to write disjoint rectangles from scoped threads (see `upscale`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

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
    zero: Vec<f32>,
    out: Vec<f32>,
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sizes the buffers for tiles of compute width `cw` (buffers only grow, so a stream of
    /// same-size frames allocates only on its first frame), zeroes them (the padding columns
    /// must read as zero) and marks every ring empty: ready for a new tile.
    fn prepare(&mut self, model: &NativeSesr, cw: usize) {
        let needed = (PAD + cw + PAD).div_ceil(16) * 16;
        let m = model.blocks();
        let n = model.layers.len();
        // (slots, channels) of ring l, the input of layer l.
        let shape = |l: usize| -> (usize, usize) {
            let slots = match l {
                0 => 5,
                1 => m + 3,
                l if l == n - 1 => 5,
                _ => 3,
            };
            // bf16 rings hold channel pairs, one 32-bit word per pixel and pair.
            let ch = model.layers[l].cin;
            (slots, if model.bf16 { ch.div_ceil(2) } else { ch })
        };
        let fits = self.stride >= needed
            && self.rings.len() == n
            && (0..n).all(|l| {
                let (slots, ch) = shape(l);
                self.rings[l].slots == slots && self.rings[l].slot_len == ch * self.stride
            })
            && self.out.len() == model.layers[n - 1].cout * self.stride;
        if !fits {
            let stride = needed.max(self.stride);
            self.stride = stride;
            self.rings = (0..n)
                .map(|l| {
                    let (slots, ch) = shape(l);
                    Ring { slots, slot_len: ch * stride, data: vec![0.0; slots * ch * stride], tag: vec![-1; slots] }
                })
                .collect();
            let max_ch = model.layers.iter().map(|l| l.cin.max(l.cout)).max().unwrap_or(1);
            self.zero = vec![0.0; max_ch * stride];
            self.out = vec![0.0; model.layers[n - 1].cout * stride];
            self.have = vec![0; n];
        } else {
            for r in &mut self.rings {
                r.data.fill(0.0);
                r.tag.fill(-1);
            }
            self.have.fill(0);
        }
    }
}

/// What is applied to a layer's output before it is stored.
struct Post<'a> {
    alpha: Option<&'a [f32]>,
    /// `f0`'s row, added after the last block (same layout as the output).
    residual: Option<*const f32>,
    residual_cs: usize,
}

/// One output row of a k×k convolution (zero padding), all output channels, `cw` pixels.
///
/// # Safety
/// `rows[dy]` (dy < K) point to `cin` channel rows of `cs` floats with data at `PAD`, readable
/// up to column `PAD − K/2 + cw + K − 1`; `out` has `cout` rows of `out_cs` floats, writable at
/// `[PAD, PAD + cw)`; `cw` is a multiple of [`XB`]; `cout` a multiple of 4; AVX-512F present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // indices keep the 4×4 accumulator block in registers
unsafe fn conv_row<const K: usize>(
    rows: &[*const f32; 5],
    cs: usize,
    layer: &Layer,
    cw: usize,
    out: *mut f32,
    out_cs: usize,
    post: &Post,
) {
    use std::arch::x86_64::*;
    let p = K / 2;
    let cin = layer.cin;
    let zero = _mm512_setzero_ps();
    for xb in (0..cw).step_by(XB) {
        for cb in 0..layer.cout / 4 {
            let mut acc = [[zero; 4]; 4];
            for (j, a) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(layer.bias[cb * 4 + j]);
                *a = [b; 4];
            }
            let mut wp = layer.w.as_ptr().add(cb * cin * K * K * 4);
            for ci in 0..cin {
                for row in rows.iter().take(K) {
                    let base = row.add(ci * cs + PAD - p + xb);
                    for dx in 0..K {
                        let wv = [
                            _mm512_set1_ps(*wp),
                            _mm512_set1_ps(*wp.add(1)),
                            _mm512_set1_ps(*wp.add(2)),
                            _mm512_set1_ps(*wp.add(3)),
                        ];
                        wp = wp.add(4);
                        for v in 0..4 {
                            let x = _mm512_loadu_ps(base.add(dx + v * 16));
                            for j in 0..4 {
                                acc[j][v] = _mm512_fmadd_ps(x, wv[j], acc[j][v]);
                            }
                        }
                    }
                }
            }
            for (j, a) in acc.iter().enumerate() {
                let co = cb * 4 + j;
                let slope = post.alpha.map(|al| _mm512_set1_ps(al[co]));
                for (v, &val) in a.iter().enumerate() {
                    let mut val = val;
                    if let Some(s) = slope {
                        val = _mm512_add_ps(_mm512_max_ps(val, zero), _mm512_mul_ps(s, _mm512_min_ps(val, zero)));
                    }
                    let at = PAD + xb + v * 16;
                    if let Some(r) = post.residual {
                        val = _mm512_add_ps(val, _mm512_loadu_ps(r.add(co * post.residual_cs + at)));
                    }
                    _mm512_storeu_ps(out.add(co * out_cs + at), val);
                }
            }
        }
    }
}

/// [`conv_row`] in bfloat16: rows hold channel pairs (one 32-bit word per pixel: channel 2q in
/// the low half, 2q+1 in the high half), `vdpbf16ps` multiplies a pair of inputs by a pair of
/// weights and adds both products to a float32 accumulator. PReLU and the residual are applied
/// in float32; the result is rounded to bf16 pairs (`to_ring`) or stored as float32 (the output
/// conv).
///
/// # Safety
/// As [`conv_row`], with `cs` and `out_cs` counted in 32-bit words per channel pair (or per
/// channel for a float32 output), and AVX512-BF16 present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
unsafe fn conv_row_bf16<const K: usize>(
    rows: &[*const f32; 5],
    cs: usize,
    layer: &Layer,
    cw: usize,
    out: *mut f32,
    out_cs: usize,
    post: &Post,
    to_ring: bool,
) {
    use std::arch::x86_64::*;
    let p = K / 2;
    let pairs = layer.cin.div_ceil(2);
    let zero = _mm512_setzero_ps();
    let high = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    for xb in (0..cw).step_by(XB) {
        for cb in 0..layer.cout / 4 {
            let mut acc = [[zero; 4]; 4];
            for (j, a) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(layer.bias[cb * 4 + j]);
                *a = [b; 4];
            }
            let mut wp = layer.wb.as_ptr().add(cb * pairs * K * K * 4);
            for q in 0..pairs {
                for row in rows.iter().take(K) {
                    let base = (*row as *const u32).add(q * cs + PAD - p + xb);
                    for dx in 0..K {
                        let wv: [__m512bh; 4] = [
                            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*wp as i32)),
                            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*wp.add(1) as i32)),
                            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*wp.add(2) as i32)),
                            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*wp.add(3) as i32)),
                        ];
                        wp = wp.add(4);
                        // Written out: with a loop here the compiler keeps the accumulators on
                        // the stack (measured 2× slower).
                        macro_rules! step {
                            ($v:literal) => {
                                let x = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                                    base.add(dx + $v * 16) as *const __m512i,
                                ));
                                acc[0][$v] = _mm512_dpbf16_ps(acc[0][$v], x, wv[0]);
                                acc[1][$v] = _mm512_dpbf16_ps(acc[1][$v], x, wv[1]);
                                acc[2][$v] = _mm512_dpbf16_ps(acc[2][$v], x, wv[2]);
                                acc[3][$v] = _mm512_dpbf16_ps(acc[3][$v], x, wv[3]);
                            };
                        }
                        step!(0);
                        step!(1);
                        step!(2);
                        step!(3);
                    }
                }
            }
            // Written out per vector for the same reason as the inner loop.
            macro_rules! store {
                ($v:literal) => {
                    let at = PAD + xb + $v * 16;
                    let mut vals = [acc[0][$v], acc[1][$v], acc[2][$v], acc[3][$v]];
                    for (j, val) in vals.iter_mut().enumerate() {
                        let co = cb * 4 + j;
                        if let Some(al) = post.alpha {
                            let s = _mm512_set1_ps(al[co]);
                            *val =
                                _mm512_add_ps(_mm512_max_ps(*val, zero), _mm512_mul_ps(s, _mm512_min_ps(*val, zero)));
                        }
                        if let Some(r) = post.residual {
                            let w =
                                _mm512_loadu_si512((r as *const u32).add((co / 2) * post.residual_cs + at) as *const _);
                            let f0 = if co % 2 == 0 { _mm512_slli_epi32::<16>(w) } else { _mm512_and_si512(w, high) };
                            *val = _mm512_add_ps(*val, _mm512_castsi512_ps(f0));
                        }
                    }
                    if to_ring {
                        for j in [0, 2] {
                            let co = cb * 4 + j;
                            let lo = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(
                                _mm512_cvtneps_pbh(vals[j]),
                            ));
                            let hi = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(
                                _mm512_cvtneps_pbh(vals[j + 1]),
                            ));
                            let word = _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi));
                            _mm512_storeu_si512((out as *mut u32).add((co / 2) * out_cs + at) as *mut _, word);
                        }
                    } else {
                        for (j, val) in vals.iter().enumerate() {
                            _mm512_storeu_ps(out.add((cb * 4 + j) * out_cs + at), *val);
                        }
                    }
                };
            }
            store!(0);
            store!(1);
            store!(2);
            store!(3);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_row_bf16<const K: usize>(
    _rows: &[*const f32; 5],
    _cs: usize,
    _layer: &Layer,
    _cw: usize,
    _out: *mut f32,
    _out_cs: usize,
    _post: &Post,
    _to_ring: bool,
) {
    unreachable!("NativeSesr::new refuses CPUs without AVX-512F")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn conv_row<const K: usize>(
    _rows: &[*const f32; 5],
    _cs: usize,
    _layer: &Layer,
    _cw: usize,
    _out: *mut f32,
    _out_cs: usize,
    _post: &Post,
) {
    unreachable!("NativeSesr::new refuses CPUs without AVX-512F")
}
