//! Concept segmentation by a single filter (Net2Vec sec. 3.1.1) and the set IoU of eq. 1
//! that scores every segmenter.

use tch::{Device, Kind, Tensor};

use super::probe::{Probe, ProbeSplit};

/// Images per batch when masks are upsampled to the annotations' size.
const BATCH: i64 = 16;

/// `M_k(x) = S(A_k(x) > T_k)` of sec. 3.1.1: the binarised maps `[B, K, h, w]`, thresholded
/// first and then upsampled bilinearly to `(H, W)` (without anchoring at receptive-field
/// centres, modification 2), read as a mask where the interpolant exceeds ½.
pub fn upsample_masks(fired: &Tensor, size: (i64, i64)) -> Tensor {
    fired.to_kind(Kind::Float).upsample_bilinear2d([size.0, size.1], false, None, None).gt(0.5)
}

/// The sums of eq. 1 over a batch: for every mask channel `m` and concept `c`,
/// `Σ_x |M_m(x) ∩ L_c(x)|` and `Σ_x |M_m(x) ∪ L_c(x)|` over the images `x` that contain `c`
/// (`X_{s,c}`), as `[M, C]` doubles. `masks` is `[B, M, H, W]`, `targets` `[B, C, H, W]`, both
/// bool.
pub fn set_counts(masks: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let (b, m, c) = (masks.size()[0], masks.size()[1], targets.size()[1]);
    let masks = masks.to_kind(Kind::Float).view([b, m, -1]);
    let targets = targets.to_kind(Kind::Float).view([b, c, -1]);
    let intersection = masks.bmm(&targets.transpose(1, 2)).sum_dim_intlist(0, false, Kind::Double);
    let present = targets.amax(&[2i64][..], false); // [B, C]: x ∈ X_c
    let marked = masks.sum_dim_intlist(2, false, Kind::Float).transpose(0, 1).matmul(&present); // [M, C]
    let area = targets.sum_dim_intlist(&[0i64, 2][..], false, Kind::Double).view([1, c]);
    let union = marked.to_kind(Kind::Double) + area - &intersection;
    (intersection, union)
}

/// Eq. 1 for one concept: `masks` and `labels` `[N, H, W]` bool (`M(x)` and `L_c(x)`), the
/// intersections over the unions summed over the images that contain the concept; 0 when
/// none does.
pub fn set_iou(masks: &Tensor, labels: &Tensor) -> f64 {
    let (i, u) = set_counts(&masks.unsqueeze(1), &labels.unsqueeze(1));
    ratio(i.double_value(&[0, 0]), u.double_value(&[0, 0]))
}

/// Eq. 3: one image's IoU, `[N, C]` from masks and targets `[N, C, H, W]` (0 where the union is
/// empty).
pub fn individual_ious(masks: &Tensor, targets: &Tensor) -> Tensor {
    let intersection = masks.logical_and(targets).sum_dim_intlist(&[2i64, 3][..], false, Kind::Double);
    let union = masks.logical_or(targets).sum_dim_intlist(&[2i64, 3][..], false, Kind::Double);
    intersection / union.clamp_min(1.0)
}

pub(super) fn ratio(intersection: f64, union: f64) -> f64 {
    if union > 0.0 {
        intersection / union
    } else {
        0.0
    }
}

/// Every filter's set IoU with every concept on both splits, and each concept's best filter.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleFilter {
    /// `IoU_set(c; M_k, train)`, `[C][K]`.
    pub train: Vec<Vec<f64>>,
    /// `IoU_set(c; M_k, val)`, `[C][K]`.
    pub val: Vec<Vec<f64>>,
    /// `k*(c) = argmax_k IoU_set(c; M_k, train)`.
    pub best: Vec<usize>,
}

impl SingleFilter {
    /// `IoU_set(c; M_{k*}, val)`: the reported score of each concept.
    pub fn scores(&self) -> Vec<f64> {
        self.best.iter().zip(&self.val).map(|(k, row)| row[*k]).collect()
    }
}

/// Sec. 3.1.1 on a probe: set IoUs of every filter on both splits, the best filter per concept
/// chosen on train.
pub fn single_filter(probe: &Probe) -> SingleFilter {
    let train = filter_ious(probe, &probe.train);
    let val = filter_ious(probe, &probe.val);
    let best = train.iter().map(|row| argmax(row)).collect();
    SingleFilter { train, val, best }
}

/// `[C][K]` set IoUs of every filter over one split.
fn filter_ious(probe: &Probe, split: &ProbeSplit) -> Vec<Vec<f64>> {
    let (k, c) = (probe.filters() as i64, probe.concepts.len() as i64);
    let device = split.fired.device();
    let mut intersection = Tensor::zeros([k, c], (Kind::Double, device));
    let mut union = Tensor::zeros([k, c], (Kind::Double, device));
    let n = split.len() as i64;
    for start in (0..n).step_by(BATCH as usize) {
        let index = Tensor::arange_start(start, (start + BATCH).min(n), (Kind::Int64, device));
        let masks = upsample_masks(&split.fired.index_select(0, &index), probe.image_size);
        let (i, u) = set_counts(&masks, &split.targets(&index, &probe.concepts));
        intersection += i;
        union += u;
    }
    let iou = (intersection / union.clamp_min(1.0)).transpose(0, 1).contiguous().to_device(Device::Cpu);
    let flat = Vec::<f64>::try_from(iou.view([-1])).unwrap();
    flat.chunks(k as usize).map(<[f64]>::to_vec).collect()
}

/// The index of the largest value (the first of ties).
pub(super) fn argmax(values: &[f64]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, v)| if *v > values[best] { i } else { best })
}
