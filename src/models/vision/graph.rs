//! The module tree of a torchvision network, run so that any named submodule's output can be
//! read: the `register_forward_hook` of PyTorch, in one pass and without callbacks.
//!
//! Every [`Node`] carries the dotted name torchvision's `named_modules()` gives it
//! (`layer3.1.conv2`, `features.28`), and its variables live under that same name in the
//! `VarStore`, so a `state_dict()` loads with no renaming. A module glassbox inserts has a
//! top-level name of its own, which no torchvision module has.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::nn::{self, ModuleT};
use tch::Tensor;

use crate::models::relu::relu;
use crate::models::{Stage, StageInfo, Taps};

/// A max pooling window, as `nn.MaxPool2d` takes it (square, dilation 1).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pool {
    pub kernel: i64,
    pub stride: i64,
    pub padding: i64,
    pub ceil_mode: bool,
}

/// What a node computes.
#[derive(Debug)]
pub(super) enum Op {
    Conv(nn::Conv2D),
    BatchNorm(nn::BatchNorm),
    Linear(nn::Linear),
    Relu,
    MaxPool(Pool),
    AdaptiveAvgPool([i64; 2]),
    Dropout(f64),
    Sequential(Vec<Node>),
    /// torchvision's `BasicBlock` and `Bottleneck`: `relu(body(x) + downsample(x))`, the
    /// identity standing in for a missing `downsample`.
    Residual {
        body: Vec<Node>,
        downsample: Option<Box<Node>>,
    },
    /// SqueezeNet's `Fire`: a squeeze, then a 1x1 and a 3x3 expansion of it, concatenated
    /// along channels.
    Fire {
        squeeze: Vec<Node>,
        expand1x1: Vec<Node>,
        expand3x3: Vec<Node>,
    },
    /// A module glassbox inserted ([`crate::models::Edit::InsertAfter`]); torchvision has no
    /// such module, so its name is a [`Stage::Inserted`].
    Inserted {
        module: Box<dyn ModuleT>,
        in_channels: i64,
    },
}

/// One named submodule.
#[derive(Debug)]
pub(super) struct Node {
    /// The dotted name in torchvision's `named_modules()`.
    pub name: String,
    pub op: Op,
    /// Channels (or features) of its output.
    pub channels: i64,
    /// False for a module torchvision calls more than once per forward (a residual block's
    /// shared `relu`): a forward hook on it sees several outputs, so no one output is its.
    pub tapped: bool,
    /// Set while [`crate::models::Editable::train_only`] freezes the module: it runs in
    /// evaluation mode. Only the modules that behave differently in training read it.
    frozen: AtomicBool,
}

impl Node {
    pub fn new(name: impl Into<String>, op: Op, channels: i64) -> Node {
        Node { name: name.into(), op, channels, tapped: true, frozen: AtomicBool::new(false) }
    }

    /// An inserted module named `name` from `in_channels` to `out_channels` channels.
    pub fn inserted(name: impl Into<String>, module: Box<dyn ModuleT>, in_channels: i64, out_channels: i64) -> Node {
        Node::new(name, Op::Inserted { module, in_channels }, out_channels)
    }

    /// The stage its output is tapped as.
    pub fn stage(&self) -> Stage {
        match self.op {
            Op::Inserted { .. } => Stage::Inserted(self.name.clone()),
            _ => Stage::Module(self.name.clone()),
        }
    }

    /// The channels (or features) it reads.
    pub fn in_channels(&self) -> i64 {
        match &self.op {
            // No torchvision architecture glassbox builds groups its convolutions.
            Op::Conv(conv) => conv.ws.size()[1],
            Op::Linear(linear) => linear.ws.size()[1],
            Op::Inserted { in_channels, .. } => *in_channels,
            Op::Sequential(nodes) => nodes.first().map_or(self.channels, Node::in_channels),
            Op::Residual { body, .. } => body.first().map_or(self.channels, Node::in_channels),
            Op::Fire { squeeze, .. } => squeeze.first().map_or(self.channels, Node::in_channels),
            Op::BatchNorm(_) | Op::Relu | Op::MaxPool(_) | Op::AdaptiveAvgPool(_) | Op::Dropout(_) => self.channels,
        }
    }

    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::Relaxed);
    }

    /// The submodules, in the order they run.
    fn children(&self) -> Vec<&Node> {
        match &self.op {
            Op::Sequential(nodes) => nodes.iter().collect(),
            Op::Residual { body, downsample } => body.iter().chain(downsample.as_deref()).collect(),
            Op::Fire { squeeze, expand1x1, expand3x3 } => squeeze.iter().chain(expand1x1).chain(expand3x3).collect(),
            _ => Vec::new(),
        }
    }

    /// Calls `f` on this node and every node inside it.
    pub fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Node)) {
        f(self);
        for child in self.children() {
            child.visit(f);
        }
    }

    /// A node whose output is not offered as a tap (see [`Node::tapped`]).
    pub fn untapped(mut self) -> Node {
        self.tapped = false;
        self
    }

    fn forward(&self, xs: &Tensor, train: bool, rec: &mut Recorder) -> Tensor {
        let own_train = train && !self.frozen.load(Ordering::Relaxed);
        let ys = match &self.op {
            Op::Conv(conv) => xs.apply(conv),
            Op::BatchNorm(bn) => xs.apply_t(bn, own_train),
            Op::Linear(linear) => xs.apply(linear),
            Op::Relu => relu(xs),
            Op::MaxPool(p) => {
                xs.max_pool2d([p.kernel, p.kernel], [p.stride, p.stride], [p.padding, p.padding], [1, 1], p.ceil_mode)
            }
            Op::AdaptiveAvgPool(size) => xs.adaptive_avg_pool2d(size),
            Op::Dropout(p) => xs.dropout(*p, own_train),
            Op::Sequential(nodes) => run(nodes, xs, train, rec),
            Op::Residual { body, downsample } => {
                let ys = run(body, xs, train, rec);
                let identity = match downsample {
                    Some(d) => d.forward(xs, train, rec),
                    None => xs.shallow_clone(),
                };
                relu(&(ys + identity))
            }
            Op::Fire { squeeze, expand1x1, expand3x3 } => {
                let s = run(squeeze, xs, train, rec);
                Tensor::cat(&[run(expand1x1, &s, train, rec), run(expand3x3, &s, train, rec)], 1)
            }
            Op::Inserted { module, .. } => module.forward_t(xs, own_train),
        };
        rec.keep(self, ys)
    }

    /// This node's taps and its descendants', in the order their outputs are computed.
    fn collect(&self, out: &mut Vec<StageInfo>) {
        for child in self.children() {
            child.collect(out);
        }
        if self.tapped {
            out.push(StageInfo { stage: self.stage(), channels: self.channels });
        }
    }
}

/// A node run on its own, for [`crate::models::Editable::module`]: what it outputs given
/// the output of the node before it.
impl ModuleT for Node {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward(xs, train, &mut Recorder::new(&[]))
    }
}

/// Runs `nodes` in sequence.
pub(super) fn run(nodes: &[Node], xs: &Tensor, train: bool, rec: &mut Recorder) -> Tensor {
    nodes.iter().fold(xs.shallow_clone(), |x, n| n.forward(&x, train, rec))
}

/// Every tap of `nodes`, in the order their outputs are computed.
pub(super) fn taps_of(nodes: &[Node]) -> Vec<StageInfo> {
    let mut out = Vec::new();
    for n in nodes {
        n.collect(&mut out);
    }
    out
}

/// What [`Tapped::forward_edited`](crate::models::Tapped::forward_edited) does to a stage's
/// output.
pub(super) type EditFn<'a> = &'a dyn Fn(&Stage, Tensor) -> Tensor;

/// Keeps the outputs of the wanted nodes during one forward pass, and passes the outputs
/// of the edited ones through the edit.
pub(super) struct Recorder<'a> {
    wanted: HashSet<&'a str>,
    edited: HashSet<&'a str>,
    edit: Option<EditFn<'a>>,
    pub taps: Taps,
}

/// The names of the nodes `stages` are: torchvision's modules and inserted ones, whose names
/// never collide (an edit that would collide is refused).
fn module_names(stages: &[Stage]) -> HashSet<&str> {
    stages
        .iter()
        .filter_map(|s| match s {
            Stage::Module(name) | Stage::Inserted(name) => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

impl<'a> Recorder<'a> {
    pub fn new(taps: &'a [Stage]) -> Self {
        Recorder { wanted: module_names(taps), edited: HashSet::new(), edit: None, taps: Taps::new() }
    }

    /// Records nothing; passes the outputs of `at` through `edit`.
    pub fn editing(at: &'a [Stage], edit: EditFn<'a>) -> Self {
        Recorder { wanted: HashSet::new(), edited: module_names(at), edit: Some(edit), taps: Taps::new() }
    }

    fn keep(&mut self, node: &Node, ys: Tensor) -> Tensor {
        if !node.tapped {
            return ys;
        }
        let ys = match self.edit {
            Some(edit) if self.edited.contains(node.name.as_str()) => edit(&node.stage(), ys),
            _ => ys,
        };
        if self.wanted.contains(node.name.as_str()) {
            self.taps.insert(node.stage(), ys.shallow_clone());
        }
        ys
    }
}

/// The `VarStore` path of a dotted module name (a `Path` segment cannot hold a dot).
pub(super) fn path<'a>(root: &nn::Path<'a>, name: &str) -> nn::Path<'a> {
    let mut parts = name.split('.');
    let first = root / parts.next().unwrap_or_default();
    parts.fold(first, |p, part| &p / part)
}

/// `nn.Conv2d(cin, cout, kernel, stride, padding, bias)` at `name`.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv(
    root: &nn::Path,
    name: &str,
    cin: i64,
    cout: i64,
    kernel: i64,
    stride: i64,
    padding: i64,
    bias: bool,
) -> Node {
    let config = nn::ConvConfig { stride, padding, bias, ..Default::default() };
    Node::new(name, Op::Conv(nn::conv2d(path(root, name), cin, cout, kernel, config)), cout)
}

/// `nn.BatchNorm2d(channels)` at `name` (PyTorch's eps 1e-5 and momentum 0.1).
pub(super) fn batch_norm(root: &nn::Path, name: &str, channels: i64) -> Node {
    Node::new(name, Op::BatchNorm(nn::batch_norm2d(path(root, name), channels, Default::default())), channels)
}

/// `nn.Linear(fin, fout)` at `name`.
pub(super) fn linear(root: &nn::Path, name: &str, fin: i64, fout: i64) -> Node {
    Node::new(name, Op::Linear(nn::linear(path(root, name), fin, fout, Default::default())), fout)
}

pub(super) fn relu_node(name: &str, channels: i64) -> Node {
    Node::new(name, Op::Relu, channels)
}

pub(super) fn max_pool(name: &str, channels: i64, kernel: i64, stride: i64, padding: i64, ceil_mode: bool) -> Node {
    Node::new(name, Op::MaxPool(Pool { kernel, stride, padding, ceil_mode }), channels)
}

pub(super) fn dropout(name: &str, channels: i64) -> Node {
    // torchvision's classifiers all drop with p = 0.5.
    Node::new(name, Op::Dropout(0.5), channels)
}

/// A `nn.Sequential` of `nodes`, outputting what its last node outputs.
pub(super) fn sequential(name: &str, nodes: Vec<Node>) -> Node {
    let channels = nodes.last().map_or(0, |n| n.channels);
    Node::new(name, Op::Sequential(nodes), channels)
}
