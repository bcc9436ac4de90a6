//! Which torchvision architecture a network is: by torchvision's own function name
//! (`resnet50`, `vgg16_bn`), by the file name of torchvision's hub cache
//! (`resnet50-0676ba61.pth`), or by the variables a state dict holds.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::models::{BlockKind, ModelError};

/// A torchvision classification architecture glassbox builds natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    Vgg11,
    Vgg11Bn,
    Vgg13,
    Vgg13Bn,
    Vgg16,
    Vgg16Bn,
    Vgg19,
    Vgg19Bn,
    AlexNet,
    SqueezeNet1_0,
    SqueezeNet1_1,
}

/// The family an [`Arch`] belongs to, with what tells its members apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    ResNet { block: BlockKind, depths: [usize; 4] },
    Vgg { depth: usize, batch_norm: bool },
    AlexNet,
    SqueezeNet { version_1_1: bool },
}

impl Arch {
    pub const ALL: [Arch; 16] = [
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::ResNet101,
        Arch::ResNet152,
        Arch::Vgg11,
        Arch::Vgg11Bn,
        Arch::Vgg13,
        Arch::Vgg13Bn,
        Arch::Vgg16,
        Arch::Vgg16Bn,
        Arch::Vgg19,
        Arch::Vgg19Bn,
        Arch::AlexNet,
        Arch::SqueezeNet1_0,
        Arch::SqueezeNet1_1,
    ];

    /// torchvision's names, the functions in `torchvision.models` that build them, in the
    /// order of [`Arch::ALL`].
    pub const NAMES: [&'static str; 16] = [
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "vgg11",
        "vgg11_bn",
        "vgg13",
        "vgg13_bn",
        "vgg16",
        "vgg16_bn",
        "vgg19",
        "vgg19_bn",
        "alexnet",
        "squeezenet1_0",
        "squeezenet1_1",
    ];

    /// torchvision's name: the function in `torchvision.models` that builds it.
    pub fn name(self) -> &'static str {
        Arch::NAMES[self as usize]
    }

    /// Every name, for completion and error messages.
    pub fn names() -> Vec<&'static str> {
        Arch::NAMES.to_vec()
    }

    pub(super) fn family(self) -> Family {
        use BlockKind::{Basic, Bottleneck};
        let vgg = |depth, batch_norm| Family::Vgg { depth, batch_norm };
        match self {
            Arch::ResNet18 => Family::ResNet { block: Basic, depths: [2, 2, 2, 2] },
            Arch::ResNet34 => Family::ResNet { block: Basic, depths: [3, 4, 6, 3] },
            Arch::ResNet50 => Family::ResNet { block: Bottleneck, depths: [3, 4, 6, 3] },
            Arch::ResNet101 => Family::ResNet { block: Bottleneck, depths: [3, 4, 23, 3] },
            Arch::ResNet152 => Family::ResNet { block: Bottleneck, depths: [3, 8, 36, 3] },
            Arch::Vgg11 => vgg(11, false),
            Arch::Vgg11Bn => vgg(11, true),
            Arch::Vgg13 => vgg(13, false),
            Arch::Vgg13Bn => vgg(13, true),
            Arch::Vgg16 => vgg(16, false),
            Arch::Vgg16Bn => vgg(16, true),
            Arch::Vgg19 => vgg(19, false),
            Arch::Vgg19Bn => vgg(19, true),
            Arch::AlexNet => Family::AlexNet,
            Arch::SqueezeNet1_0 => Family::SqueezeNet { version_1_1: false },
            Arch::SqueezeNet1_1 => Family::SqueezeNet { version_1_1: true },
        }
    }

    /// The variable whose first dimension is the number of classes.
    pub fn classifier_weight(self) -> &'static str {
        match self.family() {
            Family::ResNet { .. } => "fc.weight",
            Family::Vgg { .. } | Family::AlexNet => "classifier.6.weight",
            Family::SqueezeNet { .. } => "classifier.1.weight",
        }
    }

    /// The architecture a torchvision hub file is for: its name up to the first `-`
    /// (`resnet50-0676ba61.pth`, `alexnet-owt-7be5be79.pth`). `None` for any other name.
    pub fn from_file_name(path: &Path) -> Option<Arch> {
        let stem = path.file_stem()?.to_str()?;
        stem.split('-').next()?.parse().ok()
    }

    /// The architecture whose variables `shapes` (a state dict's names and shapes) are,
    /// told apart by the variables only one family has and by counting blocks and
    /// convolutions. `None` when the file is none of them.
    pub fn infer(shapes: &BTreeMap<String, Vec<i64>>) -> Option<Arch> {
        let has = |name: &str| shapes.contains_key(name);
        let shape = |name: &str| shapes.get(name).map(Vec::as_slice);
        if has("fc.weight") && has("layer1.0.conv1.weight") {
            let blocks = |layer: usize| (0..).take_while(|j| has(&format!("layer{layer}.{j}.conv1.weight"))).count();
            let depths = [blocks(1), blocks(2), blocks(3), blocks(4)];
            let block = if has("layer1.0.conv3.weight") { BlockKind::Bottleneck } else { BlockKind::Basic };
            return Arch::ALL.into_iter().find(|a| a.family() == Family::ResNet { block, depths });
        }
        if has("classifier.1.weight") && shape("classifier.1.weight").is_some_and(|s| s.len() == 4) {
            let version_1_1 = shape("features.0.weight").is_some_and(|s| s.get(2) == Some(&3));
            return Some(if version_1_1 { Arch::SqueezeNet1_1 } else { Arch::SqueezeNet1_0 });
        }
        if has("classifier.6.weight") {
            if shape("features.0.weight").is_some_and(|s| s.get(2) == Some(&11)) {
                return Some(Arch::AlexNet);
            }
            let convs = shapes
                .iter()
                .filter(|(n, s)| n.starts_with("features.") && n.ends_with(".weight") && s.len() == 4)
                .count();
            let batch_norm = has("features.1.running_mean");
            let depth = convs + 3;
            return Arch::ALL.into_iter().find(|a| a.family() == Family::Vgg { depth, batch_norm });
        }
        None
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let hint = crate::suggest::closest(s, Arch::names().into_iter())
                .map(|m| format!("; did you mean `{m}`?"))
                .unwrap_or_default();
            ModelError::InvalidConfig(format!(
                "unknown architecture `{s}`{hint}; the architectures are: {}",
                Arch::names().join(", ")
            ))
        })
    }
}
