//! `glassbox bench auic`: the one-pass alignment against a straightforward implementation
//! that passes over the data once per threshold, on the same activations in the same run,
//! with NetDissect's pass and one plain read of the activations (the memory-bandwidth floor)
//! beside them.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::auic::{self, score_channel};
use super::histogram::{Binned, Concepts, Labels, Plan};

/// The sizes of a run.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub channels: i64,
    pub pixels: i64,
    pub concepts: i64,
    pub thresholds: i64,
    pub batches: i64,
}

impl Default for Size {
    /// 32 channels over 100 images of 64×64 against 40 concepts in two label maps.
    fn default() -> Self {
        Size { channels: 32, pixels: 100 * 64 * 64, concepts: 40, thresholds: 100, batches: 10 }
    }
}

/// Seconds of each way, on the same data.
#[derive(Debug, Clone)]
pub struct Timing {
    pub plain_read: f64,
    /// One count per activation into one histogram per channel, on every core: the least any
    /// histogram method does, before concepts.
    pub bare_histogram: f64,
    pub one_pass: f64,
    /// The passes that split doubtful bins until every score is within the tolerance.
    pub certifying: f64,
    pub passes: usize,
    pub per_threshold: f64,
    pub netdissect: f64,
    pub auic: f64,
    pub auic_certified: f64,
    pub auic_per_threshold: f64,
}

/// The tolerance the bench certifies to: the library's default.
fn tolerance() -> f64 {
    super::InspectConfig::default().tolerance
}

fn seconds(f: impl FnOnce()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64()
}

/// Runs every way once on random activations with structure (each channel follows one
/// concept plus noise), on `device`.
pub fn run(size: Size, device: Device) -> Timing {
    tch::manual_seed(0);
    let Size { channels: k, pixels: p, concepts: c, thresholds: t, batches } = size;
    // An object-like map labelling every pixel, and a part-like one labelling about half.
    let parts = Tensor::randint(2 * (c - c / 2), [p], (Kind::Int64, device)) + c / 2;
    let parts = parts.masked_fill(&parts.ge(c), -1);
    let labels = Tensor::stack(&[Tensor::randint(c / 2, [p], (Kind::Int64, device)), parts], 0);
    let follows = Tensor::arange(k, (Kind::Int64, device)).remainder(c / 2).view([k, 1]);
    let acts = (labels.get(0).view([1, p]).eq_tensor(&follows).to_kind(Kind::Float)
        + Tensor::randn([k, p], (Kind::Float, device)) * 0.7)
        .contiguous();
    let mut sink = 0.0;
    let plain_read = seconds(|| sink += acts.sum(Kind::Float).double_value(&[]));
    let bare_histogram = seconds(|| sink += bare_histogram(&acts) as f64);
    let concepts = Concepts::new(&[(c / 2) as usize, (c - c / 2) as usize]);
    let chunk = (p + batches - 1) / batches;
    let batch = |start: i64| {
        let len = chunk.min(p - start);
        (acts.narrow(1, start, len), Labels { rows: labels.narrow(1, start, len), categories: vec![0, 1] })
    };
    let mut scores = Vec::new();
    let mut tables = Vec::new();
    let one_pass = seconds(|| {
        let mut binned = Binned::new(1024, concepts.clone());
        for start in (0..p).step_by(chunk as usize) {
            let (a, l) = batch(start);
            binned.add(&a, &l).expect("finite");
        }
        tables = binned.tables();
        scores = tables.iter().enumerate().map(|(ch, t)| score_channel(ch, &t.counts()).miou).collect();
    });
    let mut passes = 1;
    let mut certified = Vec::new();
    let mut certain = vec![false; k as usize];
    let certifying = seconds(|| {
        loop {
            let doubtful: Vec<Vec<(usize, f64)>> = tables
                .iter()
                .zip(&certain)
                .map(|(t, sure)| if *sure { Vec::new() } else { auic::uncertain(&t.counts(), tolerance()) })
                .collect();
            certain.iter_mut().zip(&doubtful).for_each(|(c, d)| *c |= d.is_empty());
            let plan = Plan::new(&tables, &doubtful, &concepts);
            if plan.is_empty() || passes >= 12 {
                break;
            }
            passes += 1;
            let mut counter = plan.counter();
            for start in (0..p).step_by(chunk as usize) {
                let (a, l) = batch(start);
                counter.add(&plan, &concepts, &a, &l);
            }
            counter.apply(&plan, &mut tables);
        }
        certified = tables.iter().enumerate().map(|(ch, t)| score_channel(ch, &t.counts()).miou).collect();
    });
    let onehot = labels_onehot(&labels, c);
    // NetDissect's semantics: a concept's pixels are those its category labels.
    let category = Tensor::cat(
        &[Tensor::zeros([c / 2], (Kind::Int64, device)), Tensor::ones([c - c / 2], (Kind::Int64, device))],
        0,
    );
    let labelled = labels.ge(0).to_kind(Kind::Float).transpose(0, 1).index_select(1, &category);
    let n = labelled.sum_dim_intlist(0, true, Kind::Float);
    let area = onehot.sum_dim_intlist(0, false, Kind::Float).view([1, c]);
    let mut best = Tensor::full([k, c], -1.0, (Kind::Float, device));
    let per_threshold = seconds(|| {
        let (lo, hi) = (acts.amin(&[1i64][..], true), acts.amax(&[1i64][..], true));
        for i in 0..t {
            let theta = &lo + (&hi - &lo) * (i as f64 / t as f64);
            let marked = acts.gt_tensor(&theta).to_kind(Kind::Float);
            let hits = marked.matmul(&onehot);
            let m = marked.matmul(&labelled);
            let pos = &hits / (&m + &area - &hits).clamp_min(1.0);
            let neg = (&n - &m - &area + &hits) / (&n - &hits).clamp_min(1.0);
            best = best.maximum(&((pos + neg) / 2.0));
        }
        sink += best.sum(Kind::Float).double_value(&[]);
    });
    let netdissect = seconds(|| {
        let q = acts.quantile_scalar(1.0 - auic::DISSECT_QUANTILE, 1, true, "linear");
        let marked = acts.gt_tensor(&q).to_kind(Kind::Float);
        let hits = marked.matmul(&onehot);
        let iou = &hits / (marked.matmul(&labelled) + &area - &hits).clamp_min(1.0);
        sink += iou.amax(&[1i64][..], false).sum(Kind::Float).double_value(&[]);
    });
    assert!(sink.is_finite());
    let per_threshold_mious =
        Vec::<f64>::try_from(best.amax(&[1i64][..], false).to_kind(Kind::Double).to_device(Device::Cpu))
            .unwrap_or_default();
    Timing {
        plain_read,
        bare_histogram,
        one_pass,
        certifying,
        passes,
        per_threshold,
        netdissect,
        auic: auic::auic(&scores),
        auic_certified: auic::auic(&certified),
        auic_per_threshold: auic::auic(&per_threshold_mious),
    }
}

/// Counts each channel's values into 1024 bins over their range, the channels split over the
/// cores; returns a checksum.
fn bare_histogram(acts: &Tensor) -> u64 {
    let acts = acts.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let p = acts.size()[1] as usize;
    // SAFETY: a contiguous CPU f32 tensor of `numel` values, borrowed while `acts` lives.
    let values = unsafe { std::slice::from_raw_parts(acts.data_ptr() as *const f32, acts.numel()) };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = values.len().div_ceil(p).div_ceil(threads).max(1) * p;
    std::thread::scope(|scope| {
        let handles: Vec<_> = values
            .chunks(per_thread)
            .map(|rows| {
                scope.spawn(move || {
                    let mut hist = vec![0u32; 1024];
                    for row in rows.chunks(p) {
                        let (lo, hi) = row.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                        let scale = 1023.0 / (hi - lo).max(f32::MIN_POSITIVE);
                        for &v in row {
                            hist[((v - lo) * scale) as usize] += 1;
                        }
                    }
                    hist.iter().map(|&n| n as u64).sum::<u64>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("counting thread")).sum()
    })
}

/// `[P, C]` float: 1 where a pixel carries a concept in any label row.
fn labels_onehot(labels: &Tensor, c: i64) -> Tensor {
    let p = labels.size()[1];
    let mut onehot = Tensor::zeros([p, c], (Kind::Float, labels.device()));
    for row in 0..labels.size()[0] {
        let map = labels.get(row);
        let valid = map.ge(0);
        let index = valid.nonzero().view([-1]);
        let _ = onehot.index_put_(
            &[Some(index.shallow_clone()), Some(map.index_select(0, &index))],
            &Tensor::ones([index.size()[0]], (Kind::Float, labels.device())),
            false,
        );
    }
    onehot
}

/// The report `glassbox bench auic` prints.
pub fn report(size: Size, device: Device) -> String {
    let t = run(size, device);
    let ms = |s: f64| format!("{:>9.1} ms", 1000.0 * s);
    [
        format!(
            "AUiC on {} channels × {} pixels, {} concepts, {} batches, on {:?}",
            size.channels, size.pixels, size.concepts, size.batches, device
        ),
        format!("plain read of the activations  {}   (floor)", ms(t.plain_read)),
        format!(
            "bare histogram, no concepts    {}   {:.1}× the plain read",
            ms(t.bare_histogram),
            t.bare_histogram / t.plain_read
        ),
        format!(
            "one-pass AUiC (1024 bins)      {}   {:.2}× the bare histogram, {:.1}× the plain read",
            ms(t.one_pass),
            t.one_pass / t.bare_histogram,
            t.one_pass / t.plain_read
        ),
        format!(
            "certifying to {:e}           {}   {} finer passes over the data",
            tolerance(),
            ms(t.certifying),
            t.passes - 1
        ),
        format!(
            "per-threshold AUiC ({} θ)     {}   {:.1}× slower than one pass",
            size.thresholds,
            ms(t.per_threshold),
            t.per_threshold / t.one_pass
        ),
        format!("NetDissect pass                {}", ms(t.netdissect)),
        format!(
            "AUiC one pass {:.4}, certified {:.4}, per threshold {:.4}",
            t.auic, t.auic_certified, t.auic_per_threshold
        ),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_runs_and_both_ways_agree() {
        let _serial = crate::models::serial();
        let size = Size { channels: 4, pixels: 4096, concepts: 6, thresholds: 200, batches: 3 };
        let t = run(size, Device::Cpu);
        assert!((t.auic - t.auic_per_threshold).abs() < 0.02, "{t:?}");
        assert!(t.auic > 0.1, "{t:?}");
        assert!(report(size, Device::Cpu).contains("one-pass AUiC"));
    }
}

#[cfg(test)]
mod full {
    /// `cargo test --release --lib metrics::auic_bench::full -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn default_size() {
        println!("{}", super::report(Default::default(), tch::Device::Cpu));
    }
}
