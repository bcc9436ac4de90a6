//! Edits of a torchvision network: modules inserted after a ResNet's residual blocks or
//! whole layers, and the module that reads their output rebuilt for the channels it now
//! receives (SB paper eq. 4 and 9).
//!
//! A [`Plan`] is the chain of what reads and writes channels between the stem and the
//! classifier, with the edits applied and checked before any variable is made: the
//! network is then built from it in one go, so that adapted blocks get their own shapes
//! (a `VarStore` cannot replace a variable) and inserted modules get top-level names that
//! never collide with torchvision's.

use std::collections::BTreeMap;

use super::arch::{Arch, Family};
use super::resnet;
use crate::models::edit::{check_channels, Edit, Insertion, InsertionPoint};
use crate::models::{ModelError, Stage};

/// One link of the chain from the stem to the classifier.
#[derive(Debug)]
pub(super) enum Link {
    /// A residual block, by its torchvision name, with the channels it was built for.
    Block {
        name: String,
        takes: i64,
        gives: i64,
    },
    /// The end of a `layerN`: what its last block (or a module inserted after it) gives.
    Layer(String),
    Insert(Insertion),
    /// The classifier, on the pooled features.
    Classifier {
        name: String,
        takes: i64,
    },
}

impl Link {
    fn name(&self) -> &str {
        match self {
            Link::Block { name, .. } | Link::Layer(name) | Link::Classifier { name, .. } => name,
            Link::Insert(ins) => ins.name(),
        }
    }

    fn stage(&self) -> Stage {
        match self {
            Link::Insert(ins) => ins.stage(),
            _ => Stage::Module(self.name().to_owned()),
        }
    }

    /// Whether it reads channels that an insertion before it may change: what eq. 9 adapts.
    fn reads(&self) -> bool {
        matches!(self, Link::Block { .. } | Link::Classifier { .. })
    }
}

/// An architecture's chain before any edit: what the last module before it (the stem's)
/// gives, then the links.
#[derive(Debug)]
pub(super) struct Chain {
    pub stem: Stage,
    pub stem_channels: i64,
    pub links: Vec<Link>,
}

/// The chain of an architecture with its edits, checked.
#[derive(Debug)]
pub(super) struct Plan {
    arch: Arch,
    stem: Stage,
    stem_channels: i64,
    links: Vec<Link>,
}

impl Plan {
    /// Applies `edits` in order to `arch`'s chain and checks that every block and the
    /// classifier receive the channels they take.
    pub fn new(arch: Arch, edits: &[Edit]) -> Result<Plan, ModelError> {
        let Chain { stem, stem_channels, links } = match arch.family() {
            Family::ResNet { block, depths } => resnet::chain(block, depths),
            _ => Chain { stem: Stage::Stem, stem_channels: 0, links: Vec::new() },
        };
        let mut plan = Plan { arch, stem, stem_channels, links };
        if plan.links.is_empty() && !edits.is_empty() {
            return Err(ModelError::InvalidEdit(format!(
                "{arch} cannot be edited: glassbox inserts modules after the residual blocks and layers of \
                 torchvision's ResNets (resnet18..resnet152)"
            )));
        }
        let mut adapted = BTreeMap::new();
        for edit in edits {
            match edit {
                Edit::InsertAfter { after, insertion } => {
                    let at =
                        plan.links.iter().position(|l| &l.stage() == after && !matches!(l, Link::Classifier { .. }));
                    let Some(at) = at else {
                        return Err(ModelError::InvalidEdit(format!(
                            "cannot insert after `{after}` in {}; insert after a residual block or layer: {}",
                            plan.arch,
                            plan.names(|l| !matches!(l, Link::Classifier { .. }))
                        )));
                    };
                    insertion.validate(plan.links.iter().map(Link::name))?;
                    plan.links.insert(at + 1, Link::Insert(insertion.clone()));
                }
                Edit::AdaptInput { stage, in_channels } => {
                    if !plan.links.iter().any(|l| l.reads() && &l.stage() == stage) {
                        return Err(ModelError::InvalidEdit(format!(
                            "cannot adapt the input of `{stage}` in {}; adapt a residual block or the classifier: {}",
                            plan.arch,
                            plan.names(Link::reads)
                        )));
                    }
                    if *in_channels < 1 {
                        return Err(ModelError::InvalidEdit(format!(
                            "`{stage}` must take a positive number of channels, not {in_channels}"
                        )));
                    }
                    adapted.insert(stage.clone(), *in_channels);
                }
            }
        }
        plan.check_flow(&adapted)?;
        Ok(plan)
    }

    fn names(&self, keep: impl Fn(&Link) -> bool) -> String {
        self.links.iter().filter(|l| keep(l)).map(Link::name).collect::<Vec<_>>().join(", ")
    }

    /// Each block and the classifier take what arrives, unless adapted to another width.
    fn check_flow(&self, adapted: &BTreeMap<Stage, i64>) -> Result<(), ModelError> {
        let mut channels = self.stem_channels;
        let mut from = self.stem.clone();
        for link in &self.links {
            let stage = link.stage();
            match link {
                Link::Block { takes, gives, .. } => {
                    check_channels(&stage, adapted.get(&stage).copied().unwrap_or(*takes), channels, &from)?;
                    channels = *gives;
                }
                Link::Classifier { takes, .. } => {
                    check_channels(&stage, adapted.get(&stage).copied().unwrap_or(*takes), channels, &from)?;
                }
                Link::Insert(ins) => channels = ins.out_channels(),
                // A layer passes on what its last module gives; that module is the one to name.
                Link::Layer(_) => continue,
            }
            from = stage;
        }
        Ok(())
    }

    /// The modules inserted right after the block or layer `name`, in the order they run.
    pub fn inserted_after<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Insertion> + 'a {
        let at = self.links.iter().position(|l| l.name() == name).map_or(self.links.len(), |i| i + 1);
        self.links[at..].iter().map_while(|l| match l {
            Link::Insert(ins) => Some(ins),
            _ => None,
        })
    }

    /// Whether `name` is an inserted module's.
    pub fn is_inserted(&self, name: &str) -> bool {
        self.links.iter().any(|l| matches!(l, Link::Insert(ins) if ins.name() == name))
    }

    /// After every block, layer and inserted module, with the block or classifier that
    /// reads its output next.
    pub fn points(&self) -> Vec<InsertionPoint> {
        self.links
            .iter()
            .enumerate()
            .filter(|(_, l)| !matches!(l, Link::Classifier { .. }))
            .filter_map(|(i, l)| {
                let next = self.links[i + 1..].iter().find(|n| n.reads())?;
                Some(InsertionPoint { after: l.stage(), next: next.stage() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::ModuleT;
    use tch::{Device, Kind, Tensor};

    use crate::models::{weights, Arch, Edit, Editable, Insertion, Stage, Tapped, VisionNet};

    fn m(name: &str) -> Stage {
        Stage::Module(name.to_owned())
    }

    fn resnet18() -> VisionNet {
        VisionNet::new(Arch::ResNet18, 5, Device::Cpu).unwrap()
    }

    fn names(net: &VisionNet) -> Vec<String> {
        net.stages().iter().map(|s| s.stage.to_string()).collect()
    }

    /// The names right after `stage`.
    fn following(net: &VisionNet, stage: &str, n: usize) -> Vec<String> {
        let names = names(net);
        let at = names.iter().position(|s| s == stage).unwrap();
        names[at + 1..at + 1 + n].to_vec()
    }

    fn shape(net: &VisionNet, variable: &str) -> Vec<i64> {
        net.var_store().variables()[variable].size()
    }

    /// SB paper eq. 9 on torchvision's own ResNet: the module runs between a block and the
    /// next, which is rebuilt for its channels (a shortcut made where the identity no
    /// longer fits), and every other variable keeps its torchvision name and value.
    #[test]
    fn insertions_follow_their_block_and_the_next_block_is_adapted() {
        let _serial = crate::models::serial();
        tch::manual_seed(0);
        let net = resnet18();
        let xs = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let before = tch::no_grad(|| net.forward_t(&xs, false));
        let sb = Insertion::conv1x1("sb", 8);
        let edited =
            net.edited([Edit::insert_after(m("layer3.1"), sb.clone()), Edit::adapt_input(m("layer4.0"), 8)]).unwrap();
        assert_eq!(following(&edited, "layer3.1", 2), ["sb", "layer3"]);
        assert_eq!(edited.stage_channels(&Stage::Inserted("sb".into())).unwrap(), 8);
        assert_eq!(edited.stage_channels(&m("layer3")).unwrap(), 8, "a layer outputs what its last module does");
        assert_eq!(edited.input_channels(&m("layer4.0")).unwrap(), 8);
        assert_eq!(edited.input_channels(&Stage::Inserted("sb".into())).unwrap(), 256);
        assert_eq!(shape(&edited, "sb.weight"), [8, 256, 1, 1]);
        assert_eq!(shape(&edited, "layer4.0.conv1.weight"), [512, 8, 3, 3]);
        assert_eq!(shape(&edited, "layer4.0.downsample.0.weight"), [512, 8, 1, 1]);
        let (a, b) = (net.var_store().variables(), edited.var_store().variables());
        assert!(a["layer3.1.conv2.weight"].equal(&b["layer3.1.conv2.weight"]));
        assert!(a["layer4.1.conv1.weight"].equal(&b["layer4.1.conv1.weight"]));
        let (_, x) = tch::no_grad(|| net.forward_taps(&xs, &[m("layer3.1")], false)).unwrap();
        let (logits, y) =
            tch::no_grad(|| edited.forward_taps(&xs, &[m("layer3.1"), Stage::Inserted("sb".into())], false)).unwrap();
        assert!(x[&m("layer3.1")].equal(&y[&m("layer3.1")]));
        assert_eq!(y[&Stage::Inserted("sb".into())].size(), [2, 8, 2, 2]);
        assert_eq!(logits.size(), [2, 5]);
        // The original is untouched.
        assert!(tch::no_grad(|| net.forward_t(&xs, false)).equal(&before));
        assert!(!names(&net).contains(&"sb".to_owned()));
        assert_eq!(shape(&net, "layer4.0.conv1.weight"), [512, 256, 3, 3]);

        // A block whose shortcut was the identity gets a projection for the new width.
        assert!(!a.contains_key("layer4.1.downsample.0.weight"));
        let after_block =
            net.edited([Edit::insert_after(m("layer4.0"), sb.clone()), Edit::adapt_input(m("layer4.1"), 8)]).unwrap();
        assert_eq!(shape(&after_block, "layer4.1.downsample.0.weight"), [512, 8, 1, 1]);
        assert_eq!(tch::no_grad(|| after_block.forward_t(&xs, false)).size(), [2, 5]);
        // After a whole layer, the classifier is what reads the bottleneck.
        let after_layer = net.edited([Edit::insert_after(m("layer4"), sb), Edit::adapt_input(m("fc"), 8)]).unwrap();
        assert_eq!(following(&after_layer, "layer4", 2), ["sb", "avgpool"]);
        assert_eq!(shape(&after_layer, "fc.weight"), [5, 8]);
        let points: Vec<String> =
            after_layer.insertion_points().iter().map(|p| format!("{}>{}", p.after, p.next)).collect();
        assert!(points.contains(&"layer3.1>layer4.0".into()) && points.contains(&"sb>fc".into()), "{points:?}");
        // Copies keep the edits.
        assert_eq!(names(&after_layer.try_clone().unwrap()), names(&after_layer));
    }

    /// Eq. 4's `f_r` keeps every torchvision variable's shape, so a torchvision state dict
    /// loads into the edited net and only the inserted modules keep their own values.
    #[test]
    fn torchvision_weights_load_into_an_edited_net() {
        let _serial = crate::models::serial();
        let dir = std::env::temp_dir().join(format!("glassbox-vision-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resnet18.safetensors");
        let trained = resnet18();
        trained.save_weights(&path).unwrap();
        let edited = resnet18()
            .edited([
                Edit::insert_after(m("layer4.1"), Insertion::conv1x1("sb", 8)),
                Edit::insert_after(Stage::Inserted("sb".into()), Insertion::conv1x1("sb_r", 512)),
            ])
            .unwrap();
        assert_eq!(following(&edited, "layer4.1", 3), ["sb", "sb_r", "layer4"]);
        let missing = weights::load_partial(edited.var_store(), &path).unwrap();
        assert_eq!(missing, ["sb.bias", "sb.weight", "sb_r.bias", "sb_r.weight"]);
        let (a, b) = (trained.var_store().variables(), edited.var_store().variables());
        for name in ["conv1.weight", "layer4.1.conv2.weight", "layer4.1.bn2.running_var", "fc.weight"] {
            assert!(a[name].equal(&b[name]), "{name}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_edits_say_what_is_allowed() {
        let _serial = crate::models::serial();
        let net = resnet18();
        let sb = || Insertion::conv1x1("sb", 8);
        let err = |edits: Vec<Edit>| net.edited(edits).unwrap_err().to_string();
        let e = err(vec![Edit::insert_after(m("layer3.1"), sb())]);
        assert!(
            e.contains("`layer4.0` takes 256 channels but `sb` gives 8") && e.contains("adapt_input(layer4.0, 8)"),
            "{e}"
        );
        let e = err(vec![Edit::insert_after(m("layer4.1.conv1"), sb())]);
        assert!(e.contains("cannot insert after `layer4.1.conv1`") && e.contains("layer4.0, layer4.1, layer4"), "{e}");
        let e = err(vec![Edit::insert_after(m("layer4.1"), sb()), Edit::adapt_input(m("layer4.1.conv1"), 8)]);
        assert!(e.contains("cannot adapt the input of `layer4.1.conv1`") && e.contains("layer4.1, fc"), "{e}");
        let e = err(vec![Edit::insert_after(m("layer4.1"), Insertion::conv1x1("layer2", 512))]);
        assert!(e.contains("already a stage name"), "{e}");
        let e = err(vec![Edit::insert_after(m("layer4.1"), Insertion::conv1x1("bn1", 512))]);
        assert!(e.contains("`bn1` is already the name of a module"), "{e}");
        let squeezenet = VisionNet::new(Arch::SqueezeNet1_1, 5, Device::Cpu).unwrap();
        let e = squeezenet.edited([Edit::insert_after(m("features.3"), sb())]).unwrap_err().to_string();
        assert!(e.contains("squeezenet1_1 cannot be edited") && e.contains("ResNets"), "{e}");
        assert!(squeezenet.insertion_points().is_empty());
    }
}
