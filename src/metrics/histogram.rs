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
    /// `(C + 1) × B`, concept-major, the last row the unlabelled pixels' (see
    /// [`LabelSlots`]); 32 bits keep a channel's counts in cache while a batch is counted (a
    /// bin of one concept would need 4 billion pixels to overflow).
    joint: Vec<u32>,
}

/// The smallest bin width is this many halvings below the channel's magnitude, so that a
/// constant channel still gets a layout that depends only on its value.
const RESOLUTION: i32 = 24;

/// Bins are counted through 16-bit indices.
pub const MAX_BINS: i64 = 1 << 16;

impl Binned {
    pub fn new(bins: i64, concepts: i64) -> Self {
        assert!((2..=MAX_BINS).contains(&bins), "2 to {MAX_BINS} bins");
        Binned { bins: bins as usize, concepts: concepts as usize, channels: Vec::new() }
    }

    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// Adds one batch: `acts` `[K, P]` (any float kind, any device), `labels` `[L, P]` int64
    /// concept indices in `0..C` or `-1`, one row per label map (a pixel has one label per
    /// concept category).
    pub fn add(&mut self, acts: &Tensor, labels: &Tensor) {
        let (k, p) = (acts.size()[0] as usize, acts.size()[1] as usize);
        if p == 0 || k == 0 {
            return;
        }
        if self.channels.is_empty() {
            self.channels = vec![Channel::EMPTY; k];
        }
        if acts.device() == Device::Cpu {
            self.add_on_cpu(acts, labels);
        } else {
            self.add_on_device(acts, labels);
        }
    }

    /// One read of each channel's values from memory does everything: its range, the layout
    /// that covers it, and its counts; the channels are split over the cores. Each pixel's
    /// labels are first turned into offsets into the concept-major counts (once per batch,
    /// shared by every channel), so that counting a pixel is one sequential read and one
    /// increment per label map.
    fn add_on_cpu(&mut self, acts: &Tensor, labels: &Tensor) {
        let acts = Rows::<f32>::new(acts);
        let rows = acts.rows();
        let slots = LabelSlots::new(labels, self.concepts, self.bins);
        let (bins, concepts) = (self.bins, self.concepts);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = self.channels.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (t, group) in self.channels.chunks_mut(per_thread).enumerate() {
                let (rows, slots) = (&rows, &slots);
                scope.spawn(move || {
                    let mut scratch = vec![0u16; rows[0].len()];
                    for (i, ch) in group.iter_mut().enumerate() {
                        let values = rows[t * per_thread + i];
                        ch.add(values, slots, &mut scratch, bins, concepts);
                    }
                });
            }
        });
    }

    /// The device path: the range by reductions on the device, then `bincount` there.
    fn add_on_device(&mut self, acts: &Tensor, labels: &Tensor) {
        let column = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap();
        let (lo, hi) = (column(acts.amin(&[1i64][..], false)), column(acts.amax(&[1i64][..], false)));
        let (bins, concepts) = (self.bins, self.concepts);
        for (c, ch) in self.channels.iter_mut().enumerate() {
            ch.observe(lo[c], hi[c], bins, concepts);
        }
        self.count_on_device(acts, labels);
    }

    /// Counts with `bincount` on the activations' device.
    fn count_on_device(&mut self, acts: &Tensor, labels: &Tensor) {
        let (k, b, c) = (self.channels.len() as i64, self.bins as i64, self.concepts as i64);
        let device = acts.device();
        let grids: Vec<(f32, f32, f32)> = self.channels.iter().map(|ch| ch.grid(b as usize)).collect();
        let column = |values: Vec<f32>| Tensor::from_slice(&values).to_device(device).view([k, 1]);
        let origin = column(grids.iter().map(|g| g.0).collect());
        let scale = column(grids.iter().map(|g| g.1).collect());
        // The same f32 arithmetic as the CPU loop, so that both paths bin alike.
        let bins =
            ((acts.to_kind(Kind::Float) - origin) * scale).clamp(0.0, (b - 1) as f64).floor().to_kind(Kind::Int64);
        let channel = Tensor::arange(k, (Kind::Int64, device)).view([k, 1]);
        let total = (&channel * b + &bins).view([-1]).bincount::<Tensor>(None, k * b);
        // Rows of C + 1 concepts, the last the unlabelled pixels', as on the CPU.
        let rows = c + 1;
        let mut joint = Tensor::zeros([k * rows * b], (Kind::Int64, device));
        for row in 0..labels.size()[0] {
            let map = labels.get(row).to_device(device);
            let concept = map.masked_fill(&map.lt(0), c).view([1, -1]);
            let index = (&channel * rows + concept) * b + &bins;
            joint += index.view([-1]).bincount::<Tensor>(None, k * rows * b);
        }
        let to_vec = |t: Tensor| Vec::<i64>::try_from(t.to_device(Device::Cpu)).unwrap();
        let (total, joint) = (to_vec(total), to_vec(joint));
        let (b, per_channel) = (b as usize, (rows * b) as usize);
        for (i, ch) in self.channels.iter_mut().enumerate() {
            ch.total.iter_mut().zip(&total[i * b..][..b]).for_each(|(x, n)| *x += *n as u64);
            ch.joint.iter_mut().zip(&joint[i * per_channel..][..per_channel]).for_each(|(x, n)| *x += *n as u32);
        }
    }

    /// The counts of channel `c`: thresholds at the lower edges of the bins.
    pub fn counts(&self, c: usize) -> Option<Counts> {
        let ch = self.channels.get(c)?;
        let w = 2f64.powi(ch.exponent);
        Some(Counts {
            thresholds: (0..self.bins).map(|j| ch.origin + j as f64 * w).collect(),
            total: ch.total.clone(),
            joint: ch
                .joint
                .chunks(self.bins)
                .take(self.concepts)
                .map(|c| c.iter().map(|n| *n as u64).collect())
                .collect(),
            range: (ch.lo, ch.hi),
            exact: false,
        })
    }
}

impl Channel {
    const EMPTY: Channel = Channel {
        exponent: i32::MIN,
        origin: 0.0,
        lo: f64::INFINITY,
        hi: f64::NEG_INFINITY,
        total: Vec::new(),
        joint: Vec::new(),
    };

    /// The grid as [`bin_and_range`] takes it: origin, bins per unit, last bin.
    fn grid(&self, bins: usize) -> (f32, f32, f32) {
        (self.origin as f32, 2f32.powi(-self.exponent.max(-126)), (bins - 1) as f32)
    }

    /// Adds one batch of this channel's `values` (one per pixel). They are binned on the
    /// current grid while their range is taken, and binned again only when the range has
    /// outgrown the grid, so that they are read from memory once.
    fn add(&mut self, values: &[f32], slots: &LabelSlots, scratch: &mut [u16], bins: usize, concepts: usize) {
        let (origin, scale, last) = self.grid(bins);
        let (lo, hi) = bin_and_range(values, scratch, origin, scale, last);
        if self.observe(lo, hi, bins, concepts) {
            let (origin, scale, last) = self.grid(bins);
            bin_and_range(values, scratch, origin, scale, last);
        }
        self.count(slots, scratch, bins);
    }

    /// Widens the range to `[lo, hi]` and the bins until the range fits, merging counts
    /// exactly; whether the grid changed.
    fn observe(&mut self, lo: f64, hi: f64, bins: usize, concepts: usize) -> bool {
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
        let (e, o) = layout(bins, self.lo, self.hi, self.exponent);
        if self.total.is_empty() {
            (self.exponent, self.origin) = (e, o);
            self.total = vec![0; bins];
            self.joint = vec![0; (concepts + 1) * bins];
            return true;
        }
        if e == self.exponent && o == self.origin {
            return false;
        }
        let shift = ((self.origin - o) / 2f64.powi(self.exponent)).round() as usize;
        let merge = (e - self.exponent) as u32;
        let target = |i: usize| ((i + shift) >> merge).min(bins - 1);
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
        self.total = remap(&self.total, bins, target);
        self.joint = self.joint.chunks(bins).flat_map(|c| remap(c, bins, target)).collect();
        (self.exponent, self.origin) = (e, o);
        true
    }

    /// Counts one batch's bins (one per pixel) into the histograms.
    fn count(&mut self, slots: &LabelSlots, scratch: &[u16], bins: usize) {
        // Two interleaved tables, so that runs of equal bins (smooth, upsampled maps) do not
        // wait on each other's stores.
        let mut pair = vec![0u32; 2 * bins];
        let (even, odd) = pair.split_at_mut(bins);
        for two in scratch.chunks(2) {
            even[two[0] as usize] += 1;
            if let Some(&b) = two.get(1) {
                odd[b as usize] += 1;
            }
        }
        for ((t, e), o) in self.total.iter_mut().zip(&*even).zip(&*odd) {
            *t += (*e + *o) as u64;
        }
        for row in &slots.rows {
            for (&slot, &bin) in row.iter().zip(scratch) {
                self.joint[slot as usize + bin as usize] += 1;
            }
        }
    }
}

/// The canonical layout for values in `[lo, hi]` over `bins` bins: the smallest
/// power-of-two width (no finer than magnitude · 2^-24, no finer than `at_least`) whose grid,
/// starting at a multiple of half its span, covers it.
fn layout(bins: usize, lo: f64, hi: f64, at_least: i32) -> (i32, f64) {
    let magnitude = lo.abs().max(hi.abs()).max(1e-30);
    let mut e = (magnitude.log2().ceil() as i32 - RESOLUTION).max(at_least);
    loop {
        let w = 2f64.powi(e);
        // The origin snaps to multiples of half the grid, not of one bin, so that a range
        // creeping downwards moves it (and remaps the counts) rarely.
        let snap = (bins / 2) as f64 * w;
        let origin = (lo / snap).floor() * snap;
        if origin + bins as f64 * w > hi {
            return (e, origin);
        }
        e += 1;
    }
}

/// Bins `values` into `out` on the grid `(origin, scale)` (`(v − origin) · scale`, floored,
/// clamped to `0..=last`), and returns their smallest and largest value, ignoring NaN. One
/// read does both, in eight lanes so that it vectorises.
fn bin_and_range(values: &[f32], out: &mut [u16], origin: f32, scale: f32, last: f32) -> (f64, f64) {
    let (mut lo, mut hi) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8]);
    let bin = |v: f32| ((v - origin) * scale).clamp(0.0, last) as u16;
    let split = values.len() / 8 * 8;
    let (whole, tail) = out[..values.len()].split_at_mut(split);
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder().iter().zip(tail);
    for (chunk, bins) in chunks.zip(whole.chunks_exact_mut(8)) {
        for i in 0..8 {
            lo[i] = if chunk[i] < lo[i] { chunk[i] } else { lo[i] };
            hi[i] = if chunk[i] > hi[i] { chunk[i] } else { hi[i] };
            bins[i] = bin(chunk[i]);
        }
    }
    for (&v, b) in rest {
        lo[0] = if v < lo[0] { v } else { lo[0] };
        hi[0] = if v > hi[0] { v } else { hi[0] };
        *b = bin(v);
    }
    (lo.iter().fold(f32::INFINITY, |m, &v| m.min(v)) as f64, hi.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64)
}

/// A `[R, P]` CPU tensor's rows as slices of `T`, read in place when the tensor already
/// holds `T` with contiguous rows: converting would start libtorch's thread pool, whose
/// spinning workers then compete with the counting threads for the cores.
struct Rows<T> {
    tensor: Tensor,
    stride: usize,
    len: usize,
    element: std::marker::PhantomData<T>,
}

impl<T: tch::kind::Element> Rows<T> {
    fn new(t: &Tensor) -> Self {
        let in_place = t.kind() == T::KIND && t.stride()[1] == 1;
        let tensor = if in_place { t.shallow_clone() } else { t.to_kind(T::KIND).contiguous() };
        let (stride, len) = (tensor.stride()[0] as usize, tensor.size()[1] as usize);
        Rows { tensor, stride, len, element: std::marker::PhantomData }
    }

    fn rows(&self) -> Vec<&[T]> {
        let base = self.tensor.data_ptr() as *const T;
        (0..self.tensor.size()[0] as usize)
            // SAFETY: a CPU tensor of `T` whose rows are contiguous (`stride[1] == 1`) holds
            // row `r`'s `len` values from `r · stride`; the slices borrow `self`, which owns
            // the tensor.
            .map(|r| unsafe { std::slice::from_raw_parts(base.add(r * self.stride), self.len) })
            .collect()
    }
}

/// A batch's labels as offsets into a channel's concept-major counts: `rows[r][p]` is
/// `c · B` for the concept `c` of pixel `p` in label map `r`, or `C · B`, a spare row that
/// takes unlabelled pixels so that the counting loop needs no branch.
struct LabelSlots {
    rows: Vec<Vec<u32>>,
}

impl LabelSlots {
    fn new(labels: &Tensor, concepts: usize, bins: usize) -> Self {
        let labels = Rows::<i64>::new(labels);
        let slot = |c: i64| (if c >= 0 { c as usize } else { concepts } * bins) as u32;
        LabelSlots { rows: labels.rows().iter().map(|row| row.iter().map(|&c| slot(c)).collect()).collect() }
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
        let _serial = crate::models::serial();
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
        let _serial = crate::models::serial();
        tch::manual_seed(4);
        let acts = Tensor::randn([5, 1000], (Kind::Float, Device::Cpu));
        let labels = Tensor::randint(7, [2, 1000], (Kind::Int64, Device::Cpu)) - 1;
        let mut looped = Binned::new(128, 6);
        looped.add(&acts, &labels);
        let mut tensors = Binned::new(128, 6);
        tensors.channels = looped
            .channels
            .iter()
            .map(|c| Channel { total: vec![0; 128], joint: vec![0; 7 * 128], ..c.clone() })
            .collect();
        tensors.count_on_device(&acts, &labels);
        assert_eq!(looped, tensors);
    }
}
