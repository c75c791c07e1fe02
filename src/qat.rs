//! Quantisation-aware training: the collapsed network's forward as the integer kernel
//! ([`crate::native::int8`]) computes it, with straight-through gradients.
//!
//! Every quantisation of the kernel is modelled, in its order and with its rounding:
//! * the input, 8-bit `Y`, enters as the exact integer `2Y − 255` on the `1/510` grid;
//! * each conv's weights times its input scales are quantised per output channel by the
//!   kernel's own [`quantise_conv`] (7 bits between the blocks, 8 at the input and output
//!   convs), with the kernel's bias correction;
//! * a conv is `Σ q_w · (q_a − z)` (integers), then `· sw[co] + bias[co]` in float32, PReLU,
//!   `+ f0` after the last block as its ring holds it (`(q − z) · s`), then the next layer's
//!   per-channel grid, `q = clamp(round_even(y · (1/s)) + z, 0, 255)`;
//! * the output conv's float32 result `+ Y·(1/255)`, pixel shuffle, clamp and 8-bit rounding.
//!
//! Gradients pass straight through each rounding (and are cut where the 8-bit clamp saturates);
//! the activation grids are fixed (calibrated, [`crate::native::int8::calibrate`]), the
//! weight grids follow the weights. In [`Mode::Exact`] the integer sums are taken in float64
//! (exact, whatever algorithm libtorch picks) and the result is the kernel's output to within
//! one level: what `tests/qat.rs` checks against [`crate::native::NativeSesr`].

use crate::model::{upsample, CollapsedSesr, Conv};
use crate::native::int8::{input_quant, layer_qmax, quantise_conv, ActQuant};
use crate::Error;
use tch::{Device, Kind, Tensor};

/// How the integer sums are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In float32 (training: fast, and exact while libtorch sums directly).
    Train,
    /// In float64 (evaluation and tests: exact for any convolution algorithm).
    Exact,
}

fn per_channel(v: impl Iterator<Item = f32>, device: Device) -> Tensor {
    let v: Vec<f32> = v.collect();
    let n = v.len() as i64;
    Tensor::from_slice(&v).view([1, n, 1, 1]).to_device(device)
}

/// `(q − z)` of `y` on the per-channel grids `acts` (float32 tensor of integers), with the
/// straight-through gradient of `y / s` inside the 8-bit range.
fn fake_quant(y: &Tensor, acts: &[ActQuant]) -> Tensor {
    let d = y.device();
    let inv = per_channel(acts.iter().map(|a| 1.0 / a.scale), d);
    let z = per_channel(acts.iter().map(|a| a.zero as f32), d);
    let t = y * inv;
    // torch's round is half-to-even, as the kernel's `round_ties_even`.
    let q = (t.round() + &z).clamp(0.0, 255.0) - &z;
    let tc = t.maximum(&(-&z)).minimum(&(255.0 - &z));
    &tc + (q - &tc).detach()
}

/// One conv on integer activations `a` (`q − z` of the grids `input`): `Σ q_w·a · sw + bias`.
fn qconv(conv: &Conv, a: &Tensor, input: &[ActQuant], qmax: i32, mode: Mode) -> Result<Tensor, Error> {
    let size = conv.weight.size();
    let (cout, cin, k) = (size[0] as usize, size[1] as usize, size[3] as usize);
    let host = |t: &Tensor| -> Result<Vec<f32>, Error> {
        let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous().flatten(0, -1);
        Vec::<f32>::try_from(&t).map_err(|e| Error::Model(format!("qat: {e}")))
    };
    let qc = quantise_conv(&host(&conv.weight)?, &host(&conv.bias)?, cout, cin, k, input, qmax);
    let d = a.device();
    let sw = Tensor::from_slice(&qc.scale).to_device(d);
    let q: Vec<f32> = qc.q.iter().map(|&v| v as f32).collect();
    let q = Tensor::from_slice(&q).view([cout as i64, cin as i64, k as i64, k as i64]).to_device(d);
    // Straight through: the value is q, the gradient that of w·s_in/sw.
    let w = &conv.weight * per_channel(input.iter().map(|a| a.scale), d) / sw.view([cout as i64, 1, 1, 1]);
    let w = &w + (q - &w).detach();
    let p = (k / 2) as i64;
    let acc = match mode {
        Mode::Train => a.conv2d(&w, None::<Tensor>, [1, 1], [p, p], [1, 1], 1),
        Mode::Exact => a
            .to_kind(Kind::Double)
            .conv2d(&w.to_kind(Kind::Double), None::<Tensor>, [1, 1], [p, p], [1, 1], 1)
            .to_kind(Kind::Float),
    };
    // The kernel's corrected bias, carrying the gradient of the float bias (`b − b` is 0).
    let bias = Tensor::from_slice(&qc.bias).to_device(d) + (&conv.bias - conv.bias.detach());
    Ok(acc * sw.view([1, cout as i64, 1, 1]) + bias.view([1, cout as i64, 1, 1]))
}

/// The integer kernel's forward of `net` under the activation grids `acts` (per layer, per
/// input channel, as [`crate::native::int8::calibrate`] returns them; `acts[0]` is ignored).
/// `x`: `[N,1,H,W]` Y in [0, 1], taken to 8 bits first. Returns `[N,1,sH,sW]` in [0, 1] before
/// the final rounding ([`round_to_8bit`] gives the kernel's 8-bit output).
pub fn forward(net: &CollapsedSesr, acts: &[Vec<ActQuant>], x: &Tensor, mode: Mode) -> Result<Tensor, Error> {
    let n = net.blocks.len() + 2;
    if acts.len() != n {
        return Err(Error::Model(format!("qat: {} activation grids for {n} layers", acts.len())));
    }
    let f = net.cfg.f;
    if let Some((l, a)) = acts.iter().enumerate().skip(1).find(|(_, a)| a.len() != f) {
        return Err(Error::Model(format!("qat: layer {l} has {} channel grids for {f} channels", a.len())));
    }
    let y8 = (x * 255.0).round().clamp(0.0, 255.0).detach();
    let input = [input_quant()];
    let f0 = qconv(&net.input, &(&y8 * 2.0 - 255.0), &input, layer_qmax(0, n), mode)?;
    let mut a = fake_quant(&f0, &acts[1]);
    // `f0` as its ring holds it, for the residual after the last block.
    let f0 = &a * per_channel(acts[1].iter().map(|q| q.scale), x.device());
    for (i, (conv, alpha)) in net.blocks.iter().enumerate() {
        let l = i + 1;
        let y = qconv(conv, &a, &acts[l], layer_qmax(l, n), mode)?;
        let al = alpha.view([1, -1, 1, 1]);
        let y = y.clamp_min(0.0) + al * y.clamp_max(0.0);
        let y = if l == net.blocks.len() { y + &f0 } else { y };
        a = fake_quant(&y, &acts[l + 1]);
    }
    let v = qconv(&net.output, &a, &acts[n - 1], layer_qmax(n - 1, n), mode)?;
    Ok(upsample(&(v + &y8 * (1.0f32 / 255.0) as f64), net.cfg.scale))
}

/// The 8-bit output of [`forward`]'s result, as the kernel rounds it (clamp, ×255, half away
/// from zero), as levels 0..=255 in a float tensor.
pub fn round_to_8bit(y: &Tensor) -> Tensor {
    let t = y.clamp(0.0, 1.0) * 255.0;
    let fl = t.floor();
    let up = (&t - &fl).ge(0.5).to_kind(Kind::Float);
    fl + up
}
