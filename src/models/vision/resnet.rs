//! torchvision's ResNets (He et al. 2016; the stride on the 3x3 convolution of a
//! bottleneck, "ResNet v1.5", as torchvision builds them). The SB paper inserts its
//! bottlenecks after blocks of `layer3`/`layer4` of these (SB paper sec. 5).

use tch::nn;

use super::graph::{batch_norm, conv, linear, max_pool, relu_node, sequential, Node, Op};
use crate::models::BlockKind;

/// `(body, head)`: everything up to `avgpool`, then `fc`; torchvision flattens in between.
pub(super) fn build(root: &nn::Path, block: BlockKind, depths: [usize; 4], num_classes: i64) -> (Vec<Node>, Vec<Node>) {
    let mut body = vec![
        conv(root, "conv1", 3, 64, 7, 2, 3, false),
        batch_norm(root, "bn1", 64),
        relu_node("relu", 64),
        max_pool("maxpool", 64, 3, 2, 1, false),
    ];
    let mut inplanes = 64;
    for (i, (planes, depth)) in [64, 128, 256, 512].into_iter().zip(depths).enumerate() {
        let stride = if i == 0 { 1 } else { 2 };
        let blocks = (0..depth)
            .map(|j| {
                let b = residual(root, &format!("layer{}.{j}", i + 1), block, inplanes, planes, if j == 0 { stride } else { 1 });
                inplanes = b.channels;
                b
            })
            .collect();
        body.push(sequential(&format!("layer{}", i + 1), blocks));
    }
    body.push(Node::new("avgpool", Op::AdaptiveAvgPool([1, 1]), inplanes));
    (body, vec![linear(root, "fc", inplanes, num_classes)])
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
