//! The module tree of a torchvision network, run so that any named submodule's output can be
//! read: the `register_forward_hook` of PyTorch, in one pass and without callbacks.
//!
//! Every [`Node`] carries the dotted name torchvision's `named_modules()` gives it
//! (`layer3.1.conv2`, `features.28`), and its variables live under that same name in the
//! `VarStore`, so a `state_dict()` loads with no renaming.

use std::collections::HashSet;

use tch::nn;
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
    Residual { body: Vec<Node>, downsample: Option<Box<Node>> },
    /// SqueezeNet's `Fire`: a squeeze, then a 1x1 and a 3x3 expansion of it, concatenated
    /// along channels.
    Fire { squeeze: Vec<Node>, expand1x1: Vec<Node>, expand3x3: Vec<Node> },
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
}

impl Node {
    pub fn new(name: impl Into<String>, op: Op, channels: i64) -> Node {
        Node { name: name.into(), op, channels, tapped: true }
    }

    /// A node whose output is not offered as a tap (see [`Node::tapped`]).
    pub fn untapped(mut self) -> Node {
        self.tapped = false;
        self
    }

    fn forward(&self, xs: &Tensor, train: bool, rec: &mut Recorder) -> Tensor {
        let ys = match &self.op {
            Op::Conv(conv) => xs.apply(conv),
            Op::BatchNorm(bn) => xs.apply_t(bn, train),
            Op::Linear(linear) => xs.apply(linear),
            Op::Relu => relu(xs),
            Op::MaxPool(p) => {
                xs.max_pool2d([p.kernel, p.kernel], [p.stride, p.stride], [p.padding, p.padding], [1, 1], p.ceil_mode)
            }
            Op::AdaptiveAvgPool(size) => xs.adaptive_avg_pool2d(size),
            Op::Dropout(p) => xs.dropout(*p, train),
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
        };
        rec.keep(self, ys)
    }

    /// This node's taps and its descendants', in the order their outputs are computed.
    fn collect(&self, out: &mut Vec<StageInfo>) {
        let children: Vec<&Node> = match &self.op {
            Op::Sequential(nodes) => nodes.iter().collect(),
            Op::Residual { body, downsample } => body.iter().chain(downsample.as_deref()).collect(),
            Op::Fire { squeeze, expand1x1, expand3x3 } => squeeze.iter().chain(expand1x1).chain(expand3x3).collect(),
            _ => Vec::new(),
        };
        for child in children {
            child.collect(out);
        }
        if self.tapped {
            out.push(StageInfo { stage: Stage::Module(self.name.clone()), channels: self.channels });
        }
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

/// Keeps the outputs of the wanted nodes during one forward pass, and passes the outputs
/// of the edited ones through the edit.
pub(super) struct Recorder<'a> {
    wanted: HashSet<&'a str>,
    edited: HashSet<&'a str>,
    edit: Option<&'a dyn Fn(&Stage, Tensor) -> Tensor>,
    pub taps: Taps,
}

fn module_names(stages: &[Stage]) -> HashSet<&str> {
    stages
        .iter()
        .filter_map(|s| match s {
            Stage::Module(name) => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

impl<'a> Recorder<'a> {
    pub fn new(taps: &'a [Stage]) -> Self {
        Recorder { wanted: module_names(taps), edited: HashSet::new(), edit: None, taps: Taps::new() }
    }

    /// Records nothing; passes the outputs of `at` through `edit`.
    pub fn editing(at: &'a [Stage], edit: &'a dyn Fn(&Stage, Tensor) -> Tensor) -> Self {
        Recorder { wanted: HashSet::new(), edited: module_names(at), edit: Some(edit), taps: Taps::new() }
    }

    fn keep(&mut self, node: &Node, ys: Tensor) -> Tensor {
        if !node.tapped {
            return ys;
        }
        let ys = match self.edit {
            Some(edit) if self.edited.contains(node.name.as_str()) => edit(&Stage::Module(node.name.clone()), ys),
            _ => ys,
        };
        if self.wanted.contains(node.name.as_str()) {
            self.taps.insert(Stage::Module(node.name.clone()), ys.shallow_clone());
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
pub(super) fn conv(root: &nn::Path, name: &str, cin: i64, cout: i64, kernel: i64, stride: i64, padding: i64, bias: bool) -> Node {
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
