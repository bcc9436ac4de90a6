//! The condition embedder of the conditional INN: maps a model representation z = Φ(x)
//! (a vector, or a feature map flattened or not) to a dense code that every coupling block
//! receives. Not invertible and not part of the density; it only has to pass on what z
//! knows. Follows the reference: an MLP for flat representations ("DenseEmbedder"), a
//! strided convolution stack then a dense layer for spatial ones ("Embedder").

use std::fmt;

use tch::nn::{self, Module};
use tch::Tensor;

use super::{leaky, ActNorm, InnError};

/// How a representation is embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderKind {
    /// Flatten, then fully connected layers.
    Dense,
    /// 4×4 stride-2 convolutions down to at most 4×4, then a dense layer; needs a
    /// `[C, H, W]` representation.
    Conv,
}

impl fmt::Display for EmbedderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EmbedderKind::Dense => "dense",
            EmbedderKind::Conv => "conv",
        })
    }
}

/// One hidden layer: a linear map or a strided convolution, ActNorm, leaky ReLU (0.2).
#[derive(Debug)]
struct Layer {
    map: Box<dyn Module>,
    norm: ActNorm,
}

/// Maps `[N, …shape]` representations to `[N, dim]` codes.
#[derive(Debug)]
pub struct Embedder {
    kind: EmbedderKind,
    shape: Vec<i64>,
    hidden: Vec<Layer>,
    out: nn::Linear,
}

impl Embedder {
    /// An embedder of representations of `shape` (one example, e.g. `[10]` or
    /// `[16, 5, 5]`) to `dim` features. Dense: widths interpolated linearly from the
    /// input size to `dim` over three layers (the reference's depth 4). Conv: `width`
    /// channels after the first convolution, doubling after each.
    pub fn new(path: &nn::Path, shape: &[i64], kind: EmbedderKind, dim: i64, width: i64) -> Result<Embedder, InnError> {
        let flat: i64 = shape.iter().product();
        if shape.is_empty() || flat < 1 || dim < 1 || width < 1 {
            return Err(InnError::InvalidConfig(format!(
                "cannot embed a representation of shape {shape:?} into {dim} features with width {width}"
            )));
        }
        let (hidden, out_in) = match kind {
            EmbedderKind::Dense => dense_layers(path, flat, dim),
            EmbedderKind::Conv => {
                let [c, h, w] = shape else {
                    return Err(InnError::InvalidConfig(format!(
                        "a conv embedder needs a [C, H, W] representation; this one is {shape:?} (use a dense one)"
                    )));
                };
                if *h < 2 || *w < 2 {
                    return Err(InnError::InvalidConfig(format!(
                        "a conv embedder needs feature maps of at least 2x2; this one is {h}x{w} (use a dense one)"
                    )));
                }
                conv_layers(path, *c, (*h, *w), width)
            }
        };
        let out = nn::linear(path / "out", out_in, dim, Default::default());
        Ok(Embedder { kind, shape: shape.to_vec(), hidden, out })
    }

    pub fn kind(&self) -> EmbedderKind {
        self.kind
    }

    /// The codes `[N, dim]` of `z` `[N, …shape]`.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor, InnError> {
        let size = z.size();
        if size.len() != self.shape.len() + 1 || size[1..] != self.shape[..] {
            return Err(InnError::BadInput(format!(
                "the embedder takes representations [N, {}]; got {size:?}",
                self.shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        let mut h = match self.kind {
            EmbedderKind::Dense => z.flatten(1, -1),
            EmbedderKind::Conv => z.shallow_clone(),
        };
        for layer in &self.hidden {
            h = leaky(&layer.norm.forward(&layer.map.forward(&h))?.0, 0.2);
        }
        Ok(h.flatten(1, -1).apply(&self.out))
    }
}

/// Hidden layers `flat → … → dim` with widths spaced evenly, and the input size of the
/// output layer.
fn dense_layers(path: &nn::Path, flat: i64, dim: i64) -> (Vec<Layer>, i64) {
    let widths: Vec<i64> = (0..4).map(|k| flat + (dim - flat) * k / 3).collect();
    let hidden = widths[..3]
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let p = path / format!("dense{i}");
            let map: Box<dyn Module> = Box::new(nn::linear(&p / "linear", w[0], w[1], Default::default()));
            Layer { map, norm: ActNorm::new(&(&p / "norm"), w[1]) }
        })
        .collect();
    (hidden, widths[2])
}

/// Strided convolutions while the shorter side exceeds 4 (at least one), and the flattened size
/// they leave.
fn conv_layers(path: &nn::Path, channels: i64, (h, w): (i64, i64), width: i64) -> (Vec<Layer>, i64) {
    let (mut hidden, mut c, mut h, mut w) = (Vec::new(), channels, h, w);
    let config = nn::ConvConfig { stride: 2, padding: 1, bias: false, ..Default::default() };
    while hidden.is_empty() || (h.min(w) > 4) {
        let out = width << hidden.len().min(3);
        let p = path / format!("conv{}", hidden.len());
        let map: Box<dyn Module> = Box::new(nn::conv2d(&p / "conv", c, out, 4, config));
        hidden.push(Layer { map, norm: ActNorm::new(&(&p / "norm"), out) });
        // A 4x4 convolution with stride 2 and padding 1 halves a side (rounding down).
        (c, h, w) = (out, h / 2, w / 2);
    }
    (hidden, c * h * w)
}
