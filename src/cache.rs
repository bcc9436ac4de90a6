//! Where glassbox keeps what outlives a kernel: the REPL's build directories, history, the
//! data fetched at set-up, trained zoo models.

use std::path::PathBuf;

/// `GLASSBOX_CACHE_DIR`, else the user's cache dir (`$XDG_CACHE_HOME` or `~/.cache` on Linux)
/// `/glassbox`. `scripts/setup-data.sh` resolves the same way.
pub fn dir() -> PathBuf {
    std::env::var_os("GLASSBOX_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("glassbox")))
        .unwrap_or_else(|| std::env::temp_dir().join("glassbox-cache"))
}

/// The data sets fetched at set-up.
pub fn data_dir() -> PathBuf {
    dir().join("data")
}
