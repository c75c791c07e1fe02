//! Shared build script of the crates that link libtorch (core, plugin, trainer).
//!
//! `torch-sys` (links = "tch") publishes the directory of the libtorch it linked as
//! `DEP_TCH_LIBTORCH_LIB`. We embed it as an rpath so that tests, binaries and the GStreamer
//! plugin load libtorch without `LD_LIBRARY_PATH`, and link `libtorch` with `--no-as-needed` so
//! that `libtorch_cuda` is loaded (and CUDA usable) whenever the libtorch build has it.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch,--as-needed");
        println!("cargo:rustc-env=SESR_TORCH_LIB_DIR={lib}");
    }
}
