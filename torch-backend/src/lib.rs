//! `libsesrtorch.so`: the core's engine with libtorch, behind a small C ABI.
//!
//! The GStreamer element links no libtorch: loading libtorch (and, in the PyPI build, the CUDA
//! libraries it depends on) costs ~450 MiB of resident memory and most of a second. The element
//! runs the native kernel on its own and opens this library (`dlopen`) only when libtorch is
//! needed: the libtorch backend, a CUDA device, or exported weights to check against their
//! TorchScript module. Here the full [`sesr::engine::Engine::load_with`] runs; the element then
//! drives the engine through these functions.
//!
//! Every function catches panics; errors are written, NUL-terminated, into the caller's buffer.

use sesr::engine::{Backend, Device, Embedded, Engine, EngineOptions};
use sesr::weights::Precision;
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Version of this ABI; the element refuses a library of another version.
pub const ABI_VERSION: u32 = 3;

/// What to load (all strings NUL-terminated UTF-8; `location` may be null: the embedded model).
#[repr(C)]
pub struct SesrTorchOptions {
    pub location: *const c_char,
    pub device: *const c_char,
    /// 0 auto, 1 libtorch, 2 native.
    pub backend: u32,
    pub threads: u32,
    /// 0 fp32, 1 bf16, 2 int8, 3 auto.
    pub precision: u32,
    /// With a null `location`: 0 the embedded clean model, 1 the embedded compressed-input one.
    pub embedded: u32,
}

/// What was loaded.
#[repr(C)]
#[derive(Default)]
pub struct SesrTorchInfo {
    pub scale: u32,
    /// 1 when the native kernel runs (its weights were checked against the TorchScript module).
    pub native: u32,
    /// 0 none, 1 avx512, 2 avx2, 3 portable.
    pub isa: u32,
    pub threads: u32,
    /// 1 when `auto` chose libtorch (the reason is in the error buffer).
    pub fell_back: u32,
}

fn write_err(buf: *mut c_char, len: usize, msg: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let n = msg.len().min(len - 1);
    // SAFETY: the caller provides `len` writable bytes at `buf`.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
}

fn guarded<T>(err: *mut c_char, err_len: usize, fallback: T, f: impl FnOnce() -> Result<T, String>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            write_err(err, err_len, &e);
            fallback
        }
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            write_err(err, err_len, &format!("libtorch backend panicked: {}", msg.unwrap_or_default()));
            fallback
        }
    }
}

unsafe fn text(p: *const c_char) -> Result<Option<String>, String> {
    if p.is_null() {
        return Ok(None);
    }
    CStr::from_ptr(p).to_str().map(|s| Some(s.to_string())).map_err(|_| "a string is not UTF-8".to_string())
}

/// Whether `len` samples with rows of `stride` hold `h·s` rows of `w·s` samples (checked
/// arithmetic: sizes from a caller are never trusted to multiply without overflow).
fn plane_fits(len: usize, stride: usize, w: usize, h: usize, s: usize) -> bool {
    let (Some(row), Some(rows)) = (w.checked_mul(s), h.checked_mul(s)) else { return false };
    stride >= row && (rows - 1).checked_mul(stride).and_then(|n| n.checked_add(row)).is_some_and(|n| n <= len)
}

#[no_mangle]
pub extern "C" fn sesr_torch_abi_version() -> u32 {
    ABI_VERSION
}

/// Loads a model; returns a handle (null on error, with the reason in `err`).
///
/// # Safety
/// `o` and `info` point to valid structures; `err` to `err_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn sesr_torch_open(
    o: *const SesrTorchOptions,
    info: *mut SesrTorchInfo,
    err: *mut c_char,
    err_len: usize,
) -> *mut c_void {
    guarded(err, err_len, std::ptr::null_mut(), || {
        let o = &*o;
        let location = text(o.location)?;
        let device = Device::parse(&text(o.device)?.unwrap_or_else(|| "auto".into()))?;
        let backend = match o.backend {
            1 => Backend::Libtorch,
            2 => Backend::Native,
            _ => Backend::Auto,
        };
        // 0 fp32, 1 bf16, 2 int8, 3 auto (int8 where calibrated and the CPU has VNNI).
        let precision = match o.precision {
            1 => Precision::Bf16,
            2 => Precision::Int8,
            _ => Precision::Fp32,
        };
        let opts = EngineOptions {
            location: location.as_deref().map(Path::new),
            embedded: if o.embedded == 1 { Embedded::Compressed } else { Embedded::Clean },
            device,
            backend,
            threads: o.threads as usize,
            precision,
            isa: None,
            auto_precision: o.precision == 3,
        };
        let engine = Engine::load_with(&opts)?;
        if engine.backend_name() == "libtorch" && o.threads > 0 {
            tch::set_num_threads(o.threads as i32);
        }
        let isa = match engine.isa().map(|i| i.name()) {
            Some("avx512") => 1,
            Some("avx2") => 2,
            Some(_) => 3,
            None => 0,
        };
        *info = SesrTorchInfo {
            scale: engine.scale as u32,
            native: (engine.backend_name() == "native") as u32,
            isa,
            threads: engine.threads() as u32,
            fell_back: engine.fallback_reason.is_some() as u32,
        };
        if let Some(why) = &engine.fallback_reason {
            write_err(err, err_len, why);
        }
        Ok(Box::into_raw(Box::new(engine)) as *mut c_void)
    })
}

/// Upscales an 8-bit luma plane (see [`Engine::upscale_luma`]); 0 on success.
///
/// # Safety
/// `h` comes from [`sesr_torch_open`] and is used by one thread at a time; `src`/`dst` point to
/// `src_len`/`dst_len` bytes; `err` to `err_len` writable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sesr_torch_upscale(
    h: *mut c_void,
    src: *const u8,
    src_len: usize,
    stride: usize,
    w: usize,
    ht: usize,
    dst: *mut u8,
    dst_len: usize,
    dst_stride: usize,
    stripe_rows: usize,
    err: *mut c_char,
    err_len: usize,
) -> i32 {
    let planes = Planes { src, src_len, stride, w, ht, dst, dst_len, dst_stride, stripe_rows };
    guarded(err, err_len, -1, || {
        planes.run(h, |engine, src, dst| engine.upscale_luma(src, stride, w, ht, dst, dst_stride))
    })
}

/// The arguments every upscale call shares, checked before a plane is touched.
struct Planes<T> {
    src: *const T,
    src_len: usize,
    stride: usize,
    w: usize,
    ht: usize,
    dst: *mut T,
    dst_len: usize,
    dst_stride: usize,
    stripe_rows: usize,
}

impl<T> Planes<T> {
    /// Checks the planes against their geometry and runs `f` on the handle's engine with them.
    ///
    /// # Safety
    /// As the `sesr_torch_upscale*` functions: `h` from [`sesr_torch_open`], the pointers to
    /// `src_len`/`dst_len` samples.
    unsafe fn run(
        &self,
        h: *mut c_void,
        f: impl FnOnce(&mut Engine, &[T], &mut [T]) -> Result<(), String>,
    ) -> Result<i32, String> {
        let engine = &mut *(h as *mut Engine);
        let s = engine.scale;
        if self.w == 0 || self.ht == 0 {
            return Ok(0);
        }
        if !plane_fits(self.src_len, self.stride, self.w, self.ht, 1)
            || !plane_fits(self.dst_len, self.dst_stride, self.w, self.ht, s)
        {
            return Err("plane buffers smaller than their geometry".into());
        }
        engine.stripe_rows = self.stripe_rows;
        let src = std::slice::from_raw_parts(self.src, self.src_len);
        let dst = std::slice::from_raw_parts_mut(self.dst, self.dst_len);
        f(engine, src, dst)?;
        Ok(0)
    }
}

/// As [`sesr_torch_upscale`] for 16-bit samples holding `bits`-bit values from bit `shift` up
/// (10-bit video); lengths and strides in samples.
///
/// # Safety
/// As [`sesr_torch_upscale`], with `src`/`dst` pointing to `src_len`/`dst_len` samples.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sesr_torch_upscale16(
    h: *mut c_void,
    src: *const u16,
    src_len: usize,
    stride: usize,
    w: usize,
    ht: usize,
    dst: *mut u16,
    dst_len: usize,
    dst_stride: usize,
    bits: u32,
    shift: u32,
    stripe_rows: usize,
    err: *mut c_char,
    err_len: usize,
) -> i32 {
    let planes = Planes { src, src_len, stride, w, ht, dst, dst_len, dst_stride, stripe_rows };
    guarded(err, err_len, -1, || {
        if !(1..=16).contains(&bits) || shift + bits > 16 {
            return Err(format!("{bits} bits at bit {shift} do not fit a 16-bit sample"));
        }
        let depth = sesr::sample::Depth { bits, shift };
        planes.run(h, |engine, src, dst| engine.upscale_luma16(src, stride, w, ht, dst, dst_stride, depth))
    })
}

/// Frees a handle.
///
/// # Safety
/// `h` comes from [`sesr_torch_open`] and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sesr_torch_close(h: *mut c_void) {
    if !h.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(h as *mut Engine))));
    }
}
