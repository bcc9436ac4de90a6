//! Tapped networks: models whose intermediate stage outputs can be read in one forward pass,
//! whose stages can be wrapped or replaced (bottleneck insertion), and their trainers.
//!
//! Every model here implements [`Tapped`]: named [`Stage`]s with their channel counts, a
//! forward pass that returns any set of stage outputs alongside the logits, and weights in a
//! [`tch::nn::VarStore`] that [`weights`] saves and loads. Metrics and probes take any
//! `&impl Tapped`, so they do not care whether the net is a [`TappedNet`] (ResNet) or a
//! [`LeNet`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use tch::{nn, Device, Tensor};

pub mod edit;
pub mod fit;
#[cfg(test)]
pub(crate) mod fixture;
pub mod lenet;
pub mod pth;
pub mod relu;
pub mod report;
pub mod resnet;
pub mod script;
pub mod train;
pub mod vision;
pub mod weights;
pub mod zoo;

pub use edit::{Edit, Editable, Insertion, InsertionPoint};
pub use fit::{fit, score, TaskData};
pub use lenet::{LeNet, LeNetConfig};
pub use report::stage_names_json;
pub use resnet::{BlockKind, ResNetConfig, TappedNet};
pub use script::{ScriptModel, ScriptOptions};
pub use train::{
    accuracy, cross_entropy, evaluate, miou, optimize, poly_lr, train, train_with, Examples, Optim, Score, StepInfo,
    TrainConfig, TrainReport, IGNORE,
};
pub use vision::{Arch, Normalize, VisionNet};

/// What can go wrong building, editing, running, saving or training a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("unknown stage `{name}`; the stages are: {allowed}")]
    UnknownStage { name: String, allowed: String },
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    #[error("invalid edit: {0}")]
    InvalidEdit(String),
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("weights file `{path}`: {message}")]
    Weights { path: String, message: String },
    #[error("TorchScript module `{path}`: {message}")]
    Script { path: String, message: String },
    #[error("libtorch: {0}")]
    Torch(String),
}

impl From<tch::TchError> for ModelError {
    fn from(e: tch::TchError) -> Self {
        ModelError::Torch(e.to_string())
    }
}

/// A named stage of a tapped network, resolved once from its name so that later code never
/// passes raw strings around. One type serves every architecture (ResNet stages, LeNet
/// layers, inserted modules), so metrics and `:commands` take stages of any model; which
/// stages a given model has is [`Tapped::stages`], and [`Tapped::stage`] resolves a name
/// against exactly those.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The first convolution(s) before the residual stages.
    Stem,
    /// Residual stage `n` (1-based), named `stageN`.
    Block(u8),
    /// Convolutional layer `n` of a plain CNN (LeNet), named `convN`.
    Conv(u8),
    /// Fully connected layer `n` of a plain CNN, named `fcN`.
    Fc(u8),
    /// The classifier: logits per image, or per pixel for segmentation.
    Head,
    /// A module inserted after a stage (e.g. a semantic bottleneck), by its own name.
    Inserted(String),
    /// A submodule of a network written elsewhere, by the dotted name its own code gives it
    /// (torchvision's `layer3.1.conv2`, or a key of a TorchScript export's output).
    Module(String),
}

/// The stage names [`Stage::from_str`] accepts, for its error message.
const STAGE_FORMS: &str = "stem, stage1.., conv1.., fc1.., head";

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Stem => f.write_str("stem"),
            Stage::Block(n) => write!(f, "stage{n}"),
            Stage::Conv(n) => write!(f, "conv{n}"),
            Stage::Fc(n) => write!(f, "fc{n}"),
            Stage::Head => f.write_str("head"),
            Stage::Inserted(name) | Stage::Module(name) => f.write_str(name),
        }
    }
}

/// Parses the built-in stage names. Names of inserted modules are not built in: resolve
/// them (and check that a model has a stage at all) with [`Tapped::stage`].
impl FromStr for Stage {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || ModelError::UnknownStage { name: s.to_owned(), allowed: STAGE_FORMS.to_owned() };
        let numbered = |prefix: &str| -> Option<u8> {
            let digits = s.strip_prefix(prefix)?;
            let n: u8 = digits.parse().ok()?;
            (n >= 1 && !digits.starts_with('0')).then_some(n)
        };
        match s {
            "stem" => Ok(Stage::Stem),
            "head" => Ok(Stage::Head),
            _ => numbered("stage")
                .map(Stage::Block)
                .or_else(|| numbered("conv").map(Stage::Conv))
                .or_else(|| numbered("fc").map(Stage::Fc))
                .ok_or_else(unknown),
        }
    }
}

/// What a model trains for; decides the head, the loss and the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Task {
    /// One label per image: global average pool + linear head, cross-entropy, accuracy.
    Classification,
    /// One label per pixel: 1x1 conv head upsampled to the input, per-pixel cross-entropy
    /// ignoring `-1`, mIoU.
    Segmentation,
}

/// One stage as a model lists it: its name and how many channels (or features) it outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageInfo {
    pub stage: Stage,
    pub channels: i64,
}

/// Stage outputs by stage, as [`Tapped::forward_taps`] returns them.
pub type Taps = BTreeMap<Stage, Tensor>;

/// A network with named stages whose outputs can be read.
pub trait Tapped: nn::ModuleT {
    /// The stages in forward order, ending with [`Stage::Head`].
    fn stages(&self) -> Vec<StageInfo>;

    /// The logits and the outputs of `taps`, all from one forward pass. Fails, touching
    /// nothing, if the model lacks one of `taps`.
    fn forward_taps(&self, xs: &Tensor, taps: &[Stage], train: bool) -> Result<(Tensor, Taps), ModelError>;

    /// The logits of a forward pass in evaluation mode in which the output of each stage of
    /// `at` goes through `edit` before later stages see it: how saliency stops gradients at a
    /// layer (SeVec paper sec. 5) and how a layer's output is replaced. A model that runs as
    /// one piece (a TorchScript export) takes no stages here, and says so.
    fn forward_edited(
        &self,
        xs: &Tensor,
        at: &[Stage],
        edit: &dyn Fn(&Stage, Tensor) -> Tensor,
    ) -> Result<Tensor, ModelError> {
        let _ = edit;
        match at.first() {
            None => Ok(self.forward_taps(xs, &[], false)?.0),
            Some(stage) => Err(ModelError::BadInput(format!(
                "`{stage}` cannot be changed inside the forward pass of this model, which runs as one piece"
            ))),
        }
    }

    /// Whether glassbox runs the model's layers itself: every ReLU is [`relu::relu`], so
    /// guided backpropagation can rewrite how gradients cross them, and
    /// [`forward_edited`](Tapped::forward_edited) reaches its stages. A TorchScript export
    /// runs inside libtorch as one piece.
    fn runs_in_glassbox(&self) -> bool {
        false
    }

    /// Where the weights live: what optimizers train and [`weights`] saves.
    fn var_store(&self) -> &nn::VarStore;

    /// Input channels the model expects (`[N, C, H, W]` images).
    fn in_channels(&self) -> i64;

    /// Classification or segmentation.
    fn task(&self) -> Task;

    /// How many classes the head predicts.
    fn num_classes(&self) -> i64;

    /// The `(height, width)` of the images the model was made for, if it has one (an
    /// ImageNet classifier's 224x224); fully convolutional models take any size.
    fn input_size(&self) -> Option<(i64, i64)> {
        None
    }

    /// The device the weights are on.
    fn device(&self) -> Device {
        self.var_store().device()
    }

    /// Saves the weights to a `.safetensors` or `.ot` file.
    fn save_weights(&self, path: impl AsRef<std::path::Path>) -> Result<(), ModelError>
    where
        Self: Sized,
    {
        weights::save(self.var_store(), path)
    }

    /// Loads weights saved for this architecture; a file that does not fit is refused with
    /// the variables at fault and the model keeps its weights.
    fn load_weights(&self, path: impl AsRef<std::path::Path>) -> Result<(), ModelError>
    where
        Self: Sized,
    {
        weights::load(self.var_store(), path)
    }

    /// Resolves a stage name against this model's stages; the error lists them.
    fn stage(&self, name: &str) -> Result<Stage, ModelError> {
        let stages = self.stages();
        stages
            .iter()
            .find(|s| s.stage.to_string() == name)
            .map(|s| s.stage.clone())
            .ok_or_else(|| ModelError::UnknownStage { name: name.to_owned(), allowed: stage_list(&stages) })
    }

    /// Output channels of `stage`.
    fn stage_channels(&self, stage: &Stage) -> Result<i64, ModelError> {
        let stages = self.stages();
        stages
            .iter()
            .find(|s| &s.stage == stage)
            .map(|s| s.channels)
            .ok_or_else(|| ModelError::UnknownStage { name: stage.to_string(), allowed: stage_list(&stages) })
    }

    /// The output shape of every stage for one `(height, width)` image, in forward order,
    /// found by running a zero image through the model (exact, whatever the strides).
    fn output_shapes(&self, input_size: (i64, i64)) -> Result<Vec<(Stage, Vec<i64>)>, ModelError> {
        let (h, w) = input_size;
        if h < 1 || w < 1 {
            return Err(ModelError::BadInput(format!("input size {h}x{w} must be positive")));
        }
        let stages: Vec<Stage> = self.stages().into_iter().map(|s| s.stage).collect();
        let x = Tensor::zeros([1, self.in_channels(), h, w], (tch::Kind::Float, self.device()));
        let (_, taps) = tch::no_grad(|| self.forward_taps(&x, &stages, false))?;
        Ok(stages
            .into_iter()
            .map(|s| {
                let shape = taps[&s].size();
                (s, shape)
            })
            .collect())
    }
}

/// `stem (16), stage1 (16), ..., head (11)`: a model's stages for error messages.
pub(crate) fn stage_list(stages: &[StageInfo]) -> String {
    stages.iter().map(|s| format!("{} ({})", s.stage, s.channels)).collect::<Vec<_>>().join(", ")
}

/// Checks that `taps` are all among `stages`, for [`Tapped::forward_taps`].
pub(crate) fn check_taps(stages: &[StageInfo], taps: &[Stage]) -> Result<(), ModelError> {
    match taps.iter().find(|t| !stages.iter().any(|s| &s.stage == *t)) {
        Some(missing) => Err(ModelError::UnknownStage { name: missing.to_string(), allowed: stage_list(stages) }),
        None => Ok(()),
    }
}

/// Copies into `dst` every variable of `src` with the same name and shape; returns the
/// names of `dst`'s variables that kept their own values.
pub(crate) fn copy_matching(src: &nn::VarStore, dst: &nn::VarStore) -> Vec<String> {
    let src = src.variables();
    let mut kept = Vec::new();
    tch::no_grad(|| {
        for (name, mut var) in dst.variables() {
            match src.get(&name).filter(|v| v.size() == var.size()) {
                Some(value) => {
                    var.copy_(&value.to_device(var.device()));
                }
                None => kept.push(name),
            }
        }
    });
    kept.sort();
    kept
}

/// Checks an input batch against what a model takes.
pub(crate) fn check_input(xs: &Tensor, in_channels: i64) -> Result<(), ModelError> {
    let size = xs.size();
    if size.len() != 4 || size[1] != in_channels {
        return Err(ModelError::BadInput(format!("images must be [N, {in_channels}, H, W]; got {size:?}")));
    }
    Ok(())
}

/// Serialises the tests that draw from libtorch's generator (every net built), train
/// (interrupts are process-wide) or must be reproducible.
#[cfg(test)]
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    crate::interrupt::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_round_trip() {
        for name in ["stem", "stage1", "stage12", "conv2", "fc1", "head"] {
            assert_eq!(name.parse::<Stage>().unwrap().to_string(), name);
        }
    }

    #[test]
    fn bad_stage_names_say_what_is_allowed() {
        for bad in ["stage0", "stage", "stage01", "layer3", "Stem", "fc-1"] {
            let err = bad.parse::<Stage>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")) && err.contains("stem, stage1"), "{err}");
        }
    }
}
