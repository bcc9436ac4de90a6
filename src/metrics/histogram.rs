//! The one pass behind AUiC and NetDissect: per channel, a histogram of its activations and,
//! per concept, a histogram of its activations on that concept's pixels. Every threshold's
//! intersection and union then comes from cumulative sums (SB paper eq. 22 for all θ at once)
//! instead of one pass over the data per threshold.
//!
//! Binned mode streams: bins are `2^e` wide on a grid aligned to multiples of their width,
//! and a channel whose values leave its range doubles its width (merging bins exactly) until
//! they fit. The layout therefore depends only on the range of all values seen, never on the
//! order of batches: streaming equals one big batch, bin for bin. On the CPU the counting is
//! a plain loop over each channel's values, one thread per core; on a GPU it is `bincount`
//! on the device. Exact mode keeps every value, so that every distinct activation is a
//! candidate threshold.

use tch::{Device, Kind, Tensor};

/// One channel's counts over thresholds: what its alignment scores are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    /// `[B]` thresholds, ascending (see [`Counts::exact`]).
    pub thresholds: Vec<f64>,
    /// `[B]` pixels per bin.
    pub total: Vec<u64>,
    /// `[C][B]` pixels of each concept per bin.
    pub joint: Vec<Vec<u64>>,
    /// The smallest and largest activation seen.
    pub range: (f64, f64),
    /// One bin per distinct value, thresholds being the values (index `j` marks values above
    /// `thresholds[j-1]`), rather than fixed bins whose thresholds are their lower edges
    /// (index `j` marks bins `j..`).
    pub exact: bool,
}

/// Streaming binned histograms of `K` channels against `C` concepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    bins: usize,
    concepts: usize,
    channels: Vec<Channel>,
}

/// One channel's layout and counts.
#[derive(Debug, Clone, PartialEq)]
struct Channel {
    /// log2 of the bin width; the grid origin is a multiple of the width.
    exponent: i32,
    origin: f64,
    lo: f64,
    hi: f64,
    total: Vec<u64>,
    /// `C × B`, concept-major; 32 bits keep a channel's counts in cache while a batch is
    /// counted (a bin of one concept would need 4 billion pixels to overflow).
    joint: Vec<u32>,
}

/// The smallest bin width is this many halvings below the channel's magnitude, so that a
/// constant channel still gets a layout that depends only on its value.
const RESOLUTION: i32 = 24;

impl Binned {
    pub fn new(bins: i64, concepts: i64) -> Self {
        assert!(bins >= 2, "at least two bins");
        Binned { bins: bins as usize, concepts: concepts as usize, channels: Vec::new() }
    }

    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// The canonical layout for values in `[lo, hi]`: the smallest power-of-two width (no
    /// finer than magnitude · 2^-24, no finer than `at_least`) whose grid, starting at a
    /// multiple of half its span, covers it.
    fn layout(&self, lo: f64, hi: f64, at_least: i32) -> (i32, f64) {
        let magnitude = lo.abs().max(hi.abs()).max(1e-30);
        let mut e = (magnitude.log2().ceil() as i32 - RESOLUTION).max(at_least);
        loop {
            let w = 2f64.powi(e);
            // The origin snaps to multiples of half the grid, not of one bin, so that a
            // range creeping downwards moves it (and remaps the counts) rarely.
            let snap = (self.bins / 2) as f64 * w;
            let origin = (lo / snap).floor() * snap;
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
        let (k, p) = (acts.size()[0] as usize, acts.size()[1] as usize);
        if p == 0 {
            return;
        }
        let on_cpu = acts.device() == Device::Cpu;
        let acts = if on_cpu { acts.to_kind(Kind::Float).contiguous() } else { acts.shallow_clone() };
        let (lo, hi) = if on_cpu {
            let values = cpu_values(&acts);
            values
                .chunks(p)
                .map(|v| {
                    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &a| (l.min(a as f64), h.max(a as f64)))
                })
                .unzip()
        } else {
            let column = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap();
            (column(acts.amin(&[1i64][..], false)), column(acts.amax(&[1i64][..], false)))
        };
        if self.channels.is_empty() {
            let empty = || Channel {
                exponent: i32::MIN,
                origin: 0.0,
                lo: f64::INFINITY,
                hi: f64::NEG_INFINITY,
                total: Vec::new(),
                joint: Vec::new(),
            };
            self.channels = (0..k).map(|_| empty()).collect();
        }
        for (c, ch) in self.channels.iter_mut().enumerate() {
            ch.lo = ch.lo.min(lo[c]);
            ch.hi = ch.hi.max(hi[c]);
        }
        for c in 0..k {
            self.grow(c);
        }
        if on_cpu {
            self.count_on_cpu(cpu_values(&acts), labels, p);
        } else {
            self.count_on_device(&acts, labels);
        }
    }

    /// Widens channel `c`'s bins until its range fits, merging counts exactly.
    fn grow(&mut self, c: usize) {
        let (b, concepts) = (self.bins, self.concepts);
        let ch = &self.channels[c];
        let (e, o) = self.layout(ch.lo, ch.hi, ch.exponent);
        let ch = &mut self.channels[c];
        if ch.total.is_empty() {
            *ch = Channel { exponent: e, origin: o, total: vec![0; b], joint: vec![0; concepts * b], ..ch.clone() };
            return;
        }
        if e == ch.exponent && o == ch.origin {
            return;
        }
        let shift = ((ch.origin - o) / 2f64.powi(ch.exponent)).round() as usize;
        let merge = (e - ch.exponent) as u32;
        let target = |i: usize| ((i + shift) >> merge).min(b - 1);
        fn remap<T: Copy + Default + std::ops::AddAssign>(
            counts: &[T],
            b: usize,
            target: impl Fn(usize) -> usize,
        ) -> Vec<T> {
            let mut out = vec![T::default(); b];
            for (i, n) in counts.iter().enumerate() {
                out[target(i)] += *n;
            }
            out
        }
        ch.total = remap(&ch.total, b, target);
        ch.joint = ch.joint.chunks(b).flat_map(|c| remap(c, b, target)).collect();
        ch.exponent = e;
        ch.origin = o;
    }

    /// Counts with a loop per channel, the channels split over the cores. The pixels are
    /// first grouped by concept (once per batch, shared by every channel), so that each
    /// channel adds up one concept's histogram at a time: the counts being written stay in
    /// the core's first-level cache.
    fn count_on_cpu(&mut self, acts: &[f32], labels: &Tensor, p: usize) {
        let labels = to_vec::<i32>(&labels.to_kind(Kind::Int));
        let mut by_concept: Vec<Vec<u32>> = vec![Vec::new(); self.concepts];
        for row in labels.chunks(p) {
            for (pixel, &concept) in row.iter().enumerate() {
                if concept >= 0 {
                    by_concept[concept as usize].push(pixel as u32);
                }
            }
        }
        let b = self.bins;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = self.channels.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (t, group) in self.channels.chunks_mut(per_thread).enumerate() {
                let by_concept = &by_concept;
                scope.spawn(move || {
                    let mut bins = vec![0u32; p];
                    for (i, ch) in group.iter_mut().enumerate() {
                        let values = &acts[(t * per_thread + i) * p..][..p];
                        let (origin, scale, last) = (ch.origin, 2f64.powi(-ch.exponent), (b - 1) as f64);
                        for (bin, &a) in bins.iter_mut().zip(values) {
                            *bin = ((a as f64 - origin) * scale).min(last) as u32;
                        }
                        for &bin in &bins {
                            ch.total[bin as usize] += 1;
                        }
                        for (counts, pixels) in ch.joint.chunks_mut(b).zip(by_concept) {
                            for &pixel in pixels {
                                counts[bins[pixel as usize] as usize] += 1;
                            }
                        }
                    }
                });
            }
        });
    }

    /// Counts with `bincount` on the activations' device.
    fn count_on_device(&mut self, acts: &Tensor, labels: &Tensor) {
        let (k, b, c) = (self.channels.len() as i64, self.bins as i64, self.concepts as i64);
        let device = acts.device();
        let column = |f: fn(&Channel) -> f64| {
            Tensor::from_slice(&self.channels.iter().map(f).collect::<Vec<_>>()).to_device(device).view([k, 1])
        };
        let (origin, scale) = (column(|ch| ch.origin), column(|ch| 2f64.powi(-ch.exponent)));
        let bins = ((acts.to_kind(Kind::Double) - origin) * scale).floor().to_kind(Kind::Int64).clamp(0, b - 1);
        let channel = Tensor::arange(k, (Kind::Int64, device)).view([k, 1]);
        let total = (&channel * b + &bins).view([-1]).bincount::<Tensor>(None, k * b);
        let mut joint = Tensor::zeros([k * c * b], (Kind::Int64, device));
        for row in 0..labels.size()[0] {
            let map = labels.get(row).to_device(device);
            let labelled = map.ge(0).nonzero().view([-1]);
            let concept = map.index_select(0, &labelled).view([1, -1]);
            let index = (&channel * c + concept) * b + bins.index_select(1, &labelled);
            joint += index.view([-1]).bincount::<Tensor>(None, k * c * b);
        }
        let to_vec = |t: Tensor| Vec::<i64>::try_from(t.to_device(Device::Cpu)).unwrap();
        let (total, joint) = (to_vec(total), to_vec(joint));
        for (i, ch) in self.channels.iter_mut().enumerate() {
            let (b, c) = (b as usize, c as usize);
            ch.total.iter_mut().zip(&total[i * b..]).for_each(|(x, n)| *x += *n as u64);
            ch.joint.iter_mut().zip(&joint[i * c * b..]).for_each(|(x, n)| *x += *n as u32);
        }
    }

    /// The counts of channel `c`: thresholds at the lower edges of the bins.
    pub fn counts(&self, c: usize) -> Option<Counts> {
        let ch = self.channels.get(c)?;
        let w = 2f64.powi(ch.exponent);
        Some(Counts {
            thresholds: (0..self.bins).map(|j| ch.origin + j as f64 * w).collect(),
            total: ch.total.clone(),
            joint: ch.joint.chunks(self.bins).map(|c| c.iter().map(|n| *n as u64).collect()).collect(),
            range: (ch.lo, ch.hi),
            exact: false,
        })
    }
}

/// The elements of a contiguous CPU float tensor, without copying them.
fn cpu_values(t: &Tensor) -> &[f32] {
    assert!(t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous());
    // SAFETY: the tensor is a contiguous CPU f32 buffer of `numel` elements, and the slice
    // borrows the tensor, so the buffer outlives it.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

/// A CPU tensor's elements by one memory copy (`Vec::try_from` goes element by element).
fn to_vec<T: tch::kind::Element + Default + Clone>(t: &Tensor) -> Vec<T> {
    let t = t.contiguous();
    let n = t.numel();
    let mut out = vec![T::default(); n];
    t.copy_data(&mut out, n);
    out
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
        let mut joint = Tensor::zeros([self.concepts * u], (Kind::Int64, Device::Cpu));
        for row in 0..labels.size()[0] {
            let map = labels.get(row);
            let labelled = map.ge(0);
            let index = map.masked_select(&labelled) * u + inverse.masked_select(&labelled);
            joint += index.bincount::<Tensor>(None, self.concepts * u);
        }
        let thresholds = Vec::<f64>::try_from(&unique).ok()?;
        let range = (*thresholds.first()?, *thresholds.last()?);
        let to_u64 = |t: &Tensor| Vec::<i64>::try_from(t).unwrap().into_iter().map(|n| n as u64).collect::<Vec<_>>();
        let joint = to_u64(&joint).chunks(u as usize).map(<[u64]>::to_vec).collect();
        Some(Counts { thresholds, total: to_u64(&inverse.bincount::<Tensor>(None, u)), joint, range, exact: true })
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
        assert_eq!(whole, parts);
        assert_eq!(whole.counts(0).unwrap().total.iter().sum::<u64>(), 600);
    }

    /// The device path (bincount) counts what the CPU loop counts; on a machine without a GPU
    /// it runs on the CPU through the same tensor code.
    #[test]
    fn the_tensor_path_counts_like_the_loop() {
        tch::manual_seed(4);
        let acts = Tensor::randn([5, 1000], (Kind::Float, Device::Cpu));
        let labels = Tensor::randint(7, [2, 1000], (Kind::Int64, Device::Cpu)) - 1;
        let mut looped = Binned::new(128, 6);
        looped.add(&acts, &labels);
        let mut tensors = Binned::new(128, 6);
        tensors.channels = looped
            .channels
            .iter()
            .map(|c| Channel { total: vec![0; 128], joint: vec![0; 6 * 128], ..c.clone() })
            .collect();
        tensors.count_on_device(&acts, &labels);
        assert_eq!(looped, tensors);
    }
}
