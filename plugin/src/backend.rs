//! The element's model runner: the core's engine on its own (the native kernel, no libtorch in
//! the process), or, when libtorch is needed — the libtorch backend, a CUDA device, exported
//! weights to check against their TorchScript module — the engine inside `libsesrtorch.so`,
//! opened at that moment with `dlopen`.
//!
//! The library is looked for in `SESR_TORCH_BACKEND` (a file), then beside the plugin's own file,
//! then in `../sesr/` from the plugin's folder (where meson installs it), then in the cargo
//! target folder the plugin was built in.

use sesr::engine::{Backend, Embedded, Engine, EngineOptions, NativeEngine};
use sesr::native::Isa;
use sesr::pool::Pool;
use sesr::weights::Precision;
use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The plugin file's folder, recorded at registration (none for static registration).
pub static PLUGIN_DIR: OnceLock<PathBuf> = OnceLock::new();

const LIB_NAME: &str = "libsesrtorch.so";
const ABI_VERSION: u32 = 3;

#[repr(C)]
struct Options {
    location: *const c_char,
    device: *const c_char,
    backend: u32,
    threads: u32,
    precision: u32,
    embedded: u32,
}

#[repr(C)]
#[derive(Default)]
struct Info {
    scale: u32,
    native: u32,
    isa: u32,
    threads: u32,
    fell_back: u32,
}

type OpenFn = unsafe extern "C" fn(*const Options, *mut Info, *mut c_char, usize) -> *mut c_void;
type UpscaleFn = unsafe extern "C" fn(
    *mut c_void,
    *const u8,
    usize,
    usize,
    usize,
    usize,
    *mut u8,
    usize,
    usize,
    usize,
    *mut c_char,
    usize,
) -> i32;
type Upscale16Fn = unsafe extern "C" fn(
    *mut c_void,
    *const u16,
    usize,
    usize,
    usize,
    usize,
    *mut u16,
    usize,
    usize,
    u32,
    u32,
    usize,
    *mut c_char,
    usize,
) -> i32;
type CloseFn = unsafe extern "C" fn(*mut c_void);

struct TorchLib {
    open: OpenFn,
    upscale: UpscaleFn,
    upscale16: Upscale16Fn,
    close: CloseFn,
    path: PathBuf,
    // Kept loaded for the life of the process (libtorch cannot be unloaded cleanly).
    _lib: &'static libloading::Library,
}

/// Runs a call into the libtorch backend that returns 0 on success and otherwise writes its
/// reason into the message buffer it is given.
fn with_message(call: impl FnOnce(*mut c_char, usize) -> i32) -> Result<(), String> {
    let mut err = vec![0u8; 1024];
    match call(err.as_mut_ptr() as *mut c_char, err.len()) {
        0 => Ok(()),
        _ => Err(c_message(&err)),
    }
}

/// The NUL-terminated message the library wrote into `buf`.
fn c_message(buf: &[u8]) -> String {
    String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned()
}

fn candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("SESR_TORCH_BACKEND") {
        v.push(PathBuf::from(p));
    }
    if let Some(d) = PLUGIN_DIR.get() {
        v.push(d.join(LIB_NAME));
        // meson install: <libdir>/gstreamer-1.0/libgstsesr.so and <libdir>/sesr/libsesrtorch.so.
        if let Some(lib) = d.parent() {
            v.push(lib.join("sesr").join(LIB_NAME));
        }
    }
    v.push(Path::new(env!("SESR_BUILD_PROFILE_DIR")).join(LIB_NAME));
    v
}

/// The library, opened once per process.
fn torch_lib() -> Result<&'static TorchLib, String> {
    static LIB: OnceLock<Result<TorchLib, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        let tried = candidates();
        let path = tried.iter().find(|p| p.is_file()).ok_or_else(|| {
            format!(
                "libtorch backend library {LIB_NAME} not found (tried {}); build it with `cargo build --release -p sesr-torch` \
                 or point SESR_TORCH_BACKEND at it",
                tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })?;
        // SAFETY: loading our own library, whose initialisers are libtorch's.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("cannot load the libtorch backend {}: {e}", path.display()))?;
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        // SAFETY: the symbols have the types of torch-backend/src/lib.rs, checked by the ABI version.
        unsafe {
            let sym = |name: &[u8]| -> Result<*mut c_void, String> {
                lib.get::<*mut c_void>(name)
                    .map(|s| *s)
                    .map_err(|e| format!("{}: {e}", path.display()))
            };
            let version: unsafe extern "C" fn() -> u32 = std::mem::transmute(sym(b"sesr_torch_abi_version\0")?);
            if version() != ABI_VERSION {
                return Err(format!("{}: ABI version {} (expected {ABI_VERSION})", path.display(), version()));
            }
            Ok(TorchLib {
                open: std::mem::transmute::<*mut c_void, OpenFn>(sym(b"sesr_torch_open\0")?),
                upscale: std::mem::transmute::<*mut c_void, UpscaleFn>(sym(b"sesr_torch_upscale\0")?),
                upscale16: std::mem::transmute::<*mut c_void, Upscale16Fn>(sym(b"sesr_torch_upscale16\0")?),
                close: std::mem::transmute::<*mut c_void, CloseFn>(sym(b"sesr_torch_close\0")?),
                path: path.clone(),
                _lib: lib,
            })
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether libtorch has been loaded into this process by [`ModelRunner::load`].
pub fn libtorch_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps").map(|m| m.contains("libtorch_cpu")).unwrap_or(false)
}

struct Remote {
    lib: &'static TorchLib,
    handle: *mut c_void,
    scale: usize,
    native: bool,
    isa: Option<Isa>,
    threads: usize,
    pool: Pool,
}

// SAFETY: the handle is an `Engine` (Send) used by one thread at a time (`&mut self`).
unsafe impl Send for Remote {}

impl Drop for Remote {
    fn drop(&mut self) {
        // SAFETY: the handle came from `open` and is dropped once.
        unsafe { (self.lib.close)(self.handle) }
    }
}

enum Inner {
    Local(NativeEngine),
    Remote(Remote),
}

/// The loaded model, wherever it runs.
pub struct ModelRunner {
    inner: Inner,
    /// Why `auto` chose libtorch, when it did.
    pub fallback_reason: Option<String>,
    /// Why libtorch was loaded at all (`None`: it was not).
    pub libtorch_reason: Option<String>,
    /// Input rows per libtorch stripe (0: automatic).
    pub stripe_rows: usize,
}

impl ModelRunner {
    /// Loads the model: natively without libtorch when that suffices, else through
    /// `libsesrtorch.so`. `device` is the element's string (`auto`, `cpu`, `cuda`, `cuda:N`).
    pub fn load(
        location: Option<&Path>,
        embedded: Embedded,
        device: &str,
        backend: Backend,
        threads: usize,
        precision: Option<Precision>,
    ) -> Result<Self, String> {
        // Before anything else, so that no backend (not even a missing libsesrtorch.so) hides it.
        if let Some((p, problem)) = location.and_then(|p| Some((p, sesr::weights::model_file_problem(p)?))) {
            return Err(format!("model '{}': {problem}", p.display()));
        }
        let d = device.trim().to_ascii_lowercase();
        // `auto` means CUDA when libtorch sees a GPU; asking libtorch costs loading it, so the
        // native kernel is tried first whenever the CPU is allowed.
        let cpu_ok = matches!(d.as_str(), "auto" | "cpu");
        if cpu_ok && backend != Backend::Libtorch {
            let o = EngineOptions {
                location,
                embedded,
                device: sesr::engine::Device::Cpu,
                backend,
                threads,
                precision: precision.unwrap_or(Precision::Fp32),
                isa: None,
                auto_precision: precision.is_none(),
            };
            match Engine::load_without_libtorch(&o)? {
                Ok(engine) => {
                    return Ok(ModelRunner {
                        inner: Inner::Local(engine),
                        fallback_reason: None,
                        libtorch_reason: None,
                        stripe_rows: 0,
                    })
                }
                Err(pending) => {
                    return Self::load_remote(location, embedded, device, backend, threads, precision, pending.reason)
                }
            }
        }
        let why = if backend == Backend::Libtorch { "libtorch backend requested" } else { "device is not the CPU" };
        Self::load_remote(location, embedded, device, backend, threads, precision, why.into())
    }

    fn load_remote(
        location: Option<&Path>,
        embedded: Embedded,
        device: &str,
        backend: Backend,
        threads: usize,
        precision: Option<Precision>,
        why: String,
    ) -> Result<Self, String> {
        let lib = torch_lib()?;
        let cstr = |s: &str| CString::new(s).map_err(|_| format!("'{s}' contains a NUL byte"));
        let loc = location.map(|p| cstr(&p.to_string_lossy())).transpose()?;
        let dev = cstr(device)?;
        let o = Options {
            location: loc.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            device: dev.as_ptr(),
            backend: match backend {
                Backend::Auto => 0,
                Backend::Libtorch => 1,
                Backend::Native => 2,
            },
            threads: threads as u32,
            // sesr-torch's codes: 0 fp32, 1 bf16, 2 int8, 3 auto.
            precision: match precision {
                Some(Precision::Bf16) => 1,
                Some(Precision::Int8) => 2,
                None => 3,
                Some(_) => 0,
            },
            embedded: (embedded == Embedded::Compressed) as u32,
        };
        let mut info = Info::default();
        let mut err = vec![0u8; 2048];
        // SAFETY: valid structures and buffer, as the ABI requires.
        let handle = unsafe { (lib.open)(&o, &mut info, err.as_mut_ptr() as *mut c_char, err.len()) };
        if handle.is_null() {
            return Err(c_message(&err));
        }
        let isa = match info.isa {
            1 => Some(Isa::Avx512),
            2 => Some(Isa::Avx2),
            3 => Some(Isa::Portable),
            _ => None,
        };
        let threads = info.threads.max(1) as usize;
        let remote = Remote {
            lib,
            handle,
            scale: info.scale as usize,
            native: info.native == 1,
            isa,
            threads,
            pool: Pool::shared(if info.native == 1 { threads } else { 0 })?,
        };
        Ok(ModelRunner {
            inner: Inner::Remote(remote),
            fallback_reason: (info.fell_back == 1).then(|| c_message(&err)),
            libtorch_reason: Some(format!("{why} ({})", lib.path.display())),
            stripe_rows: 0,
        })
    }

    pub fn scale(&self) -> usize {
        match &self.inner {
            Inner::Local(e) => e.scale(),
            Inner::Remote(r) => r.scale,
        }
    }

    /// `"native"` or `"libtorch"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.inner {
            Inner::Local(_) => "native",
            Inner::Remote(r) if r.native => "native",
            Inner::Remote(_) => "libtorch",
        }
    }

    /// The native kernel's arithmetic (`None`: in libsesrtorch.so, not reported).
    pub fn precision(&self) -> Option<Precision> {
        match &self.inner {
            Inner::Local(e) => Some(e.precision()),
            Inner::Remote(_) => None,
        }
    }

    pub fn isa(&self) -> Option<Isa> {
        match &self.inner {
            Inner::Local(e) => Some(e.isa()),
            Inner::Remote(r) => r.isa,
        }
    }

    pub fn threads(&self) -> usize {
        match &self.inner {
            Inner::Local(e) => e.threads(),
            Inner::Remote(r) => r.threads,
        }
    }

    /// How the native weights came to be trusted.
    pub fn trust(&self) -> &'static str {
        match &self.inner {
            Inner::Local(e) => e.trust,
            Inner::Remote(_) => "checked against the TorchScript module",
        }
    }

    /// Threads for the chroma scaler: the engine's pool.
    pub fn pool(&self) -> Pool {
        match &self.inner {
            Inner::Local(e) => e.pool().clone(),
            Inner::Remote(r) => r.pool.clone(),
        }
    }

    /// The planes against their geometry, in checked arithmetic (lengths and strides in
    /// samples): the kernels assert these, and a frame that fails them is an error here
    /// instead of a panic there.
    fn check_planes(&self, src: (usize, usize), w: usize, h: usize, dst: (usize, usize)) -> Result<(), String> {
        let s = self.scale();
        let fits = |len: usize, stride: usize, row: usize, rows: usize| {
            stride >= row && (rows - 1).checked_mul(stride).and_then(|v| v.checked_add(row)).is_some_and(|n| n <= len)
        };
        if !fits(src.0, src.1, w, h) {
            return Err(format!("luma plane of {} samples (stride {}) too small for {w}x{h}", src.0, src.1));
        }
        let (ow, oh) = w.checked_mul(s).zip(h.checked_mul(s)).ok_or_else(|| format!("{w}x{h} at x{s} overflows"))?;
        if !fits(dst.0, dst.1, ow, oh) {
            return Err(format!("output luma plane of {} samples (stride {}) too small for {ow}x{oh}", dst.0, dst.1));
        }
        Ok(())
    }

    /// See [`Engine::upscale_luma16`]: 16-bit samples holding `depth` (10-bit video).
    #[allow(clippy::too_many_arguments)]
    pub fn upscale_luma16(
        &mut self,
        src: &[u16],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u16],
        dst_stride: usize,
        depth: sesr::sample::Depth,
    ) -> Result<(), String> {
        if w == 0 || h == 0 {
            return Ok(());
        }
        self.check_planes((src.len(), stride), w, h, (dst.len(), dst_stride))?;
        match &mut self.inner {
            Inner::Local(e) => e.upscale_luma16(src, stride, w, h, dst, dst_stride, depth),
            Inner::Remote(r) => with_message(|err, err_len| {
                // SAFETY: the handle is ours (`&mut self`), the slices' lengths are passed along.
                unsafe {
                    (r.lib.upscale16)(
                        r.handle,
                        src.as_ptr(),
                        src.len(),
                        stride,
                        w,
                        h,
                        dst.as_mut_ptr(),
                        dst.len(),
                        dst_stride,
                        depth.bits,
                        depth.shift,
                        self.stripe_rows,
                        err,
                        err_len,
                    )
                }
            }),
        }
    }

    /// See [`Engine::upscale_luma`].
    pub fn upscale_luma(
        &mut self,
        src: &[u8],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u8],
        dst_stride: usize,
    ) -> Result<(), String> {
        if w == 0 || h == 0 {
            return Ok(());
        }
        self.check_planes((src.len(), stride), w, h, (dst.len(), dst_stride))?;
        match &mut self.inner {
            Inner::Local(e) => {
                e.upscale_luma(src, stride, w, h, dst, dst_stride);
                Ok(())
            }
            Inner::Remote(r) => with_message(|err, err_len| {
                // SAFETY: the handle is ours (`&mut self`), the slices' lengths are passed along.
                unsafe {
                    (r.lib.upscale)(
                        r.handle,
                        src.as_ptr(),
                        src.len(),
                        stride,
                        w,
                        h,
                        dst.as_mut_ptr(),
                        dst.len(),
                        dst_stride,
                        self.stripe_rows,
                        err,
                        err_len,
                    )
                }
            }),
        }
    }
}
