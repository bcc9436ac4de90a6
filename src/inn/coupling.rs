//! The conditional affine coupling block (Dinh et al.'s RealNVP coupling, as the invariances
//! paper's reference INNs use it): the features split into two halves that are updated in
//! turn, each by an affine map whose scale and shift are computed from the other half and
//! the condition embedding,
//!
//! `b ← b · exp(s₀(a, c)) + t₀(a, c)`, then `a ← a · exp(s₁(b, c)) + t₁(b, c)`,
//!
//! which is exactly invertible whatever the nets `s` and `t` are, with
//! log|det J| = Σ s₀ + Σ s₁. The scales pass through `tanh`, so that one block can scale a
//! feature by at most e^±1 and training stays stable; the last layer of every `s` and `t`
//! net starts at zero, so a fresh block is the identity.

use tch::nn::{self, Init, Module};
use tch::Tensor;

use super::{check_flat, InnError};

/// A fully connected net `in → hidden (→ hidden)×depth → out` with leaky ReLUs, the
/// reference's "BasicFullyConnectedNet". `zero_last` starts the last layer at zero.
#[derive(Debug)]
pub(crate) struct Mlp {
    layers: Vec<nn::Linear>,
}

impl Mlp {
    pub(crate) fn new(path: &nn::Path, dims: &[i64], zero_last: bool) -> Mlp {
        let last = dims.len() - 2;
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| {
                let config = if zero_last && i == last {
                    nn::LinearConfig { ws_init: Init::Const(0.0), bs_init: Some(Init::Const(0.0)), bias: true }
                } else {
                    Default::default()
                };
                nn::linear(path / format!("layer{i}"), d[0], d[1], config)
            })
            .collect();
        Mlp { layers }
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(xs.shallow_clone(), |x, (i, layer)| {
            let y = x.apply(layer);
            if i < last {
                y.leaky_relu()
            } else {
                y
            }
        })
    }
}

/// One conditional double coupling over `dim` features with a condition of `cond_dim`.
#[derive(Debug)]
pub struct Coupling {
    dim: i64,
    cond_dim: i64,
    /// Size of the first half `a`; the second half `b` has `dim − half`.
    half: i64,
    s: [Mlp; 2],
    t: [Mlp; 2],
}

impl Coupling {
    /// A fresh block (the identity) under `path`: `s` and `t` nets with `depth` hidden
    /// layers of `hidden` units after the first.
    pub fn new(path: &nn::Path, dim: i64, cond_dim: i64, hidden: i64, depth: usize) -> Result<Coupling, InnError> {
        if dim < 2 || cond_dim < 0 || hidden < 1 {
            return Err(InnError::InvalidConfig(format!(
                "a coupling needs at least 2 features, a condition of 0 or more and at least 1 hidden unit; \
                 got {dim} features, condition {cond_dim}, hidden {hidden}"
            )));
        }
        let half = dim / 2;
        let net = |name: &str, input: i64, output: i64| {
            let mut dims = vec![input + cond_dim];
            dims.extend(std::iter::repeat(hidden).take(depth + 1));
            dims.push(output);
            Mlp::new(&(path / name), &dims, true)
        };
        let s = [net("s0", half, dim - half), net("s1", dim - half, half)];
        let t = [net("t0", half, dim - half), net("t1", dim - half, half)];
        Ok(Coupling { dim, cond_dim, half, s, t })
    }

    /// The coupled batch and log|det J| per example.
    pub fn forward(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor), InnError> {
        self.check(x, cond)?;
        let (a, b) = self.split(x);
        let (s0, t0) = self.scale_shift(0, &a, cond);
        let b = b * s0.exp() + t0;
        let (s1, t1) = self.scale_shift(1, &b, cond);
        let a = a * s1.exp() + t1;
        let logdet = s0.sum_dim_intlist(1, false, s0.kind()) + s1.sum_dim_intlist(1, false, s1.kind());
        Ok((Tensor::cat(&[a, b], 1), logdet))
    }

    /// The exact inverse: undoes the two updates in reverse order.
    pub fn inverse(&self, y: &Tensor, cond: Option<&Tensor>) -> Result<Tensor, InnError> {
        self.check(y, cond)?;
        let (a, b) = self.split(y);
        let (s1, t1) = self.scale_shift(1, &b, cond);
        let a = (a - t1) * (-s1).exp();
        let (s0, t0) = self.scale_shift(0, &a, cond);
        let b = (b - t0) * (-s0).exp();
        Ok(Tensor::cat(&[a, b], 1))
    }

    fn split(&self, x: &Tensor) -> (Tensor, Tensor) {
        (x.narrow(1, 0, self.half), x.narrow(1, self.half, self.dim - self.half))
    }

    /// `tanh(s_i)` and `t_i` of `given` concatenated with the condition.
    fn scale_shift(&self, i: usize, given: &Tensor, cond: Option<&Tensor>) -> (Tensor, Tensor) {
        let input = match cond {
            Some(c) => Tensor::cat(&[given, c], 1),
            None => given.shallow_clone(),
        };
        (self.s[i].forward(&input).tanh(), self.t[i].forward(&input))
    }

    fn check(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(), InnError> {
        check_flat(x, self.dim, "a coupling's input")?;
        match (cond, self.cond_dim) {
            (None, 0) => Ok(()),
            (Some(c), d) if d > 0 => {
                check_flat(c, d, "the condition embedding")?;
                if c.size()[0] != x.size()[0] {
                    return Err(InnError::BadInput(format!(
                        "{} conditions for {} inputs; give one per input",
                        c.size()[0],
                        x.size()[0]
                    )));
                }
                Ok(())
            }
            (None, d) => Err(InnError::BadInput(format!("this coupling is conditional: give a [N, {d}] condition"))),
            (Some(_), _) => Err(InnError::BadInput("this coupling takes no condition".to_owned())),
        }
    }
}
