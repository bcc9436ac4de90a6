//! Where the kernel finds libtorch, its own sources and its caches, and the process
//! environment that the REPL child and evcxr's cargo inherit.

use std::path::PathBuf;

/// libtorch as found at build time (the project's `.libtorch/torch`), unless `LIBTORCH` says
/// otherwise at run time.
pub fn libtorch() -> Option<PathBuf> {
    std::env::var_os("LIBTORCH").map(PathBuf::from).or_else(|| option_env!("GLASSBOX_LIBTORCH").map(PathBuf::from))
}

/// The glassbox sources the REPL depends on (`glassbox-repl` in `repl/`), unless
/// `GLASSBOX_SRC` points elsewhere.
pub fn glassbox_src() -> PathBuf {
    std::env::var_os("GLASSBOX_SRC").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub use crate::cache::dir as cache_dir;

/// Sets what the REPL child and the cargo that evcxr runs must inherit. Call once, first
/// thing in `main`, before any thread exists (setting the environment is not thread-safe).
pub fn prepare_process() {
    // Tells the library in the child that its displays and events reach a notebook.
    std::env::set_var(crate::runtime::KERNEL_ENV, "1");
    let mut search = Vec::new();
    if let Some(libtorch) = libtorch() {
        // torch-sys's build script reads LIBTORCH when evcxr compiles the library for cells.
        std::env::set_var("LIBTORCH", &libtorch);
        // The child is a re-exec of this binary and has our rpath, but a cell's dylib
        // resolves libtorch on its own.
        search.push(libtorch.join("lib"));
    }
    // Cells link the toolchain's libstd dynamically. rustc's RUNPATH for it is relative to
    // `deps/`, but evcxr loads the copy one directory up; that only resolves by luck (under
    // /tmp), not when the build directory shares a prefix with the toolchain, as the user
    // cache dir and ~/.rustup do.
    if let Some(std_dir) = rustc_target_libdir() {
        search.push(std_dir);
    }
    if search.is_empty() {
        return;
    }
    let mut path = std::env::join_paths(&search).expect("library dirs contain no ':'");
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        path.push(":");
        path.push(old);
    }
    std::env::set_var("LD_LIBRARY_PATH", path);
}

fn rustc_target_libdir() -> Option<PathBuf> {
    let out = std::process::Command::new("rustc").args(["--print", "target-libdir"]).output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.is_dir().then_some(dir)
}
