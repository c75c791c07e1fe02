//! The portable inner block: safe Rust on fixed-size arrays, which the compiler vectorises for
//! the target's baseline vector unit (SSE2 on x86-64, NEON on aarch64). Correct on any CPU.

use super::{Layer, Post, PAD};

/// Pixels per register block: 4 channels × 8 pixels = 32 accumulators, 8 SSE/NEON registers.
pub(super) const XB: usize = 8;

/// One output row of a k×k convolution (zero padding), all output channels, `cw` pixels.
/// Same contract as the SIMD variants; slices are bounds-checked.
#[allow(clippy::needless_range_loop)] // fixed-size index loops are what vectorises
pub(super) fn conv_row<const K: usize>(
    rows: &[&[f32]; 5],
    cs: usize,
    layer: &Layer,
    cw: usize,
    out: &mut [f32],
    post: &Post,
) {
    let p = K / 2;
    let cin = layer.cin;
    let per_block = cin * K * K * 4;
    for xb in (0..cw).step_by(XB) {
        for cb in 0..layer.cout / 4 {
            let mut acc = [[0f32; XB]; 4];
            for (j, a) in acc.iter_mut().enumerate() {
                *a = [layer.bias[cb * 4 + j]; XB];
            }
            let mut weights = layer.w[cb * per_block..(cb + 1) * per_block].chunks_exact(4);
            for ci in 0..cin {
                for row in rows.iter().take(K) {
                    let base = ci * cs + PAD - p + xb;
                    let seg = &row[base..base + XB + K - 1];
                    for dx in 0..K {
                        let x: &[f32; XB] = seg[dx..dx + XB].try_into().expect("XB values");
                        let w = weights.next().expect("a weight per tap");
                        for j in 0..4 {
                            let wj = w[j];
                            for i in 0..XB {
                                acc[j][i] += x[i] * wj;
                            }
                        }
                    }
                }
            }
            for (j, a) in acc.iter().enumerate() {
                let co = cb * 4 + j;
                let at = co * cs + PAD + xb;
                let mut vals = *a;
                if let Some(al) = post.alpha {
                    let s = al[co];
                    for v in vals.iter_mut() {
                        *v = v.max(0.0) + s * v.min(0.0);
                    }
                }
                if let Some(r) = post.residual {
                    for (v, &r) in vals.iter_mut().zip(&r[at..at + XB]) {
                        *v += r;
                    }
                }
                out[at..at + XB].copy_from_slice(&vals);
            }
        }
    }
}
