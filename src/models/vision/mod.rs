//! torchvision's classification networks, built natively and tapped by torchvision's own
//! module names: any named submodule whose output is a feature tensor (`layer3`,
//! `layer3.1`, `layer4.2.conv2`, `features.28`, `classifier.4`) is a [`Stage::Module`], so
//! a researcher reads the layer the papers name as they would with a forward hook.
//!
//! Variables carry torchvision's `state_dict()` names, so a `.pth` saved by
//! `torch.save(model.state_dict(), f)`, a torchvision hub file, or a `.safetensors` export
//! loads as it is ([`VisionNet::load`]). The network takes images in `[0, 1]` and applies
//! its [`Normalize`] first (ImageNet's mean and std unless told otherwise), so glassbox's
//! data sets and gradients with respect to pixels need no extra step; resizing and cropping
//! belong to the data ([`crate::data::Preprocess`]).

use std::collections::BTreeMap;
use std::path::Path;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use super::edit::{set_requires_grad, Edit, Editable, Frozen, InsertionPoint};
use super::{check_input, check_taps, weights, ModelError, Stage, StageInfo, Tapped, Taps, Task};

mod alexnet;
mod arch;
pub mod throughput;
mod edit;
mod graph;
mod resnet;
mod squeezenet;
mod vgg;

pub use arch::Arch;
use arch::Family;
use edit::Plan;
use graph::{Node, Recorder};

/// The per-channel normalization a network was trained with: `(x - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl Normalize {
    /// The statistics of ImageNet's training images that every torchvision classifier
    /// expects.
    pub const IMAGENET: Normalize = Normalize { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

    /// No normalization, for a network that takes `[0, 1]` images as they are.
    pub const NONE: Normalize = Normalize { mean: [0.0; 3], std: [1.0; 3] };

    fn apply(&self, xs: &Tensor) -> Tensor {
        if *self == Normalize::NONE {
            return xs.shallow_clone();
        }
        let options = (Kind::Float, xs.device());
        let mean = Tensor::from_slice(&self.mean.map(|v| v as f32)).view([1, 3, 1, 1]).to_device(options.1);
        let std = Tensor::from_slice(&self.std.map(|v| v as f32)).view([1, 3, 1, 1]).to_device(options.1);
        (xs - mean) / std
    }
}

/// A torchvision classifier whose named submodules can be read ([`Tapped`]) and, for a
/// ResNet, into which modules can be inserted after a residual block or layer
/// ([`Editable`]). Owns its weights.
pub struct VisionNet {
    arch: Arch,
    num_classes: i64,
    normalize: Normalize,
    /// The edits applied since the net was built from its architecture, and their plan.
    edits: Vec<Edit>,
    plan: Plan,
    vs: nn::VarStore,
    /// Everything before torchvision's `torch.flatten(x, 1)`.
    body: Vec<Node>,
    /// Everything after it (empty for SqueezeNet, whose classifier pools).
    head: Vec<Node>,
    taps: Vec<StageInfo>,
}

impl std::fmt::Debug for VisionNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VisionNet({}, {} classes, {} taps)", self.arch, self.num_classes, self.taps.len())
    }
}

impl VisionNet {
    /// A freshly initialised network (draws from libtorch's generator: seed it first).
    pub fn new(arch: Arch, num_classes: i64, device: Device) -> Result<VisionNet, ModelError> {
        Self::build(arch, num_classes, Vec::new(), device)
    }

    fn build(arch: Arch, num_classes: i64, edits: Vec<Edit>, device: Device) -> Result<VisionNet, ModelError> {
        if num_classes < 1 {
            return Err(ModelError::InvalidConfig(format!("num_classes must be positive, got {num_classes}")));
        }
        let plan = Plan::new(arch, &edits)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let inserted = |after: &str, mut channels: i64| -> Vec<Node> {
            plan.inserted_after(after)
                .map(|ins| {
                    let node = Node::inserted(ins.name(), ins.build(&root, channels), channels, ins.out_channels());
                    channels = ins.out_channels();
                    node
                })
                .collect()
        };
        let (body, head) = match arch.family() {
            Family::ResNet { block, depths } => resnet::build(&root, block, depths, num_classes, &inserted),
            Family::Vgg { depth, batch_norm } => vgg::build(&root, vgg::config(depth), batch_norm, num_classes),
            Family::AlexNet => alexnet::build(&root, num_classes),
            Family::SqueezeNet { version_1_1 } => squeezenet::build(&root, version_1_1, num_classes),
        };
        let mut taps = graph::taps_of(&body);
        taps.extend(graph::taps_of(&head));
        // Inserted modules are looked up by name like torchvision's (their variables are
        // top-level paths too), so a name torchvision already uses is refused.
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = taps.iter().map(|t| t.stage.to_string()).find(|name| !seen.insert(name.clone())) {
            return Err(ModelError::InvalidEdit(format!("insertion name `{dup}` is already the name of a module")));
        }
        taps.push(StageInfo { stage: Stage::Head, channels: num_classes });
        let normalize = Normalize::IMAGENET;
        Ok(VisionNet { arch, num_classes, normalize, edits, plan, vs, body, head, taps })
    }

    /// Reads a weights file into the architecture it is for: `arch` if given, else the one
    /// a torchvision hub file name says, else the one its variables are. The number of
    /// classes is the file's. A file that does not fit `arch` is refused with the
    /// variables at fault.
    pub fn load(path: impl AsRef<Path>, arch: Option<Arch>, device: Device) -> Result<VisionNet, ModelError> {
        let path = path.as_ref();
        let file = weights::read_file(path, device)?;
        let shapes: BTreeMap<String, Vec<i64>> = file.iter().map(|(n, t)| (n.clone(), t.size())).collect();
        let arch = match arch.or_else(|| Arch::from_file_name(path)).or_else(|| Arch::infer(&shapes)) {
            Some(arch) => arch,
            None => {
                return Err(ModelError::Weights {
                    path: path.display().to_string(),
                    message: format!(
                        "its variables are none of the architectures glassbox builds ({}); name one with --arch, \
                         or export the model with TorchScript",
                        Arch::names().join(", ")
                    ),
                })
            }
        };
        let num_classes = shapes.get(arch.classifier_weight()).and_then(|s| s.first().copied()).unwrap_or(1000);
        let net = VisionNet::new(arch, num_classes, device)?;
        weights::load_named(&net.vs, path, &file, true)?;
        Ok(net)
    }

    /// An independent copy: same architecture, edits, weights and normalization.
    pub fn try_clone(&self) -> Result<VisionNet, ModelError> {
        self.edited([])
    }

    /// The edits applied since the net was built from its architecture.
    pub fn edits(&self) -> &[Edit] {
        &self.edits
    }

    /// Every node, outermost first.
    fn nodes(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        for node in self.body.iter().chain(&self.head) {
            node.visit(&mut |n| out.push(n));
        }
        out
    }

    fn node(&self, stage: &Stage) -> Result<&Node, ModelError> {
        self.nodes().into_iter().find(|n| &n.stage() == stage).ok_or_else(|| ModelError::UnknownStage {
            name: stage.to_string(),
            allowed: super::stage_list(&self.taps[..self.taps.len() - 1]),
        })
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The normalization applied to every input.
    pub fn normalize(&self) -> Normalize {
        self.normalize
    }

    /// Uses `normalize` on inputs from now on (a network trained with other statistics).
    pub fn set_normalize(&mut self, normalize: Normalize) {
        self.normalize = normalize;
    }
}

impl Editable for VisionNet {
    fn edited(&self, edits: impl IntoIterator<Item = Edit>) -> Result<Self, ModelError> {
        let all = self.edits.iter().cloned().chain(edits).collect();
        let mut net = Self::build(self.arch, self.num_classes, all, self.vs.device())?;
        super::copy_matching(&self.vs, &net.vs);
        net.normalize = self.normalize;
        Ok(net)
    }

    /// Any named module (not only a tap: a residual block's shared `relu` too).
    fn module(&self, stage: &Stage) -> Result<&dyn ModuleT, ModelError> {
        Ok(self.node(stage)?)
    }

    fn input_channels(&self, stage: &Stage) -> Result<i64, ModelError> {
        Ok(self.node(stage)?.in_channels())
    }

    /// After each residual block and layer of a ResNet (and each inserted module); none for
    /// the other architectures.
    fn insertion_points(&self) -> Vec<InsertionPoint> {
        self.plan.points()
    }

    /// Each convolution, batch norm and linear layer is judged by its own name
    /// (`layer4.1.conv1`), each inserted module by its stage: the predicate picks the
    /// modules that hold variables, whatever contains them.
    fn train_only(&self, trains: impl Fn(&Stage) -> bool) -> Frozen<'_> {
        let nodes = self.nodes();
        for node in &nodes {
            node.set_frozen(!trains(&node.stage()));
        }
        let owner = |variable: &str| {
            let top = variable.split('.').next().unwrap_or(variable);
            match variable.rsplit_once('.') {
                _ if self.plan.is_inserted(top) => Stage::Inserted(top.to_owned()),
                Some((module, _)) => Stage::Module(module.to_owned()),
                None => Stage::Module(variable.to_owned()),
            }
        };
        set_requires_grad(&self.vs, |name| trains(&owner(name)));
        Frozen::new(move || {
            for node in nodes {
                node.set_frozen(false);
            }
            set_requires_grad(&self.vs, |_| true);
        })
    }
}

impl VisionNet {
    /// The logits of one pass: normalize, the body, torchvision's `flatten(x, 1)`, the head.
    fn run(&self, xs: &Tensor, train: bool, rec: &mut Recorder) -> Tensor {
        let features = graph::run(&self.body, &self.normalize.apply(xs), train, rec);
        graph::run(&self.head, &features.flatten(1, -1), train, rec)
    }
}

impl ModuleT for VisionNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_taps(xs, &[], train).map(|(logits, _)| logits).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Tapped for VisionNet {
    fn stages(&self) -> Vec<StageInfo> {
        self.taps.clone()
    }

    fn forward_taps(&self, xs: &Tensor, taps: &[Stage], train: bool) -> Result<(Tensor, Taps), ModelError> {
        check_input(xs, 3)?;
        check_taps(&self.taps, taps)?;
        let mut rec = Recorder::new(taps);
        let logits = self.run(xs, train, &mut rec);
        let mut out = rec.taps;
        if taps.contains(&Stage::Head) {
            out.insert(Stage::Head, logits.shallow_clone());
        }
        Ok((logits, out))
    }

    fn forward_edited(
        &self,
        xs: &Tensor,
        at: &[Stage],
        edit: &dyn Fn(&Stage, Tensor) -> Tensor,
    ) -> Result<Tensor, ModelError> {
        check_input(xs, 3)?;
        check_taps(&self.taps, at)?;
        let logits = self.run(xs, false, &mut Recorder::editing(at, edit));
        Ok(if at.contains(&Stage::Head) { edit(&Stage::Head, logits) } else { logits })
    }

    fn runs_in_glassbox(&self) -> bool {
        true
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn in_channels(&self) -> i64 {
        3
    }

    /// torchvision's classifiers are trained on 224x224 crops.
    fn input_size(&self) -> Option<(i64, i64)> {
        Some((224, 224))
    }

    fn task(&self) -> Task {
        Task::Classification
    }

    fn num_classes(&self) -> i64 {
        self.num_classes
    }
}

#[cfg(test)]
mod tests;
