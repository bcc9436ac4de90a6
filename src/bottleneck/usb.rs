//! Unsupervised Semantic Bottlenecks (SB paper sec. 3.2, eq. 16-21).

use std::fmt;

use tch::{Kind, Tensor};

use super::{SbError, SbNet};
use crate::models::{Editable, Examples, TaskData, TrainConfig, TrainReport};

/// How a USB is pushed towards one-hot outputs (sec. 3.2.1, "one-hot relaxation").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regularizer {
    /// Softmax temperature annealed from `t0` to `t_end` over `tau` steps with power `gamma`
    /// (eq. 20); `tau: None` anneals over the whole training.
    Anneal { t0: f64, t_end: f64, gamma: f64, tau: Option<usize> },
    /// The entropy of each group's softmax, scaled by `lambda`, added to the loss (eq. 19),
    /// at temperature 1.
    Entropy { lambda: f64 },
}

impl Regularizer {
    /// Sec. 3.2.1, implementation details: T0 = 1, T_τ = 0.01, γ = 10.
    pub const ANNEAL: Regularizer = Regularizer::Anneal { t0: 1.0, t_end: 0.01, gamma: 10.0, tau: None };
    /// Sec. 3.2.1, implementation details: λ = 0.1.
    pub const ENTROPY: Regularizer = Regularizer::Entropy { lambda: 0.1 };

    /// The temperature at `step` of `steps` (eq. 20). The paper writes
    /// `T_t = T0 + (T0 − T_τ)(1 − t/τ)^γ`, which would end at T0 rather than "approach
    /// argmax" as the text says; we use `T_t = T_τ + (T0 − T_τ)(1 − t/τ)^γ`, which starts at
    /// T0 and reaches T_τ at t = τ, and keep T_τ afterwards.
    pub fn temperature(&self, step: usize, steps: usize) -> f64 {
        match *self {
            Regularizer::Anneal { t0, t_end, gamma, tau } => {
                let tau = tau.unwrap_or(steps).max(1);
                let left = 1.0 - step.min(tau) as f64 / tau as f64;
                t_end + (t0 - t_end) * left.powf(gamma)
            }
            Regularizer::Entropy { .. } => 1.0,
        }
    }

    /// Whether the numbers make sense: 0 < T_τ ≤ T0, γ > 0 and τ ≥ 1 for eq. 20, λ ≥ 0 for
    /// eq. 19.
    pub fn validate(&self) -> Result<(), SbError> {
        let ok = match *self {
            Regularizer::Anneal { t0, t_end, gamma, tau } => {
                t0 > 0.0 && t_end > 0.0 && t_end <= t0 && gamma > 0.0 && tau != Some(0) && t0.is_finite()
            }
            Regularizer::Entropy { lambda } => lambda >= 0.0 && lambda.is_finite(),
        };
        if ok {
            Ok(())
        } else {
            Err(SbError::Invalid(format!(
                "{self}: annealing needs 0 < t_end <= t0, gamma > 0 and tau >= 1; the entropy weight must be >= 0"
            )))
        }
    }
}

impl fmt::Display for Regularizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Regularizer::Anneal { t0, t_end, gamma, .. } => write!(f, "annealed T {t0} -> {t_end}, γ {gamma}"),
            Regularizer::Entropy { lambda } => write!(f, "entropy loss λ {lambda}"),
        }
    }
}

/// A USB: `n` parallel groups of `k` channels, a 1x1 convolution with bias and a softmax
/// each (eq. 16-18), one-hot (arg-max) at inference.
#[derive(Debug, Clone, PartialEq)]
pub struct Usb {
    pub n: usize,
    pub k: i64,
    pub regularizer: Regularizer,
}

impl Usb {
    /// `n` groups of `k` channels, with temperature annealing (the paper's choice).
    pub fn new(n: usize, k: i64) -> Result<Usb, SbError> {
        if n < 1 || k < 2 {
            return Err(SbError::Invalid(format!(
                "a USB needs at least 1 group of at least 2 channels (a softmax over one channel is constant); got {n}×{k}"
            )));
        }
        Ok(Usb { n, k, regularizer: Regularizer::ANNEAL })
    }

    /// With temperature annealing from `t0` to `t_end`, power `gamma` (eq. 20).
    pub fn anneal(mut self, t0: f64, t_end: f64, gamma: f64) -> Self {
        self.regularizer = Regularizer::Anneal { t0, t_end, gamma, tau: None };
        self
    }

    /// With the entropy loss scaled by `lambda` (eq. 19) instead of annealing.
    pub fn entropy(mut self, lambda: f64) -> Self {
        self.regularizer = Regularizer::Entropy { lambda };
        self
    }

    pub fn with(mut self, regularizer: Regularizer) -> Self {
        self.regularizer = regularizer;
        self
    }
}

/// The policy for training a USB jointly with the later stages (eq. 21): the paper gives
/// none of its own, so the base models' (sec. 3.1): SGD, momentum 0.9, lr 0.01, weight decay
/// 5e-4, poly 0.9.
pub fn default_training() -> TrainConfig {
    TrainConfig { epochs: 10, label: "USB".into(), ..Default::default() }
}

/// Inserts `usb` after `after` in (a copy of) `net` and trains it with every later stage on
/// `net`'s task on `data` (eq. 21): segmentation of a concept data set's objects, or
/// classification of labelled images (ColorMNIST, [`Examples`]); regularised as
/// `usb.regularizer` says. The report compares softmax and arg-max inference with `net` on
/// `test`, or on the held-out last fifth of `data`.
pub fn usb<N: Editable, D: TaskData + ?Sized>(
    net: &N,
    after: &str,
    usb: Usb,
    data: &D,
    test: Option<&D>,
    config: &TrainConfig,
) -> Result<SbNet<N>, SbError> {
    usb.regularizer.validate()?;
    let (train, test) = super::split_examples(net, data, test)?;
    let mut sb = SbNet::insert(net, after, usb.clone(), super::Restore::AdaptNext)?;
    fit(&sb, &usb, &train, config)?;
    sb.report = Some(super::report(net, &sb, &test)?);
    Ok(sb)
}

/// Trains θ of eq. 21 (the USB, the adapted next stage and every later stage) on `examples`:
/// task cross-entropy, plus the entropy loss or under the annealed temperature.
pub fn fit<N: Editable>(
    sb: &SbNet<N>,
    usb: &Usb,
    examples: &Examples,
    config: &TrainConfig,
) -> Result<TrainReport, SbError> {
    let steps = config.steps_for(examples.len());
    let report = super::fit_with_later_stages(
        sb,
        examples,
        config,
        |step| sb.set_temperature(usb.regularizer.temperature(step, steps)),
        |outputs| match usb.regularizer {
            Regularizer::Entropy { lambda } => Some(lambda * entropy(outputs, usb.n as i64)),
            Regularizer::Anneal { .. } => None,
        },
    )?;
    sb.set_temperature(usb.regularizer.temperature(steps, steps));
    Ok(report)
}

/// Eq. 19 summed over the `n` groups of `probs` (`[N, n·K, H, W]` softmax outputs): the mean
/// over images and positions of the Shannon entropy along each group's channels.
fn entropy(probs: &Tensor, n: i64) -> Tensor {
    let s = probs.size();
    let p = probs.view([s[0], n, s[1] / n, s[2], s[3]]);
    let h = -(&p * p.clamp_min(1e-12).log()).sum_dim_intlist(2, false, Kind::Float);
    h.mean_dim(&[0i64, 2, 3][..], false, Kind::Float).sum(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annealing_starts_at_t0_and_reaches_t_end() {
        let r = Regularizer::ANNEAL;
        assert_eq!(r.temperature(0, 100), 1.0);
        assert!((r.temperature(100, 100) - 0.01).abs() < 1e-12);
        assert!((r.temperature(500, 100) - 0.01).abs() < 1e-12);
        // γ = 10 decays fast: a fifth of the way, T is already near T_τ.
        assert!(r.temperature(20, 100) < 0.12);
        let t = |s| r.temperature(s, 100);
        assert!((0..100).all(|s| t(s + 1) <= t(s)));
        assert_eq!(Regularizer::ENTROPY.temperature(7, 100), 1.0);
    }

    #[test]
    fn entropy_is_zero_for_one_hot_and_log_k_for_uniform() {
        let one_hot = Tensor::from_slice(&[1f32, 0., 0., 0., 0., 1.]).view([1, 6, 1, 1]);
        assert!(entropy(&one_hot, 2).double_value(&[]).abs() < 1e-6);
        let uniform = Tensor::full([2, 6, 3, 3], 1.0 / 3.0, (Kind::Float, tch::Device::Cpu));
        let expected = 2.0 * 3f64.ln();
        assert!((entropy(&uniform, 2).double_value(&[]) - expected).abs() < 1e-5);
    }

    #[test]
    fn bad_sizes_and_schedules_are_refused() {
        assert!(Usb::new(2, 1).unwrap_err().to_string().contains("at least 2 channels"));
        assert!(Usb::new(0, 5).is_err());
        let bad = Usb::new(1, 4).unwrap().anneal(0.01, 1.0, 10.0);
        assert!(bad.regularizer.validate().unwrap_err().to_string().contains("t_end <= t0"));
    }
}
