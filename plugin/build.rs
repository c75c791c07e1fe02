//! Records the cargo profile folder (`target/<profile>`) the plugin is built in: one of the
//! places the element looks for `libsesrtorch.so`, the libtorch backend it opens on demand.
//! The plugin itself links no libtorch; its tests and examples do (to compare with it), so
//! they get libtorch's folder (`SESR_TORCH_LIB`, from `target/sesr-env.sh`) as an rpath.
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    // OUT_DIR = target/<profile>/build/<pkg>-<hash>/out
    let profile = out.ancestors().nth(3).map(|p| p.display().to_string()).unwrap_or_default();
    println!("cargo:rustc-env=SESR_BUILD_PROFILE_DIR={profile}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SESR_TORCH_LIB");
    if let Ok(lib) = std::env::var("SESR_TORCH_LIB") {
        // For every target (the unit-test binary too); inert for the plugin library, which has
        // no libtorch among its needed libraries.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
