//! What `precision=auto` runs where int8 is out (a model without calibration, a CPU without
//! VNNI, 10-bit video): bf16 where this CPU has AVX512-BF16 *and* the bf16 kernel measures
//! clearly faster than fp32 on it, else fp32. CPUs with AVX512-BF16 differ: a Zen 4 runs the bf16
//! kernel at 1.8× fp32, an Intel Xeon with two FMA ports at 0.55× (BENCHMARKS.md), so the
//! choice is measured, once per process.

use super::Embedded;
use crate::native::{Isa, NativeSesr, Workspace};
use crate::pool::Pool;
use crate::weights::{ExportedWeights, Precision};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// bf16 is picked when it takes less than this share of fp32's time: it costs a little quality
/// (0.002–0.003 dB on Set5/Set14), worth paying for a clear gain, not for noise.
const BF16_MAX_SHARE: f64 = 0.85;

/// The probe's frame: big enough to time (a few ms), small enough to leave start-up alone.
const PROBE: (usize, usize) = (256, 96);

/// The fastest of four runs of the fp32 and the bf16 kernel on the embedded M5 ×2 (one thread,
/// a `PROBE`-sized texture), measured on first use and kept for the process; `None` where the
/// bf16 kernel cannot run (no AVX512-BF16, or another kernel variant selected).
pub fn bf16_probe() -> Option<(Duration, Duration)> {
    static PROBED: OnceLock<Option<(Duration, Duration)>> = OnceLock::new();
    *PROBED.get_or_init(measure)
}

/// Whether `precision=auto` runs bf16 rather than fp32 here (see the module docs).
pub fn bf16_measures_faster() -> bool {
    bf16_probe().is_some_and(|(fp32, bf16)| bf16.as_secs_f64() < BF16_MAX_SHARE * fp32.as_secs_f64())
}

/// The float arithmetic `precision=auto` runs in on kernel variant `isa`.
pub(super) fn auto_float(isa: Isa) -> Precision {
    if isa == Isa::Avx512 && bf16_measures_faster() {
        Precision::Bf16
    } else {
        Precision::Fp32
    }
}

fn measure() -> Option<(Duration, Duration)> {
    if !crate::native::cpu_supports_bf16() || Isa::selected().ok()? != Isa::Avx512 {
        return None;
    }
    let (sidecar, weights) = Embedded::Clean.exported();
    let weights = ExportedWeights::from_bytes(sidecar, weights, None).ok()?.weights;
    let nets = [Precision::Fp32, Precision::Bf16].map(|p| NativeSesr::with_options(&weights, p, Isa::Avx512));
    let [Ok(fp32), Ok(bf16)] = nets else { return None };
    let (w, h) = PROBE;
    let src = super::texture(w, h);
    let s = fp32.scale();
    let mut dst = vec![0u8; w * h * s * s];
    let mut ws = [Workspace::new()];
    let pool = Pool::inline();
    let mut best = [Duration::MAX; 2];
    // Alternated, so that a change of clock or a neighbour's burst hits both alike.
    for _ in 0..4 {
        for (b, net) in best.iter_mut().zip([&fp32, &bf16]) {
            let t = Instant::now();
            net.upscale(&src, w, w, h, &mut dst, w * s, &mut ws, &pool);
            *b = (*b).min(t.elapsed());
        }
    }
    Some((best[0], best[1]))
}
