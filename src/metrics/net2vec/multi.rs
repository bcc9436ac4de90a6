//! Concept segmentation by filter combinations (Net2Vec sec. 3.1.2): per concept, weights
//! `w ∈ R^K` over the binarised activations, a sigmoid (eq. 2), trained with the size-weighted
//! binary cross-entropy of eq. 4 and scored by set IoU (eq. 1) and per-image IoU (eq. 3).
//!
//! Every concept's problem is independent of the others', so all of them are trained at once
//! as one `K × C` weight matrix: the loss is the sum of the concepts' losses, each averaged
//! over the images of the batch that contain its concept (`X_{train,c}`), so each column of
//! the matrix receives exactly the gradient it would alone, and SGD with momentum (an
//! element-wise update) moves it exactly as a one-concept training on the same batches
//! would.

use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

use super::probe::{Probe, ProbeConcept, ProbeSplit};
use super::single::{individual_ious, ratio};
use crate::metrics::MetricError;
use crate::models::{optimize, TrainConfig, TrainReport};

/// Learned concept weights: `[K, C]` (one column per concept) and a bias `[C]`.
#[derive(Debug)]
pub struct Trained {
    pub weights: Tensor,
    pub bias: Tensor,
    pub report: TrainReport,
}

/// Images per batch when scoring.
const BATCH: i64 = 32;

/// `z = Σ_k w_k S(I_k) + b` at annotation size `[B, C, H, W]`, from binarised maps `[B, K, h, w]`.
/// The combination is taken at the layer's resolution and then upsampled: bilinear
/// upsampling is linear (and its weights sum to one), so this equals combining the upsampled
/// indicators of eq. 2 at a fraction of the cost.
pub fn logits(fired: &Tensor, weights: &Tensor, bias: &Tensor, size: (i64, i64)) -> Tensor {
    let z = Tensor::einsum("bkhw,kc->bchw", &[fired.to_kind(Kind::Float), weights.shallow_clone()], None::<i64>);
    let (h, w) = (z.size()[2], z.size()[3]);
    let device = z.device();
    let (rows, columns) = (interpolation(h, size.0, device), interpolation(w, size.1, device));
    rows.matmul(&(z + bias.view([1, -1, 1, 1]))).matmul(&columns.transpose(0, 1))
}

/// `[out, n]`: the weights of bilinear upsampling from `n` to `out` samples along one axis,
/// as libtorch's `upsample_bilinear2d` without corner alignment computes them (source
/// position `(i + ½)·n/out − ½`, clamped at 0). Upsampling a map is then two matrix
/// products, whose gradients are much cheaper than the upsampling's own.
pub fn interpolation(n: i64, out: i64, device: Device) -> Tensor {
    let mut weights = vec![0f32; (out * n) as usize];
    let scale = n as f64 / out as f64;
    for i in 0..out {
        let source = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let lower = (source.floor() as i64).min(n - 1);
        let upper = (lower + 1).min(n - 1);
        let frac = (source - lower as f64) as f32;
        weights[(i * n + lower) as usize] += 1.0 - frac;
        weights[(i * n + upper) as usize] += frac;
    }
    Tensor::from_slice(&weights).view([out, n]).to_device(device)
}

/// How eq. 4 reduces a concept's per-pixel losses within an image. The paper's code sums
/// them (and divides by the batch), so its lr of 1e-4 (sec. 3.1.2) is meant for a loss some
/// H·W times larger than a mean: on Broden's 113×113 masks, about 1.3 of the mean's lr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLoss {
    /// The sum over the image's pixels, as the authors train (`--paper`).
    Sum,
    /// The mean over the image's pixels: a loss whose scale does not depend on the mask size,
    /// so one lr serves every layer (the small-data settings).
    Mean,
}

/// Eq. 4, per concept: the per-pixel binary cross-entropy of `σ(z)` against the targets
/// `[B, C, H, W]` (bool), positives weighted by `α_c` and negatives by `1 − α_c`, reduced over
/// each image's pixels by `pixels` and averaged over the batch's images that contain the concept
/// (`present`, `[B, C]`); `[C]`. Eq. 4 as printed drops the logarithms of the cross-entropy
/// that the text names; they are kept here.
pub fn weighted_bce(z: &Tensor, targets: &Tensor, present: &Tensor, alpha: &Tensor, pixels: PixelLoss) -> Tensor {
    let a = alpha.view([1, -1, 1, 1]);
    // −log σ(z) on the concept's pixels and −log(1 − σ(z)) = −log σ(−z) elsewhere: one
    // softplus of ∓z, cheaper than the general cross-entropy on maps this large.
    let weight = a.where_self(targets, &(1.0 - &a));
    let sign = Tensor::from(-1f32).to_device(z.device()).where_self(targets, &Tensor::from(1f32).to_device(z.device()));
    let pixel = (z * sign).softplus() * weight;
    let per_image = match pixels {
        PixelLoss::Sum => pixel.sum_dim_intlist(&[2i64, 3][..], false, Kind::Float),
        PixelLoss::Mean => pixel.mean_dim(&[2i64, 3][..], false, Kind::Float),
    };
    let present = present.to_kind(Kind::Float);
    (per_image * &present).sum_dim_intlist(0, false, Kind::Float)
        / present.sum_dim_intlist(0, false, Kind::Float).clamp_min(1.0)
}

/// `α_c = 1 − mean_{x ∈ X_train,c} |L_c(x)| / S` (sec. 3.1.2): one minus the concept's mean
/// share of the pixels of the images that show it.
pub fn alphas(split: &ProbeSplit, concepts: &[ProbeConcept]) -> Tensor {
    let device = split.fired.device();
    let c = concepts.len() as i64;
    let (mut area, mut images) =
        (Tensor::zeros([c], (Kind::Double, device)), Tensor::zeros([c], (Kind::Double, device)));
    let n = split.len() as i64;
    for start in (0..n).step_by(BATCH as usize) {
        let index = Tensor::arange_start(start, (start + BATCH).min(n), (Kind::Int64, device));
        let t = split.targets(&index, concepts);
        let share = t.to_kind(Kind::Double).mean_dim(&[2i64, 3][..], false, Kind::Double);
        area += share.sum_dim_intlist(0, false, Kind::Double);
        images += t.any_dim(3, false).any_dim(2, false).sum_dim_intlist(0, false, Kind::Double);
    }
    let share: Tensor = area / images.clamp_min(1.0);
    share.neg().g_add_scalar(1.0).to_kind(Kind::Float)
}

/// Trains the weights of `concepts` on `split` from zero (eq. 2 and 4), as one `K × C`
/// problem. `mask` `[K, C]`, when given, keeps only its filters for each concept (the
/// top-F subsets of sec. 3.2.2); `bias` adds a learned bias to eq. 2; `pixels` reduces eq. 4
/// within an image.
pub fn train(
    split: &ProbeSplit,
    concepts: &[ProbeConcept],
    size: (i64, i64),
    mask: Option<&Tensor>,
    bias: bool,
    pixels: PixelLoss,
    config: &TrainConfig,
) -> Result<Trained, MetricError> {
    let device = split.fired.device();
    let (k, c) = (split.fired.size()[1], concepts.len() as i64);
    let alpha = alphas(split, concepts);
    let vs = VarStore::new(device);
    let weights = vs.root().var("weight", &[k, c], nn::Init::Const(0.0));
    let b = if bias {
        vs.root().var("bias", &[c], nn::Init::Const(0.0))
    } else {
        Tensor::zeros([c], (Kind::Float, device))
    };
    let effective = || match mask {
        Some(m) => &weights * m.to_kind(Kind::Float),
        None => weights.shallow_clone(),
    };
    let presence = split.presence(concepts);
    let step_loss = |batch: &[i64], _step: usize| {
        let index = Tensor::from_slice(batch).to_device(device);
        let z = logits(&split.fired.index_select(0, &index), &effective(), &b, size);
        let (targets, present) = (split.targets(&index, concepts), presence.index_select(0, &index));
        Ok(weighted_bce(&z, &targets, &present, &alpha, pixels).sum(Kind::Float))
    };
    let report = optimize(&vs, split.len(), config, step_loss, |_| {})?;
    Ok(Trained { weights: tch::no_grad(effective).detach(), bias: b.detach(), report })
}

/// The scores of learned weights on a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// `IoU_set(c; M(·; w), s)` (eq. 1) per concept.
    pub set_iou: Vec<f64>,
    /// `IoU_ind(x, c; M)` (eq. 3) for every image of the split that contains the concept,
    /// in split order, per concept.
    pub individual: Vec<Vec<f64>>,
}

impl Scores {
    /// The mean per-image IoU per concept.
    pub fn mean_individual(&self) -> Vec<f64> {
        self.individual.iter().map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64).collect()
    }
}

/// Scores learned weights on the `val` split of `probe`, masks thresholded at `σ(z) > ½`.
pub fn score(probe: &Probe, trained: &Trained) -> Scores {
    let split = &probe.val;
    let device = split.fired.device();
    let c = probe.concepts.len();
    let (mut intersection, mut union) = (vec![0.0; c], vec![0.0; c]);
    let mut individual = vec![Vec::new(); c];
    let n = split.len() as i64;
    for start in (0..n).step_by(BATCH as usize) {
        let index = Tensor::arange_start(start, (start + BATCH).min(n), (Kind::Int64, device));
        let targets = split.targets(&index, &probe.concepts);
        let masks = tch::no_grad(|| {
            logits(&split.fired.index_select(0, &index), &trained.weights, &trained.bias, probe.image_size).gt(0.0)
        });
        let ious = to_rows(&individual_ious(&masks, &targets));
        let present = to_rows(&targets.any_dim(3, false).any_dim(2, false).to_kind(Kind::Double));
        let (i, u) = diagonal_counts(&masks, &targets);
        for (b, row) in ious.iter().enumerate() {
            for concept in 0..c {
                if present[b][concept] > 0.0 {
                    intersection[concept] += i[b][concept];
                    union[concept] += u[b][concept];
                    individual[concept].push(row[concept]);
                }
            }
        }
    }
    let set_iou = intersection.iter().zip(&union).map(|(i, u)| ratio(*i, *u)).collect();
    Scores { set_iou, individual }
}

/// Per image and concept, `|M_c ∩ L_c|` and `|M_c ∪ L_c|` (the diagonal of
/// [`set_counts`](super::single::set_counts) image by image).
fn diagonal_counts(masks: &Tensor, targets: &Tensor) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let sum = |t: Tensor| to_rows(&t.sum_dim_intlist(&[2i64, 3][..], false, Kind::Double));
    (sum(masks.logical_and(targets)), sum(masks.logical_or(targets)))
}

/// A `[R, C]` tensor as rows of doubles.
pub(super) fn to_rows(t: &Tensor) -> Vec<Vec<f64>> {
    let cols = t.size()[1] as usize;
    let flat = Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(Device::Cpu).contiguous().view([-1])).unwrap();
    if cols == 0 {
        return vec![Vec::new(); t.size()[0] as usize];
    }
    flat.chunks(cols).map(<[f64]>::to_vec).collect()
}
