//! Saving and loading a model's weights: safetensors (`.safetensors`) or libtorch's own
//! format (`.ot`), chosen by the file's extension; PyTorch's `torch.save` files of a state
//! dict (`.pth`, `.pt`, `.bin`) are read too, through [`super::pth`].
//!
//! Loading checks the whole file against the model before copying anything, so a file for
//! another architecture is refused with the variables that do not fit, and the model keeps
//! the weights it had.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{nn::VarStore, Tensor};

use super::ModelError;

/// The file formats weights are saved in, by extension.
const FORMATS: &str = "`.safetensors` or `.ot`";

/// The file formats weights are read from, by extension.
const READ_FORMATS: &str = "`.safetensors`, `.ot`, or PyTorch's `.pth`/`.pt`/`.bin`";

/// At most this many variable names are listed in one error.
const LISTED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    SafeTensors,
    Ot,
    /// `torch.save` of a state dict.
    Pth,
}

fn format_of(path: &Path) -> Result<Format, ModelError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Ok(Format::SafeTensors),
        Some("ot") => Ok(Format::Ot),
        Some("pth" | "pt" | "bin") => Ok(Format::Pth),
        other => Err(error(path, format!("unknown extension {:?}; weights are {READ_FORMATS}", other.unwrap_or("")))),
    }
}

fn error(path: &Path, message: String) -> ModelError {
    ModelError::Weights { path: path.display().to_string(), message }
}

/// The first line of a libtorch error: the rest is a C++ backtrace.
pub(crate) fn first_line(e: &tch::TchError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// Writes every variable of `vs` to `path`.
pub fn save(vs: &VarStore, path: impl AsRef<Path>) -> Result<(), ModelError> {
    let path = path.as_ref();
    let format = format_of(path)?;
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let result = match format {
        Format::SafeTensors => Tensor::write_safetensors(&named, path),
        Format::Ot => Tensor::save_multi(&named, path),
        Format::Pth => {
            return Err(error(path, format!("glassbox writes weights as {FORMATS}; PyTorch reads `.safetensors` too")))
        }
    };
    result.map_err(|e| error(path, format!("cannot write: {}", first_line(&e))))
}

/// Reads `path` into every variable of `vs`; the file must hold exactly the model's
/// variables, with the same shapes.
pub fn load(vs: &VarStore, path: impl AsRef<Path>) -> Result<(), ModelError> {
    load_checked(vs, path.as_ref(), true).map(|_| ())
}

/// Reads the variables `path` has into `vs` (shapes must still match) and returns the names
/// of the model's variables the file lacked, which keep their values. For loading, say, a
/// backbone's weights into a net with an inserted bottleneck.
pub fn load_partial(vs: &VarStore, path: impl AsRef<Path>) -> Result<Vec<String>, ModelError> {
    load_checked(vs, path.as_ref(), false)
}

/// Every named tensor of a weights file, on `device`, under the names a model's variables
/// have: PyTorch's batch-norm step counters (`num_batches_tracked`, bookkeeping for a
/// momentum that torchvision never uses) are dropped, and the `module.` prefix that
/// `nn.DataParallel` puts on every name is taken off.
pub fn read_file(path: &Path, device: tch::Device) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let format = format_of(path)?;
    if !path.is_file() {
        return Err(error(path, "no such file".to_owned()));
    }
    let named = match format {
        Format::SafeTensors => Tensor::read_safetensors(path),
        Format::Ot => Tensor::load_multi_with_device(path, device),
        Format::Pth => {
            // The reader's messages start with the path, which `error` names already.
            let raw = super::pth::read(path).map_err(|e| {
                let message = e.to_string();
                let shown = path.display().to_string();
                error(path, message.strip_prefix(&shown).map_or(message.clone(), |m| m.trim_start().to_owned()))
            })?;
            Ok(raw.into_iter().map(|(name, t)| (name, tensor_of(&t))).collect())
        }
    };
    let named = named.map_err(|e| error(path, format!("cannot read it as {format:?}: {}", first_line(&e))))?;
    let parallel = !named.is_empty() && named.iter().all(|(n, _)| n.starts_with("module."));
    Ok(named
        .into_iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(name, t)| {
            let name = if parallel { name["module.".len()..].to_owned() } else { name };
            (name, t.to_device(device))
        })
        .collect())
}

/// A tensor of the bytes [`super::pth`] read.
fn tensor_of(raw: &super::pth::RawTensor) -> Tensor {
    use super::pth::Dtype;
    let kind = match raw.dtype {
        Dtype::F32 => tch::Kind::Float,
        Dtype::F64 => tch::Kind::Double,
        Dtype::F16 => tch::Kind::Half,
        Dtype::BF16 => tch::Kind::BFloat16,
        Dtype::I64 => tch::Kind::Int64,
        Dtype::I32 => tch::Kind::Int,
        Dtype::I16 => tch::Kind::Int16,
        Dtype::I8 => tch::Kind::Int8,
        Dtype::U8 => tch::Kind::Uint8,
        Dtype::Bool => tch::Kind::Bool,
    };
    Tensor::from_data_size(&raw.data, &raw.shape, kind)
}

fn load_checked(vs: &VarStore, path: &Path, strict: bool) -> Result<Vec<String>, ModelError> {
    let file = read_file(path, vs.device())?;
    load_named(vs, path, &file, strict)
}

/// Copies `file` (read from `path`) into `vs` after checking the whole of it: with
/// `strict`, the names must be exactly the model's; shapes must always match. Returns the
/// names of the model's variables the file lacked.
pub fn load_named(
    vs: &VarStore,
    path: &Path,
    file: &BTreeMap<String, Tensor>,
    strict: bool,
) -> Result<Vec<String>, ModelError> {
    let model: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut problems = Vec::new();
    let mismatched: Vec<String> = model
        .iter()
        .filter_map(|(name, var)| {
            let found = file.get(name)?;
            (found.size() != var.size())
                .then(|| format!("`{name}` is {:?} in the file but {:?} in the model", found.size(), var.size()))
        })
        .collect();
    if !mismatched.is_empty() {
        problems.push(format!("shapes differ: {}", listed(&mismatched)));
    }
    let missing: Vec<String> = model.keys().filter(|n| !file.contains_key(*n)).cloned().collect();
    let unexpected: Vec<String> = file.keys().filter(|n| !model.contains_key(*n)).cloned().collect();
    if strict && !missing.is_empty() {
        problems.push(format!("the model's variables {} are missing", quoted(&missing)));
    }
    if strict && !unexpected.is_empty() {
        problems.push(format!("the file's variables {} are not in the model", quoted(&unexpected)));
    }
    if !problems.is_empty() {
        return Err(error(path, format!("does not fit the model: {}", problems.join("; "))));
    }
    tch::no_grad(|| {
        for (name, mut var) in model {
            if let Some(value) = file.get(&name) {
                var.copy_(&value.to_device(var.device()));
            }
        }
    });
    Ok(missing)
}

/// `a, b, c (and 4 more)`.
fn listed(items: &[String]) -> String {
    let shown = items.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
    match items.len().saturating_sub(LISTED) {
        0 => shown,
        more => format!("{shown} (and {more} more)"),
    }
}

fn quoted(names: &[String]) -> String {
    listed(&names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{LeNet, LeNetConfig, ResNetConfig, Tapped, TappedNet, Task};
    use tch::{nn::ModuleT, Device, Kind};

    fn dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("glassbox-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn small(widths: Vec<i64>) -> TappedNet {
        TappedNet::new(ResNetConfig { widths, ..ResNetConfig::small(Task::Segmentation, 4) }, Device::Cpu).unwrap()
    }

    #[test]
    fn a_round_trip_gives_identical_outputs_in_both_formats() {
        let _serial = crate::models::serial();
        let x = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
        for ext in ["safetensors", "ot"] {
            let a = small(vec![4, 8, 8]);
            let b = small(vec![4, 8, 8]);
            let path = dir().join(format!("round-trip.{ext}"));
            a.save_weights(&path).unwrap();
            assert!(!a.forward_t(&x, false).equal(&b.forward_t(&x, false)));
            b.load_weights(&path).unwrap();
            assert!(a.forward_t(&x, false).equal(&b.forward_t(&x, false)), "{ext}");
        }
    }

    #[test]
    fn a_wrong_architecture_is_refused_with_the_variable_and_nothing_changes() {
        let _serial = crate::models::serial();
        let path = dir().join("wide.safetensors");
        small(vec![4, 8, 8]).save_weights(&path).unwrap();
        let narrow = small(vec![4, 8, 6]);
        let before = narrow.var_store().variables()["stage3.0.conv1.weight"].copy();
        let err = narrow.load_weights(&path).unwrap_err().to_string();
        assert!(
            err.contains("wide.safetensors")
                && err.contains("`head.weight` is [4, 8, 1, 1] in the file but [4, 6, 1, 1] in the model"),
            "{err}"
        );
        assert!(narrow.var_store().variables()["stage3.0.conv1.weight"].equal(&before));
        let lenet = LeNet::new(LeNetConfig::default(), Device::Cpu).unwrap();
        let err = lenet.load_weights(&path).unwrap_err().to_string();
        assert!(
            err.contains("`conv1.bias`") && err.contains("are missing") && err.contains("not in the model"),
            "{err}"
        );
    }

    #[test]
    fn partial_loads_report_what_the_file_lacked() {
        let _serial = crate::models::serial();
        let path = dir().join("backbone.ot");
        let plain = small(vec![4, 8, 8]);
        plain.save_weights(&path).unwrap();
        let with_sb = plain
            .edited([crate::models::Edit::insert_after(
                crate::models::Stage::Stem,
                crate::models::Insertion::conv1x1("sb", 16),
            )])
            .unwrap();
        assert_eq!(load_partial(with_sb.var_store(), &path).unwrap(), vec!["sb.bias", "sb.weight"]);
    }

    /// The same state dict as PyTorch writes it with `torch.save` and with
    /// `safetensors.torch.save_file` (`scripts/fixtures/pth.py`) reads the same.
    #[test]
    fn pytorch_files_read_alike_in_both_formats() {
        let fixture = |name: &str| crate::models::fixture::path("pth", name);
        let pt = read_file(&fixture("state_dict.pt"), tch::Device::Cpu).unwrap();
        let st = read_file(&fixture("state_dict.safetensors"), tch::Device::Cpu).unwrap();
        assert_eq!(pt.keys().collect::<Vec<_>>(), st.keys().collect::<Vec<_>>());
        assert!(!pt.keys().any(|k| k.ends_with("num_batches_tracked")), "{:?}", pt.keys());
        for (name, t) in &pt {
            assert!(t.equal(&st[name]), "{name}");
        }
    }

    #[test]
    fn missing_garbage_and_unknown_files_are_named() {
        let _serial = crate::models::serial();
        let net = small(vec![4, 8, 8]);
        let err = net.load_weights(dir().join("absent.safetensors")).unwrap_err().to_string();
        assert!(err.contains("absent.safetensors") && err.contains("no such file"), "{err}");
        let garbage = dir().join("garbage.safetensors");
        std::fs::write(&garbage, b"not a tensor file").unwrap();
        let err = net.load_weights(&garbage).unwrap_err().to_string();
        assert!(err.contains("garbage.safetensors") && err.contains("cannot read"), "{err}");
        let err = net.save_weights(dir().join("w.pt")).unwrap_err().to_string();
        assert!(err.contains("`.safetensors` or `.ot`"), "{err}");
        let err = net.load_weights(dir().join("w.npz")).unwrap_err().to_string();
        assert!(err.contains("`.pth`"), "{err}");
    }
}
