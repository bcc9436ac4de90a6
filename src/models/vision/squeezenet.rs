//! torchvision's SqueezeNets 1.0 and 1.1 (Iandola et al. 2016). The SB paper measures
//! SqueezeNet among its inspected networks.

use tch::nn;

use super::graph::{conv, dropout, max_pool, relu_node, sequential, Node, Op};

/// An entry of `features` after the first convolution: a 3x3, stride-2, ceil-mode max pool,
/// or a `Fire` with squeeze channels and the channels of each of its two expansions.
enum Entry {
    Pool,
    Fire(i64, i64),
}

/// `(body, head)`: `features` and `classifier` (which ends in global pooling), no head after
/// the flatten.
pub(super) fn build(root: &nn::Path, version_1_1: bool, num_classes: i64) -> (Vec<Node>, Vec<Node>) {
    use Entry::{Fire, Pool};
    let (stem_channels, stem_kernel, entries) = if version_1_1 {
        (
            64,
            3,
            vec![
                Pool,
                Fire(16, 64),
                Fire(16, 64),
                Pool,
                Fire(32, 128),
                Fire(32, 128),
                Pool,
                Fire(48, 192),
                Fire(48, 192),
                Fire(64, 256),
                Fire(64, 256),
            ],
        )
    } else {
        (
            96,
            7,
            vec![
                Pool,
                Fire(16, 64),
                Fire(16, 64),
                Fire(32, 128),
                Pool,
                Fire(32, 128),
                Fire(48, 192),
                Fire(48, 192),
                Fire(64, 256),
                Pool,
                Fire(64, 256),
            ],
        )
    };
    let mut features = vec![
        conv(root, "features.0", 3, stem_channels, stem_kernel, 2, 0, true),
        relu_node("features.1", stem_channels),
    ];
    let mut channels = stem_channels;
    for entry in entries {
        let name = format!("features.{}", features.len());
        features.push(match entry {
            Pool => max_pool(&name, channels, 3, 2, 0, true),
            Fire(squeeze, expand) => fire(root, &name, channels, squeeze, expand),
        });
        channels = features.last().map_or(channels, |n| n.channels);
    }
    let classifier = sequential(
        "classifier",
        vec![
            dropout("classifier.0", channels),
            conv(root, "classifier.1", channels, num_classes, 1, 1, 0, true),
            relu_node("classifier.2", num_classes),
            Node::new("classifier.3", Op::AdaptiveAvgPool([1, 1]), num_classes),
        ],
    );
    (vec![sequential("features", features), classifier], Vec::new())
}

fn fire(root: &nn::Path, name: &str, inplanes: i64, squeeze: i64, expand: i64) -> Node {
    let at = |part: &str| format!("{name}.{part}");
    let op = Op::Fire {
        squeeze: vec![
            conv(root, &at("squeeze"), inplanes, squeeze, 1, 1, 0, true),
            relu_node(&at("squeeze_activation"), squeeze),
        ],
        expand1x1: vec![
            conv(root, &at("expand1x1"), squeeze, expand, 1, 1, 0, true),
            relu_node(&at("expand1x1_activation"), expand),
        ],
        expand3x3: vec![
            conv(root, &at("expand3x3"), squeeze, expand, 3, 1, 1, true),
            relu_node(&at("expand3x3_activation"), expand),
        ],
    };
    Node::new(name, op, 2 * expand)
}
