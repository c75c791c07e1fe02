//! AVX2+FMA inner block, sized for 16 ymm registers: `V` vectors of 8 pixels × `J` output
//! channels (`J·V` accumulators); per tap, `J` weight broadcasts and one load per input vector,
//! each used by `J` FMAs.
//!
//! Measured on a 2-core EPYC (AVX2, 1080p M5 ×2, fps): J=4 V=3 (the AVX-512 block's shape,
//! 12 accumulators + 3 inputs + 1 weight) spills accumulators to the stack, 1.2; J=2 V=6, 1.6
//! (still one spill); J=2 V=5, 2.0; J=2 V=4 and J=4 V=2 (no spill), 2.0–2.3; J=1 V=12, 1.5.

#[cfg(target_arch = "x86_64")]
use super::PAD;
use super::{Layer, Post};

/// Output channels per register block (of the 4 of a weight group).
#[cfg(target_arch = "x86_64")]
const J: usize = 2;
/// Vectors per register block: 8 accumulators + 2 weights + 1 input.
const V: usize = 4;
/// Pixels per register block.
pub(super) const XB: usize = 8 * V;

/// One output row of a k×k convolution (zero padding), all output channels, `cw` pixels.
///
/// # Safety
/// As [`super::avx512::conv_row`], with `cw` a multiple of [`XB`] and the CPU having AVX2 and
/// FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // indices keep the accumulator block in registers
pub(super) unsafe fn conv_row<const K: usize>(
    rows: &[&[f32]; 5],
    cs: usize,
    layer: &Layer,
    cw: usize,
    out: &mut [f32],
    post: &Post,
) {
    use std::arch::x86_64::*;
    let p = K / 2;
    let cin = layer.cin;
    let zero = _mm256_setzero_ps();
    let out = out.as_mut_ptr();
    for xb in (0..cw).step_by(XB) {
        for cb in 0..layer.cout / 4 {
            for half in 0..4 / J {
                let mut acc = [[zero; V]; J];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = [_mm256_set1_ps(layer.bias[cb * 4 + half * J + j]); V];
                }
                let mut wp = layer.w.as_ptr().add(cb * cin * K * K * 4 + half * J);
                for ci in 0..cin {
                    for row in rows.iter().take(K) {
                        let base = row.as_ptr().add(ci * cs + PAD - p + xb);
                        for dx in 0..K {
                            let mut w = [zero; J];
                            for j in 0..J {
                                w[j] = _mm256_broadcast_ss(&*wp.add(j));
                            }
                            for v in 0..V {
                                let x = _mm256_loadu_ps(base.add(dx + v * 8));
                                for j in 0..J {
                                    acc[j][v] = _mm256_fmadd_ps(x, w[j], acc[j][v]);
                                }
                            }
                            wp = wp.add(4);
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    let co = cb * 4 + half * J + j;
                    let slope = post.alpha.map(|al| _mm256_set1_ps(al[co]));
                    for (v, &val) in a.iter().enumerate() {
                        let mut val = val;
                        if let Some(s) = slope {
                            val = _mm256_add_ps(_mm256_max_ps(val, zero), _mm256_mul_ps(s, _mm256_min_ps(val, zero)));
                        }
                        let at = co * cs + PAD + xb + v * 8;
                        if let Some(r) = post.residual {
                            val = _mm256_add_ps(val, _mm256_loadu_ps(r.as_ptr().add(at)));
                        }
                        _mm256_storeu_ps(out.add(at), val);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn conv_row<const K: usize>(
    _rows: &[&[f32]; 5],
    _cs: usize,
    _layer: &Layer,
    _cw: usize,
    _out: &mut [f32],
    _post: &Post,
) {
    unreachable!("Isa::Avx2 is never available off x86-64")
}
