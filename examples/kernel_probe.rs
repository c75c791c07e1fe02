//! Times one configuration of the native kernel alone (no libtorch, no GStreamer): for
//! profilers (`perf record`) and quick A/B runs while working on an inner block.
//!
//! `cargo run --release --example kernel_probe -- [fp32|int8] [WxH] [frames] [threads] [model.pt]`;
//! `kernel_probe peak` prints the core's multiply-add ceiling (see [`peak`]); `kernel_probe auto`
//! what `precision=auto` measures between bf16 and fp32.

use sesr::native::{Isa, NativeSesr, Workspace};
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mode = a.get(1).map_or("fp32", String::as_str);
    if mode == "auto" {
        // What `precision=auto` measured between bf16 and fp32 here, and so picks without int8.
        let pick = if sesr::engine::bf16_measures_faster() { "bf16" } else { "fp32" };
        println!("auto's float: {pick} (fp32, bf16 probe times: {:?})", sesr::engine::bf16_probe());
        return;
    }
    if mode == "peak" {
        #[cfg(target_arch = "x86_64")]
        peak();
        return;
    }
    let (w, h) =
        a.get(2).and_then(|s| s.split_once('x')).map_or((960, 540), |(w, h)| (w.parse().unwrap(), h.parse().unwrap()));
    let frames: usize = a.get(3).map_or(10, |s| s.parse().unwrap());
    let threads: usize = a.get(4).map_or(1, |s| s.parse().unwrap());
    let pt = a.get(5).map_or("models/sesr_m5_x2.pt", String::as_str);
    let wts = sesr::weights::ExportedWeights::read(std::path::Path::new(pt), false).expect("model").weights;
    let net = match mode {
        "int8" => {
            let probe = sesr::engine::texture(64, 48);
            let acts = sesr::native::int8::calibrate(&wts, &[(&probe[..], 64, 48)]);
            NativeSesr::with_int8(&wts, &acts, Isa::selected().unwrap()).unwrap()
        }
        _ => NativeSesr::new(&wts).unwrap(),
    };
    let pool = sesr::pool::Pool::shared(threads).unwrap();
    let mut ws: Vec<_> = (0..pool.threads()).map(|_| Workspace::new()).collect();
    let src = sesr::engine::texture(w, h);
    let s = net.scale();
    let mut dst = vec![0u8; w * h * s * s];
    net.upscale(&src, w, w, h, &mut dst, w * s, &mut ws, &pool);
    let t = Instant::now();
    for _ in 0..frames {
        net.upscale(&src, w, w, h, &mut dst, w * s, &mut ws, &pool);
    }
    let dt = t.elapsed().as_secs_f64() / frames as f64;
    let gmacs = (w * h * net.macs_per_pixel()) as f64 / dt / 1e9;
    let block = net.int8_block().unwrap_or("float");
    println!("{mode} {} ({block}) {w}x{h} threads {threads}: {:.2} fps, {:.1} GMAC/s", net.isa(), 1.0 / dt, gmacs);
}

/// `peak`: this core's multiply-add ceiling, one thread: a loop of 16 independent `vpdpbusd`
/// (zmm, then ymm) or `vfmadd231ps` (zmm) with register operands, against a chain of dependent
/// 1-cycle `add`s that gives the clock. What `int8` reaches is then read as a share of it.
#[cfg(target_arch = "x86_64")]
fn peak() {
    use std::arch::asm;
    const N: u64 = 200_000_000;
    let time = |f: &dyn Fn()| {
        f();
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    // 4 dependent adds an iteration, plus the loop's own (also 1-cycle, dependent).
    let clock = time(&|| unsafe {
        asm!("2:", "add {a}, 1", "add {a}, 1", "add {a}, 1", "add {a}, 1", "dec {n}", "jnz 2b",
            a = inout(reg) 0u64 => _, n = inout(reg) N / 4 => _, options(nomem, nostack));
    });
    let ghz = N as f64 / clock / 1e9;
    println!("clock (dependent add chain): {ghz:.2} GHz");
    macro_rules! sixteen {
        ($op:literal, $r:literal) => {
            concat!(
                $op, " ", $r, "0, ", $r, "16, ", $r, "17\n", $op, " ", $r, "1, ", $r, "16, ", $r, "17\n", $op, " ", $r,
                "2, ", $r, "16, ", $r, "17\n", $op, " ", $r, "3, ", $r, "16, ", $r, "17\n", $op, " ", $r, "4, ", $r,
                "16, ", $r, "17\n", $op, " ", $r, "5, ", $r, "16, ", $r, "17\n", $op, " ", $r, "6, ", $r, "16, ", $r,
                "17\n", $op, " ", $r, "7, ", $r, "16, ", $r, "17\n", $op, " ", $r, "8, ", $r, "16, ", $r, "17\n", $op,
                " ", $r, "9, ", $r, "16, ", $r, "17\n", $op, " ", $r, "10, ", $r, "16, ", $r, "17\n", $op, " ", $r,
                "11, ", $r, "16, ", $r, "17\n", $op, " ", $r, "12, ", $r, "16, ", $r, "17\n", $op, " ", $r, "13, ", $r,
                "16, ", $r, "17\n", $op, " ", $r, "14, ", $r, "16, ", $r, "17\n", $op, " ", $r, "15, ", $r, "16, ", $r,
                "17\n",
            )
        };
    }
    macro_rules! run {
        ($name:literal, $macs:expr, $op:literal, $r:literal, $feat:literal) => {{
            #[target_feature(enable = $feat)]
            unsafe fn body() {
                asm!("2:", sixteen!($op, $r), "dec {n}", "jnz 2b", n = inout(reg) N / 16 => _,
                    out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
                    out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                    out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _, out("zmm16") _, out("zmm17") _,
                    options(nomem, nostack));
            }
            let s = time(&|| unsafe { body() });
            let per_cycle = N as f64 / s / 1e9 / ghz;
            println!("{:<22} {:6.2} a cycle, {:6.1} GMAC/s ({} MACs each)", $name, per_cycle,
                N as f64 * $macs as f64 / s / 1e9, $macs);
        }};
    }
    if !std::arch::is_x86_feature_detected!("avx512vnni") {
        println!("peak: SKIPPED (no AVX512-VNNI)");
        return;
    }
    run!("vpdpbusd zmm", 64, "vpdpbusd", "zmm", "avx512f,avx512vnni");
    run!("vpdpbusd ymm (EVEX)", 32, "vpdpbusd", "ymm", "avx512f,avx512vnni,avx512vl");
    run!("vfmadd231ps zmm", 16, "vfmadd231ps", "zmm", "avx512f");
    run!("vfmadd231ps ymm", 8, "vfmadd231ps", "ymm", "avx512f,avx512vl");
}
