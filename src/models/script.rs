//! TorchScript models (`torch.jit.save` files) as plain forward models: no stages to tap,
//! since libtorch does not expose a scripted module's intermediate outputs by name.

use std::path::Path;

use tch::nn::ModuleT;
use tch::{CModule, Device, Tensor};

use super::weights::first_line;
use super::ModelError;

/// A TorchScript module loaded for inference (evaluation mode).
#[derive(Debug)]
pub struct ScriptModel {
    module: CModule,
    path: String,
}

impl ScriptModel {
    /// Loads `path` onto `device`.
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<ScriptModel, ModelError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        if !path.is_file() {
            return Err(ModelError::Script { path: name, message: "no such file".to_owned() });
        }
        let mut module = CModule::load_on_device(path, device).map_err(|e| ModelError::Script {
            path: name.clone(),
            message: format!("not a TorchScript module libtorch can load: {}", first_line(&e)),
        })?;
        module.set_eval();
        Ok(ScriptModel { module, path: name })
    }

    /// The module's `forward` on one tensor.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, ModelError> {
        self.module.forward_ts(&[xs]).map_err(|e| ModelError::Script {
            path: self.path.clone(),
            message: format!("forward failed: {}", first_line(&e)),
        })
    }
}

impl ModuleT for ScriptModel {
    /// The module's `forward` (always in evaluation mode: `train` is ignored).
    ///
    /// # Panics
    /// If the module's forward fails; [`ScriptModel::forward`] reports it instead.
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.forward(xs).unwrap_or_else(|e| panic!("{e}"))
    }
}

// Without Python torch here no TorchScript file can be made for a positive test; only the
// error paths are tested.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_garbage_files_are_refused_by_name() {
        let err = ScriptModel::load("no-such-model.pt", Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("no-such-model.pt") && err.contains("no such file"), "{err}");
        let garbage = std::env::temp_dir().join(format!("glassbox-garbage-{}.pt", std::process::id()));
        std::fs::write(&garbage, b"definitely not a zip archive").unwrap();
        let err = ScriptModel::load(&garbage, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("glassbox-garbage") && err.contains("not a TorchScript module"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
