//! Makes binaries, tests and the REPL child find libtorch without the user exporting
//! anything: tch's own rpath flag never reaches the final binary, so we add it here, and we
//! record where libtorch is so the kernel can hand it to the cargo that evcxr runs.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    // The kernel reports the compiler that cells are compiled with in `language_info`.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Ok(out) = std::process::Command::new(rustc).arg("--version").output() {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(version) = text.split_whitespace().nth(1) {
            println!("cargo:rustc-env=GLASSBOX_RUSTC_VERSION={version}");
        }
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        return;
    };
    let lib = libtorch.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-env=GLASSBOX_LIBTORCH={}", libtorch.display());
}
