//! Channel-concept alignment, AUiC and stability (SB paper sec. 4.1, eq. 22-27), and the
//! NetDissect baseline (Bau et al. 2017, as the paper compares it in sec. 5.2), all from the
//! [`Counts`] of one pass.

use tch::{Kind, Tensor};

use super::histogram::Counts;

/// One channel's best concept by mIoU (eq. 22-24), its stability Ψ (eq. 26), and its best
/// concept by NetDissect's IoU at the top-0.5% quantile threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelScore {
    pub channel: usize,
    /// c* (eq. 24), an index into the result's concepts.
    pub concept: usize,
    /// mIoU_{k,c*}(X, θ*) (eq. 22-23).
    pub miou: f64,
    /// θ*_{k,c*} (eq. 23): the channel marks a pixel when its activation is above it.
    pub threshold: f64,
    /// Ψ_{k,c*} (eq. 26): the mean of mIoU_{k,c*}(θ) over the channel's observed range.
    pub psi: f64,
    /// NetDissect: the concept with the best IoU at the quantile threshold, that IoU, and
    /// the threshold.
    pub dissect_concept: usize,
    pub dissect_iou: f64,
    pub dissect_threshold: f64,
}

/// NetDissect's quantile: a channel marks the top 0.5% of its activations.
pub const DISSECT_QUANTILE: f64 = 0.005;

/// NetDissect counts a channel as a detector when its IoU exceeds this.
pub const DISSECT_IOU: f64 = 0.04;

/// `[.., B]` → `[.., B+1]`: entry `j` sums bins `j..B`, the last is 0.
fn suffix(t: &Tensor) -> Tensor {
    let reversed = t.flip([-1]).cumsum(-1, Kind::Double).flip([-1]);
    let mut zero_shape = t.size();
    *zero_shape.last_mut().expect("at least one dimension") = 1;
    Tensor::cat(&[reversed, Tensor::zeros(&zero_shape, (Kind::Double, t.device()))], -1)
}

/// mIoU_{k,c}(X, θ_j) of eq. 22 for every concept and threshold index: `[C, B+1]`. Marked
/// pixels at index `j` are those in bins `j..`; the IoU of the negatives uses the complements.
pub fn miou_curves(counts: &Counts) -> Tensor {
    let (marked, hits, labelled, n) = parts(counts);
    let positive = &hits / (&marked + &labelled - &hits).clamp_min(1.0);
    let negative = (n - &marked - &labelled + &hits) / (n - &hits).clamp_min(1.0);
    (positive + negative) / 2.0
}

/// `|M|` `[1, B+1]`, `|M ∩ L|` `[C, B+1]`, `|L|` `[C, 1]` and the number of pixels.
fn parts(counts: &Counts) -> (Tensor, Tensor, Tensor, f64) {
    let marked = suffix(&counts.total.to_kind(Kind::Double)).unsqueeze(0);
    let hits = suffix(&counts.joint.to_kind(Kind::Double));
    let labelled = counts.joint.to_kind(Kind::Double).sum_dim_intlist(1, true, Kind::Double);
    let n = counts.total.sum(Kind::Double).double_value(&[]);
    (marked, hits, labelled, n)
}

/// The threshold at index `j`: below everything for 0, above everything for `B`.
fn threshold(counts: &Counts, j: usize) -> f64 {
    match (counts.exact, j) {
        (_, j) if j >= counts.thresholds.len() + usize::from(counts.exact) => f64::INFINITY,
        (true, 0) => f64::NEG_INFINITY,
        (true, j) => counts.thresholds[j - 1],
        (false, j) => counts.thresholds[j],
    }
}

/// Scores one channel against the concepts present in the data (`present[c]`).
pub fn score_channel(channel: usize, counts: &Counts, present: &[bool]) -> ChannelScore {
    let curves = miou_curves(counts);
    let absent: Vec<bool> = present.iter().map(|p| !p).collect();
    let absent = Tensor::from_slice(&absent).to_device(curves.device()).view([-1, 1]);
    let curves = curves.masked_fill(&absent, f64::NEG_INFINITY);
    let (best, at) = curves.max_dim(1, false);
    let concept = best.argmax(0, false).int64_value(&[]);
    let j = at.int64_value(&[concept]) as usize;
    let miou = best.double_value(&[concept]);
    let psi = stability(counts, &curves.get(concept), miou);
    let (dissect_concept, dissect_iou, dissect_threshold) = dissect(counts, present);
    ChannelScore {
        channel,
        concept: concept as usize,
        miou,
        threshold: threshold(counts, j),
        psi,
        dissect_concept,
        dissect_iou,
        dissect_threshold,
    }
}

/// Ψ of eq. 26 as a mean: the integral of mIoU_{k,c*}(θ) over the channel's observed range
/// divided by its length. Exact counts integrate the step function between distinct values;
/// binned ones average the bin edges inside the range. A constant channel has no range and
/// keeps its one score.
fn stability(counts: &Counts, curve: &Tensor, best: f64) -> f64 {
    let values = Vec::<f64>::try_from(curve.to_device(tch::Device::Cpu)).unwrap_or_default();
    let (lo, hi) = counts.range;
    let weights: Vec<f64> = if counts.exact {
        let t = &counts.thresholds;
        (0..values.len()).map(|j| if j >= 1 && j < t.len() { t[j] - t[j - 1] } else { 0.0 }).collect()
    } else {
        (0..values.len())
            .map(|j| {
                if j < counts.thresholds.len() && counts.thresholds[j] > lo && counts.thresholds[j] < hi {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    };
    let total: f64 = weights.iter().sum();
    if total <= 0.0 || hi <= lo {
        return best;
    }
    values.iter().zip(&weights).map(|(v, w)| v * w).sum::<f64>() / total
}

/// NetDissect for one channel: the threshold that marks the top [`DISSECT_QUANTILE`] of its
/// activations, and the concept with the best plain IoU there.
fn dissect(counts: &Counts, present: &[bool]) -> (usize, f64, f64) {
    let (marked, hits, labelled, n) = parts(counts);
    let marked = Vec::<f64>::try_from(marked.view([-1]).to_device(tch::Device::Cpu)).unwrap_or_default();
    let j = marked.iter().position(|m| *m <= DISSECT_QUANTILE * n).unwrap_or(marked.len() - 1);
    let iou = hits.select(1, j as i64) / (marked[j] + labelled.view([-1]) - hits.select(1, j as i64)).clamp_min(1.0);
    let absent: Vec<bool> = present.iter().map(|p| !p).collect();
    let iou = iou.masked_fill(&Tensor::from_slice(&absent).to_device(iou.device()), -1.0);
    let c = iou.argmax(0, false).int64_value(&[]);
    (c as usize, iou.double_value(&[c]).max(0.0), threshold(counts, j))
}

/// AUiC of eq. 25 in closed form: `2/K Σ_k max(0, mIoU*_k − ½)`.
pub fn auic(mious: &[f64]) -> f64 {
    if mious.is_empty() {
        return 0.0;
    }
    2.0 / mious.len() as f64 * mious.iter().map(|m| (m - 0.5).max(0.0)).sum::<f64>()
}

/// The inspectability curve: for each ξ, the fraction of channels with mIoU ≥ ξ.
pub fn curve(mious: &[f64], xis: &[f64]) -> Vec<f64> {
    xis.iter().map(|xi| mious.iter().filter(|m| *m >= xi).count() as f64 / mious.len().max(1) as f64).collect()
}
