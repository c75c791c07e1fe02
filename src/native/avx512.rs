//! AVX-512 inner blocks: 64 pixels (4 zmm) × 4 output channels, 16 accumulators; float32 and
//! bfloat16 (`vdpbf16ps`).

#[cfg(target_arch = "x86_64")]
use super::PAD;
use super::{Layer, Post};

/// Pixels per register block.
pub(super) const XB: usize = 64;

/// One output row of a k×k convolution (zero padding), all output channels, `cw` pixels.
///
/// # Safety
/// `rows[dy]` (dy < K) hold `cin` channel rows of `cs` floats with data at `PAD`; `out` holds
/// `cout` rows of `cs` floats (and so does `post.residual`); `cs ≥ PAD + cw + PAD`; `cw` is a
/// multiple of [`XB`]; `cout` a multiple of 4; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // indices keep the 4×4 accumulator block in registers
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
    let zero = _mm512_setzero_ps();
    let out = out.as_mut_ptr();
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
                    let base = row.as_ptr().add(ci * cs + PAD - p + xb);
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
                    let at = co * cs + PAD + xb + v * 16;
                    if let Some(r) = post.residual {
                        val = _mm512_add_ps(val, _mm512_loadu_ps(r.as_ptr().add(at)));
                    }
                    _mm512_storeu_ps(out.add(at), val);
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
/// As [`conv_row`], with rows counted in channel pairs (`out` too when `to_ring`), and
/// AVX512-BF16 present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
pub(super) unsafe fn conv_row_bf16<const K: usize>(
    rows: &[&[f32]; 5],
    cs: usize,
    layer: &Layer,
    cw: usize,
    out: &mut [f32],
    post: &Post,
    to_ring: bool,
) {
    use std::arch::x86_64::*;
    let p = K / 2;
    let pairs = layer.cin.div_ceil(2);
    let zero = _mm512_setzero_ps();
    let high = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    let out = out.as_mut_ptr();
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
                    let base = (row.as_ptr() as *const u32).add(q * cs + PAD - p + xb);
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
                            let w = _mm512_loadu_si512((r.as_ptr() as *const u32).add((co / 2) * cs + at) as *const _);
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
                            _mm512_storeu_si512((out as *mut u32).add((co / 2) * cs + at) as *mut _, word);
                        }
                    } else {
                        for (j, val) in vals.iter().enumerate() {
                            _mm512_storeu_ps(out.add((cb * 4 + j) * cs + at), *val);
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
pub(super) unsafe fn conv_row<const K: usize>(
    _rows: &[&[f32]; 5],
    _cs: usize,
    _layer: &Layer,
    _cw: usize,
    _out: &mut [f32],
    _post: &Post,
) {
    unreachable!("Isa::Avx512 is never available off x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn conv_row_bf16<const K: usize>(
    _rows: &[&[f32]; 5],
    _cs: usize,
    _layer: &Layer,
    _cw: usize,
    _out: &mut [f32],
    _post: &Post,
    _to_ring: bool,
) {
    unreachable!("Isa::Avx512 is never available off x86-64")
}
