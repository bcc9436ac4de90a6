//! `glassbox install`: writes the kernelspec (`kernel-spec/` with the path of this binary)
//! where Jupyter looks for kernels.

use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The kernel's name in Jupyter (`jupyter console --kernel glassbox`).
pub const KERNEL_NAME: &str = "glassbox";

const LOGO_32: &[u8] = include_bytes!("../../kernel-spec/logo-32x32.png");
const LOGO_64: &[u8] = include_bytes!("../../kernel-spec/logo-64x64.png");

/// Where to install.
#[derive(Debug, Clone)]
pub enum Target {
    /// The user's Jupyter data dir (`~/.local/share/jupyter` on Linux).
    User,
    /// `PREFIX/share/jupyter`, e.g. a virtual environment.
    Prefix(PathBuf),
}

impl Target {
    pub fn kernels_dir(&self) -> Result<PathBuf> {
        Ok(match self {
            Target::User => std::env::var_os("JUPYTER_DATA_DIR")
                .map(PathBuf::from)
                .or_else(|| dirs::data_dir().map(|d| d.join("jupyter")))
                .context("no user data directory; use --prefix")?
                .join("kernels"),
            Target::Prefix(p) => p.join("share").join("jupyter").join("kernels"),
        })
    }
}

/// The kernel.json for a kernel binary at `exe`.
pub fn kernel_json(exe: &Path) -> serde_json::Value {
    json!({
        "argv": [exe.to_string_lossy(), "kernel", "--connection-file", "{connection_file}"],
        "display_name": "glassbox (Rust)",
        "language": "rust",
        "interrupt_mode": "message",
        "metadata": { "debugger": false }
    })
}

/// Installs the kernelspec for `exe`; returns the directory written.
pub fn install(target: &Target, exe: &Path) -> Result<PathBuf> {
    let dir = target.kernels_dir()?.join(KERNEL_NAME);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let spec = serde_json::to_string_pretty(&kernel_json(exe))?;
    std::fs::write(dir.join("kernel.json"), spec + "\n")?;
    std::fs::write(dir.join("logo-32x32.png"), LOGO_32)?;
    std::fs::write(dir.join("logo-64x64.png"), LOGO_64)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_under_a_prefix_with_message_interrupts() {
        let prefix = std::env::temp_dir().join(format!("glassbox-install-{}", std::process::id()));
        let dir = install(&Target::Prefix(prefix.clone()), Path::new("/opt/bin/glassbox")).unwrap();
        assert_eq!(dir, prefix.join("share/jupyter/kernels/glassbox"));
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("kernel.json")).unwrap()).unwrap();
        assert_eq!(spec["argv"][0], "/opt/bin/glassbox");
        assert_eq!(spec["argv"][3], "{connection_file}");
        assert_eq!(spec["interrupt_mode"], "message");
        assert!(dir.join("logo-64x64.png").exists());
        std::fs::remove_dir_all(prefix).unwrap();
    }

    #[test]
    fn the_shipped_kernel_spec_agrees_with_the_installed_one() {
        let shipped: serde_json::Value = serde_json::from_str(include_str!("../../kernel-spec/kernel.json")).unwrap();
        let made = kernel_json(Path::new("glassbox"));
        assert_eq!(shipped, made);
    }
}
