//! `glassbox bench vision`: what reading a torchvision network costs. The forward with taps is
//! timed against the plain forward of the same network on the same images in the same run,
//! and the streaming dissection of one layer over N and 4N images against itself, so that
//! the numbers say what taps and dissection add, whatever the machine.

use std::ops::Range;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::{Arch, VisionNet};
use crate::data::{check_range, ConceptBatch, ConceptDataset, ConceptScenes, DataError, SceneConfig, Vocabulary};
use crate::metrics::{self, InspectConfig, MetricError};
use crate::models::{Stage, Tapped};

/// The sizes of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Images per forward, in the timing and in the dissection.
    pub batch: usize,
    /// Images timed in each forward phase (rounded up to whole batches).
    pub images: usize,
    /// Height and width of the timed images.
    pub size: i64,
    /// N: the dissection runs over N and then 4N scenes.
    pub dissect_images: usize,
    /// Height and width of the dissected scenes; smaller than `size` because the layer is
    /// upsampled to every pixel, which costs more than the forward on a CPU.
    pub dissect_size: usize,
    /// Histogram bins per channel in the dissection.
    pub bins: i64,
}

/// Sized to finish in a few minutes on a 2-core CPU.
impl Default for Config {
    fn default() -> Self {
        Config { batch: 8, images: 64, size: 224, dissect_images: 64, dissect_size: 128, bins: 1024 }
    }
}

/// The layers tapped in the timed forward: every stage of ResNet-50 and one convolution
/// inside a block.
pub const TAPS: [&str; 5] = ["layer1", "layer2", "layer3", "layer4", "layer3.5.conv2"];

/// The layer dissected.
pub const DISSECTED: &str = "layer3";

/// One timed forward phase.
#[derive(Debug, Clone)]
pub struct Forward {
    pub images: usize,
    pub seconds: f64,
    /// The median seconds of one batch.
    pub median_batch: f64,
    /// Peak resident KiB while the phase ran (the process's, if the peak cannot be reset).
    pub peak_rss_kib: Option<u64>,
}

impl Forward {
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds
    }
}

/// One dissection run.
#[derive(Debug, Clone)]
pub struct Dissection {
    pub images: usize,
    pub seconds: f64,
    /// Resident KiB before the run, after handing freed memory back to the system.
    pub rss_before_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    pub auic: f64,
    pub channels: usize,
    pub concepts: usize,
}

impl Dissection {
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds
    }

    /// What the run added to the resident memory at its peak.
    pub fn rss_growth_kib(&self) -> Option<u64> {
        Some(self.peak_rss_kib?.saturating_sub(self.rss_before_kib?))
    }
}

/// Everything a run measures.
#[derive(Debug, Clone)]
pub struct Measured {
    pub params: i64,
    pub plain: Forward,
    pub tapped: Forward,
    /// Bytes the tapped outputs of one batch hold.
    pub tap_bytes: usize,
    /// Whether each phase's peak was its own, not the process's so far.
    pub peak_resets: bool,
    pub small: Dissection,
    pub large: Dissection,
    /// Bytes one stored scene takes in a [`ConceptScenes`].
    pub scene_bytes: usize,
}

/// Scenes made when a batch is asked for, so that a data set of any length holds no images
/// and whatever memory grows with its length is the dissection's own. Scene `i` is the first
/// scene of the seed `seed + i`, whatever the batches.
struct StreamedScenes {
    len: usize,
    config: SceneConfig,
}

impl StreamedScenes {
    fn scene(&self, i: usize) -> Result<ConceptScenes, DataError> {
        ConceptScenes::generate(
            1,
            &SceneConfig { seed: self.config.seed.wrapping_add(i as u64), ..self.config.clone() },
        )
    }
}

impl ConceptDataset for StreamedScenes {
    fn len(&self) -> usize {
        self.len
    }

    fn image_size(&self) -> (usize, usize) {
        (self.config.size, self.config.size)
    }

    fn vocabulary(&self) -> &Vocabulary {
        Vocabulary::scenes()
    }

    fn batch(&self, range: Range<usize>) -> Result<ConceptBatch, DataError> {
        check_range(&range, self.len)?;
        let scenes = range.map(|i| self.scene(i).map(ConceptScenes::into_batch)).collect::<Result<Vec<_>, _>>()?;
        let cat = |pick: &dyn Fn(&ConceptBatch) -> &Tensor| {
            Tensor::cat(&scenes.iter().map(|s| pick(s).shallow_clone()).collect::<Vec<_>>(), 0)
        };
        let categories: Vec<_> = scenes.first().map(|s| s.concepts.keys().copied().collect()).unwrap_or_default();
        Ok(ConceptBatch {
            images: cat(&|s| &s.images),
            concepts: categories.into_iter().map(|c| (c, cat(&|s| &s.concepts[&c]))).collect(),
            overlaps: Default::default(),
            image_labels: cat(&|s| &s.image_labels),
        })
    }
}

/// A field of `/proc/self/status` in KiB; `None` where there is no such file.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].split_whitespace().next()?.parse().ok()
}

/// Hands freed heap pages back to the system and restarts the peak from the current resident
/// size, so that the next phase's peak is its own and not inherited from an earlier one.
/// Returns whether the peak was restarted.
fn fresh_peak() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim takes no pointers and may be called at any time.
        unsafe {
            malloc_trim(0);
        }
    }
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0 and later).
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.numel() * t.kind().elt_size_in_bytes()
}

fn invalid(message: String) -> MetricError {
    MetricError::Invalid(message)
}

/// Runs a warm-up batch and then enough batches for `config.images`, each on fresh random
/// images, tapping `taps`.
fn time_forward(net: &VisionNet, config: &Config, taps: &[Stage], device: Device) -> Result<Forward, MetricError> {
    let shape = [config.batch as i64, 3, config.size, config.size];
    let forward = |x: &Tensor| -> Result<(), MetricError> {
        let _ = tch::no_grad(|| net.forward_taps(x, taps, false))?;
        sync(device);
        Ok(())
    };
    forward(&Tensor::rand(shape, (Kind::Float, device)))?;
    let batches = config.images.div_ceil(config.batch);
    let mut times = Vec::with_capacity(batches);
    for _ in 0..batches {
        let x = Tensor::rand(shape, (Kind::Float, device));
        sync(device);
        let started = Instant::now();
        forward(&x)?;
        times.push(started.elapsed().as_secs_f64());
    }
    let seconds = times.iter().sum();
    times.sort_by(f64::total_cmp);
    Ok(Forward {
        images: batches * config.batch,
        seconds,
        median_batch: times[times.len() / 2],
        peak_rss_kib: status_kib("VmHWM"),
    })
}

fn dissect(net: &VisionNet, config: &Config, images: usize) -> Result<Dissection, MetricError> {
    let data = StreamedScenes { len: images, config: SceneConfig { size: config.dissect_size, ..Default::default() } };
    let inspect = InspectConfig { batch_size: config.batch, bins: config.bins, ..Default::default() };
    fresh_peak();
    let rss_before_kib = status_kib("VmRSS");
    let started = Instant::now();
    let result = metrics::inspect(net, DISSECTED, &data, &inspect)?;
    sync(net.device());
    let seconds = started.elapsed().as_secs_f64();
    Ok(Dissection {
        images,
        seconds,
        rss_before_kib,
        peak_rss_kib: status_kib("VmHWM"),
        auic: result.auic,
        channels: result.channels.len(),
        concepts: result.concepts.len(),
    })
}

/// Measures a randomly initialised ResNet-50 (seeded, so that runs compare) on `device`.
pub fn run(config: &Config, device: Device) -> Result<Measured, MetricError> {
    if config.batch == 0 || config.images == 0 || config.dissect_images == 0 {
        return Err(invalid("batch, images and dissect images must be at least 1".into()));
    }
    if config.size < 32 {
        return Err(invalid(format!("size {} is under ResNet-50's 32 pixels", config.size)));
    }
    tch::manual_seed(0);
    let net = VisionNet::new(Arch::ResNet50, 1000, device)?;
    let params = net.var_store().trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64;
    let taps = TAPS.iter().map(|name| net.stage(name)).collect::<Result<Vec<_>, _>>()?;

    let resets = fresh_peak();
    let plain = time_forward(&net, config, &[], device)?;
    let resets = fresh_peak() && resets;
    let tapped = time_forward(&net, config, &taps, device)?;
    let x = Tensor::rand([config.batch as i64, 3, config.size, config.size], (Kind::Float, device));
    let (_, outputs) = tch::no_grad(|| net.forward_taps(&x, &taps, false))?;
    let tap_bytes = outputs.values().map(tensor_bytes).sum();
    drop(outputs);

    let small = dissect(&net, config, config.dissect_images)?;
    let large = dissect(&net, config, 4 * config.dissect_images)?;
    let one = ConceptScenes::generate(1, &SceneConfig { size: config.dissect_size, ..Default::default() })?;
    let scene_bytes = tensor_bytes(&one.images)
        + one.concepts.values().map(tensor_bytes).sum::<usize>()
        + tensor_bytes(&one.instances)
        + tensor_bytes(&one.image_labels);
    Ok(Measured { params, plain, tapped, tap_bytes, peak_resets: resets, small, large, scene_bytes })
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

/// The report `glassbox bench vision` prints.
pub fn report(config: &Config, device: Device) -> Result<String, MetricError> {
    let m = run(config, device)?;
    let forward = |name: &str, f: &Forward| {
        format!(
            "{name}{:>8.1} images/s   ({} images, median batch {:.0} ms), peak RSS {}",
            f.images_per_second(),
            f.images,
            1000.0 * f.median_batch,
            mib(f.peak_rss_kib)
        )
    };
    let dissection = |name: &str, d: &Dissection| {
        format!(
            "{name}{:>8.1} images/s   ({:.1} s), RSS {} before, peak {}, growth {}; AUiC {:.4}",
            d.images_per_second(),
            d.seconds,
            mib(d.rss_before_kib),
            mib(d.peak_rss_kib),
            mib(d.rss_growth_kib()),
            d.auic
        )
    };
    let growth_ratio = match (m.small.rss_growth_kib(), m.large.rss_growth_kib()) {
        (Some(s), Some(l)) if s > 0 => format!("{:.2}×", l as f64 / s as f64),
        _ => "n/a".to_string(),
    };
    let stored = |n: usize| (n * m.scene_bytes) as f64 / (1024.0 * 1024.0);
    let n = config.dissect_images;
    let mut lines = vec![
        format!(
            "ResNet-50 (random weights, {:.1} M parameters) on {}",
            m.params as f64 / 1e6,
            crate::device::describe(device)
        ),
        format!("forward at {0}×{0}, batch {1}, after one warm-up batch", config.size, config.batch),
        forward("plain forward             ", &m.plain),
        forward("forward with 5 taps       ", &m.tapped),
        format!(
            "taps / plain throughput    {:.3}   (taps: {})",
            m.tapped.images_per_second() / m.plain.images_per_second(),
            TAPS.join(", ")
        ),
        format!("tapped outputs of one batch {:.1} MiB", m.tap_bytes as f64 / (1024.0 * 1024.0)),
    ];
    if !m.peak_resets {
        lines.push("(peak RSS is the process's so far: it could not be reset between phases)".into());
    }
    lines.extend([
        format!(
            "dissection of {DISSECTED} ({} channels × {} concepts, {} bins) on scenes of {}×{}, made per batch of {}",
            m.small.channels, m.small.concepts, config.bins, config.dissect_size, config.dissect_size, config.batch
        ),
        dissection(&format!("{:<5} images             ", n), &m.small),
        dissection(&format!("{:<5} images             ", 4 * n), &m.large),
        format!("RSS growth 4N / 1N          {growth_ratio}   (4× the images)"),
        format!(
            "stored ConceptScenes would hold {:.1} MiB for {n} images, {:.1} MiB for {}",
            stored(n),
            stored(4 * n),
            4 * n
        ),
    ]);
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_every_measurement() {
        let _serial = crate::models::serial();
        let config = Config { batch: 1, images: 1, size: 64, dissect_images: 1, dissect_size: 32, bins: 16 };
        let report = report(&config, Device::Cpu).unwrap();
        for quantity in [
            "ResNet-50",
            "cpu",
            "plain forward",
            "forward with 5 taps",
            "taps / plain throughput",
            "layer3.5.conv2",
            "tapped outputs of one batch",
            "peak RSS",
            "dissection of layer3",
            "1     images",
            "4     images",
            "growth",
            "RSS growth 4N / 1N",
            "stored ConceptScenes",
        ] {
            assert!(report.contains(quantity), "no `{quantity}` in\n{report}");
        }
        assert!(report.contains("1024 channels"), "{report}");
    }

    #[test]
    fn streamed_scenes_do_not_depend_on_the_batches() {
        let data = StreamedScenes { len: 3, config: SceneConfig { size: 16, ..Default::default() } };
        let whole = data.batch(0..3).unwrap();
        let last = data.batch(2..3).unwrap();
        assert!(whole.images.narrow(0, 2, 1).equal(&last.images));
        assert_eq!(whole.concepts.len(), last.concepts.len());
        assert!(data.batch(2..4).is_err());
    }
}
