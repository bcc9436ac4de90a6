//! Concept classification (Net2Vec sec. 3.2): per concept, weights `w ∈ R^K` and a bias over
//! the spatially averaged activations, a sigmoid (eq. 5), trained on batches that draw the
//! images with and without the concept with equal probability, and scored by accuracy on a
//! balanced val set. Filter subsets (sec. 3.2.2) keep the top F filters by `|w_k|` and learn
//! new weights for only those.
//!
//! As for segmentation, every concept is one column of a `K × C` matrix trained at once; each
//! concept draws its own balanced batch at every step.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

use super::multi::Trained;
use super::probe::ProbeSplit;
use crate::metrics::MetricError;
use crate::models::{optimize, TrainConfig};

/// The images of a split with (`positive`) and without each concept, from `[N, C]` presence.
#[derive(Debug, Clone, PartialEq)]
pub struct Sides {
    pub positive: Vec<Vec<i64>>,
    pub negative: Vec<Vec<i64>>,
}

impl Sides {
    pub fn of(presence: &Tensor) -> Sides {
        let rows = super::multi::to_rows(&presence.to_kind(Kind::Double));
        let c = presence.size()[1] as usize;
        let (mut positive, mut negative) = (vec![Vec::new(); c], vec![Vec::new(); c]);
        for (i, row) in rows.iter().enumerate() {
            for (concept, v) in row.iter().enumerate() {
                if *v > 0.0 { &mut positive[concept] } else { &mut negative[concept] }.push(i as i64);
            }
        }
        Sides { positive, negative }
    }
}

/// `b + Σ_k w_k · mean_ij A_ijk(x)` of eq. 5 for features `[.., K]` and weights `[K, C]`.
pub fn logits(means: &Tensor, weights: &Tensor, bias: &Tensor) -> Tensor {
    means.matmul(weights) + bias
}

/// Trains the weights of every concept of `sides` on `split`'s spatial means from zero. Each
/// step draws, per concept, half a batch of images with the concept and half without
/// (uniformly, with replacement, from the seeded generator of `config`); an epoch is as many
/// steps as the split has batches. `mask` `[K, C]` keeps only some filters per concept.
pub fn train(
    split: &ProbeSplit,
    sides: &Sides,
    mask: Option<&Tensor>,
    config: &TrainConfig,
) -> Result<Trained, MetricError> {
    let device = split.means.device();
    let (k, c) = (split.means.size()[1], sides.positive.len() as i64);
    if let Some(empty) = (0..c as usize).find(|&i| sides.positive[i].is_empty() || sides.negative[i].is_empty()) {
        return Err(MetricError::Invalid(format!("concept column {empty} has no positive or no negative image")));
    }
    let vs = VarStore::new(device);
    let weights = vs.root().var("weight", &[k, c], nn::Init::Const(0.0));
    let bias = vs.root().var("bias", &[c], nn::Init::Const(0.0));
    let effective = || match mask {
        Some(m) => &weights * m.to_kind(Kind::Float),
        None => weights.shallow_clone(),
    };
    let half = (config.batch_size / 2).max(1);
    let targets = Tensor::cat(
        &[
            Tensor::ones([half as i64, c], (Kind::Float, device)),
            Tensor::zeros([half as i64, c], (Kind::Float, device)),
        ],
        0,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed.unwrap_or_else(crate::seed::current));
    let step_loss = |_: &[i64], _step: usize| {
        let index = balanced_batch(sides, half, &mut rng).to_device(device); // [2·half, C]
        let features = split.means.index_select(0, &index.view([-1])).view([2 * half as i64, c, k]);
        let z = (features * effective().transpose(0, 1).unsqueeze(0)).sum_dim_intlist(2, false, Kind::Float) + &bias;
        let loss = z.binary_cross_entropy_with_logits::<Tensor>(&targets, None, None, Reduction::None);
        Ok(loss.mean_dim(0, false, Kind::Float).sum(Kind::Float))
    };
    let report = optimize(&vs, split.len(), config, step_loss, |_| {})?;
    Ok(Trained { weights: tch::no_grad(effective).detach(), bias: bias.detach(), report })
}

/// `[2·half, C]` image indices: per concept `half` with it, then `half` without.
fn balanced_batch(sides: &Sides, half: usize, rng: &mut ChaCha8Rng) -> Tensor {
    let c = sides.positive.len();
    let mut index = vec![0i64; 2 * half * c];
    for concept in 0..c {
        for (row, side) in [(0, &sides.positive[concept]), (half, &sides.negative[concept])] {
            for i in 0..half {
                index[(row + i) * c + concept] = side[rng.gen_range(0..side.len())];
            }
        }
    }
    Tensor::from_slice(&index).view([(2 * half) as i64, c as i64])
}

/// Per concept, the accuracy of `σ(z) > ½` on a balanced val set: every image of the rarer
/// side and as many of the other, drawn without replacement with `seed`.
pub fn balanced_accuracy(split: &ProbeSplit, sides: &Sides, trained: &Trained, seed: u64) -> Vec<f64> {
    let z = tch::no_grad(|| logits(&split.means, &trained.weights, &trained.bias)).to_device(Device::Cpu);
    let predicted = super::multi::to_rows(&z.gt(0.0).to_kind(Kind::Double));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..sides.positive.len())
        .map(|concept| {
            let m = sides.positive[concept].len().min(sides.negative[concept].len());
            let mut correct = 0usize;
            for (side, want) in [(&sides.positive[concept], 1.0), (&sides.negative[concept], 0.0)] {
                let mut chosen = side.clone();
                chosen.shuffle(&mut rng);
                correct += chosen[..m].iter().filter(|&&i| predicted[i as usize][concept] == want).count();
            }
            correct as f64 / (2 * m).max(1) as f64
        })
        .collect()
}

/// `[K, C]` bool: per concept, its `f` filters of largest `|w_k|` (sec. 3.2.2).
pub fn top_filters(weights: &Tensor, f: usize) -> Tensor {
    let k = weights.size()[0];
    let f = (f as i64).clamp(1, k);
    let (_, index) = weights.abs().topk(f, 0, true, true);
    weights.zeros_like().to_kind(Kind::Bool).scatter_value(0, &index, 1)
}
