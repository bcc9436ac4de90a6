//! Architecture edits shared by the models that take them: a module inserted after a stage
//! ([`Edit::InsertAfter`]), a stage rebuilt for another input width ([`Edit::AdaptInput`]),
//! and [`Editable`], what the semantic-bottleneck code needs of a model to insert into it
//! and train part of it.
//!
//! Edits never touch a net in place: [`Editable::edited`] builds the edited architecture in
//! a new `VarStore` and copies every variable whose name and shape are unchanged, so the
//! original keeps working and trained weights carry over.

use std::fmt;
use std::sync::Arc;

use tch::nn::{self, ModuleT};

use super::{ModelError, Stage, Tapped};

/// How an inserted module is built: given the `VarStore` path to put its variables under and
/// the channels it receives. Kept so that a copy of the net can build it again.
pub type BuildModule = dyn Fn(&nn::Path, i64) -> Box<dyn ModuleT> + Send + Sync;

/// A module to insert after a stage: `f_SB` (followed by `f_r` if it restores the channel
/// count) in SB paper eq. 4.
#[derive(Clone)]
pub struct Insertion {
    name: String,
    out_channels: i64,
    build: Arc<BuildModule>,
}

impl Insertion {
    /// `name` becomes its stage name ([`Stage::Inserted`]) and the top-level `VarStore` path
    /// of its variables; `build` must return a module that outputs `out_channels` channels at
    /// the spatial size it receives.
    pub fn new(
        name: impl Into<String>,
        out_channels: i64,
        build: impl Fn(&nn::Path, i64) -> Box<dyn ModuleT> + Send + Sync + 'static,
    ) -> Self {
        Insertion { name: name.into(), out_channels, build: Arc::new(build) }
    }

    /// A 1x1 convolution with bias and no non-linearity, the shape of a semantic bottleneck
    /// layer (SB paper eq. 9: no non-linearity on SSB outputs).
    pub fn conv1x1(name: impl Into<String>, out_channels: i64) -> Self {
        Insertion::new(name, out_channels, move |p, in_channels| {
            Box::new(nn::conv2d(p, in_channels, out_channels, 1, Default::default()))
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn out_channels(&self) -> i64 {
        self.out_channels
    }

    /// The module, with its variables under `root / name`, reading `in_channels` channels.
    pub(crate) fn build(&self, root: &nn::Path, in_channels: i64) -> Box<dyn ModuleT> {
        (self.build)(&(root / self.name.as_str()), in_channels)
    }

    pub(crate) fn stage(&self) -> Stage {
        Stage::Inserted(self.name.clone())
    }

    /// Refuses a name that is not a plain identifier (it is a `VarStore` path segment), that
    /// a built-in stage name would shadow or that `taken` already holds, and an empty output.
    pub(crate) fn validate<'a>(&self, mut taken: impl Iterator<Item = &'a str>) -> Result<(), ModelError> {
        let name = self.name.as_str();
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.starts_with(|c: char| c.is_ascii_alphabetic());
        if !valid {
            return Err(ModelError::InvalidEdit(format!(
                "insertion name `{name}` must be letters, digits and `_`, starting with a letter"
            )));
        }
        if name.parse::<Stage>().is_ok() || taken.any(|t| t == name) {
            return Err(ModelError::InvalidEdit(format!("insertion name `{name}` is already a stage name")));
        }
        if self.out_channels < 1 {
            return Err(ModelError::InvalidEdit(format!("`{name}` must output a positive number of channels")));
        }
        Ok(())
    }
}

impl fmt::Debug for Insertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Insertion({} -> {} channels)", self.name, self.out_channels)
    }
}

/// A change to a net's architecture, applied with [`Editable::edited`].
#[derive(Debug, Clone)]
pub enum Edit {
    /// Runs `insertion` on the output of `after` before anything later sees it (SB paper
    /// eq. 4). Several insertions after the same stage run in reverse order of insertion
    /// (each goes right after `after`); insert after an inserted module's name to chain them
    /// instead.
    InsertAfter { after: Stage, insertion: Insertion },
    /// Rebuilds what reads `stage`'s input (a residual stage's or block's first convolution
    /// and its shortcut; the classifier) for `in_channels` channels, freshly initialised:
    /// f̂_stage-(i+1) of SB paper eq. 9.
    AdaptInput { stage: Stage, in_channels: i64 },
}

impl Edit {
    pub fn insert_after(after: Stage, insertion: Insertion) -> Edit {
        Edit::InsertAfter { after, insertion }
    }

    pub fn adapt_input(stage: Stage, in_channels: i64) -> Edit {
        Edit::AdaptInput { stage, in_channels }
    }
}

/// A stage a module may be inserted after, and the stage that reads its output: the one
/// [`Edit::AdaptInput`] rebuilds when the insertion changes the channel count (SB paper
/// eq. 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertionPoint {
    pub after: Stage,
    pub next: Stage,
}

/// A model whose architecture can be edited and whose stages can be trained apart: what
/// semantic bottlenecks need to be inserted into a net and trained in it.
pub trait Editable: Tapped + Sized {
    /// A copy with `edits` applied on top of this net's; `self` is untouched. Variables
    /// whose name and shape are unchanged carry their values over (trained weights, batch
    /// norm statistics); new or reshaped ones (inserted modules, adapted convolutions) are
    /// freshly initialised.
    fn edited(&self, edits: impl IntoIterator<Item = Edit>) -> Result<Self, ModelError>;

    /// The module computing `stage` (an inserted module, a residual stage or block); run on
    /// the output of the stage before it, it gives `stage`'s output.
    fn module(&self, stage: &Stage) -> Result<&dyn ModuleT, ModelError>;

    /// Input channels `stage` takes (after edits).
    fn input_channels(&self, stage: &Stage) -> Result<i64, ModelError>;

    /// Where a module may be inserted, in forward order.
    fn insertion_points(&self) -> Vec<InsertionPoint>;

    /// Freezes every module whose stage `trains` rejects until the guard is dropped: its
    /// variables stop requiring gradients, so trainers leave them alone, and it runs in
    /// evaluation mode, so its batch-norm statistics stay as they were. A module is judged
    /// by the stage that holds its variables (a residual stage of a [`super::TappedNet`],
    /// a convolution or batch norm of a [`super::VisionNet`], an inserted module). This is
    /// how the bottleneck trainers pick θ_Phase1, θ_Phase2 and θ of SB paper eq. 14, 15
    /// and 21.
    fn train_only(&self, trains: impl Fn(&Stage) -> bool) -> Frozen<'_>;
}

/// Keeps some stages of a model frozen (see [`Editable::train_only`]); dropping it makes
/// every stage trainable again.
#[must_use = "the stages are frozen only while the guard lives"]
pub struct Frozen<'a> {
    thaw: Option<Box<dyn FnOnce() + 'a>>,
}

impl<'a> Frozen<'a> {
    /// A guard that runs `thaw` when dropped.
    pub(crate) fn new(thaw: impl FnOnce() + 'a) -> Self {
        Frozen { thaw: Some(Box::new(thaw)) }
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        if let Some(thaw) = self.thaw.take() {
            thaw();
        }
    }
}

/// Checks that `stage`, which `takes` channels, receives them from `from`, which gives
/// `channels`; a mismatch names both fixes (SB paper eq. 4 and 9).
pub(crate) fn check_channels(stage: &Stage, takes: i64, channels: i64, from: &Stage) -> Result<(), ModelError> {
    if takes == channels {
        return Ok(());
    }
    Err(ModelError::InvalidEdit(format!(
        "`{stage}` takes {takes} channels but `{from}` gives {channels}; adapt it with \
         Edit::adapt_input({stage}, {channels}) (SB paper eq. 9) or make `{from}` output {takes} (f_r, eq. 4)"
    )))
}

/// Sets which trainable variables require gradients; buffers (batch-norm statistics) are
/// never trainable and are left alone.
pub(crate) fn set_requires_grad(vs: &nn::VarStore, on: impl Fn(&str) -> bool) {
    let trainable: std::collections::HashSet<usize> =
        vs.trainable_variables().iter().map(|t| t.data_ptr() as usize).collect();
    for (name, var) in vs.variables() {
        if trainable.contains(&(var.data_ptr() as usize)) {
            let _ = var.set_requires_grad(on(&name));
        }
    }
}
