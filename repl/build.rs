//! Exports tch's C++ wrapper from the shared object.
//!
//! torch-sys links its wrapper of libtorch (`atg_*` and friends) as a static archive, and a
//! Rust dylib exports only Rust symbols. A cell instantiates tch's generic and inline
//! functions itself, and those call the wrapper directly: without these exports the cell's
//! shared object fails to load with `undefined symbol: atg_sum_dim_intlist`. A second version
//! script adds to the one rustc writes; a named pattern outranks its `local: *`.

/// The wrapper's C functions (`torch-sys/libtch/torch_api.h`, `torch_api_generated.h`) and
/// its error slot.
const WRAPPER: &str = "{ global: at_*; atc_*; atg_*; ati_*; atm_*; ato_*; ats_*; get_and_reset_last_err; torch_*; };\n";

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out.join("tch-wrapper.map");
    std::fs::write(&script, WRAPPER).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-arg=-Wl,--version-script={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
