//! Chroma: the bicubic [`ChromaScaler`] of subsampled chroma planes and the [`ChromaSiting`]
//! that places their samples relative to luma.

use crate::pool::Pool;
use crate::resize::{resize_plane_samples, resize_rows, Contributions, U8Layout};
use crate::sample::{Depth, Sample};

/// Where chroma samples sit relative to luma: co-sited with the first luma sample of their
/// pair (`true`) or centred between the pair (`false`), horizontally and vertically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChromaSiting {
    pub h_cosited: bool,
    pub v_cosited: bool,
}

/// Source position (in input chroma samples) of output chroma sample `j`, as `step·j + offset`,
/// for 2× subsampled chroma and a luma scale factor `s`. A chroma sample `i` sits at luma
/// position `2i + d` (d = 0 co-sited, ½ centred); luma maps by `(X + ½)/s − ½`.
pub fn chroma_map(scale: usize, cosited: bool) -> (f64, f64) {
    chroma_map_sub(scale, 2, cosited)
}

/// [`chroma_map`] for chroma subsampled `sub`× (1: full resolution, the luma mapping; 2: 4:2:x).
/// A chroma sample `i` sits at luma position `sub·i + d`, `d` = 0 co-sited or `(sub − 1)/2`
/// centred.
pub fn chroma_map_sub(scale: usize, sub: usize, cosited: bool) -> (f64, f64) {
    let (s, k) = (scale as f64, sub as f64);
    let d = if cosited { 0.0 } else { (k - 1.0) / 2.0 };
    (1.0 / s, ((d + 0.5) / s - 0.5 - d) / k)
}

/// Bicubic upscaler of 2×2-subsampled chroma planes between two fixed frame sizes.
pub struct ChromaScaler {
    h: Contributions,
    v: Contributions,
    /// Worker threads (U and V, or the two halves of NV12's rows, in parallel when ≥ 2).
    pool: Pool,
    tmp: [Vec<f32>; 2],
}

impl ChromaScaler {
    /// For chroma planes of `in_w`×`in_h` samples going to `out_w`×`out_h`, on `pool` (a pool
    /// of ≥ 2 threads scales U and V at the same time).
    pub fn new(
        in_w: usize,
        in_h: usize,
        out_w: usize,
        out_h: usize,
        scale: usize,
        siting: ChromaSiting,
        pool: Pool,
    ) -> Self {
        Self::with_subsampling(in_w, in_h, out_w, out_h, scale, siting, (2, 2), pool)
    }

    /// As [`new`](Self::new), for chroma subsampled `sub = (horizontal, vertical)` times
    /// (4:2:0 `(2, 2)`, 4:2:2 `(2, 1)`, 4:4:4 `(1, 1)`).
    #[allow(clippy::too_many_arguments)]
    pub fn with_subsampling(
        in_w: usize,
        in_h: usize,
        out_w: usize,
        out_h: usize,
        scale: usize,
        siting: ChromaSiting,
        sub: (usize, usize),
        pool: Pool,
    ) -> Self {
        let (hs, ho) = chroma_map_sub(scale, sub.0, siting.h_cosited);
        let (vs, vo) = chroma_map_sub(scale, sub.1, siting.v_cosited);
        ChromaScaler {
            h: Contributions::affine(in_w, out_w, hs, ho, 1.0),
            v: Contributions::affine(in_h, out_h, vs, vo, 1.0),
            pool,
            tmp: Default::default(),
        }
    }

    /// One planar chroma plane.
    pub fn scale_plane(&mut self, src: &[u8], stride: usize, dst: &mut [u8], dst_stride: usize) {
        self.scale_plane_samples(src, stride, dst, dst_stride, Depth::U8)
    }

    /// One planar chroma plane of any sample type (strides in samples).
    pub fn scale_plane_samples<T: Sample>(
        &mut self,
        src: &[T],
        stride: usize,
        dst: &mut [T],
        dst_stride: usize,
        depth: Depth,
    ) {
        resize_plane_samples(src, stride, dst, dst_stride, &self.h, &self.v, depth, &mut self.tmp[0]);
    }

    /// Both planes of I420 (`(data, stride)` each).
    pub fn scale_planes(
        &mut self,
        u: (&[u8], usize),
        v: (&[u8], usize),
        du: (&mut [u8], usize),
        dv: (&mut [u8], usize),
    ) {
        self.scale_planes_samples(u, v, du, dv, Depth::U8)
    }

    /// As [`scale_planes`](Self::scale_planes) for any sample type (strides in samples).
    pub fn scale_planes_samples<T: Sample>(
        &mut self,
        u: (&[T], usize),
        v: (&[T], usize),
        du: (&mut [T], usize),
        dv: (&mut [T], usize),
        depth: Depth,
    ) {
        let (h, vc) = (&self.h, &self.v);
        let [t0, t1] = &mut self.tmp;
        self.pool.join(
            || resize_plane_samples(u.0, u.1, du.0, du.1, h, vc, depth, t0),
            || resize_plane_samples(v.0, v.1, dv.0, dv.1, h, vc, depth, t1),
        );
    }

    /// An interleaved UV plane (NV12), read and written interleaved; output rows split between
    /// two threads.
    pub fn scale_interleaved(&mut self, src: &[u8], stride: usize, dst: &mut [u8], dst_stride: usize) {
        self.scale_interleaved_samples(src, stride, dst, dst_stride, Depth::U8)
    }

    /// As [`scale_interleaved`](Self::scale_interleaved) for any sample type (P010's UV
    /// words; strides in samples).
    pub fn scale_interleaved_samples<T: Sample>(
        &mut self,
        src: &[T],
        stride: usize,
        dst: &mut [T],
        dst_stride: usize,
        depth: Depth,
    ) {
        let (h, v) = (&self.h, &self.v);
        let oh = v.out_len;
        let rows = |dst: &mut [T], r: std::ops::Range<usize>, tmp: &mut Vec<f32>| {
            for c in 0..2 {
                let sl = U8Layout { stride, step: 2, offset: c };
                let dl = U8Layout { stride: dst_stride, step: 2, offset: c };
                resize_rows(src, sl, dst, dl, h, v, r.clone(), depth, tmp);
            }
        };
        let [t0, t1] = &mut self.tmp;
        if self.pool.threads() >= 2 && oh >= 2 {
            let mid = oh / 2;
            let (top, bottom) = dst.split_at_mut(mid * dst_stride);
            self.pool.join(|| rows(top, 0..mid, t0), || rows(bottom, mid..oh, t1));
        } else {
            rows(dst, 0..oh, t0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centred_siting_is_matlab_mapping() {
        let (step, off) = chroma_map(2, false);
        assert_eq!((step, off), (0.5, -0.25));
        // Co-sited: output chroma 0 sits on output luma 0, i.e. input luma −¼, i.e. chroma −⅛.
        assert_eq!(chroma_map(2, true), (0.5, -0.125));
        assert_eq!(chroma_map(4, true).1, (0.5 / 4.0 - 0.5) / 2.0);
        // Full-resolution chroma maps like luma: MATLAB's (j + ½)/s − ½, whatever the siting.
        assert_eq!(chroma_map_sub(2, 1, false), (0.5, -0.25));
        assert_eq!(chroma_map_sub(2, 1, true), (0.5, -0.25));
    }

    #[test]
    fn interleaved_equals_planar() {
        let (iw, ih) = (5, 3);
        let mut sc = ChromaScaler::new(
            iw,
            ih,
            10,
            6,
            2,
            ChromaSiting { h_cosited: true, v_cosited: false },
            Pool::shared(2).unwrap(),
        );
        let u: Vec<u8> = (0..iw * ih).map(|i| (i * 17) as u8).collect();
        let v: Vec<u8> = (0..iw * ih).map(|i| 255 - (i * 11) as u8).collect();
        let nv: Vec<u8> = (0..iw * ih).flat_map(|i| [u[i], v[i]]).collect();
        let mut out_nv = vec![0u8; 20 * 6];
        sc.scale_interleaved(&nv, 2 * iw, &mut out_nv, 20);
        let (mut ou, mut ov) = (vec![0u8; 60], vec![0u8; 60]);
        sc.scale_plane(&u, iw, &mut ou, 10);
        sc.scale_plane(&v, iw, &mut ov, 10);
        for i in 0..60 {
            assert_eq!(out_nv[2 * i], ou[i]);
            assert_eq!(out_nv[2 * i + 1], ov[i]);
        }
    }
}
