//! torchvision's VGGs (Simonyan & Zisserman 2015), with and without batch norm. The SB and
//! SeVec papers measure VGG-16.

use tch::nn;

use super::graph::{batch_norm, conv, dropout, linear, max_pool, relu_node, sequential, Node, Op};

/// A `features` entry of torchvision's VGG configurations: a 3x3 convolution to this many
/// channels, or `M`, a 2x2 max pool.
const M: i64 = 0;

/// Configuration "A" (VGG-11), "B" (VGG-13), "D" (VGG-16), "E" (VGG-19) of the paper's table 1.
pub(super) fn config(depth: usize) -> &'static [i64] {
    match depth {
        11 => &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        13 => &[64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
        16 => &[64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M],
        _ => &[64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M],
    }
}

/// `(body, head)`: `features` and `avgpool`, then `classifier`.
pub(super) fn build(
    root: &nn::Path,
    config: &[i64],
    batch_norm_after_conv: bool,
    num_classes: i64,
) -> (Vec<Node>, Vec<Node>) {
    let mut features = Vec::new();
    let mut channels = 3;
    for &entry in config {
        let name = |features: &Vec<Node>| format!("features.{}", features.len());
        if entry == M {
            features.push(max_pool(&name(&features), channels, 2, 2, 0, false));
            continue;
        }
        features.push(conv(root, &name(&features), channels, entry, 3, 1, 1, true));
        if batch_norm_after_conv {
            features.push(batch_norm(root, &name(&features), entry));
        }
        features.push(relu_node(&name(&features), entry));
        channels = entry;
    }
    let body = vec![sequential("features", features), Node::new("avgpool", Op::AdaptiveAvgPool([7, 7]), channels)];
    (body, vec![classifier(root, channels * 7 * 7, num_classes)])
}

/// Linear, ReLU, dropout twice, then the linear layer to the classes.
fn classifier(root: &nn::Path, fin: i64, num_classes: i64) -> Node {
    sequential(
        "classifier",
        vec![
            linear(root, "classifier.0", fin, 4096),
            relu_node("classifier.1", 4096),
            dropout("classifier.2", 4096),
            linear(root, "classifier.3", 4096, 4096),
            relu_node("classifier.4", 4096),
            dropout("classifier.5", 4096),
            linear(root, "classifier.6", 4096, num_classes),
        ],
    )
}
