//! Colour conversion: ITU-R BT.601 "studio swing" YCbCr, as MATLAB's `rgb2ycbcr`.
//!
//! For R, G, B in 0..=255: `Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255` (16..=235),
//! `Cb = 128 + (-37.797 R - 74.203 G + 112 B) / 255`, `Cr = 128 + (112 R - 93.786 G - 18.214 B) / 255`
//! (16..=240). SR papers score on this Y, kept in floating point (not rounded).

use crate::plane::{Plane, RgbPlanes};
use std::sync::LazyLock;

/// Rows: Y, Cb, Cr; columns: R, G, B (inputs in 0..=255, so divided by 255).
const FORWARD: [[f64; 3]; 3] = [
    [65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0],
    [-37.797 / 255.0, -74.203 / 255.0, 112.0 / 255.0],
    [112.0 / 255.0, -93.786 / 255.0, -18.214 / 255.0],
];
const OFFSET: [f64; 3] = [16.0, 128.0, 128.0];

static INVERSE: LazyLock<[[f64; 3]; 3]> = LazyLock::new(|| invert3(&FORWARD));

fn invert3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    // Adjugate over determinant; cofactors with cyclic indices carry their own sign.
    let c = |r: usize, k: usize| {
        let (r1, r2, k1, k2) = ((r + 1) % 3, (r + 2) % 3, (k + 1) % 3, (k + 2) % 3);
        m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = c(j, i) / det;
        }
    }
    inv
}

/// Y (16..=235 scale) of one RGB pixel given in 0..=255.
#[inline]
pub fn rgb_to_y(r: f32, g: f32, b: f32) -> f32 {
    let f = &FORWARD[0];
    (OFFSET[0] + f[0] * r as f64 + f[1] * g as f64 + f[2] * b as f64) as f32
}

/// (Y, Cb, Cr), each in the 8-bit studio scale, of one RGB pixel given in 0..=255.
#[inline]
pub fn rgb_to_ycbcr(r: f32, g: f32, b: f32) -> [f32; 3] {
    let mut out = [0.0f32; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let f = &FORWARD[k];
        *o = (OFFSET[k] + f[0] * r as f64 + f[1] * g as f64 + f[2] * b as f64) as f32;
    }
    out
}

/// (R, G, B) in 0..=255 (not clamped) of one studio-swing YCbCr pixel.
#[inline]
pub fn ycbcr_to_rgb(y: f32, cb: f32, cr: f32) -> [f32; 3] {
    let inv = &*INVERSE;
    let d = [y as f64 - OFFSET[0], cb as f64 - OFFSET[1], cr as f64 - OFFSET[2]];
    let mut out = [0.0f32; 3];
    for (k, o) in out.iter_mut().enumerate() {
        *o = (inv[k][0] * d[0] + inv[k][1] * d[1] + inv[k][2] * d[2]) as f32;
    }
    out
}

/// The Y plane of an RGB image, in [0, 1] (`Y/255`), not rounded: the model's input.
pub fn y_unit(rgb: &RgbPlanes) -> Plane {
    let data = (0..rgb.r.data.len()).map(|i| rgb_to_y(rgb.r.data[i], rgb.g.data[i], rgb.b.data[i]) / 255.0).collect();
    Plane::from_vec(rgb.width(), rgb.height(), data)
}

/// The three planes Y, Cb, Cr (8-bit studio scale) of an RGB image.
pub fn to_ycbcr(rgb: &RgbPlanes) -> [Plane; 3] {
    let (w, h) = (rgb.width(), rgb.height());
    let mut out = [Plane::new(w, h), Plane::new(w, h), Plane::new(w, h)];
    for i in 0..rgb.r.data.len() {
        let ycc = rgb_to_ycbcr(rgb.r.data[i], rgb.g.data[i], rgb.b.data[i]);
        for k in 0..3 {
            out[k].data[i] = ycc[k];
        }
    }
    out
}

/// RGB (0..=255, not clamped) from Y, Cb, Cr planes in the 8-bit studio scale.
pub fn from_ycbcr(y: &Plane, cb: &Plane, cr: &Plane) -> RgbPlanes {
    assert!(y.width == cb.width && y.width == cr.width && y.height == cb.height && y.height == cr.height);
    let (w, h) = (y.width, y.height);
    let (mut r, mut g, mut b) = (Plane::new(w, h), Plane::new(w, h), Plane::new(w, h));
    for i in 0..y.data.len() {
        let [rr, gg, bb] = ycbcr_to_rgb(y.data[i], cb.data[i], cr.data[i]);
        r.data[i] = rr;
        g.data[i] = gg;
        b.data[i] = bb;
    }
    RgbPlanes { r, g, b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_white_and_grey_hit_studio_levels() {
        assert!((rgb_to_y(0.0, 0.0, 0.0) - 16.0).abs() < 1e-5);
        assert!((rgb_to_y(255.0, 255.0, 255.0) - 235.0).abs() < 1e-4);
        let grey = rgb_to_ycbcr(128.0, 128.0, 128.0);
        assert!((grey[1] - 128.0).abs() < 1e-4 && (grey[2] - 128.0).abs() < 1e-4, "{grey:?}");
        // Pure colours reach the chroma extremes 16 and 240.
        assert!((rgb_to_ycbcr(0.0, 0.0, 255.0)[1] - 240.0).abs() < 1e-4);
        assert!((rgb_to_ycbcr(255.0, 0.0, 0.0)[2] - 240.0).abs() < 1e-4);
    }

    #[test]
    fn the_spec_formula() {
        let (r, g, b) = (200.0f32, 100.0, 50.0);
        let expect = 16.0 + (65.481 * 200.0 + 128.553 * 100.0 + 24.966 * 50.0) / 255.0;
        assert!((rgb_to_y(r, g, b) as f64 - expect).abs() < 1e-4);
    }

    #[test]
    fn round_trip_rgb_ycbcr_rgb() {
        for r in (0..=255).step_by(15) {
            for g in (0..=255).step_by(17) {
                for b in (0..=255).step_by(51) {
                    let [y, cb, cr] = rgb_to_ycbcr(r as f32, g as f32, b as f32);
                    let [r2, g2, b2] = ycbcr_to_rgb(y, cb, cr);
                    assert!(
                        (r2 - r as f32).abs() < 1e-3 && (g2 - g as f32).abs() < 1e-3 && (b2 - b as f32).abs() < 1e-3
                    );
                }
            }
        }
    }

    #[test]
    fn inverse_matches_bt601_constants() {
        // The familiar studio-swing decode: R = 1.164(Y-16) + 1.596(Cr-128).
        let [r, _, _] = ycbcr_to_rgb(116.0, 128.0, 228.0);
        assert!((r - (1.164383 * 100.0 + 1.596027 * 100.0)).abs() < 1e-2, "{r}");
    }
}
