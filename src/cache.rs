//! Where glassbox keeps what outlives a kernel: the REPL's build directories, history, the
//! data fetched at set-up, trained zoo models.
//!
//! The cache holds compiled cells and input history, so it must not be somewhere other users
//! can write to or read: there is no fallback to the system temp dir. When neither
//! `GLASSBOX_CACHE_DIR` nor a home directory says where it goes, glassbox refuses to guess.

use std::ffi::OsString;
use std::path::PathBuf;

/// Names the cache dir explicitly (taken as given, wherever it points).
pub const ENV: &str = "GLASSBOX_CACHE_DIR";

/// No cache dir can be found: the message says how to give one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "glassbox has no cache directory: set {ENV} (or HOME); it does not fall back to a shared \
     temporary directory"
)]
pub struct NoCacheDir;

/// `GLASSBOX_CACHE_DIR` if set and not empty, else the user's cache dir (`$XDG_CACHE_HOME`
/// if absolute, else `~/.cache`, with the home dir from `$HOME` or the password database)
/// `/glassbox`. `scripts/setup-data.sh` resolves the same way.
///
/// # Panics
///
/// With [`NoCacheDir`]'s message when there is neither (no `HOME` and no home in the password
/// database); [`try_dir`] reports that instead.
pub fn dir() -> PathBuf {
    try_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// [`dir`], or why there is none.
pub fn try_dir() -> Result<PathBuf, NoCacheDir> {
    resolve(std::env::var_os(ENV), dirs::cache_dir())
}

/// The data sets fetched at set-up.
pub fn data_dir() -> PathBuf {
    dir().join("data")
}

fn resolve(explicit: Option<OsString>, user_cache: Option<PathBuf>) -> Result<PathBuf, NoCacheDir> {
    match explicit.filter(|d| !d.is_empty()) {
        Some(d) => Ok(PathBuf::from(d)),
        None => user_cache.map(|d| d.join("glassbox")).ok_or(NoCacheDir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_dir_is_taken_as_given() {
        let given = std::env::temp_dir().join("mine");
        assert_eq!(resolve(Some(given.clone().into()), Some("/home/u/.cache".into())), Ok(given));
    }

    #[test]
    fn an_empty_explicit_dir_counts_as_unset() {
        assert_eq!(resolve(Some("".into()), Some("/home/u/.cache".into())), Ok("/home/u/.cache/glassbox".into()));
    }

    #[test]
    fn without_either_there_is_no_fallback() {
        let none = resolve(None, None);
        assert_eq!(none, Err(NoCacheDir));
        assert!(none.unwrap_err().to_string().contains(ENV));
    }

    #[test]
    fn the_cache_is_never_under_the_temp_dir_unless_asked() {
        // Only the fallback is checked: a cache dir or home the user put in the temp dir is theirs.
        let set = |var| std::env::var_os(var).filter(|d| !d.is_empty());
        let home_in_temp = set("HOME").is_some_and(|h| PathBuf::from(h).starts_with(std::env::temp_dir()));
        if let (None, None, false, Ok(dir)) = (set(ENV), set("XDG_CACHE_HOME"), home_in_temp, try_dir()) {
            assert!(!dir.starts_with(std::env::temp_dir()), "{}", dir.display());
        }
    }
}
