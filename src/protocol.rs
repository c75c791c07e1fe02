//! The scoring protocol of SR papers (spec §4).
//!
//! 1. HR cropped to a multiple of the scale; 2. LR = MATLAB bicubic downscale of the RGB image,
//!    rounded to 8 bits; 3. the model sees Y(LR)/255 and its output is clamped and rounded to
//!    8 bits; 4. PSNR on Y against Y(HR) with `scale` border pixels cropped (SSIM likewise).

use crate::color::y_unit;
use crate::metrics::{psnr, ssim};
use crate::plane::{Plane, RgbPlanes};
use crate::resize::{imresize_rgb_u8, upscale_bicubic};

/// One evaluation pair: the model input and the reference, both Y in [0, 1].
#[derive(Debug, Clone)]
pub struct EvalPair {
    pub lr_y: Plane,
    pub hr_y: Plane,
    pub lr_rgb: RgbPlanes,
    pub hr_rgb: RgbPlanes,
}

/// LR image of an HR image, as SR benchmarks make it: modcrop, MATLAB bicubic, 8-bit RGB.
pub fn make_lr(hr: &RgbPlanes, scale: usize) -> (RgbPlanes, RgbPlanes) {
    let hr = hr.modcrop(scale);
    let lr = imresize_rgb_u8(&hr, 1.0 / scale as f64);
    (hr, lr)
}

/// Prepares an evaluation pair from an 8-bit HR image.
pub fn prepare(hr: &RgbPlanes, scale: usize) -> EvalPair {
    let (hr_rgb, lr_rgb) = make_lr(hr, scale);
    EvalPair { lr_y: y_unit(&lr_rgb), hr_y: y_unit(&hr_rgb), lr_rgb, hr_rgb }
}

/// PSNR-Y and SSIM-Y of a super-resolved Y (in [0, 1], any precision) against the reference:
/// output clamped and rounded to 8 bits, `scale` border pixels cropped, 8-bit range.
pub fn score(sr_y: &Plane, hr_y: &Plane, scale: usize) -> (f64, f64) {
    let sr = sr_y.quantize_unit().map(|v| v * 255.0);
    let hr = hr_y.map(|v| v * 255.0);
    (psnr(&sr, &hr, scale, 255.0), ssim(&sr, &hr, scale, 255.0))
}

/// The bicubic baseline: MATLAB bicubic upscale of Y(LR).
pub fn bicubic_sr(lr_y: &Plane, scale: usize) -> Plane {
    upscale_bicubic(lr_y, scale)
}
