//! Saving and loading a model's weights: safetensors (`.safetensors`) or libtorch's own
//! format (`.ot`), chosen by the file's extension.
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

/// At most this many variable names are listed in one error.
const LISTED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    SafeTensors,
    Ot,
}

fn format_of(path: &Path) -> Result<Format, ModelError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Ok(Format::SafeTensors),
        Some("ot") => Ok(Format::Ot),
        other => Err(error(path, format!("unknown extension {:?}; weights are {FORMATS}", other.unwrap_or("")))),
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

fn read(path: &Path, vs: &VarStore) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let format = format_of(path)?;
    if !path.is_file() {
        return Err(error(path, "no such file".to_owned()));
    }
    let named = match format {
        Format::SafeTensors => Tensor::read_safetensors(path),
        Format::Ot => Tensor::load_multi_with_device(path, vs.device()),
    };
    let named = named.map_err(|e| error(path, format!("cannot read it as {format:?}: {}", first_line(&e))))?;
    Ok(named.into_iter().collect())
}

fn load_checked(vs: &VarStore, path: &Path, strict: bool) -> Result<Vec<String>, ModelError> {
    let file = read(path, vs)?;
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
    }
}
