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

/// mIoU of eq. 22 from counts: the mean of the IoU of the marked pixels with the concept
/// (`tp` of `m` marked, `area` of the concept) and of their complements, among the `n` pixels
/// the concept's category labels.
fn miou(tp: f64, m: f64, area: f64, n: f64) -> f64 {
    let positive = tp / (m + area - tp).max(1.0);
    let negative = (n - m - area + tp) / (n - tp).max(1.0);
    (positive + negative) / 2.0
}

/// One concept's mIoU at every threshold index `j` (bins `j..` marked), and the bounds of a
/// threshold inside a bin.
struct Curve<'a> {
    joint: &'a [u64],
    labelled: &'a [u64],
    hits: Vec<f64>,
    marked: Vec<f64>,
    area: f64,
    n: f64,
}

impl<'a> Curve<'a> {
    /// `None` for a concept absent from the data, which cannot be aligned with.
    fn new(counts: &'a Counts, concept: usize) -> Option<Self> {
        let (joint, labelled) = (&counts.joint[concept], &counts.labelled[counts.category[concept]]);
        let (hits, marked) = (suffix(joint), suffix(labelled));
        let (area, n) = (hits[0], marked[0]);
        (area > 0.0).then_some(Curve { joint, labelled, hits, marked, area, n })
    }

    fn at(&self, j: usize) -> f64 {
        miou(self.hits[j], self.marked[j], self.area, self.n)
    }

    fn len(&self) -> usize {
        self.hits.len()
    }

    /// The least and the most mIoU of a threshold inside bin `j`: marking its pixels of
    /// other concepts alone, and its pixels of this concept alone.
    fn inside(&self, j: usize) -> (f64, f64) {
        let (h, others) = (self.joint[j] as f64, (self.labelled[j] - self.joint[j]) as f64);
        let (tp, m) = (self.hits[j + 1], self.marked[j + 1]);
        (miou(tp, m + others, self.area, self.n), miou(tp + h, m + h, self.area, self.n))
    }

    /// The best threshold index and its mIoU.
    fn best(&self) -> (usize, f64) {
        (0..self.len()).fold((0, f64::NEG_INFINITY), |acc, j| if self.at(j) > acc.1 { (j, self.at(j)) } else { acc })
    }
}

/// mIoU_{k,c}(X, θ_j) for every concept and threshold index: `[C][B+1]` (zeros for a concept
/// absent from the data).
pub fn miou_curves(counts: &Counts) -> Vec<Vec<f64>> {
    (0..counts.joint.len())
        .map(|c| match Curve::new(counts, c) {
            Some(curve) => (0..curve.len()).map(|j| curve.at(j)).collect(),
            None => vec![0.0; counts.total.len() + 1],
        })
        .collect()
}

/// The threshold at index `j`: the largest value left unmarked when bins `j..` are marked;
/// below everything for 0.
pub fn threshold(counts: &Counts, j: usize) -> f64 {
    if j == 0 {
        f64::NEG_INFINITY
    } else {
        counts.upper[j - 1]
    }
}

/// c*, the threshold index and mIoU* (eq. 23-24) over the concepts that occur in the data.
fn best(counts: &Counts) -> Option<(usize, usize, f64)> {
    (0..counts.joint.len()).filter_map(|c| Curve::new(counts, c).map(|curve| (c, curve.best()))).fold(
        None,
        |acc: Option<(usize, usize, f64)>, (c, (j, m))| match acc {
            Some(a) if a.2 >= m => Some(a),
            _ => Some((c, j, m)),
        },
    )
}

/// Scores one channel against the concepts that occur in the data.
pub fn score_channel(channel: usize, counts: &Counts) -> ChannelScore {
    let (concept, j, miou) = best(counts).unwrap_or((0, 0, 0.0));
    let psi = psi(counts, concept).map_or(0.0, |p| p.0);
    let (dissect_concept, dissect_iou, dissect_threshold) = dissect(counts);
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

/// Ψ_{k,c} of eq. 26 as a mean, the integral of mIoU_{k,c}(θ) over the channel's observed
/// range divided by its length, with a bound on its error. Between bins the curve is exact;
/// inside a bin it is taken as the mean of its ends, within the bin's bounds
/// ([`Curve::inside`]). Single values have no width, so exact counts give the exact integral. A
/// constant channel has no range and keeps its one score.
pub fn psi(counts: &Counts, concept: usize) -> Option<(f64, f64)> {
    let curve = Curve::new(counts, concept)?;
    let (lo, hi) = counts.range;
    if hi <= lo {
        return Some((curve.best().1, 0.0));
    }
    let (mut sum, mut error) = (0.0, 0.0);
    for j in 0..counts.total.len() {
        let width = counts.upper[j] - counts.lower[j];
        if width > 0.0 {
            let (least, most) = curve.inside(j);
            sum += width * (curve.at(j) + curve.at(j + 1)) / 2.0;
            error += width * (most - least);
        }
        if let Some(next) = counts.lower.get(j + 1) {
            sum += (next - counts.upper[j]) * curve.at(j + 1);
        }
    }
    Some((sum / (hi - lo), error / (hi - lo)))
}

/// The bins whose finer counts could change a score by more than `tolerance`, each with how
/// many times the tolerance its doubt is: those inside
/// which a threshold could beat mIoU* (eq. 23) by more than it, and those whose share of Ψ's
/// error bound (eq. 26) is largest while the bound exceeds it. Single values are never
/// listed. NetDissect's quantile threshold stays at the edge of the bin that holds the
/// quantile.
pub fn uncertain(counts: &Counts, tolerance: f64) -> Vec<(usize, f64)> {
    let splittable = |j: usize| counts.lower[j] < counts.upper[j];
    let mut bins = vec![0.0f64; counts.total.len()];
    let Some((concept, _, best)) = best(counts) else { return Vec::new() };
    for c in 0..counts.joint.len() {
        let Some(curve) = Curve::new(counts, c) else { continue };
        for (j, doubt) in bins.iter_mut().enumerate() {
            if splittable(j) && counts.joint[c][j] > 0 {
                let most = curve.inside(j).1;
                if most > best + tolerance {
                    *doubt = doubt.max((most - best) / tolerance);
                }
            }
        }
    }
    let (lo, hi) = counts.range;
    if let (Some(curve), true) = (Curve::new(counts, concept), hi > lo) {
        let mut shares: Vec<(f64, usize)> = (0..counts.total.len())
            .filter(|&j| splittable(j))
            .map(|j| {
                let (least, most) = curve.inside(j);
                ((counts.upper[j] - counts.lower[j]) * (most - least) / (hi - lo), j)
            })
            .collect();
        let mut error: f64 = shares.iter().map(|s| s.0).sum();
        // Splitting a bin in k shrinks its share about k times where activations spread
        // evenly in it: so every bin split shrinks by the factor the whole bound must.
        let needed = error / (tolerance / 2.0);
        shares.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (share, j) in shares {
            if error <= tolerance / 2.0 {
                break;
            }
            bins[j] = bins[j].max(needed);
            error -= share;
        }
    }
    bins.iter().enumerate().filter(|(_, d)| **d > 0.0).map(|(j, d)| (j, *d)).collect()
}

/// The first threshold index that marks at most [`DISSECT_QUANTILE`] of the pixels.
fn quantile_index(counts: &Counts) -> usize {
    let marked = suffix(&counts.total);
    marked.iter().position(|m| *m <= DISSECT_QUANTILE * marked[0]).unwrap_or(marked.len() - 1)
}

/// NetDissect for one channel: the threshold that marks the top [`DISSECT_QUANTILE`] of its
/// activations, and the concept with the best plain IoU there, among the pixels its category
/// labels.
fn dissect(counts: &Counts) -> (usize, f64, f64) {
    let j = quantile_index(counts);
    let (mut best, mut iou) = (0, 0.0);
    for c in 0..counts.joint.len() {
        let Some(curve) = Curve::new(counts, c) else { continue };
        let (tp, m) = (curve.hits[j], curve.marked[j]);
        let value = tp / (m + curve.area - tp).max(1.0);
        if value > iou {
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
