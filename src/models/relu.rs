//! The ReLU every built-in model uses, and a way to rewrite how gradients cross it.
//!
//! Guided backpropagation (Springenberg et al. 2014), as the SeVec paper writes it in sec. 5,
//! lets a gradient cross a ReLU only where both the incoming gradient and the ReLU's input
//! are positive: `R^l = R^{l+1} 1[R^{l+1} > 0 and X^l > 0]`. Autograd's backward passes are
//! linear in the incoming gradient, so no forward expression has that backward. Instead,
//! while [`record`] runs a forward pass, every [`relu`] cuts the graph there: its output
//! becomes a fresh leaf and the [`Tape`] keeps its input. [`Tape::backward`] then visits the
//! ReLUs from the last to the first, asks a rule for the gradient at each one's input, and
//! pushes it through the piece of graph below with one autograd call. With
//! [`plain_rule`] this is exactly autograd's gradient (checked in the tests), so a rule
//! changes nothing but the ReLUs.
//!
//! Outside [`record`], [`relu`] is `Tensor::relu` and costs one thread-local read.

use std::cell::RefCell;

use tch::{Kind, Tensor};

/// The ReLU inputs and output leaves of a recorded forward pass, in forward order.
type Records = Vec<(Tensor, Tensor)>;

thread_local! {
    static TAPE: RefCell<Option<Records>> = const { RefCell::new(None) };
}

/// `max(x, 0)`; while [`record`] runs on this thread, also cuts the graph (see the module
/// docs).
pub fn relu(xs: &Tensor) -> Tensor {
    TAPE.with(|tape| match tape.borrow_mut().as_mut() {
        None => xs.relu(),
        Some(records) => {
            let leaf = xs.relu().detach().set_requires_grad(true);
            records.push((xs.shallow_clone(), leaf.shallow_clone()));
            leaf
        }
    })
}

/// A recorded forward pass: its input leaf and every ReLU's input and output leaf.
pub struct Tape {
    input: Tensor,
    relus: Records,
}

/// Ends the recording even when the forward pass panics.
struct Recording;

impl Drop for Recording {
    fn drop(&mut self) {
        TAPE.with(|tape| tape.borrow_mut().take());
    }
}

/// Runs `forward` on a leaf copy of `input` that requires gradients, recording every
/// [`relu`] it goes through on this thread.
///
/// # Panics
/// If called while another recording runs on this thread.
pub fn record<T>(input: &Tensor, forward: impl FnOnce(&Tensor) -> T) -> (T, Tape) {
    let input = input.detach().set_requires_grad(true);
    TAPE.with(|tape| {
        let mut tape = tape.borrow_mut();
        assert!(tape.is_none(), "relu::record does not nest");
        *tape = Some(Vec::new());
    });
    let recording = Recording;
    let out = tch::with_grad(|| forward(&input));
    let relus = TAPE.with(|tape| tape.borrow_mut().take()).unwrap_or_default();
    drop(recording);
    (out, Tape { input, relus })
}

/// The gradient autograd gives a ReLU's input: `grad * 1[x > 0]`.
pub fn plain_rule(grad: &Tensor, x: &Tensor) -> Tensor {
    grad * x.gt(0).to_kind(grad.kind())
}

/// Guided backpropagation's rule, SeVec paper sec. 5: `grad * 1[grad > 0 and x > 0]`.
pub fn guided_rule(grad: &Tensor, x: &Tensor) -> Tensor {
    grad.clamp_min(0.0) * x.gt(0).to_kind(grad.kind())
}

impl Tape {
    /// How many ReLUs the forward pass went through.
    pub fn len(&self) -> usize {
        self.relus.len()
    }

    pub fn is_empty(&self) -> bool {
        self.relus.is_empty()
    }

    /// The gradient of `output.sum()` with respect to the recorded input, with `rule(grad,
    /// x)` giving the gradient at every ReLU's input `x` from the gradient at its output.
    /// Model weights receive no gradient. Zero where the output does not depend on the input.
    /// The graph is kept until the tape is dropped, so one tape serves several rules.
    pub fn backward(&self, output: &Tensor, rule: impl Fn(&Tensor, &Tensor) -> Tensor) -> Tensor {
        let leaves: Vec<&Tensor> = std::iter::once(&self.input).chain(self.relus.iter().map(|(_, y)| y)).collect();
        let mut grads: Vec<Option<Tensor>> = (0..leaves.len()).map(|_| None).collect();
        tch::with_grad(|| {
            push(&output.sum(Kind::Float), &leaves, &mut grads);
            for k in (0..self.relus.len()).rev() {
                let Some(grad) = grads[k + 1].take() else { continue };
                let x = &self.relus[k].0;
                let through = rule(&grad, &x.detach());
                push(&(x * through).sum(Kind::Float), &leaves[..=k], &mut grads);
            }
        });
        grads[0].take().unwrap_or_else(|| self.input.zeros_like())
    }
}

/// Adds `d root / d leaf` to `grads` for every leaf the root depends on.
fn push(root: &Tensor, leaves: &[&Tensor], grads: &mut [Option<Tensor>]) {
    if !root.requires_grad() {
        return;
    }
    let found = Tensor::run_backward(&[root], leaves, true, false);
    for (slot, grad) in grads.iter_mut().zip(found) {
        if grad.defined() {
            *slot = Some(match slot.take() {
                Some(sum) => sum + grad,
                None => grad,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ResNetConfig, Tapped, TappedNet, Task};
    use tch::nn::ModuleT;
    use tch::Device;

    /// Residual blocks reuse a ReLU output twice (the skip and the convolution), so this
    /// checks that cutting the graph at every ReLU loses and doubles nothing.
    #[test]
    fn the_plain_rule_reproduces_autograd_on_a_residual_net() {
        let _serial = crate::models::serial();
        tch::manual_seed(3);
        let config = ResNetConfig {
            widths: vec![4, 8],
            depths: vec![2, 1],
            strides: vec![1, 2],
            stem_width: 4,
            ..ResNetConfig::small(Task::Classification, 3)
        };
        let net = TappedNet::new(config, Device::Cpu).unwrap();
        let x = Tensor::rand([2, 3, 12, 12], tch::kind::FLOAT_CPU);
        let (score, tape) = record(&x, |x| net.forward_t(x, false).select(1, 1));
        assert_eq!(tape.len(), 1 + 2 * 3);
        let taped = tape.backward(&score, plain_rule);
        let leaf = x.detach().set_requires_grad(true);
        let plain = tch::with_grad(|| {
            let s = net.forward_t(&leaf, false).select(1, 1).sum(Kind::Float);
            Tensor::run_backward(&[s], &[&leaf], false, false).remove(0)
        });
        let diff = (&taped - &plain).abs().max().double_value(&[]);
        assert!(diff < 1e-5 && plain.abs().max().double_value(&[]) > 1e-4, "{diff}");
        for (_, var) in net.var_store().variables() {
            assert!(!var.grad().defined(), "weights received gradients");
        }
        assert!(!x.requires_grad());
        assert!(!relu(&Tensor::from_slice(&[-1.0f32, 2.0])).requires_grad());
    }

    /// y = w2 · relu(W1 x): the guided gradient by hand is W1^T (g ⊙ 1[g > 0] ⊙ 1[h > 0])
    /// with g = w2, h = W1 x.
    #[test]
    fn the_guided_rule_passes_only_positive_gradients_at_positive_inputs() {
        let w1 = Tensor::from_slice(&[1.0f32, -1.0, 2.0, 0.5, -1.0, 1.0, 1.0, 1.0]).view([4, 2]);
        let w2 = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 1.0]);
        let x = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        let h = x.matmul(&w1.tr()); // [-1, 4, 1, 3]: the first unit is off
        let (y, tape) = record(&x, |x| relu(&x.matmul(&w1.tr())).matmul(&w2));
        let guided = tape.backward(&y, guided_rule);
        let pass = w2.clamp_min(0.0) * h.gt(0).to_kind(Kind::Float).view([4]);
        let by_hand = pass.view([1, 4]).matmul(&w1);
        assert!(guided.allclose(&by_hand, 1e-6, 1e-6, false), "{guided} vs {by_hand}");
        let plain = tape.backward(&y, plain_rule);
        let by_hand = (&w2 * h.gt(0).to_kind(Kind::Float).view([4])).view([1, 4]).matmul(&w1);
        assert!(plain.allclose(&by_hand, 1e-6, 1e-6, false));
        assert!(!guided.allclose(&plain, 1e-6, 1e-6, false), "unit 2's negative gradient must be cut");
    }
}
