//! Image quality metrics: PSNR and SSIM on a single plane, with a border crop, and the
//! sample-wise difference of two 8-bit images.

use crate::plane::Plane;

/// How far apart two 8-bit images of the same size are: the largest absolute difference of a
/// sample, and how many samples differ at all.
pub fn byte_diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len(), "byte_diff of images of different sizes");
    a.iter().zip(b).fold((0, 0), |(worst, n), (&x, &y)| (worst.max(x.abs_diff(y)), n + usize::from(x != y)))
}

fn check_same_size(a: &Plane, b: &Plane, border: usize) {
    assert!(a.width == b.width && a.height == b.height, "metric on planes of different sizes");
    assert!(2 * border < a.width && 2 * border < a.height, "border crop leaves nothing");
}

/// Mean squared error over the planes with `border` pixels cropped on every side.
pub fn mse(a: &Plane, b: &Plane, border: usize) -> f64 {
    check_same_size(a, b, border);
    let mut acc = 0.0f64;
    for y in border..a.height - border {
        for x in border..a.width - border {
            let d = a.get(x, y) as f64 - b.get(x, y) as f64;
            acc += d * d;
        }
    }
    acc / ((a.width - 2 * border) * (a.height - 2 * border)) as f64
}

/// PSNR in dB for samples whose full range is `peak` (1.0 for unit planes, 255.0 for 8-bit).
/// Identical planes give `f64::INFINITY`.
pub fn psnr(a: &Plane, b: &Plane, border: usize, peak: f64) -> f64 {
    let m = mse(a, b, border);
    10.0 * (peak * peak / m).log10()
}

/// Gaussian window of SSIM (Wang et al. 2004): 11×11, σ = 1.5, normalised.
fn gaussian_window() -> [f64; 11] {
    let mut w = [0.0; 11];
    for (i, v) in w.iter_mut().enumerate() {
        let d = i as f64 - 5.0;
        *v = (-d * d / (2.0 * 1.5 * 1.5)).exp();
    }
    let s: f64 = w.iter().sum();
    w.map(|v| v / s)
}

/// Separable 'valid' filtering with the 11-tap window.
fn filter_valid(p: &[f64], w: usize, h: usize, k: &[f64; 11]) -> (Vec<f64>, usize, usize) {
    let (ow, oh) = (w - 10, h - 10);
    let mut tmp = vec![0.0; ow * h];
    for y in 0..h {
        for x in 0..ow {
            tmp[y * ow + x] = (0..11).map(|t| k[t] * p[y * w + x + t]).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..11).map(|t| k[t] * tmp[(y + t) * ow + x]).sum();
        }
    }
    (out, ow, oh)
}

/// Mean SSIM (Wang et al. 2004, the reference `ssim_index.m`: 11×11 Gaussian σ 1.5,
/// K1 = 0.01, K2 = 0.03, 'valid' windows) for samples of range `peak`, `border` pixels cropped
/// first. Planes smaller than the window after the crop are compared as one window.
pub fn ssim(a: &Plane, b: &Plane, border: usize, peak: f64) -> f64 {
    check_same_size(a, b, border);
    let (w, h) = (a.width - 2 * border, a.height - 2 * border);
    let ca = a.crop(border, border, w, h);
    let cb = b.crop(border, border, w, h);
    let (c1, c2) = ((0.01 * peak).powi(2), (0.03 * peak).powi(2));
    let x: Vec<f64> = ca.data.iter().map(|&v| v as f64).collect();
    let y: Vec<f64> = cb.data.iter().map(|&v| v as f64).collect();
    if w < 11 || h < 11 {
        let n = (w * h) as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let vx = x.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / n;
        let vy = y.iter().map(|v| (v - my).powi(2)).sum::<f64>() / n;
        let cxy = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum::<f64>() / n;
        return ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
    }
    let k = gaussian_window();
    let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
    let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
    let xy: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a * b).collect();
    let (mu_x, ow, oh) = filter_valid(&x, w, h, &k);
    let (mu_y, _, _) = filter_valid(&y, w, h, &k);
    let (sxx, _, _) = filter_valid(&xx, w, h, &k);
    let (syy, _, _) = filter_valid(&yy, w, h, &k);
    let (sxy, _, _) = filter_valid(&xy, w, h, &k);
    let mut acc = 0.0;
    for i in 0..ow * oh {
        let (mx, my) = (mu_x[i], mu_y[i]);
        let vx = sxx[i] - mx * mx;
        let vy = syy[i] - my * my;
        let cxy = sxy[i] - mx * my;
        acc += ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
    }
    acc / (ow * oh) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mse_gives_known_psnr() {
        let a = Plane::filled(10, 10, 100.0);
        let b = Plane::filled(10, 10, 110.0);
        // MSE 100 → 10·log10(255²/100) = 28.1308 dB.
        assert!((mse(&a, &b, 0) - 100.0).abs() < 1e-9);
        assert!((psnr(&a, &b, 0, 255.0) - 28.130_803_608_679_1).abs() < 1e-9);
        assert!(psnr(&a, &a, 0, 255.0).is_infinite());
    }

    #[test]
    fn border_is_cropped() {
        let a = Plane::filled(8, 8, 0.5);
        let mut b = a.clone();
        for i in 0..8 {
            b.set(i, 0, 0.0);
            b.set(0, i, 0.0);
        }
        assert!(mse(&a, &b, 0) > 0.0);
        assert_eq!(mse(&a, &b, 1), 0.0);
        b.set(3, 3, 0.4);
        // One pixel of 0.1 error in a 6×6 interior.
        assert!((mse(&a, &b, 1) - 0.01 / 36.0).abs() < 1e-9);
    }

    #[test]
    fn ssim_of_identical_is_one_and_drops_with_noise() {
        let a = Plane::from_fn(40, 30, |x, y| ((x * 7 + y * 13) % 50) as f32 * 4.0);
        assert!((ssim(&a, &a, 2, 255.0) - 1.0).abs() < 1e-12);
        let noisy = Plane::from_fn(40, 30, |x, y| a.get(x, y) + if (x + y) % 2 == 0 { 20.0 } else { -20.0 });
        let s = ssim(&a, &noisy, 2, 255.0);
        assert!(s < 0.95 && s > 0.0, "{s}");
        // A brightness shift costs less than structure noise of the same energy.
        let shifted = a.map(|v| v + 20.0);
        assert!(ssim(&a, &shifted, 2, 255.0) > s);
        // Tiny planes fall back to one global window.
        let t = Plane::from_fn(6, 6, |x, _| x as f32);
        assert!((ssim(&t, &t, 0, 255.0) - 1.0).abs() < 1e-12);
    }
}
