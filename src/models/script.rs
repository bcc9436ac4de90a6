//! TorchScript exports (`torch.jit.script`/`torch.jit.trace`, then `.save`) as tapped
//! models. libtorch does not expose a scripted module's intermediate outputs by name, so
//! the export names them itself: a forward that returns a dict of tensors is tapped by the
//! dict's keys (what torchvision's `create_feature_extractor` builds), a tuple by names the
//! user gives, and a plain tensor at its output only.
//!
//! The export recipe, in PyTorch:
//!
//! ```python
//! from torchvision.models.feature_extraction import create_feature_extractor
//! taps = create_feature_extractor(model.eval(), {"layer3": "layer3", "layer4": "layer4", "fc": "logits"})
//! torch.jit.script(taps).save("model-taps.pt")
//! ```

use std::path::Path;

use tch::nn::{self, ModuleT};
use tch::{CModule, Device, IValue, Kind, Tensor};

use super::weights::first_line;
use super::{check_input, ModelError, Stage, StageInfo, Tapped, Taps, Task};

/// How an export is asked for its taps, when its file does not say it all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScriptOptions {
    /// Names for the elements of a tuple output, in order.
    pub tuple_names: Option<Vec<String>>,
    /// Which output is the logits; by default the one named `logits`, `out`, `output`,
    /// `fc`, `head` or `classifier`, else the last two-dimensional one, else the last.
    pub logits: Option<String>,
    /// The `(height, width)` the module is probed with; by default the first of 224, 64,
    /// 32 and 28 that it takes.
    pub input_size: Option<(i64, i64)>,
}

/// The output names that are taken for the logits, in order of preference.
const LOGIT_NAMES: [&str; 6] = ["logits", "out", "output", "fc", "head", "classifier"];

/// How the module's forward returns its outputs.
#[derive(Debug, Clone, PartialEq)]
enum Outputs {
    Tensor,
    Dict,
    Tuple(Vec<String>),
}

/// A TorchScript module loaded for inference (evaluation mode), tapped at the outputs its
/// forward returns.
#[derive(Debug)]
pub struct ScriptModel {
    module: CModule,
    path: String,
    options: ScriptOptions,
    /// Holds no variables (the module owns its weights); it says where the model lives.
    vs: nn::VarStore,
    outputs: Outputs,
    logits: String,
    in_channels: i64,
    /// The size of the zero image the module took when probed.
    input_size: (i64, i64),
    taps: Vec<StageInfo>,
}

impl ScriptModel {
    /// Loads `path` onto `device` with the default [`ScriptOptions`].
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<ScriptModel, ModelError> {
        ScriptModel::load_with(path, &ScriptOptions::default(), device)
    }

    /// Loads `path` onto `device` and finds its taps by running it once on a zero image.
    pub fn load_with(
        path: impl AsRef<Path>,
        options: &ScriptOptions,
        device: Device,
    ) -> Result<ScriptModel, ModelError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let fail = |message: String| ModelError::Script { path: name.clone(), message };
        if !path.is_file() {
            return Err(fail("no such file".to_owned()));
        }
        let mut module = CModule::load_on_device(path, device)
            .map_err(|e| fail(format!("not a TorchScript module libtorch can load: {}", first_line(&e))))?;
        module.set_eval();
        let sizes = options.input_size.map_or(vec![(224, 224), (64, 64), (32, 32), (28, 28)], |s| vec![s]);
        let mut last_error = String::new();
        for in_channels in [3, 1] {
            for &(h, w) in &sizes {
                let probe = Tensor::zeros([1, in_channels, h, w], (Kind::Float, device));
                match tch::no_grad(|| module.forward_is(&[IValue::Tensor(probe)])) {
                    Ok(out) => {
                        let probe = Probe { in_channels, size: (h, w), output: out };
                        return ScriptModel::from_probe(module, name.clone(), options, device, probe);
                    }
                    Err(e) => last_error = first_line(&e),
                }
            }
        }
        Err(fail(format!(
            "its forward failed on [1, 3 or 1, H, W] zero images of sizes {sizes:?} (give the size it takes): {last_error}"
        )))
    }

    fn from_probe(
        module: CModule,
        path: String,
        options: &ScriptOptions,
        device: Device,
        probe: Probe,
    ) -> Result<ScriptModel, ModelError> {
        let fail = |message: String| ModelError::Script { path: path.clone(), message };
        let Probe { in_channels, size: input_size, output } = probe;
        let (outputs, named) = match output {
            IValue::Tensor(t) => (Outputs::Tensor, vec![("output".to_owned(), t)]),
            IValue::GenericDict(items) => {
                let named = dict_items(items).map_err(fail)?;
                (Outputs::Dict, named)
            }
            IValue::Tuple(items) | IValue::GenericList(items) => {
                let names = options.tuple_names.clone().ok_or_else(|| {
                    fail(format!(
                        "its forward returns a tuple of {} outputs; name them (`--taps a,b,..` or \
                         `ScriptOptions::tuple_names`), or export a dict of named tensors",
                        items.len()
                    ))
                })?;
                if names.len() != items.len() {
                    return Err(fail(format!("{} names given for a tuple of {} outputs", names.len(), items.len())));
                }
                let tensors = items
                    .into_iter()
                    .map(|v| match v {
                        IValue::Tensor(t) => Ok(t),
                        other => Err(fail(format!("a tuple element is not a tensor: {other:?}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (Outputs::Tuple(names.clone()), names.into_iter().zip(tensors).collect())
            }
            IValue::TensorList(ts) => {
                let names = options.tuple_names.clone().ok_or_else(|| {
                    fail(format!("its forward returns a list of {} tensors; name them, or export a dict", ts.len()))
                })?;
                (Outputs::Tuple(names.clone()), names.into_iter().zip(ts).collect())
            }
            other => return Err(fail(format!("its forward returns {}, not tensors", describe(&other)))),
        };
        let logits = match (&options.logits, &outputs) {
            (_, Outputs::Tensor) => "output".to_owned(),
            (Some(l), _) => {
                if !named.iter().any(|(n, _)| n == l) {
                    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(fail(format!(
                        "no output `{l}` to take as logits; the outputs are {}",
                        names.join(", ")
                    )));
                }
                l.clone()
            }
            (None, _) => LOGIT_NAMES
                .iter()
                .find_map(|l| named.iter().find(|(n, _)| n == l))
                .or_else(|| named.iter().rev().find(|(_, t)| t.dim() == 2))
                .or(named.last())
                .map(|(n, _)| n.clone())
                .ok_or_else(|| fail("its forward returns an empty dict".to_owned()))?,
        };
        let channels = |t: &Tensor| t.size().get(1).copied().unwrap_or(1);
        let mut taps: Vec<StageInfo> = match outputs {
            Outputs::Tensor => Vec::new(),
            _ => named
                .iter()
                .map(|(n, t)| StageInfo { stage: Stage::Module(n.clone()), channels: channels(t) })
                .collect(),
        };
        let classes = named.iter().find(|(n, _)| *n == logits).map_or(1, |(_, t)| channels(t));
        taps.push(StageInfo { stage: Stage::Head, channels: classes });
        let options = options.clone();
        Ok(ScriptModel {
            module,
            path,
            options,
            vs: nn::VarStore::new(device),
            outputs,
            logits,
            in_channels,
            input_size,
            taps,
        })
    }

    /// How many numbers the module's parameters hold.
    pub fn parameter_count(&self) -> i64 {
        self.module.named_parameters().map_or(0, |ps| ps.iter().map(|(_, t)| t.numel() as i64).sum())
    }

    /// An independent copy, loaded again from the same file with the same options.
    pub fn try_clone(&self) -> Result<ScriptModel, ModelError> {
        ScriptModel::load_with(&self.path, &self.options, self.vs.device())
    }

    /// The module's outputs on `xs`, by name.
    fn outputs(&self, xs: &Tensor) -> Result<Vec<(String, Tensor)>, ModelError> {
        let fail = |message: String| ModelError::Script { path: self.path.clone(), message };
        let out = self
            .module
            .forward_is(&[IValue::Tensor(xs.shallow_clone())])
            .map_err(|e| fail(format!("forward failed: {}", first_line(&e))))?;
        match (&self.outputs, out) {
            (Outputs::Tensor, IValue::Tensor(t)) => Ok(vec![("output".to_owned(), t)]),
            (Outputs::Dict, IValue::GenericDict(items)) => dict_items(items).map_err(fail),
            (Outputs::Tuple(names), IValue::Tuple(items) | IValue::GenericList(items)) => names
                .iter()
                .cloned()
                .zip(items)
                .map(|(n, v)| match v {
                    IValue::Tensor(t) => Ok((n, t)),
                    other => Err(fail(format!("output `{n}` is not a tensor: {}", describe(&other)))),
                })
                .collect(),
            (Outputs::Tuple(names), IValue::TensorList(ts)) => Ok(names.iter().cloned().zip(ts).collect()),
            (_, other) => {
                Err(fail(format!("forward returned {} where the probe returned otherwise", describe(&other))))
            }
        }
    }

    /// The module's `forward` on one batch: its logits.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, ModelError> {
        Ok(self.forward_taps(xs, &[], false)?.0)
    }

    /// The refusal of a tap the export does not return, with how to export taps.
    fn unknown(&self, name: &str) -> ModelError {
        let how =
            "export the layers you want as a dict: `create_feature_extractor(model, {\"layer3\": \"layer3\", ..})` \
                   from torchvision.models.feature_extraction, then `torch.jit.script(..).save(..)`";
        let message = match self.outputs {
            Outputs::Tensor => format!(
                "`{name}` is not a tap: this TorchScript module returns one tensor, so its only tap is its output, \
                 `head`; to read inner layers, {how}"
            ),
            _ => format!("`{name}` is not among the outputs it returns ({}); {how}", super::stage_list(&self.taps)),
        };
        ModelError::Script { path: self.path.clone(), message }
    }
}

/// Whether `path` is a TorchScript export (a zip with the module's `code/`) rather than a
/// file of weights, for opening either with one command.
pub fn is_torchscript(path: &Path) -> Result<bool, ModelError> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::Weights {
        path: path.display().to_string(),
        message: format!("cannot open it: {e}"),
    })?;
    let Ok(archive) = zip::ZipArchive::new(file) else {
        return Ok(false);
    };
    let has_code = archive.file_names().any(|n| n.contains("/code/"));
    Ok(has_code)
}

/// What the first successful forward on a zero image showed.
struct Probe {
    in_channels: i64,
    size: (i64, i64),
    output: IValue,
}

fn dict_items(items: Vec<(IValue, IValue)>) -> Result<Vec<(String, Tensor)>, String> {
    items
        .into_iter()
        .map(|(k, v)| match (k, v) {
            (IValue::String(k), IValue::Tensor(t)) => Ok((k, t)),
            (IValue::String(k), other) => Err(format!("its output `{k}` is {}, not a tensor", describe(&other))),
            (other, _) => Err(format!("its output dict has a key that is {}, not a string", describe(&other))),
        })
        .collect()
}

/// What kind of value an output is, for errors (a tensor's contents are not printed).
fn describe(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Tensor(_) => "a tensor",
        IValue::Double(_) | IValue::Int(_) | IValue::Bool(_) => "a number",
        IValue::Tuple(_) => "a tuple",
        IValue::String(_) => "a string",
        IValue::GenericDict(_) => "a dict",
        IValue::Object(_) => "an object",
        _ => "a list",
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

impl Tapped for ScriptModel {
    fn stages(&self) -> Vec<StageInfo> {
        self.taps.clone()
    }

    /// The module runs in evaluation mode whatever `train` says: a TorchScript export is
    /// inspected, not trained, here.
    fn forward_taps(&self, xs: &Tensor, taps: &[Stage], _train: bool) -> Result<(Tensor, Taps), ModelError> {
        check_input(xs, self.in_channels)?;
        if let Some(missing) = taps.iter().find(|t| !self.taps.iter().any(|s| &s.stage == *t)) {
            return Err(self.unknown(&missing.to_string()));
        }
        let mut outputs = self.outputs(xs)?;
        let logits = outputs.iter().position(|(n, _)| *n == self.logits).map(|i| outputs[i].1.shallow_clone());
        let logits = logits.ok_or_else(|| self.unknown(&self.logits))?;
        let mut out = Taps::new();
        for (name, t) in outputs.drain(..) {
            let stage = Stage::Module(name);
            if taps.contains(&stage) {
                out.insert(stage, t);
            }
        }
        if taps.contains(&Stage::Head) {
            out.insert(Stage::Head, logits.shallow_clone());
        }
        Ok((logits, out))
    }

    fn stage(&self, name: &str) -> Result<Stage, ModelError> {
        self.taps
            .iter()
            .find(|s| s.stage.to_string() == name)
            .map(|s| s.stage.clone())
            .ok_or_else(|| self.unknown(name))
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn in_channels(&self) -> i64 {
        self.in_channels
    }

    fn input_size(&self) -> Option<(i64, i64)> {
        Some(self.input_size)
    }

    fn task(&self) -> Task {
        Task::Classification
    }

    fn num_classes(&self) -> i64 {
        self.taps.last().map_or(1, |s| s.channels)
    }
}

#[cfg(test)]
mod tests;
