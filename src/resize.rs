//! Bicubic resampling compatible with MATLAB's `imresize`.
//!
//! SR benchmarks make their low-resolution inputs with MATLAB's `imresize(HR, 1/s, 'bicubic')`:
//! Keys' cubic kernel (a = −0.5), stretched by `1/s` when downscaling (antialiasing), weights
//! normalised to sum to 1, and borders handled by symmetric reflection (`…, 1, 0 | 0, 1, …`).
//! [`Contributions`] is that per-axis weight table; [`imresize`] applies it separably, vertical
//! axis first as MATLAB does for equal scale factors, rounding each pass to 8 bits when the
//! source is 8-bit (MATLAB keeps the class of `uint8` images between passes).
//!
//! The same tables drive the plane upscaler of the GStreamer element ([`resize_u8`]), where an
//! affine coordinate map ([`Contributions::affine`]) also expresses chroma siting.

use crate::plane::{Plane, RgbPlanes};
use crate::sample::{Depth, Sample};

/// Keys' cubic convolution kernel with a = −0.5 (MATLAB's `cubic`).
#[inline]
pub fn cubic(x: f64) -> f64 {
    let a = x.abs();
    let a2 = a * a;
    let a3 = a2 * a;
    if a <= 1.0 {
        1.5 * a3 - 2.5 * a2 + 1.0
    } else if a <= 2.0 {
        -0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0
    } else {
        0.0
    }
}

/// Weights and source indices of a 1-D resampling: output sample `j` is
/// `Σ_t weight[j·taps + t] · src[index[j·taps + t]]`. Read-only once built: the table's
/// [`Periodic`] part is found when it is made.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    pub in_len: usize,
    pub out_len: usize,
    pub taps: usize,
    pub index: Vec<u32>,
    pub weight: Vec<f32>,
    periodic: Option<Periodic>,
}

/// Where a table repeats itself one source sample further on: outputs `lo..hi` fall into
/// `period` phases, output `lo + k·period + p` taking the weights of output `lo + p` at its
/// indices plus `k` (an integer upscale, chroma siting included: ×2 has two phases, away from
/// the reflected borders). [`resize_rows`] runs each phase as one FIR filter along the row, a
/// vector loop, instead of gathering each output's taps; the sums are the same, in the same
/// order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Periodic {
    period: usize,
    lo: usize,
    hi: usize,
}

impl Periodic {
    /// The smallest period (up to 8) under which at least half the outputs repeat.
    fn find(c: &Contributions) -> Option<Periodic> {
        let taps = c.taps;
        for period in 1..=8.min(c.out_len / 2) {
            // Output `j` is output `j − period` one sample on (weights bit for bit).
            let repeats = |j: usize| {
                let (a, b) = (j * taps, (j - period) * taps);
                (0..taps).all(|t| {
                    c.weight[a + t].to_bits() == c.weight[b + t].to_bits() && c.index[a + t] == c.index[b + t] + 1
                })
            };
            // The longest run `s..e` of repeating outputs: outputs `s − period..e` are periodic.
            let (mut best, mut start) = ((0, 0), None);
            for j in period..=c.out_len {
                match (j < c.out_len && repeats(j), start) {
                    (true, None) => start = Some(j),
                    (false, Some(s)) => {
                        if j - s > best.1 - best.0 {
                            best = (s, j);
                        }
                        start = None;
                    }
                    _ => {}
                }
            }
            let (lo, hi) = (best.0.saturating_sub(period), best.1);
            if best.1 > best.0 && 2 * (hi - lo) >= c.out_len {
                return Some(Periodic { period, lo, hi });
            }
        }
        None
    }
}

#[inline]
fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let m = i.rem_euclid(2 * n);
    (if m >= n { 2 * n - 1 - m } else { m }) as usize
}

impl Contributions {
    /// MATLAB's table for resizing `in_len` samples to `out_len` by factor `scale`.
    pub fn matlab(in_len: usize, out_len: usize, scale: f64, antialias: bool) -> Self {
        let kscale = if scale < 1.0 && antialias { scale } else { 1.0 };
        Self::affine(in_len, out_len, 1.0 / scale, 0.5 / scale - 0.5, kscale)
    }

    /// Table for the coordinate map `u(j) = step·j + offset` (0-based pixel centres: output
    /// sample `j` is taken at source position `u(j)`), with the cubic kernel stretched by
    /// `1/kernel_scale` (pass `1.0` for upscaling, the scale factor for antialiased downscaling).
    pub fn affine(in_len: usize, out_len: usize, step: f64, offset: f64, kernel_scale: f64) -> Self {
        assert!(in_len > 0, "resampling an empty axis");
        let kernel_width = 4.0 / kernel_scale;
        let taps = kernel_width.ceil() as usize + 2;
        let mut index = vec![0u32; out_len * taps];
        let mut weight = vec![0f32; out_len * taps];
        let mut w64 = vec![0f64; taps];
        for j in 0..out_len {
            let u = step * j as f64 + offset;
            let left = (u - kernel_width / 2.0).floor() as i64;
            let mut sum = 0.0;
            for (t, w) in w64.iter_mut().enumerate() {
                let i = left + t as i64;
                *w = kernel_scale * cubic(kernel_scale * (u - i as f64));
                sum += *w;
            }
            for t in 0..taps {
                index[j * taps + t] = reflect(left + t as i64, in_len) as u32;
                weight[j * taps + t] = (w64[t] / sum) as f32;
            }
        }
        let mut c = Contributions { in_len, out_len, taps, index, weight, periodic: None };
        c.trim_zero_taps();
        c.periodic = Periodic::find(&c);
        c
    }

    /// The same table without its periodic part, so that [`resize_rows`] gathers every
    /// output's taps: the reference for tests and benchmarks of the FIR path.
    pub fn gathering(&self) -> Self {
        Contributions { periodic: None, ..self.clone() }
    }

    /// Whether [`resize_rows`] runs this table's interior as FIR filters (see [`Periodic`]).
    pub fn is_periodic(&self) -> bool {
        self.periodic.is_some()
    }

    /// Drops leading/trailing tap columns whose weights are zero for every output (as MATLAB's
    /// `imresize` does); the result is unchanged, the work is smaller.
    fn trim_zero_taps(&mut self) {
        let column_zero = |c: &Contributions, t: usize| (0..c.out_len).all(|j| c.weight[j * c.taps + t] == 0.0);
        let mut lo = 0;
        while lo + 1 < self.taps && column_zero(self, lo) {
            lo += 1;
        }
        let mut hi = self.taps;
        while hi > lo + 1 && column_zero(self, hi - 1) {
            hi -= 1;
        }
        if lo == 0 && hi == self.taps {
            return;
        }
        let taps = hi - lo;
        let mut index = Vec::with_capacity(self.out_len * taps);
        let mut weight = Vec::with_capacity(self.out_len * taps);
        for j in 0..self.out_len {
            index.extend_from_slice(&self.index[j * self.taps + lo..j * self.taps + hi]);
            weight.extend_from_slice(&self.weight[j * self.taps + lo..j * self.taps + hi]);
        }
        self.taps = taps;
        self.index = index;
        self.weight = weight;
    }

    #[inline(always)]
    fn apply(&self, j: usize, sample: impl Fn(usize) -> f32) -> f32 {
        let (w, i) = (&self.weight[j * self.taps..][..self.taps], &self.index[j * self.taps..][..self.taps]);
        w.iter().zip(i).fold(0.0f32, |acc, (&w, &i)| acc + w * sample(i as usize))
    }
}

/// Output length of MATLAB's `imresize` for a scale factor: `ceil(scale · len)`.
pub fn scaled_len(len: usize, scale: f64) -> usize {
    // Guard against 0.5·2k landing a hair above an integer.
    let v = scale * len as f64;
    let r = v.round();
    if (v - r).abs() < 1e-9 {
        r as usize
    } else {
        v.ceil() as usize
    }
}

/// Resizes a plane with the given horizontal and vertical tables, vertical pass first.
/// With `round_between`, samples are rounded and saturated to 0..=255 after each pass, which is
/// what MATLAB does for 8-bit images.
pub fn resize_plane(src: &Plane, h: &Contributions, v: &Contributions, round_between: bool) -> Plane {
    assert_eq!(h.in_len, src.width, "horizontal table built for another width");
    assert_eq!(v.in_len, src.height, "vertical table built for another height");
    let q = |x: f32| if round_between { x.round().clamp(0.0, 255.0) } else { x };
    let mut tmp = Plane::new(src.width, v.out_len);
    for j in 0..v.out_len {
        for x in 0..src.width {
            tmp.data[j * src.width + x] = q(v.apply(j, |i| src.data[i * src.width + x]));
        }
    }
    let mut out = Plane::new(h.out_len, v.out_len);
    for y in 0..v.out_len {
        let row = tmp.row(y);
        for j in 0..h.out_len {
            out.data[y * h.out_len + j] = q(h.apply(j, |i| row[i]));
        }
    }
    out
}

/// MATLAB `imresize(p, scale, 'bicubic')` of a single plane (`round_u8`: the plane holds 8-bit
/// values and the result is rounded like MATLAB's `uint8` output).
pub fn imresize(p: &Plane, scale: f64, round_u8: bool) -> Plane {
    let (ow, oh) = (scaled_len(p.width, scale), scaled_len(p.height, scale));
    let h = Contributions::matlab(p.width, ow, scale, true);
    let v = Contributions::matlab(p.height, oh, scale, true);
    resize_plane(p, &h, &v, round_u8)
}

/// MATLAB `imresize(rgb, scale, 'bicubic')` of an 8-bit RGB image (values rounded to 0..=255).
pub fn imresize_rgb_u8(rgb: &RgbPlanes, scale: f64) -> RgbPlanes {
    let (ow, oh) = (scaled_len(rgb.width(), scale), scaled_len(rgb.height(), scale));
    let h = Contributions::matlab(rgb.width(), ow, scale, true);
    let v = Contributions::matlab(rgb.height(), oh, scale, true);
    rgb.map_planes(|p| resize_plane(p, &h, &v, true))
}

/// The bicubic ×`scale` upscale of a plane of floats (no rounding).
pub fn upscale_bicubic(p: &Plane, scale: usize) -> Plane {
    imresize(p, scale as f64, false)
}

/// Where the samples of an 8-bit plane are: rows `stride` bytes apart, samples `step` bytes
/// apart from byte `offset` of each row (`step` 2 reads one component of NV12's interleaved UV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct U8Layout {
    pub stride: usize,
    pub step: usize,
    pub offset: usize,
}

impl U8Layout {
    /// A plain plane: one byte per sample.
    pub fn plane(stride: usize) -> Self {
        U8Layout { stride, step: 1, offset: 0 }
    }
}

/// Resizes an 8-bit plane with strides into another (the element's chroma path).
/// `tmp` is scratch space reused between calls.
pub fn resize_u8(
    src: &[u8],
    src_stride: usize,
    dst: &mut [u8],
    dst_stride: usize,
    h: &Contributions,
    v: &Contributions,
    tmp: &mut Vec<f32>,
) {
    resize_plane_samples(src, src_stride, dst, dst_stride, h, v, Depth::U8, tmp)
}

/// As [`resize_u8`] for samples of any [`Sample`] type holding `depth` (strides in samples).
#[allow(clippy::too_many_arguments)]
pub fn resize_plane_samples<T: Sample>(
    src: &[T],
    src_stride: usize,
    dst: &mut [T],
    dst_stride: usize,
    h: &Contributions,
    v: &Contributions,
    depth: Depth,
    tmp: &mut Vec<f32>,
) {
    let rows = 0..v.out_len;
    resize_rows(src, U8Layout::plane(src_stride), dst, U8Layout::plane(dst_stride), h, v, rows, depth, tmp);
}

/// Output rows `rows` of [`resize_u8`] with general layouts; `dst` starts at output row
/// `rows.start` (so that disjoint row ranges can be written by different threads).
#[allow(clippy::too_many_arguments)]
pub fn resize_u8_rows(
    src: &[u8],
    sl: U8Layout,
    dst: &mut [u8],
    dl: U8Layout,
    h: &Contributions,
    v: &Contributions,
    rows: std::ops::Range<usize>,
    tmp: &mut Vec<f32>,
) {
    resize_rows(src, sl, dst, dl, h, v, rows, Depth::U8, tmp)
}

/// As [`resize_u8_rows`] for samples of any [`Sample`] type holding `depth` (layouts in
/// samples, not bytes): 16-bit words of 10-bit video are resized at 10 bits.
#[allow(clippy::too_many_arguments)]
pub fn resize_rows<T: Sample>(
    src: &[T],
    sl: U8Layout,
    dst: &mut [T],
    dl: U8Layout,
    h: &Contributions,
    v: &Contributions,
    rows: std::ops::Range<usize>,
    depth: Depth,
    tmp: &mut Vec<f32>,
) {
    // Compiled with AVX2 where the CPU has it: the passes vectorise wider and `round` becomes
    // an instruction instead of a call per sample (the same values).
    crate::with_avx2(
        #[inline(always)]
        || {
            let (in_w, in_h, out_w) = (h.in_len, v.in_len, h.out_len);
            // A copy in registers: read through the closure's reference, the depth was loaded
            // again for every sample stored (the stores might alias it).
            #[allow(clippy::redundant_locals)]
            let depth = depth;
            if rows.is_empty() || out_w == 0 || in_w == 0 {
                return;
            }
            assert!(rows.end <= v.out_len, "output rows out of range");
            assert!(src.len() > (in_h - 1) * sl.stride + sl.offset + (in_w - 1) * sl.step, "source plane too small");
            let n = rows.len();
            assert!(dst.len() > (n - 1) * dl.stride + dl.offset + (out_w - 1) * dl.step, "destination plane too small");
            // The input rows these output rows read.
            let taps = |j: usize| &v.index[j * v.taps..(j + 1) * v.taps];
            let y0 = rows.clone().flat_map(taps).copied().min().unwrap_or(0) as usize;
            let y1 = rows.clone().flat_map(taps).copied().max().unwrap_or(0) as usize + 1;
            // Horizontal pass first, over the input rows (the fewer rows when upscaling), then the
            // vertical pass, which runs along contiguous rows and vectorises.
            tmp.clear();
            tmp.resize(out_w * (y1 - y0) + 2 * out_w + in_w, 0.0);
            let (hrows, rest) = tmp.split_at_mut(out_w * (y1 - y0));
            let (acc, rest) = rest.split_at_mut(out_w);
            let (line, phase) = rest.split_at_mut(in_w);
            assert!(h.index.iter().all(|&i| (i as usize) < in_w), "horizontal taps out of range");
            for y in y0..y1 {
                let src_row = &src[y * sl.stride + sl.offset..];
                let out_row = &mut hrows[(y - y0) * out_w..(y - y0 + 1) * out_w];
                // SAFETY: every tap is below `in_w` (checked above) and the source row holds
                // `in_w` samples `sl.step` apart (checked at the top).
                let at = |i: usize| unsafe { depth.value(*src_row.get_unchecked(i * sl.step)) as f32 };
                let Some(pd) = h.periodic else {
                    for (j, o) in out_row.iter_mut().enumerate() {
                        *o = h.apply(j, at);
                    }
                    continue;
                };
                // The row as floats once; the borders gathered from it, the interior phase by
                // phase: `Σ_t w[t] · line[i0[t] + k]` for k = 0, 1, … (contiguous, vectorised),
                // each sum in the order of the gathering path.
                for (i, l) in line.iter_mut().enumerate() {
                    *l = at(i);
                }
                for j in (0..pd.lo).chain(pd.hi..out_w) {
                    out_row[j] = h.apply(j, |i| line[i]);
                }
                for base in pd.lo..(pd.lo + pd.period).min(pd.hi) {
                    let n = (pd.hi - base).div_ceil(pd.period);
                    let sums = &mut phase[..n];
                    sums.fill(0.0);
                    for (&w, &i0) in h.weight[base * h.taps..][..h.taps].iter().zip(&h.index[base * h.taps..][..h.taps])
                    {
                        // In range: the last output of the phase reads index i0 + n − 1 < in_w.
                        for (s, &x) in sums.iter_mut().zip(&line[i0 as usize..][..n]) {
                            *s += w * x;
                        }
                    }
                    for (o, &s) in out_row[base..].iter_mut().step_by(pd.period).zip(sums.iter()) {
                        *o = s;
                    }
                }
            }
            for (r, j) in rows.enumerate() {
                acc.fill(0.0);
                for (&w, &y) in v.weight[j * v.taps..(j + 1) * v.taps].iter().zip(taps(j)) {
                    let row = &hrows[(y as usize - y0) * out_w..][..out_w];
                    for (a, &x) in acc.iter_mut().zip(row) {
                        *a += w * x;
                    }
                }
                let out_row = &mut dst[r * dl.stride + dl.offset..];
                if dl.step == 1 {
                    for (o, &a) in out_row.iter_mut().zip(acc.iter()) {
                        *o = depth.from_level(a);
                    }
                    continue;
                }
                // Interleaved (NV12's UV): rounded in a vector loop into a buffer, then spread
                // `step` apart (a strided store does not vectorise, and took the rounding with it).
                let mut buf = [T::default(); 256];
                for (c, chunk) in acc.chunks(buf.len()).enumerate() {
                    for (b, &a) in buf.iter_mut().zip(chunk) {
                        *b = depth.from_level(a);
                    }
                    let spread = out_row[c * buf.len() * dl.step..].iter_mut().step_by(dl.step);
                    for (o, &b) in spread.zip(&buf[..chunk.len()]) {
                        *o = b;
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_interpolating_and_sums_to_one() {
        assert_eq!(cubic(0.0), 1.0);
        assert_eq!(cubic(1.0), 0.0);
        assert_eq!(cubic(2.0), 0.0);
        assert_eq!(cubic(2.5), 0.0);
        for k in 0..10 {
            let f = k as f64 / 10.0;
            let s: f64 = (-3..=3).map(|i| cubic(i as f64 + f)).sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn reflection_is_symmetric() {
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(reflect(-1, 1), 0);
        assert_eq!(reflect(5, 1), 0);
    }

    #[test]
    fn matlab_table_for_2x_upscale() {
        // Output 0 of a ×2 upscale sits at u = −0.25 between source −1 (reflected to 0) and 0.
        let c = Contributions::matlab(8, 16, 2.0, true);
        assert_eq!(c.taps, 4, "zero taps trimmed");
        let w: Vec<f32> = c.weight[..4].to_vec();
        let expect = [cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25)];
        for t in 0..4 {
            assert!((w[t] as f64 - expect[t]).abs() < 1e-6, "{w:?}");
        }
        assert_eq!(&c.index[..4], &[1, 0, 0, 1]);
    }

    #[test]
    fn constants_stay_constant() {
        let p = Plane::filled(13, 7, 87.0);
        for (scale, round) in [(2.0, false), (0.5, true), (4.0, false), (0.25, false), (1.0 / 3.0, true)] {
            let r = imresize(&p, scale, round);
            assert_eq!((r.width, r.height), (scaled_len(13, scale), scaled_len(7, scale)));
            assert!(r.data.iter().all(|&v| (v - 87.0).abs() < 1e-3), "scale {scale}");
        }
    }

    #[test]
    fn ramps_are_preserved_in_the_interior() {
        // Cubic convolution reproduces linear (even quadratic) signals away from the border.
        let p = Plane::from_fn(32, 20, |x, y| 3.0 * x as f32 + 2.0 * y as f32 + 5.0);
        let up = upscale_bicubic(&p, 2);
        for y in 4..up.height - 4 {
            for x in 4..up.width - 4 {
                let (u, v) = ((x as f32 + 0.5) / 2.0 - 0.5, (y as f32 + 0.5) / 2.0 - 0.5);
                assert!((up.get(x, y) - (3.0 * u + 2.0 * v + 5.0)).abs() < 1e-3);
            }
        }
        let down = imresize(&p, 0.5, false);
        for y in 3..down.height - 3 {
            for x in 3..down.width - 3 {
                let (u, v) = (2.0 * x as f32 + 0.5, 2.0 * y as f32 + 0.5);
                assert!((down.get(x, y) - (3.0 * u + 2.0 * v + 5.0)).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn upscale_then_downscale_is_close_to_identity_on_smooth_images() {
        let p = Plane::from_fn(24, 24, |x, y| 100.0 + 50.0 * ((x as f32) * 0.3).sin() * ((y as f32) * 0.2).cos());
        let back = imresize(&upscale_bicubic(&p, 2), 0.5, false);
        let err = p.data.iter().zip(&back.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 2.0, "{err}");
    }

    #[test]
    fn u8_path_matches_float_path() {
        let (w, h) = (11, 9);
        let src = Plane::from_fn(w, h, |x, y| ((x * 37 + y * 91) % 256) as f32);
        let hc = Contributions::matlab(w, 2 * w, 2.0, true);
        let vc = Contributions::matlab(h, 2 * h, 2.0, true);
        let float = resize_plane(&src, &hc, &vc, false);
        let stride = w + 5;
        let mut bytes = vec![0u8; h * stride];
        for y in 0..h {
            for x in 0..w {
                bytes[y * stride + x] = src.get(x, y) as u8;
            }
        }
        let dstride = 2 * w + 3;
        let mut dst = vec![0u8; 2 * h * dstride];
        resize_u8(&bytes, stride, &mut dst, dstride, &hc, &vc, &mut Vec::new());
        for y in 0..2 * h {
            for x in 0..2 * w {
                let f = float.get(x, y).round().clamp(0.0, 255.0);
                assert!((dst[y * dstride + x] as f32 - f).abs() <= 1.0);
            }
        }
    }

    /// The element's chroma tables: step 1/s, offset of the siting (`engine::chroma_map_sub`).
    fn chroma_table(in_len: usize, scale: usize, cosited: bool) -> Contributions {
        let (step, offset) = crate::engine::chroma_map_sub(scale, 2, cosited);
        Contributions::affine(in_len, in_len * scale, step, offset, 1.0)
    }

    #[test]
    fn integer_upscales_run_as_fir_filters_away_from_the_borders() {
        for (scale, cosited) in [(2, false), (2, true), (4, false), (4, true)] {
            let c = chroma_table(640, scale, cosited);
            let p = c.periodic.expect("periodic");
            assert_eq!(p.period, scale);
            assert!(p.lo <= 2 * scale && p.hi + 2 * scale >= c.out_len, "{p:?} of {}", c.out_len);
        }
        let m = Contributions::matlab(100, 200, 2.0, true);
        assert!(m.is_periodic() && !m.gathering().is_periodic());
        // ×1.5 repeats every 3 outputs but two samples on, and downscaling also moves by two:
        // both keep gathering.
        assert!(!Contributions::matlab(100, 150, 1.5, true).is_periodic());
        assert!(!Contributions::matlab(100, 50, 0.5, true).is_periodic());
        // Too short to repeat: no periodic part, the same values.
        assert!(!chroma_table(1, 2, false).is_periodic());
    }

    #[test]
    fn fir_path_gives_the_gathering_paths_values_bit_for_bit() {
        let mut seed = 12345u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed >> 8
        };
        for (in_w, in_h) in [(1usize, 1usize), (2, 3), (3, 2), (7, 5), (33, 9), (64, 16)] {
            for (scale, cosited) in [(2, false), (2, true), (4, false)] {
                let h = chroma_table(in_w, scale, cosited);
                let v = chroma_table(in_h, scale, cosited);
                assert!(in_w < 33 || h.is_periodic(), "the FIR path is what is compared");
                let (out_w, out_h) = (in_w * scale, in_h * scale);
                // NV12's interleaved layout (step 2, V at offset 1) and a plain plane.
                for (step, offset) in [(1usize, 0usize), (2, 1)] {
                    let (sl, dl) = (
                        U8Layout { stride: in_w * step + 3, step, offset },
                        U8Layout { stride: out_w * step + 5, step, offset },
                    );
                    let src8: Vec<u8> = (0..in_h * sl.stride).map(|_| next() as u8).collect();
                    let src16: Vec<u16> = (0..in_h * sl.stride).map(|_| (next() & 1023) as u16).collect();
                    let run8 = |h: &Contributions, rows: std::ops::Range<usize>| {
                        let mut dst = vec![0u8; out_h * dl.stride];
                        let at = rows.start * dl.stride;
                        resize_rows(&src8, sl, &mut dst[at..], dl, h, &v, rows, Depth::U8, &mut Vec::new());
                        dst
                    };
                    let run16 = |h: &Contributions| {
                        let mut dst = vec![0u16; out_h * dl.stride];
                        resize_rows(&src16, sl, &mut dst, dl, h, &v, 0..out_h, Depth::LSB10, &mut Vec::new());
                        dst
                    };
                    let g = h.gathering();
                    let what = format!("{in_w}x{in_h} x{scale} cosited {cosited} step {step}");
                    assert!(run8(&h, 0..out_h) == run8(&g, 0..out_h), "8-bit {what}");
                    let part = out_h / 3..out_h;
                    assert!(run8(&h, part.clone()) == run8(&g, part), "8-bit rows {what}");
                    assert!(run16(&h) == run16(&g), "10-bit {what}");
                }
            }
        }
        // The horizontal pass alone, as floats: equal sums (not only equal rounded samples).
        let h = chroma_table(50, 2, false);
        let v = Contributions::matlab(4, 4, 1.0, false);
        assert!(h.is_periodic());
        let src: Vec<u16> = (0..50 * 4).map(|_| (next() & 1023) as u16).collect();
        let mut t1 = Vec::new();
        let mut t2 = Vec::new();
        let mut d = vec![0u16; 100 * 4];
        resize_rows(&src, U8Layout::plane(50), &mut d, U8Layout::plane(100), &h, &v, 0..4, Depth::LSB10, &mut t1);
        resize_rows(
            &src,
            U8Layout::plane(50),
            &mut d,
            U8Layout::plane(100),
            &h.gathering(),
            &v,
            0..4,
            Depth::LSB10,
            &mut t2,
        );
        assert!(t1[..100 * 4] == t2[..100 * 4], "horizontal sums differ");
    }
}
