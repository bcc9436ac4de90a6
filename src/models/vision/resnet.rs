//! torchvision's ResNets (He et al. 2016; the stride on the 3x3 convolution of a
//! bottleneck, "ResNet v1.5", as torchvision builds them). The SB paper inserts its
//! bottlenecks after blocks of `layer3`/`layer4` of these (SB paper sec. 5).

use tch::nn;

use super::edit::{Chain, Link};
use super::graph::{batch_norm, conv, linear, max_pool, relu_node, sequential, Node, Op};
use crate::models::{BlockKind, Stage};

/// What the stem (`conv1` .. `maxpool`) outputs.
const STEM_CHANNELS: i64 = 64;

/// One residual block as torchvision builds it, before any edit.
struct BlockSpec {
    name: String,
    /// 1-based, as in `layerN`.
    layer: usize,
    inplanes: i64,
    planes: i64,
    stride: i64,
    out: i64,
}

/// Every block of the network, in forward order.
fn blocks(block: BlockKind, depths: [usize; 4]) -> Vec<BlockSpec> {
    let mut inplanes = STEM_CHANNELS;
    let mut specs = Vec::new();
    for (i, (planes, depth)) in [64, 128, 256, 512].into_iter().zip(depths).enumerate() {
        for j in 0..depth {
            let stride = if i > 0 && j == 0 { 2 } else { 1 };
            let out = planes * block.expansion();
            specs.push(BlockSpec { name: format!("layer{}.{j}", i + 1), layer: i + 1, inplanes, planes, stride, out });
            inplanes = out;
        }
    }
    specs
}

/// The chain an edit plan works on: each block, the end of each layer, the classifier.
pub(super) fn chain(block: BlockKind, depths: [usize; 4]) -> Chain {
    let specs = blocks(block, depths);
    let mut links = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        links.push(Link::Block { name: spec.name.clone(), takes: spec.inplanes, gives: spec.out });
        if specs.get(i + 1).is_none_or(|next| next.layer != spec.layer) {
            links.push(Link::Layer(format!("layer{}", spec.layer)));
        }
    }
    let features = specs.last().map_or(STEM_CHANNELS, |s| s.out);
    links.push(Link::Classifier { name: "fc".to_owned(), takes: features });
    Chain { stem: Stage::Module("maxpool".to_owned()), stem_channels: STEM_CHANNELS, links }
}

/// The inserted modules that run after the block or layer named by the first argument,
/// built for the channels it outputs (the second).
pub(super) type Inserted<'a> = dyn Fn(&str, i64) -> Vec<Node> + 'a;

/// `(body, head)`: everything up to `avgpool`, then `fc`; torchvision flattens in between.
/// Each block and `fc` are built for the channels that reach them, so a block after an
/// insertion that changes the width gets a new `conv1` and a `downsample` for it (f̂ of SB
/// paper eq. 9); the edit plan has checked that this is what was asked.
pub(super) fn build(
    root: &nn::Path,
    block: BlockKind,
    depths: [usize; 4],
    num_classes: i64,
    inserted: &Inserted,
) -> (Vec<Node>, Vec<Node>) {
    let mut body = vec![
        conv(root, "conv1", 3, STEM_CHANNELS, 7, 2, 3, false),
        batch_norm(root, "bn1", STEM_CHANNELS),
        relu_node("relu", STEM_CHANNELS),
        max_pool("maxpool", STEM_CHANNELS, 3, 2, 1, false),
    ];
    let specs = blocks(block, depths);
    let mut channels = STEM_CHANNELS;
    for layer in 1..=4 {
        let mut nodes = Vec::new();
        for spec in specs.iter().filter(|s| s.layer == layer) {
            let b = residual(root, &spec.name, block, channels, spec.planes, spec.stride);
            channels = then(&mut nodes, b, inserted);
        }
        channels = then(&mut body, sequential(&format!("layer{layer}"), nodes), inserted);
    }
    body.push(Node::new("avgpool", Op::AdaptiveAvgPool([1, 1]), channels));
    (body, vec![linear(root, "fc", channels, num_classes)])
}

/// Appends `node` and what is inserted after it to `nodes`; returns the channels they give.
fn then(nodes: &mut Vec<Node>, node: Node, inserted: &Inserted) -> i64 {
    let after = inserted(&node.name, node.channels);
    nodes.push(node);
    nodes.extend(after);
    nodes.last().map_or(0, |n| n.channels)
}

/// One `BasicBlock` or `Bottleneck` named `name`.
fn residual(root: &nn::Path, name: &str, block: BlockKind, inplanes: i64, planes: i64, stride: i64) -> Node {
    let out = planes * block.expansion();
    let at = |part: &str| format!("{name}.{part}");
    // The block's one `relu` module runs after every convolution but the last and after the
    // sum: several outputs, so it is not a tap (the block's own output is the last one).
    let relu = || relu_node(&at("relu"), planes).untapped();
    let body = match block {
        BlockKind::Basic => vec![
            conv(root, &at("conv1"), inplanes, planes, 3, stride, 1, false),
            batch_norm(root, &at("bn1"), planes),
            relu(),
            conv(root, &at("conv2"), planes, planes, 3, 1, 1, false),
            batch_norm(root, &at("bn2"), planes),
        ],
        BlockKind::Bottleneck => vec![
            conv(root, &at("conv1"), inplanes, planes, 1, 1, 0, false),
            batch_norm(root, &at("bn1"), planes),
            relu(),
            conv(root, &at("conv2"), planes, planes, 3, stride, 1, false),
            batch_norm(root, &at("bn2"), planes),
            relu(),
            conv(root, &at("conv3"), planes, out, 1, 1, 0, false),
            batch_norm(root, &at("bn3"), out),
        ],
    };
    let downsample = (stride != 1 || inplanes != out).then(|| {
        Box::new(sequential(
            &at("downsample"),
            vec![
                conv(root, &at("downsample.0"), inplanes, out, 1, stride, 0, false),
                batch_norm(root, &at("downsample.1"), out),
            ],
        ))
    });
    Node::new(name, Op::Residual { body, downsample }, out)
}
