//! The one pass behind AUiC and NetDissect: per channel, a histogram of its activations and,
//! per concept, a histogram of its activations on that concept's pixels. Every threshold's
//! intersection and union then comes from cumulative sums (SB paper eq. 22 for all θ at once)
//! instead of one pass over the data per threshold.
//!
//! Bins live on the activations' *float keys*: the bits of an `f32`, flipped so that their
//! order as integers is the order of the values. Bins are `2^e` keys wide on a grid aligned
//! to multiples of their width, and a channel whose values leave its grid doubles the width
//! (merging bins exactly) until they fit. Because float keys are logarithmic in magnitude and
//! linear within a binade, one outlier or a heavy tail costs the bulk of the values a few bits
//! of resolution, not all of it, as a grid over the values' min-max range would; and the grid
//! depends only on the range of the keys seen, so streaming equals one big batch and shards of
//! a data set ([`Binned::merge`]) equal one pass, bin for bin.
//!
//! Bins bound what they do not resolve: a threshold inside a bin can do no better than
//! marking the bin's concept pixels alone and no worse than marking its other pixels alone.
//! Where those bounds leave doubt about the best threshold or Ψ ([`super::auic::uncertain`]),
//! a [`Plan`] splits the doubtful bins, a further pass over the data counts them at a finer
//! grid ([`Refinement`]), and [`Table::refine`] puts the finer bins in their place, until
//! bins are single values (exact) or the doubt is below the tolerance.
//!
//! Labels follow NetDissect's semantics: every concept belongs to a category, and a pixel
//! counts for a category's concepts only when the category labels it (with one concept or
//! several); unlabelled pixels are neither positives nor negatives. So besides the pixels of
//! each concept, a channel keeps, per category, its pixels that the category does not label.
//! [`Exact`] keeps every value instead, as the independent reference.

use std::ops::Range;

use tch::{Device, Kind, Tensor};

/// A channel whose activations cannot be ordered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("channel {channel} has {what} activations")]
pub struct NonFinite {
    pub channel: usize,
    /// `NaN`, `+inf` or `-inf`.
    pub what: &'static str,
}

/// The concepts a pass aligns with: consecutive indices, grouped by category.
#[derive(Debug, Clone, PartialEq)]
pub struct Concepts {
    /// The concept indices of each category, consecutive and in order.
    ranges: Vec<Range<usize>>,
}

impl Concepts {
    /// Categories by their number of concepts.
    pub fn new(sizes: &[usize]) -> Self {
        let mut start = 0;
        let ranges = sizes
            .iter()
            .map(|n| {
                start += n;
                start - n..start
            })
            .collect();
        Concepts { ranges }
    }

    /// The number of concepts.
    pub fn len(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.end)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn categories(&self) -> usize {
        self.ranges.len()
    }

    /// The category of each concept.
    pub fn category_of(&self) -> Vec<usize> {
        self.ranges.iter().enumerate().flat_map(|(g, r)| r.clone().map(move |_| g)).collect()
    }

    /// Count rows per channel: one per concept, one per category for its unlabelled pixels,
    /// one for the labels of pixels already counted for their category, the totals, and the
    /// rows of the category counted apart ([`Channel::apart`]).
    fn rows(&self) -> usize {
        self.apart_row() + self.ranges.iter().map(|r| r.len() + 1).max().unwrap_or(1)
    }

    fn apart_row(&self) -> usize {
        self.len() + self.categories() + 2
    }

    fn unlabelled_row(&self, g: usize) -> usize {
        self.len() + g
    }

    fn spare_row(&self) -> usize {
        self.len() + self.categories()
    }

    fn total_row(&self) -> usize {
        self.len() + self.categories() + 1
    }
}

/// One batch's labels: `rows` `[L, P]` int64 concept indices (`-1` where none), each row of
/// one category (`categories[r]`). A category's first row carries a concept wherever the
/// category labels the pixel; further rows carry the further concepts of pixels with several.
#[derive(Debug)]
pub struct Labels {
    pub rows: Tensor,
    pub categories: Vec<usize>,
}

impl Labels {
    /// Whether the rows cover `pixels` pixels, one category each, of the categories there are.
    pub fn check(&self, concepts: &Concepts, pixels: i64) -> Result<(), String> {
        let size = self.rows.size();
        if size.len() != 2 || size[0] != self.categories.len() as i64 || size[1] != pixels {
            return Err(format!("labels {size:?} for {} rows of {pixels} pixels", self.categories.len()));
        }
        if let Some(g) = self.categories.iter().find(|g| **g >= concepts.categories()) {
            return Err(format!("a label row of category {g}, and there are {}", concepts.categories()));
        }
        Ok(())
    }

    /// Whether row `r` is the first of its category.
    fn primary(&self, r: usize) -> bool {
        !self.categories[..r].contains(&self.categories[r])
    }
}

/// Bins are counted through 16-bit indices.
pub const MAX_BINS: i64 = 1 << 16;

/// The key of `+inf`: larger keys are NaNs with the sign bit clear.
const KEY_POS_INF: u32 = 0xff80_0000;
/// The key of `-inf`: smaller keys are NaNs with the sign bit set.
const KEY_NEG_INF: u32 = 0x007f_ffff;

/// The order-preserving integer key of a float; `-0.0` and `0.0` share one.
#[inline(always)]
pub fn key(v: f32) -> u32 {
    let bits = (v + 0.0).to_bits();
    bits ^ (((bits as i32 >> 31) as u32) | 0x8000_0000)
}

/// The float of a key.
pub fn value(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7fff_ffff } else { !k })
}

/// Whether keys from `lo` to `hi` are all finite values; which non-finite value, if not.
fn non_finite(lo: u32, hi: u32) -> Option<&'static str> {
    match () {
        _ if hi > KEY_POS_INF || lo < KEY_NEG_INF => Some("NaN"),
        _ if hi == KEY_POS_INF => Some("+inf"),
        _ if lo == KEY_NEG_INF => Some("-inf"),
        _ => None,
    }
}

/// Streaming binned histograms of `K` channels against the concepts (the first pass).
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    bins: usize,
    concepts: Concepts,
    channels: Vec<Channel>,
}

/// One channel's grid and counts.
#[derive(Debug, Clone, PartialEq)]
struct Channel {
    /// log2 of the bin width in keys; the grid origin is a multiple of the width.
    shift: u32,
    origin: u32,
    lo: u32,
    hi: u32,
    /// `B × rows`, bin-major ([`Concepts::rows`]), so that a pixel's counts (one per label
    /// row, all in its bin) and those of pixels with similar activations share cache lines;
    /// 32 bits keep a channel's counts in cache while a batch is counted (a bin would need 4
    /// billion pixels to overflow).
    counts: Vec<u32>,
    /// The category whose only label row labels each pixel once, so that its counts add up to
    /// the totals: it is counted into rows of its own, and its rows and the totals get them
    /// when read ([`Channel::settle`]), which saves a count per pixel.
    apart: Option<usize>,
}

impl Binned {
    pub fn new(bins: i64, concepts: Concepts) -> Self {
        assert!((2..=MAX_BINS).contains(&bins), "2 to {MAX_BINS} bins");
        Binned { bins: bins as usize, concepts, channels: Vec::new() }
    }

    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// Adds one batch: `acts` `[K, P]` (any float kind, any device) and its labels.
    pub fn add(&mut self, acts: &Tensor, labels: &Labels) -> Result<(), NonFinite> {
        let (k, p) = (acts.size()[0] as usize, acts.size()[1] as usize);
        if p == 0 || k == 0 {
            return Ok(());
        }
        if self.channels.is_empty() {
            self.channels = vec![Channel::EMPTY; k];
        }
        assert_eq!(k, self.channels.len(), "every batch has the same channels");
        if acts.device() == Device::Cpu {
            self.add_on_cpu(acts, labels)
        } else {
            self.add_on_device(acts, labels)
        }
    }

    /// Adds the counts of another shard of the same data set: the same as if its batches had
    /// been added here.
    pub fn merge(&mut self, other: &Binned) {
        assert!(self.bins == other.bins && self.concepts == other.concepts, "shards of one alignment");
        if other.channels.is_empty() {
            return;
        }
        if self.channels.is_empty() {
            self.channels = other.channels.clone();
            return;
        }
        let bins = self.bins;
        for (mine, theirs) in self.channels.iter_mut().zip(&other.channels) {
            if theirs.counts.is_empty() {
                continue;
            }
            let mut theirs = theirs.clone();
            theirs.settle(&self.concepts, bins);
            if mine.counts.is_empty() {
                *mine = theirs;
                continue;
            }
            mine.settle(&self.concepts, bins);
            let (lo, hi) = (mine.lo.min(theirs.lo), mine.hi.max(theirs.hi));
            let (shift, origin) = layout(bins, lo, hi, mine.shift.max(theirs.shift));
            mine.regrid(shift, origin, bins);
            theirs.regrid(shift, origin, bins);
            (mine.lo, mine.hi) = (lo, hi);
            mine.counts.iter_mut().zip(&theirs.counts).for_each(|(a, b)| *a += b);
        }
    }

    /// One read of each channel's values from memory does everything: its range, the grid
    /// that covers it, and its counts; the channels are split over the cores. Each pixel's
    /// labels are first turned into offsets into the counts (once per batch, shared by every
    /// channel), so that counting a pixel is one increment per label row.
    fn add_on_cpu(&mut self, acts: &Tensor, labels: &Labels) -> Result<(), NonFinite> {
        let acts = Rows::<f32>::new(acts);
        let rows = acts.rows();
        let slots = LabelSlots::new(labels, &self.concepts);
        let (bins, n_rows, concepts) = (self.bins, self.concepts.rows(), &self.concepts);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = self.channels.len().div_ceil(threads).max(1);
        let failed = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .channels
                .chunks_mut(per_thread)
                .enumerate()
                .map(|(t, group)| {
                    let (rows, slots) = (&rows, &slots);
                    scope.spawn(move || {
                        let mut scratch = vec![0u16; rows[0].len()];
                        for (i, ch) in group.iter_mut().enumerate() {
                            let channel = t * per_thread + i;
                            if let Some(what) = ch.add(rows[channel], slots, &mut scratch, concepts, bins, n_rows) {
                                return Some(NonFinite { channel, what });
                            }
                        }
                        None
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().expect("counting thread")).min_by_key(|e| e.channel)
        });
        failed.map_or(Ok(()), Err)
    }

    /// The device path: keys, ranges and `bincount` on the activations' device.
    fn add_on_device(&mut self, acts: &Tensor, labels: &Labels) -> Result<(), NonFinite> {
        let keys = device_keys(acts);
        let column = |t: Tensor| Vec::<i64>::try_from(t.to_device(Device::Cpu)).unwrap();
        let (lo, hi) = (column(keys.amin(&[1i64][..], false)), column(keys.amax(&[1i64][..], false)));
        for (c, (&lo, &hi)) in lo.iter().zip(&hi).enumerate() {
            if let Some(what) = non_finite(lo as u32, hi as u32) {
                return Err(NonFinite { channel: c, what });
            }
        }
        let (bins, rows) = (self.bins, self.concepts.rows());
        for (c, ch) in self.channels.iter_mut().enumerate() {
            ch.observe(lo[c] as u32, hi[c] as u32, bins, rows);
        }
        self.count_on_device(&keys, labels);
        Ok(())
    }

    /// Counts keys `[K, P]` (int64) with `bincount` on their device, into the same rows as the
    /// CPU loop.
    fn count_on_device(&mut self, keys: &Tensor, labels: &Labels) {
        let (k, b) = (self.channels.len() as i64, self.bins as i64);
        let device = keys.device();
        let column = |values: Vec<i64>| Tensor::from_slice(&values).to_device(device).view([k, 1]);
        let origin = column(self.channels.iter().map(|ch| ch.origin as i64).collect());
        let width = column(self.channels.iter().map(|ch| 1i64 << ch.shift).collect());
        let bins = (keys - origin).clamp_min(0).floor_divide(&width).clamp_max(b - 1);
        let channel = Tensor::arange(k, (Kind::Int64, device)).view([k, 1]);
        let rows = self.concepts.rows() as i64;
        let base = (&channel * b + &bins) * rows;
        let mut counts = (&base + self.concepts.total_row() as i64).view([-1]).bincount::<Tensor>(None, k * rows * b);
        let label_rows = labels.rows.to_device(device);
        for (r, &g) in labels.categories.iter().enumerate() {
            let map = label_rows.get(r as i64);
            let none = if labels.primary(r) { self.concepts.unlabelled_row(g) } else { self.concepts.spare_row() };
            let row = map.masked_fill(&map.lt(0), none as i64).view([1, -1]);
            counts += (&base + row).view([-1]).bincount::<Tensor>(None, k * rows * b);
        }
        let counts = Vec::<i64>::try_from(counts.to_device(Device::Cpu)).unwrap();
        let per_channel = (rows * b) as usize;
        for (i, ch) in self.channels.iter_mut().enumerate() {
            ch.counts.iter_mut().zip(&counts[i * per_channel..][..per_channel]).for_each(|(x, n)| *x += *n as u32);
        }
    }

    /// Each channel's bins that hold pixels.
    pub fn tables(&self) -> Vec<Table> {
        self.channels.iter().map(|ch| ch.table(self.bins, &self.concepts)).collect()
    }

    pub fn concepts(&self) -> &Concepts {
        &self.concepts
    }
}

impl Channel {
    const EMPTY: Channel = Channel { shift: 0, origin: 0, lo: u32::MAX, hi: 0, counts: Vec::new(), apart: None };

    /// Adds one batch of this channel's `values` (one per pixel); which non-finite value it
    /// holds, if any. Values are binned on the current grid while their range is taken, and
    /// binned again only when the range has outgrown the grid, so that they are read from
    /// memory once.
    fn add(
        &mut self,
        values: &[f32],
        slots: &LabelSlots,
        scratch: &mut [u16],
        concepts: &Concepts,
        bins: usize,
        rows: usize,
    ) -> Option<&'static str> {
        let last = (bins - 1) as u32;
        let (lo, hi) = bin_and_range(values, scratch, self.origin, self.shift, last);
        if let Some(what) = non_finite(lo, hi) {
            return Some(what);
        }
        if self.observe(lo, hi, bins, rows) {
            bin_and_range(values, scratch, self.origin, self.shift, last);
        }
        if slots.apart != self.apart {
            self.settle(concepts, bins);
            self.apart = slots.apart;
        }
        self.count(slots, &scratch[..values.len()], rows);
        None
    }

    /// Widens the range to `[lo, hi]` and the bins until the range fits, merging counts
    /// exactly; whether the grid changed.
    fn observe(&mut self, lo: u32, hi: u32, bins: usize, rows: usize) -> bool {
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
        let (shift, origin) = layout(bins, self.lo, self.hi, self.shift);
        if self.counts.is_empty() {
            (self.shift, self.origin) = (shift, origin);
            self.counts = vec![0; rows * bins];
            return true;
        }
        if (shift, origin) == (self.shift, self.origin) {
            return false;
        }
        self.regrid(shift, origin, bins);
        true
    }

    /// Moves the counts to a coarser grid (`shift` at least the current one, `origin` at or
    /// below the current one and aligned to the current width).
    fn regrid(&mut self, shift: u32, origin: u32, bins: usize) {
        let offset = ((self.origin - origin) >> self.shift) as usize;
        let merge = shift - self.shift;
        let rows = self.counts.len() / bins;
        let mut counts = vec![0u32; self.counts.len()];
        for (i, from) in self.counts.chunks(rows).enumerate() {
            let to = ((i + offset) >> merge).min(bins - 1) * rows;
            counts[to..][..rows].iter_mut().zip(from).for_each(|(a, b)| *a += b);
        }
        (self.counts, self.shift, self.origin) = (counts, shift, origin);
    }

    /// Counts one batch's bins (one per pixel): one count per label row, and one for the
    /// totals unless a row that labels each pixel once gives them.
    fn count(&mut self, slots: &LabelSlots, scratch: &[u16], rows: usize) {
        let counts = &mut self.counts[..];
        let at = |bin: u16, row: u32| bin as usize * rows + row as usize;
        match &slots.rows[..] {
            [a, b] => {
                for ((&ra, &rb), &bin) in a.iter().zip(b).zip(scratch) {
                    // SAFETY: a bin is below B and a row below `rows`, and the counts hold
                    // `B · rows`.
                    unsafe {
                        *counts.get_unchecked_mut(at(bin, ra)) += 1;
                        *counts.get_unchecked_mut(at(bin, rb)) += 1;
                    }
                }
            }
            label_rows => {
                for row in label_rows {
                    for (&r, &bin) in row.iter().zip(scratch) {
                        // SAFETY: as above.
                        unsafe { *counts.get_unchecked_mut(at(bin, r)) += 1 };
                    }
                }
            }
        }
        if slots.apart.is_none() {
            for &bin in scratch {
                counts[at(bin, slots.total_row)] += 1;
            }
        }
    }

    /// Adds the rows of the category counted apart to its own rows and to the totals.
    fn settle(&mut self, concepts: &Concepts, bins: usize) {
        let Some(g) = self.apart.take() else { return };
        let rows = self.counts.len() / bins;
        let targets: Vec<usize> = concepts.ranges[g].clone().chain([concepts.unlabelled_row(g)]).collect();
        let (total, apart) = (concepts.total_row(), concepts.apart_row());
        for bin in self.counts.chunks_mut(rows) {
            for (i, &row) in targets.iter().enumerate() {
                let n = std::mem::take(&mut bin[apart + i]);
                bin[row] += n;
                bin[total] += n;
            }
        }
    }

    fn table(&self, bins: usize, concepts: &Concepts) -> Table {
        let mut settled = self.clone();
        settled.settle(concepts, bins);
        settled.settled_table(bins, concepts)
    }

    fn settled_table(&self, bins: usize, concepts: &Concepts) -> Table {
        let (rows, stride) = (concepts.apart_row(), self.counts.len() / bins);
        let kept: Vec<usize> = (0..bins).filter(|&j| self.counts[j * stride + concepts.total_row()] > 0).collect();
        let width = 1u64 << self.shift;
        let keys = kept
            .iter()
            .map(|&j| {
                let start = self.origin as u64 + j as u64 * width;
                ((start as u32).max(self.lo), (start + width - 1).min(self.hi as u64) as u32)
            })
            .collect();
        let counts = (0..rows).map(|r| kept.iter().map(|&j| self.counts[j * stride + r] as u64).collect()).collect();
        Table { keys, counts, range: (self.lo, self.hi), concepts: concepts.clone() }
    }
}

/// The canonical grid for keys in `[lo, hi]` over `bins` bins: the narrowest power-of-two
/// width (at least `2^at_least`) whose grid, starting at a multiple of the width, covers
/// them. Covering is monotone in the width, so the grid of a stream is the grid of its range.
fn layout(bins: usize, lo: u32, hi: u32, at_least: u32) -> (u32, u32) {
    let mut shift = at_least;
    loop {
        let width = 1u64 << shift;
        let origin = lo as u64 / width * width;
        if origin + bins as u64 * width > hi as u64 {
            return (shift, origin as u32);
        }
        shift += 1;
    }
}

/// Bins `values` into `out` on the grid `(origin, shift)` (`(key − origin) >> shift`,
/// clamped to `0..=last`), and returns their smallest and largest key. One read does both,
/// in eight lanes so that it vectorises.
fn bin_and_range(values: &[f32], out: &mut [u16], origin: u32, shift: u32, last: u32) -> (u32, u32) {
    let (mut lo, mut hi) = ([u32::MAX; 8], [0u32; 8]);
    let bin = |k: u32| ((k.saturating_sub(origin) >> shift).min(last)) as u16;
    let split = values.len() / 8 * 8;
    let (whole, tail) = out[..values.len()].split_at_mut(split);
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder().iter().zip(tail);
    for (chunk, bins) in chunks.zip(whole.chunks_exact_mut(8)) {
        for i in 0..8 {
            let k = key(chunk[i]);
            lo[i] = lo[i].min(k);
            hi[i] = hi[i].max(k);
            bins[i] = bin(k);
        }
    }
    for (&v, b) in rest {
        let k = key(v);
        lo[0] = lo[0].min(k);
        hi[0] = hi[0].max(k);
        *b = bin(k);
    }
    (lo.into_iter().min().unwrap_or(u32::MAX), hi.into_iter().max().unwrap_or(0))
}

/// The keys of `[K, P]` activations as int64 on their device.
fn device_keys(acts: &Tensor) -> Tensor {
    let bits = (acts.to_kind(Kind::Float) + 0.0).view_dtype(Kind::Int).to_kind(Kind::Int64);
    let negative = bits.lt(0);
    (&bits + (1i64 << 31)).where_self(&negative.logical_not(), &(-(&bits) - 1))
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

/// A batch's labels as count rows: `rows[r][p]` is the count row of pixel `p`'s label in
/// label row `r` (a concept's, or where an unlabelled pixel goes), so that the counting loop
/// needs no branch.
/// The only row of a category (the smallest such) is counted apart ([`Channel::apart`]).
struct LabelSlots {
    rows: Vec<Vec<u32>>,
    apart: Option<usize>,
    total_row: u32,
}

impl LabelSlots {
    fn new(labels: &Labels, concepts: &Concepts) -> Self {
        let label_rows = Rows::<i64>::new(&labels.rows);
        let per_category = |g: usize| labels.categories.iter().filter(|c| **c == g).count();
        let apart_from = (0..labels.categories.len())
            .filter(|&r| per_category(labels.categories[r]) == 1)
            .min_by_key(|&r| concepts.ranges[labels.categories[r]].len());
        let rows = label_rows
            .rows()
            .iter()
            .enumerate()
            .map(|(r, row)| {
                let g = labels.categories[r];
                let none = if labels.primary(r) { concepts.unlabelled_row(g) } else { concepts.spare_row() };
                let (first, base, unlabelled) = if Some(r) == apart_from {
                    (concepts.ranges[g].start, concepts.apart_row(), concepts.apart_row() + concepts.ranges[g].len())
                } else {
                    (0, 0, none)
                };
                row.iter().map(|&c| if c >= 0 { base + c as usize - first } else { unlabelled } as u32).collect()
            })
            .collect();
        LabelSlots { rows, apart: apart_from.map(|r| labels.categories[r]), total_row: concepts.total_row() as u32 }
    }
}

/// One channel's counts in bins of any width, ascending: what [`Counts`] and [`Plan`] are
/// made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The first and last key each bin may hold, within the range seen.
    keys: Vec<(u32, u32)>,
    /// `[rows][B]`, the rows of [`Concepts::rows`] but those counted apart.
    counts: Vec<Vec<u64>>,
    range: (u32, u32),
    concepts: Concepts,
}

impl Table {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The counts for scoring, in values.
    pub fn counts(&self) -> Counts {
        let total = self.counts[self.concepts.total_row()].clone();
        let labelled = (0..self.concepts.categories())
            .map(|g| total.iter().zip(&self.counts[self.concepts.unlabelled_row(g)]).map(|(t, u)| t - u).collect())
            .collect();
        Counts {
            lower: self.keys.iter().map(|k| value(k.0) as f64).collect(),
            upper: self.keys.iter().map(|k| value(k.1) as f64).collect(),
            total,
            labelled,
            joint: self.counts[..self.concepts.len()].to_vec(),
            category: self.concepts.category_of(),
            range: (value(self.range.0) as f64, value(self.range.1) as f64),
        }
    }

    /// Replaces the bins `plan` split by their finer counts.
    pub fn refine(&self, plan: &ChannelPlan, counted: &[u32]) -> Table {
        let rows = self.concepts.apart_row();
        let mut out = Table { keys: Vec::new(), counts: vec![Vec::new(); rows], ..self.clone() };
        let mut split = plan.splits.iter().peekable();
        for (j, &(first, last)) in self.keys.iter().enumerate() {
            match split.peek() {
                Some(s) if s.bin == j => {
                    for i in 0..s.count {
                        let at = s.offset + i;
                        if counted[at * rows + self.concepts.total_row()] == 0 {
                            continue;
                        }
                        let start = first as u64 + ((i as u64) << s.shift);
                        let end = (start + (1u64 << s.shift) - 1).min(last as u64);
                        out.keys.push((start as u32, end as u32));
                        for (r, row) in out.counts.iter_mut().enumerate() {
                            row.push(counted[at * rows + r] as u64);
                        }
                    }
                    split.next();
                }
                _ => {
                    out.keys.push((first, last));
                    for (r, row) in out.counts.iter_mut().enumerate() {
                        row.push(self.counts[r][j]);
                    }
                }
            }
        }
        out
    }
}

/// Which bins of each channel's [`Table`] the next pass splits, and how finely.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub channels: Vec<ChannelPlan>,
    rows: usize,
}

/// One channel's bins to split, ascending.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelPlan {
    splits: Vec<Split>,
    /// log2 of the key width of the cells of `index`, which cover the splits' keys.
    cell: u32,
    /// `[cells + 1]`: the first split whose last key reaches each cell.
    index: Vec<u32>,
}

/// Cells of a plan's index: about one per finer bin keeps a lookup to a probe or two.
const INDEX_CELLS: u64 = 1 << 12;

#[derive(Debug, Clone, PartialEq)]
struct Split {
    /// The bin's index in the table, its first and last key.
    bin: usize,
    first: u32,
    last: u32,
    /// log2 of the finer width; the number of finer bins; where they start in the counts.
    shift: u32,
    count: usize,
    offset: usize,
}

/// The finer bins of one pass: `2^SPLIT_BITS` per split bin at most, fewer when the channels
/// split many, so that a pass's counts stay within [`SPLIT_COUNTS`] counters (512 MiB).
const SPLIT_BITS: u32 = 7;
const SPLIT_COUNTS: usize = 1 << 27;

impl ChannelPlan {
    /// Splits `doubtful` bins of `table` (ascending indices, each with how many times the
    /// tolerance its doubt is) into `max_bins` finer bins at most: about twice as many as the
    /// doubt needs to fall below the tolerance, if bins mixed evenly, and two at least.
    pub fn new(table: &Table, doubtful: &[(usize, f64)], max_bins: usize) -> Self {
        let splittable: Vec<(usize, f64)> =
            doubtful.iter().copied().filter(|&(j, _)| table.keys[j].0 < table.keys[j].1).collect();
        let budget = (max_bins / splittable.len().max(1)).max(2);
        let most = SPLIT_BITS.min(budget.ilog2());
        let mut offset = 0;
        let splits = splittable
            .into_iter()
            .map(|(j, doubt)| {
                let bits = (doubt.log2().ceil() + 1.0).max(1.0).min(most as f64) as u32;
                let (first, last) = table.keys[j];
                let width = (last - first) as u64 + 1;
                let shift = (64 - (width - 1).leading_zeros()).saturating_sub(bits);
                let count = width.div_ceil(1u64 << shift) as usize;
                offset += count;
                Split { bin: j, first, last, shift, count, offset: offset - count }
            })
            .collect::<Vec<_>>();
        let (Some(start), Some(end)) = (splits.first().map(|s| s.first), splits.last().map(|s| s.last)) else {
            return ChannelPlan::default();
        };
        let span = (end - start) as u64 + 1;
        let cell = 64 - (span.div_ceil(INDEX_CELLS).max(1) - 1).leading_zeros();
        let cells = ((span - 1) >> cell) as usize + 1;
        let index = (0..=cells)
            .map(|c| {
                let at = start as u64 + ((c as u64) << cell);
                splits.partition_point(|s| (s.last as u64) < at) as u32
            })
            .collect();
        ChannelPlan { splits, cell, index }
    }

    pub fn is_empty(&self) -> bool {
        self.splits.is_empty()
    }

    fn sub_bins(&self) -> usize {
        self.splits.last().map_or(0, |s| s.offset + s.count)
    }

    /// The finer bin of a key, if its bin is split: the index narrows the search to the
    /// splits that reach into the key's cell.
    #[inline]
    fn locate(&self, k: u32) -> Option<usize> {
        let cell = ((k - self.splits[0].first) >> self.cell) as usize;
        let (from, to) = (self.index[cell] as usize, self.index[cell + 1] as usize + 1);
        let within = &self.splits[from..to.min(self.splits.len())];
        let s = within.get(within.partition_point(|s| s.last < k))?;
        (k >= s.first).then(|| s.offset + ((k - s.first) >> s.shift) as usize)
    }
}

impl Plan {
    /// Splits each channel's `doubtful` bins (see [`ChannelPlan::new`]), sharing the pass's
    /// counters among the channels that split any.
    pub fn new(tables: &[Table], doubtful: &[Vec<(usize, f64)>], concepts: &Concepts) -> Self {
        let splitting = doubtful.iter().filter(|d| !d.is_empty()).count().max(1);
        let max_bins = SPLIT_COUNTS / concepts.apart_row() / splitting;
        let channels = tables.iter().zip(doubtful).map(|(t, d)| ChannelPlan::new(t, d, max_bins)).collect();
        Plan { channels, rows: concepts.apart_row() }
    }

    /// Whether every channel is certain.
    pub fn is_empty(&self) -> bool {
        self.channels.iter().all(ChannelPlan::is_empty)
    }

    /// The pixels of split bins seen so far in this pass, counted at their finer grid.
    pub fn counter(&self) -> Refinement {
        let counts = self.channels.iter().map(|c| vec![0u32; self.rows * c.sub_bins()]).collect();
        Refinement { counts }
    }
}

/// The counts of a [`Plan`]'s finer bins over one pass; shards of a pass add up.
#[derive(Debug, Clone, PartialEq)]
pub struct Refinement {
    counts: Vec<Vec<u32>>,
}

impl Refinement {
    /// Adds one batch, as [`Binned::add`] (on the CPU, since a refinement counts few pixels).
    pub fn add(&mut self, plan: &Plan, concepts: &Concepts, acts: &Tensor, labels: &Labels) {
        let acts = Rows::<f32>::new(&acts.to_device(Device::Cpu));
        let labels = Labels { rows: labels.rows.to_device(Device::Cpu), categories: labels.categories.clone() };
        let label_rows = Rows::<i64>::new(&labels.rows);
        let label_rows = label_rows.rows();
        let values = acts.rows();
        let none: Vec<usize> =
            (0..labels.categories.len())
                .map(|r| {
                    if labels.primary(r) {
                        concepts.unlabelled_row(labels.categories[r])
                    } else {
                        concepts.spare_row()
                    }
                })
                .collect();
        let total = concepts.total_row();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = self.counts.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (t, group) in self.counts.chunks_mut(per_thread).enumerate() {
                let (values, label_rows, none) = (&values, &label_rows, &none);
                scope.spawn(move || {
                    for (i, counts) in group.iter_mut().enumerate() {
                        let channel = t * per_thread + i;
                        let plan = &plan.channels[channel];
                        if plan.is_empty() {
                            continue;
                        }
                        let rows = counts.len() / plan.sub_bins();
                        let (first, last) = (plan.splits[0].first, plan.splits[plan.splits.len() - 1].last);
                        for (p, &v) in values[channel].iter().enumerate() {
                            let k = key(v);
                            if k < first || k > last {
                                continue;
                            }
                            let Some(at) = plan.locate(k) else { continue };
                            let bin = &mut counts[at * rows..][..rows];
                            bin[total] += 1;
                            for (row, &none) in label_rows.iter().zip(none) {
                                let c = row[p];
                                bin[if c >= 0 { c as usize } else { none }] += 1;
                            }
                        }
                    }
                });
            }
        });
    }

    /// Adds another shard's counts of the same plan.
    pub fn merge(&mut self, other: &Refinement) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }

    /// Replaces each channel's split bins by their finer counts.
    pub fn apply(&self, plan: &Plan, tables: &mut [Table]) {
        for ((table, p), counts) in tables.iter_mut().zip(&plan.channels).zip(&self.counts) {
            if !p.is_empty() {
                *table = table.refine(p, counts);
            }
        }
    }
}

/// One channel's counts over thresholds: what its alignment scores are computed from. Bins
/// are ascending and disjoint; a bin whose `lower` equals its `upper` is one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    /// `[B]` the smallest and largest value each bin may hold.
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// `[B]` pixels per bin.
    pub total: Vec<u64>,
    /// `[G][B]` pixels per bin that category `g` labels.
    pub labelled: Vec<Vec<u64>>,
    /// `[C][B]` pixels of each concept per bin.
    pub joint: Vec<Vec<u64>>,
    /// `[C]` the category of each concept.
    pub category: Vec<usize>,
    /// The smallest and largest activation seen.
    pub range: (f64, f64),
}

/// Every value of every channel, for exact thresholds: the reference the binned counts are
/// checked against, and `exact: true`.
#[derive(Debug)]
pub struct Exact {
    acts: Vec<Tensor>,
    labels: Vec<Labels>,
    concepts: Concepts,
}

impl Exact {
    pub fn new(concepts: Concepts) -> Self {
        Exact { acts: Vec::new(), labels: Vec::new(), concepts }
    }

    /// As [`Binned::add`]; keeps the batch on the CPU.
    pub fn add(&mut self, acts: &Tensor, labels: &Labels) -> Result<(), NonFinite> {
        let acts = acts.to_kind(Kind::Double).to_device(Device::Cpu);
        let finite = Vec::<bool>::try_from(acts.isfinite().all_dim(1, false)).unwrap_or_default();
        if let Some(channel) = finite.iter().position(|f| !f) {
            let row = acts.get(channel as i64);
            let what = match () {
                _ if row.isnan().any().int64_value(&[]) != 0 => "NaN",
                _ if row.isposinf().any().int64_value(&[]) != 0 => "+inf",
                _ => "-inf",
            };
            return Err(NonFinite { channel, what });
        }
        self.acts.push(acts);
        self.labels.push(Labels { rows: labels.rows.to_device(Device::Cpu), categories: labels.categories.clone() });
        Ok(())
    }

    pub fn channels(&self) -> usize {
        self.acts.first().map_or(0, |a| a.size()[0] as usize)
    }

    /// The counts of channel `c`: one bin per distinct value.
    pub fn counts(&self, c: usize) -> Option<Counts> {
        let values = Tensor::cat(&self.acts.iter().map(|a| a.get(c as i64)).collect::<Vec<_>>(), 0);
        let (unique, inverse, _) = values.unique_dim(0, true, true, false);
        let u = unique.size()[0];
        let (n_concepts, n_categories) = (self.concepts.len() as i64, self.concepts.categories());
        let mut joint = Tensor::zeros([n_concepts * u], (Kind::Int64, Device::Cpu));
        let mut labelled: Vec<Tensor> =
            (0..n_categories).map(|_| Tensor::zeros([u], (Kind::Int64, Device::Cpu))).collect();
        let mut start = 0;
        for (acts, labels) in self.acts.iter().zip(&self.labels) {
            let p = acts.size()[1];
            let inverse = inverse.narrow(0, start, p);
            start += p;
            for (r, &g) in labels.categories.iter().enumerate() {
                let map = labels.rows.get(r as i64);
                let on = map.ge(0);
                joint +=
                    (map.masked_select(&on) * u + inverse.masked_select(&on)).bincount::<Tensor>(None, n_concepts * u);
                if labels.primary(r) {
                    labelled[g] += inverse.masked_select(&on).bincount::<Tensor>(None, u);
                }
            }
        }
        let to_u64 = |t: &Tensor| Vec::<i64>::try_from(t).unwrap().into_iter().map(|n| n as u64).collect::<Vec<_>>();
        let values = Vec::<f64>::try_from(&unique).ok()?;
        Some(Counts {
            range: (*values.first()?, *values.last()?),
            lower: values.clone(),
            upper: values,
            total: to_u64(&inverse.bincount::<Tensor>(None, u)),
            labelled: labelled.iter().map(to_u64).collect(),
            joint: to_u64(&joint).chunks(u as usize).map(<[u64]>::to_vec).collect(),
            category: self.concepts.category_of(),
        })
    }
}

#[cfg(test)]
mod tests;
