// glassbox addition to evcxr (see GLASSBOX.md at the crate root).
//
// A cell's `cargo build` spends about 0.09 s (of 0.4 s for a trivial cell on a 2-core machine)
// deciding that only the cell crate needs compiling: fingerprints of every dependency, the
// build plan. `DirectRustc` records the rustc command line cargo used for the cell crate and
// replays it while nothing cargo would decide on has changed: the cargo command (flags,
// environment, linker), `Cargo.toml`, and the sources of path dependencies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

pub(crate) struct DirectRustc {
    /// The cargo command and `Cargo.toml` this invocation was recorded under.
    key: String,
    program: String,
    args: Vec<String>,
    /// When it was recorded: a path dependency's source newer than this needs cargo.
    recorded: SystemTime,
    /// The source folders (and manifests) of path dependencies.
    watched: Vec<PathBuf>,
}

impl DirectRustc {
    /// What decides whether a recorded invocation still holds.
    pub(crate) fn key(cargo: &Command, crate_dir: &Path) -> String {
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap_or_default();
        format!("{cargo:?}\n{manifest}")
    }

    /// The cell crate's rustc command from the stderr of `cargo build -v`; `None` when cargo
    /// did not compile it.
    pub(crate) fn record(key: String, cargo_stderr: &[u8], crate_name: &str, crate_dir: &Path) -> Option<Self> {
        let recorded = SystemTime::now();
        let stderr = String::from_utf8_lossy(cargo_stderr);
        let marker = format!(" --crate-name {crate_name} ");
        let line = stderr.lines().find(|l| l.trim_start().starts_with("Running `") && l.contains(&marker))?;
        let command = line.trim_start().strip_prefix("Running `")?.strip_suffix('`')?;
        let mut words = shlex::split(command)?;
        if words.is_empty() {
            return None;
        }
        let program = words.remove(0);
        Some(DirectRustc { key, program, args: words, recorded, watched: path_dependencies(crate_dir) })
    }

    /// The recorded command, when it still holds for a cargo command with this key.
    pub(crate) fn command(&self, key: &str, crate_dir: &Path, crate_name: &str) -> Option<Command> {
        if key != self.key || self.watched.iter().any(|p| changed_since(p, self.recorded)) {
            return None;
        }
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(crate_dir)
            .env("CARGO_PKG_NAME", crate_name)
            .env("CARGO_CRATE_NAME", crate_name)
            .env("CARGO_PKG_VERSION", "1.0.0")
            .env("CARGO_MANIFEST_DIR", crate_dir);
        Some(command)
    }

    /// Where rustc writes the shared object.
    pub(crate) fn output(&self, file_name: &str) -> Option<PathBuf> {
        let at = self.args.iter().position(|a| a == "--out-dir")?;
        Some(Path::new(self.args.get(at + 1)?).join(file_name))
    }
}

/// For each `path` dependency of the cell crate, and each of theirs: its manifest, build script
/// and `src` folder, the files cargo's fingerprint of it would look at. A path dependency that
/// re-exports another (glassbox's REPL dylib re-exports glassbox) must be rebuilt when the
/// inner one changes.
fn path_dependencies(crate_dir: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut pending = local_dependencies(crate_dir);
    while let Some(root) = pending.pop() {
        let root = root.canonicalize().unwrap_or(root);
        if roots.contains(&root) {
            continue;
        }
        pending.extend(local_dependencies(&root));
        roots.push(root);
    }
    roots.iter().flat_map(|root| ["Cargo.toml", "build.rs", "src"].map(|f| root.join(f))).collect()
}

/// The folders of the `path` dependencies in the manifest at `crate_dir`.
fn local_dependencies(crate_dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(crate_dir.join("Cargo.toml")) else {
        return Vec::new();
    };
    let Ok(manifest) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(deps) = manifest.get("dependencies").and_then(|d| d.as_table()) else {
        return Vec::new();
    };
    deps.values().filter_map(|d| d.get("path").and_then(|p| p.as_str())).map(|p| crate_dir.join(p)).collect()
}

/// Whether a file, or any file under a folder, was modified after `since`.
fn changed_since(path: &Path, since: SystemTime) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.modified().is_ok_and(|m| m > since) {
        return true;
    }
    meta.is_dir()
        && std::fs::read_dir(path)
            .map(|entries| entries.flatten().any(|e| changed_since(&e.path(), since)))
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_the_cell_crate_and_drops_it_when_anything_changes() {
        let dir = tempfile::tempdir().unwrap();
        let dep = dir.path().join("dep");
        std::fs::create_dir_all(dep.join("src")).unwrap();
        std::fs::write(dep.join("src/lib.rs"), "").unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[dependencies]\ndep = { path = \"dep\" }\n").unwrap();
        let cargo = Command::new("cargo");
        let key = DirectRustc::key(&cargo, dir.path());
        let stderr = b"   Compiling ctx v1.0.0\n     Running `/bin/rustc --crate-name ctx --check-cfg 'cfg(feature, values())' --out-dir /t/deps`\n";
        std::thread::sleep(std::time::Duration::from_millis(20));
        let direct = DirectRustc::record(key.clone(), stderr, "ctx", dir.path()).unwrap();
        assert_eq!(direct.args[3], "cfg(feature, values())");
        assert_eq!(direct.output("libctx.so").unwrap(), Path::new("/t/deps/libctx.so"));
        assert!(direct.command(&key, dir.path(), "ctx").is_some());
        assert!(direct.command("another key", dir.path(), "ctx").is_none());
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dep.join("src/lib.rs"), "pub fn f() {}").unwrap();
        assert!(direct.command(&key, dir.path(), "ctx").is_none(), "an edited path dependency needs cargo");
        assert!(
            DirectRustc::record(key, b"     Running `/bin/rustc --crate-name other`\n", "ctx", dir.path()).is_none()
        );
    }

    #[test]
    fn a_dependency_of_a_path_dependency_is_watched_too() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("cell");
        for (name, manifest) in [("inner", ""), ("outer", "[dependencies]\ninner = { path = \"../inner\" }\n")] {
            std::fs::create_dir_all(dir.path().join(name).join("src")).unwrap();
            std::fs::write(dir.path().join(name).join("src/lib.rs"), "").unwrap();
            std::fs::write(dir.path().join(name).join("Cargo.toml"), manifest).unwrap();
        }
        std::fs::create_dir_all(&cell).unwrap();
        std::fs::write(
            cell.join("Cargo.toml"),
            "[dependencies]\nglassbox = { path = \"../outer\", package = \"outer\" }\n",
        )
        .unwrap();
        let key = DirectRustc::key(&Command::new("cargo"), &cell);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let stderr = b"     Running `/bin/rustc --crate-name ctx --out-dir /t/deps`\n";
        let direct = DirectRustc::record(key.clone(), stderr, "ctx", &cell).unwrap();
        assert!(direct.command(&key, &cell, "ctx").is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("inner/src/lib.rs"), "pub fn f() {}").unwrap();
        assert!(direct.command(&key, &cell, "ctx").is_none(), "an edited inner dependency needs cargo");
    }
}
