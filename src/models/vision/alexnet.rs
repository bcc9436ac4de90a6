//! torchvision's AlexNet (the "one weird trick" variant of Krizhevsky 2014, as torchvision
//! builds it). The SB and Net2Vec papers measure it.

use tch::nn;

use super::graph::{conv, dropout, linear, max_pool, relu_node, sequential, Node, Op};

/// `(body, head)`: `features` and `avgpool`, then `classifier`.
pub(super) fn build(root: &nn::Path, num_classes: i64) -> (Vec<Node>, Vec<Node>) {
    let f = |i: usize| format!("features.{i}");
    let features = vec![
        conv(root, &f(0), 3, 64, 11, 4, 2, true),
        relu_node(&f(1), 64),
        max_pool(&f(2), 64, 3, 2, 0, false),
        conv(root, &f(3), 64, 192, 5, 1, 2, true),
        relu_node(&f(4), 192),
        max_pool(&f(5), 192, 3, 2, 0, false),
        conv(root, &f(6), 192, 384, 3, 1, 1, true),
        relu_node(&f(7), 384),
        conv(root, &f(8), 384, 256, 3, 1, 1, true),
        relu_node(&f(9), 256),
        conv(root, &f(10), 256, 256, 3, 1, 1, true),
        relu_node(&f(11), 256),
        max_pool(&f(12), 256, 3, 2, 0, false),
    ];
    let body = vec![sequential("features", features), Node::new("avgpool", Op::AdaptiveAvgPool([6, 6]), 256)];
    let classifier = sequential(
        "classifier",
        vec![
            dropout("classifier.0", 256 * 6 * 6),
            linear(root, "classifier.1", 256 * 6 * 6, 4096),
            relu_node("classifier.2", 4096),
            dropout("classifier.3", 4096),
            linear(root, "classifier.4", 4096, 4096),
            relu_node("classifier.5", 4096),
            linear(root, "classifier.6", 4096, num_classes),
        ],
    );
    (body, vec![classifier])
}
