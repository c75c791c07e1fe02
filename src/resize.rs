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
/// `Σ_t weight[j·taps + t] · src[index[j·taps + t]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    pub in_len: usize,
    pub out_len: usize,
    pub taps: usize,
    pub index: Vec<u32>,
    pub weight: Vec<f32>,
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
        let mut c = Contributions { in_len, out_len, taps, index, weight };
        c.trim_zero_taps();
        c
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

    #[inline]
    fn apply(&self, j: usize, sample: impl Fn(usize) -> f32) -> f32 {
        let base = j * self.taps;
        let mut acc = 0.0f32;
        for t in 0..self.taps {
            acc += self.weight[base + t] * sample(self.index[base + t] as usize);
        }
        acc
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
            // Horizontal pass first, over the input rows (the gathering pass, on the fewer rows when
            // upscaling), then the vertical pass, which runs along contiguous rows and vectorises.
            tmp.clear();
            tmp.resize(out_w * (y1 - y0) + out_w, 0.0);
            let (hrows, acc) = tmp.split_at_mut(out_w * (y1 - y0));
            assert!(h.index.iter().all(|&i| (i as usize) < in_w), "horizontal taps out of range");
            for y in y0..y1 {
                let src_row = &src[y * sl.stride + sl.offset..];
                let out_row = &mut hrows[(y - y0) * out_w..(y - y0 + 1) * out_w];
                for ((o, w), i) in
                    out_row.iter_mut().zip(h.weight.chunks_exact(h.taps)).zip(h.index.chunks_exact(h.taps))
                {
                    // SAFETY: every tap is below `in_w` (checked above) and the source row holds
                    // `in_w` samples `sl.step` apart (checked at the top).
                    let at = |i: u32| unsafe { *src_row.get_unchecked(i as usize * sl.step) };
                    *o = w.iter().zip(i).map(|(&w, &i)| w * depth.value(at(i)) as f32).sum();
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
                for (o, &a) in out_row.iter_mut().step_by(dl.step).zip(acc.iter()) {
                    *o = depth.from_level(a);
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
}
