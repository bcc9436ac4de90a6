//! Channel-concept alignment, AUiC and stability (SB paper sec. 4.1, eq. 22-27), and the
//! NetDissect baseline (Bau et al. 2017, as the paper compares it in sec. 5.2), all from the
//! [`Counts`] of one pass.

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

/// `[B]` → `[B+1]`: entry `j` sums bins `j..B`, the last is 0.
fn suffix(counts: &[u64]) -> Vec<f64> {
    let mut out = vec![0.0; counts.len() + 1];
    for j in (0..counts.len()).rev() {
        out[j] = out[j + 1] + counts[j] as f64;
    }
    out
}

/// What eq. 22 needs of one channel: marked pixels `|M|` per threshold index and the number
/// of pixels.
struct Marked {
    marked: Vec<f64>,
    n: f64,
}

impl Marked {
    fn new(counts: &Counts) -> Self {
        let marked = suffix(&counts.total);
        Marked { n: marked[0], marked }
    }

    /// mIoU_{k,c}(X, θ_j) of eq. 22 for one concept at every threshold index: the mean of
    /// the IoU of the marked pixels with the concept and of their complements.
    fn miou_curve(&self, joint: &[u64]) -> Vec<f64> {
        let hits = suffix(joint);
        let area = hits[0];
        self.marked
            .iter()
            .zip(&hits)
            .map(|(&m, &tp)| {
                let positive = tp / (m + area - tp).max(1.0);
                let negative = (self.n - m - area + tp) / (self.n - tp).max(1.0);
                (positive + negative) / 2.0
            })
            .collect()
    }
}

/// mIoU_{k,c}(X, θ_j) for every concept and threshold index: `[C][B+1]`.
pub fn miou_curves(counts: &Counts) -> Vec<Vec<f64>> {
    let marked = Marked::new(counts);
    counts.joint.iter().map(|joint| marked.miou_curve(joint)).collect()
}

/// The threshold at index `j`: below everything for 0, above everything at the end.
fn threshold(counts: &Counts, j: usize) -> f64 {
    match (counts.exact, j) {
        (_, j) if j >= counts.thresholds.len() + usize::from(counts.exact) => f64::INFINITY,
        (true, 0) => f64::NEG_INFINITY,
        (true, j) => counts.thresholds[j - 1],
        (false, j) => counts.thresholds[j],
    }
}

/// Scores one channel against the concepts that occur in the data.
pub fn score_channel(channel: usize, counts: &Counts) -> ChannelScore {
    let marked = Marked::new(counts);
    let (mut concept, mut j, mut miou) = (0, 0, f64::NEG_INFINITY);
    for (c, joint) in counts.joint.iter().enumerate() {
        if joint.iter().all(|n| *n == 0) {
            continue; // a concept absent from the data cannot be aligned with
        }
        let curve = marked.miou_curve(joint);
        let (at, best) =
            curve.iter().enumerate().fold((0, f64::NEG_INFINITY), |acc, (i, v)| if *v > acc.1 { (i, *v) } else { acc });
        if best > miou {
            (concept, j, miou) = (c, at, best);
        }
    }
    let psi = if miou.is_finite() { stability(counts, &marked.miou_curve(&counts.joint[concept]), miou) } else { 0.0 };
    let (dissect_concept, dissect_iou, dissect_threshold) = dissect(counts, &marked);
    ChannelScore {
        channel,
        concept,
        miou: miou.max(0.0),
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
fn stability(counts: &Counts, curve: &[f64], best: f64) -> f64 {
    let (lo, hi) = counts.range;
    let t = &counts.thresholds;
    let weight = |j: usize| -> f64 {
        match counts.exact {
            true if j >= 1 && j < t.len() => t[j] - t[j - 1],
            false if j < t.len() && t[j] > lo && t[j] < hi => 1.0,
            _ => 0.0,
        }
    };
    let total: f64 = (0..curve.len()).map(weight).sum();
    if total <= 0.0 || hi <= lo {
        return best;
    }
    curve.iter().enumerate().map(|(j, v)| v * weight(j)).sum::<f64>() / total
}

/// NetDissect for one channel: the threshold that marks the top [`DISSECT_QUANTILE`] of its
/// activations, and the concept with the best plain IoU there.
fn dissect(counts: &Counts, marked: &Marked) -> (usize, f64, f64) {
    let j = marked.marked.iter().position(|m| *m <= DISSECT_QUANTILE * marked.n).unwrap_or(marked.marked.len() - 1);
    let m = marked.marked[j];
    let (mut best, mut iou) = (0, 0.0);
    for (c, joint) in counts.joint.iter().enumerate() {
        let tp: f64 = joint[j.min(joint.len())..].iter().sum::<u64>() as f64;
        let area: f64 = joint.iter().sum::<u64>() as f64;
        let value = tp / (m + area - tp).max(1.0);
        if area > 0.0 && value > iou {
            (best, iou) = (c, value);
        }
    }
    (best, iou, threshold(counts, j))
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
