//! The one pass behind AUiC and NetDissect: per channel, a histogram of its activations and,
//! per concept, a histogram of its activations on that concept's pixels. Every threshold's
//! intersection and union then comes from cumulative sums (SB paper eq. 22 for all θ at once)
//! instead of one pass over the data per threshold.
//!
//! Binned mode streams: bins are `2^e` wide on a grid aligned to multiples of their width,
//! and a channel whose values leave its range doubles its width (merging bins exactly) until
//! they fit. The layout therefore depends only on the range of all values seen, never on the
//! order of batches: streaming equals one big batch, bin for bin. Exact mode keeps every
//! value, so that every distinct activation is a candidate threshold.

use tch::{Device, Kind, Tensor};

/// Per-channel counts over thresholds: what the alignment scores are computed from.
#[derive(Debug)]
pub struct Counts {
    /// `[B]` candidate thresholds, ascending: index `j` means "positive if in bin `j` or
    /// above", so `j = 0` marks every pixel and `j = B` none.
    pub thresholds: Vec<f64>,
    /// `[B]` pixels per bin.
    pub total: Tensor,
    /// `[C, B]` pixels of each concept per bin.
    pub joint: Tensor,
    /// The smallest and largest activation seen.
    pub range: (f64, f64),
    /// One bin per distinct value (thresholds are the values) rather than fixed bins
    /// (thresholds are the bins' lower edges).
    pub exact: bool,
}

/// Streaming binned histograms of `K` channels against `C` concepts.
#[derive(Debug)]
pub struct Binned {
    bins: i64,
    concepts: i64,
    /// Per channel: log2 of the bin width and the grid origin (a multiple of the width).
    exponent: Vec<i32>,
    origin: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// `[K, B]` and `[K, C, B]` int64 on the device the activations come on.
    total: Option<Tensor>,
    joint: Option<Tensor>,
}

/// The smallest bin width is this fraction of the channel's magnitude, so that a constant
/// channel still gets a layout that depends only on its value.
const RESOLUTION: i32 = 24;

impl Binned {
    pub fn new(bins: i64, concepts: i64) -> Self {
        assert!(bins >= 2, "at least two bins");
        Binned {
            bins,
            concepts,
            exponent: Vec::new(),
            origin: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
            total: None,
            joint: None,
        }
    }

    /// The canonical layout for values in `[lo, hi]`: the smallest power-of-two width (no
    /// finer than magnitude · 2^-24) whose aligned grid of `B` bins covers the range.
    fn layout(&self, lo: f64, hi: f64, at_least: i32) -> (i32, f64) {
        let magnitude = lo.abs().max(hi.abs()).max(1e-30);
        let mut e = (magnitude.log2().ceil() as i32 - RESOLUTION).max(at_least);
        loop {
            let w = 2f64.powi(e);
            let origin = (lo / w).floor() * w;
            if origin + self.bins as f64 * w > hi {
                return (e, origin);
            }
            e += 1;
        }
    }

    /// Adds one batch: `acts` `[K, P]` (any float kind, any device), `labels` `[L, P]` int64
    /// concept indices in `0..C` or `-1`, one row per label map (a pixel has one label per
    /// concept category).
    pub fn add(&mut self, acts: &Tensor, labels: &Tensor) {
        let (k, p) = (acts.size()[0], acts.size()[1]);
        if p == 0 {
            return;
        }
        let device = acts.device();
        let acts = acts.to_kind(Kind::Double);
        let (lo, hi) = (acts.amin(&[1i64][..], false), acts.amax(&[1i64][..], false));
        let (lo, hi) = (
            Vec::<f64>::try_from(lo.to_device(Device::Cpu)).unwrap(),
            Vec::<f64>::try_from(hi.to_device(Device::Cpu)).unwrap(),
        );
        if self.total.is_none() {
            self.total = Some(Tensor::zeros([k, self.bins], (Kind::Int64, device)));
            self.joint = Some(Tensor::zeros([k, self.concepts, self.bins], (Kind::Int64, device)));
            for c in 0..k as usize {
                let (e, o) = self.layout(lo[c], hi[c], i32::MIN);
                self.exponent.push(e);
                self.origin.push(o);
                self.lo.push(lo[c]);
                self.hi.push(hi[c]);
            }
        }
        for c in 0..k as usize {
            self.lo[c] = self.lo[c].min(lo[c]);
            self.hi[c] = self.hi[c].max(hi[c]);
            self.grow(c, self.lo[c], self.hi[c]);
        }
        let origin = Tensor::from_slice(&self.origin).to_device(device).view([k, 1]);
        let width: Vec<f64> = self.exponent.iter().map(|e| 2f64.powi(*e)).collect();
        let width = Tensor::from_slice(&width).to_device(device).view([k, 1]);
        let bins = ((acts - origin) / width).floor().to_kind(Kind::Int64).clamp(0, self.bins - 1);
        let channel = Tensor::arange(k, (Kind::Int64, device)).view([k, 1]);
        let flat = (&channel * self.bins + &bins).view([-1]);
        let total = self.total.as_mut().expect("allocated");
        *total += flat.bincount::<Tensor>(None, k * self.bins).view([k, self.bins]);
        let joint = self.joint.as_mut().expect("allocated");
        for row in 0..labels.size()[0] {
            let map = labels.get(row).to_device(device);
            let labelled = map.ge(0);
            if !bool::try_from(labelled.any()).unwrap_or(false) {
                continue;
            }
            let concept = map.masked_select(&labelled).view([1, -1]);
            let bin = bins.index_select(1, &labelled.nonzero().view([-1]));
            let index = ((&channel * self.concepts + concept) * self.bins + bin).view([-1]);
            *joint += index.bincount::<Tensor>(None, k * self.concepts * self.bins).view([k, self.concepts, self.bins]);
        }
    }

    /// Widens channel `c`'s bins until `[lo, hi]` fits, merging counts exactly.
    fn grow(&mut self, c: usize, lo: f64, hi: f64) {
        let (e, o) = self.layout(lo, hi, self.exponent[c]);
        if e == self.exponent[c] && o == self.origin[c] {
            return;
        }
        let w_old = 2f64.powi(self.exponent[c]);
        let shift = ((self.origin[c] - o) / w_old).round() as i64;
        let merge = e - self.exponent[c];
        let target = (Tensor::arange(self.bins, (Kind::Int64, Device::Cpu)) + shift).floor_divide_scalar(1i64 << merge);
        let target = target.clamp(0, self.bins - 1);
        for t in [self.total.as_mut(), self.joint.as_mut()].into_iter().flatten() {
            let mut row = t.get(c as i64);
            let moved = row.zeros_like().index_add(-1, &target.to_device(row.device()), &row);
            row.copy_(&moved);
        }
        self.exponent[c] = e;
        self.origin[c] = o;
    }

    /// The counts of channel `c`: thresholds at the lower edges of the bins.
    pub fn counts(&self, c: usize) -> Option<Counts> {
        let (total, joint) = (self.total.as_ref()?, self.joint.as_ref()?);
        let w = 2f64.powi(self.exponent[c]);
        Some(Counts {
            thresholds: (0..self.bins).map(|j| self.origin[c] + j as f64 * w).collect(),
            total: total.get(c as i64),
            joint: joint.get(c as i64),
            range: (self.lo[c], self.hi[c]),
            exact: false,
        })
    }

    pub fn channels(&self) -> usize {
        self.exponent.len()
    }
}

/// Every value of every channel, for exact thresholds.
#[derive(Debug, Default)]
pub struct Exact {
    acts: Vec<Tensor>,
    labels: Vec<Tensor>,
    concepts: i64,
}

impl Exact {
    pub fn new(concepts: i64) -> Self {
        Exact { acts: Vec::new(), labels: Vec::new(), concepts }
    }

    /// As [`Binned::add`]; keeps the batch on the CPU.
    pub fn add(&mut self, acts: &Tensor, labels: &Tensor) {
        self.acts.push(acts.to_kind(Kind::Double).to_device(Device::Cpu));
        self.labels.push(labels.to_device(Device::Cpu));
    }

    pub fn channels(&self) -> usize {
        self.acts.first().map_or(0, |a| a.size()[0] as usize)
    }

    /// The counts of channel `c`: one bin per distinct value.
    pub fn counts(&self, c: usize) -> Option<Counts> {
        let values = Tensor::cat(&self.acts.iter().map(|a| a.get(c as i64)).collect::<Vec<_>>(), 0);
        let labels = Tensor::cat(&self.labels, 1);
        let (unique, inverse, _) = values.unique_dim(0, true, true, false);
        let u = unique.size()[0];
        let mut joint = Tensor::zeros([self.concepts, u], (Kind::Int64, Device::Cpu));
        for row in 0..labels.size()[0] {
            let map = labels.get(row);
            let labelled = map.ge(0);
            let index = map.masked_select(&labelled) * u + inverse.masked_select(&labelled);
            joint += index.bincount::<Tensor>(None, self.concepts * u).view([self.concepts, u]);
        }
        let thresholds = Vec::<f64>::try_from(&unique).ok()?;
        let range = (*thresholds.first()?, *thresholds.last()?);
        Some(Counts { thresholds, total: inverse.bincount::<Tensor>(None, u), joint, range, exact: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_equals_one_batch_bin_for_bin() {
        tch::manual_seed(3);
        let acts =
            Tensor::randn([3, 600], (Kind::Float, Device::Cpu)) * Tensor::from_slice(&[1f32, 100., 0.01]).view([3, 1]);
        let labels = Tensor::randint(5, [2, 600], (Kind::Int64, Device::Cpu)) - 1;
        let mut whole = Binned::new(64, 4);
        whole.add(&acts, &labels);
        let mut parts = Binned::new(64, 4);
        for (start, len) in [(0, 10), (10, 290), (300, 300)] {
            parts.add(&acts.narrow(1, start, len), &labels.narrow(1, start, len));
        }
        for c in 0..3 {
            let (a, b) = (whole.counts(c).unwrap(), parts.counts(c).unwrap());
            assert_eq!(a.thresholds, b.thresholds);
            assert!(a.total.equal(&b.total) && a.joint.equal(&b.joint), "channel {c}");
            assert_eq!(a.total.sum(Kind::Int64).int64_value(&[]), 600);
        }
    }
}
