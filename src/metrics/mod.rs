//! Inspectability metrics: how well single channels of a layer align with annotated concepts.
//!
//! [`inspect`] streams a concept data set through a tapped model once, builds the
//! [`histogram`]s of one layer's channels against the concepts, and derives from them the
//! SB paper's alignment, AUiC and stability ([`auic`], eq. 22-27) and the NetDissect
//! baseline beside it. The result, an [`Inspectability`], is a value cells can use and shows
//! as a table with the inspectability curve.

use std::collections::BTreeMap;
use std::ops::Range;

use tch::{Device, Kind, Tensor};

use crate::data::{Category, ConceptDataset, DataError, Vocabulary};
use crate::display::{self, Output, Render};
use crate::interrupt::Interrupted;
use crate::models::{ModelError, Tapped};
use crate::progress::Progress;
use crate::viz::{BarChart, LinePlot};

pub mod auic;
pub mod auic_bench;
pub mod correlation;
pub mod files;
pub mod histogram;
pub mod net2vec;
pub mod pictures;
pub mod pointing;
pub mod saliency;
pub mod sevec;

pub use auic::ChannelScore;
pub use correlation::{pearson, spearman, Correlation};
pub use files::Masks;
pub use net2vec::{net2vec, ConceptEmbedding, Net2Vec, Net2VecConfig, PixelLoss};
pub use pictures::{channel_overlay, top_channels};
pub use pointing::{pointing_game, pointing_hits, HitRule, PointingConfig, PointingGame};
pub use saliency::{compare_saliency, energy, explain, saliency, Gate, Method, SaliencyComparison};
pub use sevec::{
    class_accuracy, diversity_vs_accuracy, object_accuracy, perturbation_test, semantic_vectors, Binarize,
    DiversityStudy, Embedding, Perturbation, Relevance, Retrieval, SemanticVectors, SevecConfig, Units,
};

/// What can go wrong computing a metric.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    #[error("invalid metric input: {0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("interrupted; nothing was computed")]
    Interrupted(#[from] Interrupted),
}

/// Where activations meet annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// Activations upsampled bilinearly to the annotations' size, as NetDissect does.
    #[default]
    Annotation,
    /// Annotations subsampled (nearest) to the layer's size.
    Feature,
}

/// How to compute alignment.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectConfig {
    /// The concept categories to align with; `None` takes every category of the data set.
    pub categories: Option<Vec<Category>>,
    /// Every distinct activation a candidate threshold (keeps every value in memory), instead
    /// of `bins` histogram bins per channel.
    pub exact: bool,
    /// Bins per channel of the first pass.
    pub bins: i64,
    pub resolution: Resolution,
    pub batch_size: usize,
    /// How far a binned score may be from the exact one: every channel's mIoU* and Ψ are
    /// certified within it. Bins that leave more doubt are split by further passes over the
    /// data (see [`histogram`]); 0 makes binned mode exact.
    pub tolerance: f64,
}

/// The first pass's 1024 bins per channel cost a fixed amount per pixel. The tolerance keeps
/// every score within 5e-4 of the exact one, below the last decimal a table shows; the finer
/// passes' work grows about as its inverse (within 1e-4 takes about five times as long).
impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            categories: None,
            exact: false,
            bins: 1024,
            resolution: Resolution::Annotation,
            batch_size: 32,
            tolerance: 5e-4,
        }
    }
}

/// The concepts a computation aligns with: a subset of a vocabulary's categories, numbered
/// consecutively.
#[derive(Debug, Clone, PartialEq)]
struct ConceptSet {
    names: Vec<String>,
    /// The categories with the first index of their concepts.
    offsets: Vec<(Category, i64)>,
}

impl ConceptSet {
    fn new(vocabulary: &Vocabulary, categories: Option<&[Category]>) -> Result<Self, MetricError> {
        let available = vocabulary.categories();
        let chosen = categories.map_or_else(|| available.clone(), <[Category]>::to_vec);
        let mut set = ConceptSet { names: Vec::new(), offsets: Vec::new() };
        for category in chosen {
            if !available.contains(&category) {
                let have: Vec<String> = available.iter().map(|c| c.to_string()).collect();
                return Err(MetricError::Invalid(format!(
                    "the data set has no `{category}` concepts; it has: {}",
                    have.join(", ")
                )));
            }
            set.offsets.push((category, set.names.len() as i64));
            set.names.extend(vocabulary.concepts(category).map(|c| vocabulary.qualified_name(c)));
        }
        if set.names.is_empty() {
            return Err(MetricError::Invalid("no concepts to align with; name at least one category".into()));
        }
        Ok(set)
    }

    /// The concepts as the histograms count them.
    fn counted(&self) -> histogram::Concepts {
        let ends = self.offsets.iter().skip(1).map(|o| o.1).chain([self.names.len() as i64]);
        let sizes: Vec<usize> = self.offsets.iter().zip(ends).map(|(o, end)| (end - o.1) as usize).collect();
        histogram::Concepts::new(&sizes)
    }
}

/// The alignment of one layer's channels with a data set's concepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspectability {
    /// The stage, as named in the model.
    pub layer: String,
    /// Qualified concept names (`part:wheel`), indexed by [`ChannelScore::concept`].
    pub concepts: Vec<String>,
    pub channels: Vec<ChannelScore>,
    /// AUiC (eq. 25).
    pub auic: f64,
    /// S (eq. 27).
    pub stability: f64,
    /// NetDissect's detectors: channels whose best IoU exceeds 0.04.
    pub detectors: usize,
    pub exact: bool,
    pub images: usize,
    /// Passes over the data: the first, and those that split doubtful bins.
    pub passes: usize,
}

/// Aligns every channel of `stage` in `model` with the concepts of `data` (SB paper sec.
/// 4.1), in one streaming pass.
pub fn inspect<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    stage: &str,
    data: &D,
    config: &InspectConfig,
) -> Result<Inspectability, MetricError> {
    let stage = resolve_layer(model, stage)?;
    let data = &crate::data::at_size(data, model.input_size())?;
    let concepts = ConceptSet::new(data.vocabulary(), config.categories.as_deref())?;
    let ranges = batch_ranges(data.len(), config)?;
    let layer = stage.to_string();
    let read = |i: usize| -> Result<(Tensor, histogram::Labels), MetricError> {
        let batch = data.batch(ranges[i].clone())?;
        let images = batch.images.to_device(model.device());
        let (_, mut taps) = tch::no_grad(|| model.forward_taps(&images, std::slice::from_ref(&stage), false))?;
        let acts = taps.remove(&stage).expect("tapped");
        layer_batch(&layer, acts, &batch.concepts, &batch.overlaps, &concepts, config.resolution)
    };
    let (channels, passes) = one_pass(&layer, ranges.len(), read, &concepts, config)?;
    Ok(Inspectability::new(layer, concepts.names, channels, config.exact, data.len(), passes))
}

/// The batches of `images` images a pass reads, once the config is checked.
fn batch_ranges(images: usize, config: &InspectConfig) -> Result<Vec<Range<usize>>, MetricError> {
    if images == 0 || config.batch_size == 0 || !(2..=histogram::MAX_BINS).contains(&config.bins) {
        return Err(MetricError::Invalid(format!(
            "needs at least one image, a batch size of 1 or more and 2 to {} bins",
            histogram::MAX_BINS
        )));
    }
    if !(config.tolerance >= 0.0) {
        return Err(MetricError::Invalid(format!("the tolerance must be 0 or more, got {}", config.tolerance)));
    }
    let batch = config.batch_size;
    Ok((0..images).step_by(batch).map(|s| s..(s + batch).min(images)).collect())
}

/// Memory the batches of a pass may keep, so that the passes that split bins need not compute
/// activations again.
const KEEP_BYTES: i64 = 1 << 30;

/// The alignment pass over `batches` batches of activations `[K, P]` and labels (SB paper
/// sec. 4.1): binned with as many finer passes as the tolerance needs, or exact; the channel
/// scores and the number of passes.
fn one_pass(
    layer: &str,
    batches: usize,
    mut read: impl FnMut(usize) -> Result<(Tensor, histogram::Labels), MetricError>,
    concepts: &ConceptSet,
    config: &InspectConfig,
) -> Result<(Vec<ChannelScore>, usize), MetricError> {
    let counted = concepts.counted();
    let unfinite = |e: histogram::NonFinite| {
        MetricError::Invalid(format!(
            "`{layer}` channel {} has {} activations; alignment needs finite activations (a threshold cannot \
             order NaN, and ±inf has no place on the inspectability curve)",
            e.channel, e.what
        ))
    };
    let mut progress = Progress::new(format!("aligning {layer}"), Some(batches as u64));
    if config.exact {
        let mut exact = histogram::Exact::new(counted);
        for i in 0..batches {
            let (acts, labels) = read(i)?;
            exact.add(&acts, &labels).map_err(unfinite)?;
            progress.step()?;
        }
        progress.finish();
        let scores = (0..exact.channels()).map(|c| auic::score_channel(c, &exact.counts(c).expect("counted")));
        return Ok((scores.collect(), 1));
    }
    let mut kept: Vec<(Tensor, histogram::Labels)> = Vec::new();
    let mut kept_bytes = 0;
    let mut shards: Vec<(Device, histogram::Binned)> =
        devices().into_iter().map(|d| (d, histogram::Binned::new(config.bins, counted.clone()))).collect();
    for i in 0..batches {
        let (acts, labels) = read(i)?;
        let count = shards.len();
        let (device, shard) = &mut shards[i % count];
        let on = if acts.device() == Device::Cpu || *device == acts.device() {
            acts.shallow_clone()
        } else {
            acts.to_device(*device)
        };
        shard.add(&on, &labels).map_err(unfinite)?;
        kept_bytes += acts.numel() as i64 * acts.kind().elt_size_in_bytes() as i64 + labels.rows.numel() as i64 * 8;
        if kept_bytes <= KEEP_BYTES && batches > 1 {
            kept.push((acts, labels));
        }
        progress.step()?;
    }
    progress.finish();
    let (_, mut binned) = shards.remove(0);
    shards.iter().for_each(|(_, s)| binned.merge(s));
    let mut tables = binned.tables();
    let mut certain = vec![false; tables.len()];
    let mut passes = 1;
    while passes < MAX_PASSES {
        let doubtful = per_channel(&tables, |c, t| match certain[c] {
            true => Vec::new(),
            false => auic::uncertain(&t.counts(), config.tolerance),
        });
        // A channel without doubtful bins keeps its counts, and so stays certain.
        certain.iter_mut().zip(&doubtful).for_each(|(c, d)| *c |= d.is_empty());
        let plan = histogram::Plan::new(&tables, &doubtful, &counted);
        if plan.is_empty() {
            break;
        }
        passes += 1;
        let mut progress = Progress::new(format!("certifying {layer} (pass {passes})"), Some(batches as u64));
        let mut counter = plan.counter();
        for i in 0..batches {
            match kept.get(i) {
                Some((acts, labels)) => counter.add(&plan, &counted, acts, labels),
                None => {
                    let (acts, labels) = read(i)?;
                    counter.add(&plan, &counted, &acts, &labels);
                }
            }
            progress.step()?;
        }
        progress.finish();
        counter.apply(&plan, &mut tables);
    }
    Ok((per_channel(&tables, |c, t| auic::score_channel(c, &t.counts())), passes))
}

/// `f` of every channel and its table, the channels split over the cores.
fn per_channel<T: Send>(tables: &[histogram::Table], f: impl Fn(usize, &histogram::Table) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = tables.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = tables
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                scope.spawn(move || part.iter().enumerate().map(|(j, t)| f(i * chunk + j, t)).collect::<Vec<T>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("channel thread")).collect()
    })
}

/// Passes at most: the first, and enough finer ones to reach single values from any grid.
const MAX_PASSES: usize = 12;

/// The devices the first pass counts on: every GPU, each counting a share of the batches
/// (shards whose counts merge into those of one pass), or the CPU.
fn devices() -> Vec<Device> {
    match tch::Cuda::device_count() {
        0 => vec![Device::Cpu],
        n => (0..n as usize).map(Device::Cuda).collect(),
    }
}

/// One batch's activations `[N, K, h, w]` as `[K, P]` and its annotations as label rows, at
/// the chosen resolution: activations upsampled bilinearly to the annotations (NetDissect's
/// choice) or annotations subsampled to the activations.
fn layer_batch(
    layer: &str,
    acts: Tensor,
    maps: &BTreeMap<Category, Tensor>,
    overlaps: &BTreeMap<Category, Tensor>,
    concepts: &ConceptSet,
    resolution: Resolution,
) -> Result<(Tensor, histogram::Labels), MetricError> {
    if acts.dim() != 4 {
        return Err(MetricError::Invalid(format!(
            "`{layer}` outputs {:?}, not feature maps; align a convolutional stage",
            acts.size()
        )));
    }
    let Some((h, w)) = maps.values().next().map(|m| (m.size()[1], m.size()[2])) else {
        return Err(MetricError::Invalid("the data annotates none of the categories to align with".into()));
    };
    let (fh, fw) = (acts.size()[2], acts.size()[3]);
    let at_resolution = |map: &Tensor| match resolution {
        Resolution::Annotation => map.shallow_clone(),
        Resolution::Feature => {
            let size = map.size();
            let flat = map.view([-1, 1, size[size.len() - 2], size[size.len() - 1]]).to_kind(Kind::Float);
            let small = flat.upsample_nearest2d([fh, fw], None, None).to_kind(Kind::Int64);
            let mut shape = size[..size.len() - 2].to_vec();
            shape.extend([fh, fw]);
            small.view(shape.as_slice())
        }
    };
    let mut rows = Vec::new();
    let mut categories = Vec::new();
    let pixels = match resolution {
        Resolution::Annotation => acts.size()[0] * h * w,
        Resolution::Feature => acts.size()[0] * fh * fw,
    };
    for (g, (category, offset)) in concepts.offsets.iter().enumerate() {
        let shift = |map: Tensor| (&map + *offset).masked_fill(&map.lt(0), -1).view([1, -1]);
        match maps.get(category) {
            Some(map) => rows.push(shift(at_resolution(map))),
            None => rows.push(Tensor::full([1, pixels], -1, (Kind::Int64, acts.device()))),
        }
        categories.push(g);
        if let Some(more) = overlaps.get(category) {
            let more = at_resolution(more);
            for r in 0..more.size()[1] {
                rows.push(shift(more.select(1, r)));
                categories.push(g);
            }
        }
    }
    let acts = match resolution {
        Resolution::Annotation if (fh, fw) != (h, w) => acts.upsample_bilinear2d([h, w], false, None, None),
        _ => acts,
    };
    let k = acts.size()[1];
    let acts = acts.transpose(0, 1).reshape([k, -1]);
    let rows: Vec<Tensor> = rows.iter().map(|r| r.to_device(acts.device())).collect();
    let labels = histogram::Labels { rows: Tensor::cat(&rows, 0), categories };
    labels.check(&concepts.counted(), acts.size()[1]).map_err(MetricError::Invalid)?;
    Ok((acts, labels))
}

/// Aligns activations computed elsewhere, `[N, K, H, W]` (any float kind and device), with
/// `masks` of the same `N` images, exactly as [`inspect`] aligns a model's: activations whose
/// size differs from the masks' are upsampled to them bilinearly (or, with
/// [`Resolution::Feature`], the masks subsampled to the activations).
pub fn align(acts: &Tensor, masks: &Masks, config: &InspectConfig) -> Result<Inspectability, MetricError> {
    let concepts = ConceptSet::new(&masks.vocabulary, config.categories.as_deref())?;
    let n = masks.len();
    if acts.dim() != 4 || acts.size()[0] != n as i64 {
        return Err(MetricError::Invalid(format!(
            "activations {:?} for masks of {n} images; they must be [{n}, channels, height, width]",
            acts.size()
        )));
    }
    let ranges = batch_ranges(n, config)?;
    let narrow = |maps: &BTreeMap<Category, Tensor>, r: &Range<usize>| -> BTreeMap<Category, Tensor> {
        maps.iter().map(|(c, t)| (*c, t.narrow(0, r.start as i64, r.len() as i64))).collect()
    };
    let read = |i: usize| {
        let r = &ranges[i];
        let batch = acts.narrow(0, r.start as i64, r.len() as i64);
        layer_batch(
            "activations",
            batch,
            &narrow(&masks.maps, r),
            &narrow(&masks.overlaps, r),
            &concepts,
            config.resolution,
        )
    };
    let (channels, passes) = one_pass("activations", ranges.len(), read, &concepts, config)?;
    Ok(Inspectability::new("activations".into(), concepts.names, channels, config.exact, n, passes))
}

/// A stage of `model` by name; `sb` names a bottlenecked net's bottleneck (`ssb`, `usb` or
/// `plain`).
pub fn resolve_layer(model: &impl Tapped, name: &str) -> Result<crate::models::Stage, MetricError> {
    if name == "sb" {
        let sb = model
            .stages()
            .into_iter()
            .map(|s| s.stage)
            .find(|s| matches!(s.to_string().as_str(), "ssb" | "usb" | "plain"));
        return sb.ok_or_else(|| MetricError::Invalid("`sb` names a bottleneck, and this model has none".into()));
    }
    Ok(model.stage(name)?)
}

impl Inspectability {
    /// NetDissect's view (Bau et al. 2017): channels by their best plain IoU at the top-0.5%
    /// threshold, beside the mIoU assignment (SB paper table 6).
    pub fn dissection(&self) -> Output {
        let mut ranked: Vec<&ChannelScore> = self.channels.iter().collect();
        ranked.sort_by(|a, b| b.dissect_iou.total_cmp(&a.dissect_iou));
        let head = format!(
            "{}: NetDissect {} of {} channels are detectors (IoU > {}); AUiC {:.3}",
            self.layer,
            self.detectors,
            self.channels.len(),
            auic::DISSECT_IOU,
            self.auic
        );
        let rows: Vec<String> = ranked
            .iter()
            .take(20)
            .map(|c| {
                format!(
                    "ch {:>4}  IoU {:.3} {:<24} θ {:.4}  | mIoU {:.3} {}",
                    c.channel,
                    c.dissect_iou,
                    self.concepts[c.dissect_concept],
                    c.dissect_threshold,
                    c.miou,
                    self.concepts[c.concept]
                )
            })
            .collect();
        let html: String = ranked
            .iter()
            .take(20)
            .map(|c| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{:.3}</td></tr>",
                    c.channel, self.concepts[c.dissect_concept], c.dissect_iou, self.concepts[c.concept], c.miou
                )
            })
            .collect();
        Output::html(format!(
            "<p>{head}</p><table><tr><th>channel</th><th>IoU assignment</th><th>IoU</th><th>mIoU assignment</th><th>mIoU</th></tr>{html}</table>"
        ))
        .and(Output::text(std::iter::once(head).chain(rows).collect::<Vec<_>>().join("\n")))
    }

    fn new(
        layer: String,
        concepts: Vec<String>,
        channels: Vec<ChannelScore>,
        exact: bool,
        images: usize,
        passes: usize,
    ) -> Self {
        let mious: Vec<f64> = channels.iter().map(|c| c.miou).collect();
        let psis: Vec<f64> = channels.iter().map(|c| c.psi).collect();
        let auic = auic::auic(&mious);
        let stability = if auic > 0.0 { auic::auic(&psis) / auic } else { 0.0 };
        let detectors = channels.iter().filter(|c| c.dissect_iou > auic::DISSECT_IOU).count();
        Inspectability { layer, concepts, channels, auic, stability, detectors, exact, images, passes }
    }

    /// Channels by mIoU, best first.
    pub fn ranked(&self) -> Vec<&ChannelScore> {
        let mut ranked: Vec<&ChannelScore> = self.channels.iter().collect();
        ranked.sort_by(|a, b| b.miou.total_cmp(&a.miou));
        ranked
    }

    /// The inspectability curve over ξ in [0.5, 1].
    pub fn curve(&self) -> (Vec<f64>, Vec<f64>) {
        let xis: Vec<f64> = (0..=50).map(|i| 0.5 + i as f64 / 100.0).collect();
        let mious: Vec<f64> = self.channels.iter().map(|c| c.miou).collect();
        let fractions = auic::curve(&mious, &xis);
        (xis, fractions)
    }

    fn table(&self, rows: usize) -> (String, String) {
        let mut text = vec![format!(
            "{}: AUiC {:.3}, stability S {:.3}, {} channels on {} images{}; NetDissect: {} detectors (IoU > 0.04)",
            self.layer,
            self.auic,
            self.stability,
            self.channels.len(),
            self.images,
            match (self.exact, self.passes) {
                (true, _) => " (exact)".to_string(),
                (false, 1) => String::new(),
                (false, n) => format!(" ({n} passes)"),
            },
            self.detectors
        )];
        let mut html = format!(
            "<p><b>{}</b>: AUiC {:.3}, S {:.3}, NetDissect detectors {}/{}</p><table><tr><th>channel</th>\
             <th>concept (mIoU)</th><th>mIoU</th><th>θ*</th><th>Ψ</th><th>concept (IoU)</th><th>IoU</th></tr>",
            self.layer,
            self.auic,
            self.stability,
            self.detectors,
            self.channels.len()
        );
        for c in self.ranked().into_iter().take(rows) {
            let (name, dissect) = (&self.concepts[c.concept], &self.concepts[c.dissect_concept]);
            text.push(format!(
                "ch {:>4}  {name:<24} mIoU {:.3}  θ* {:.4}  Ψ {:.3}  | {dissect} IoU {:.3}",
                c.channel, c.miou, c.threshold, c.psi, c.dissect_iou
            ));
            html.push_str(&format!(
                "<tr><td>{}</td><td>{name}</td><td>{:.3}</td><td>{:.4}</td><td>{:.3}</td><td>{dissect}</td><td>{:.3}</td></tr>",
                c.channel, c.miou, c.threshold, c.psi, c.dissect_iou
            ));
        }
        html.push_str("</table>");
        (text.join("\n"), html)
    }
}

/// Shows the summary and the 20 best channels, with the inspectability curve.
impl Render for Inspectability {
    fn render(&self) -> Output {
        let (text, html) = self.table(20);
        let plot = curves(&[(self.layer.as_str(), self)]).render();
        Output::html(html).and(Output::text(text)).with("image/png", plot.data()["image/png"].clone())
    }
}

/// Inspectability curves of several results in one plot (SB paper fig. 6, right).
pub fn curves(results: &[(&str, &Inspectability)]) -> LinePlot {
    let mut plot =
        LinePlot::new("inspectability").x_label("mIoU threshold ξ").y_label("fraction of channels").size(520, 300);
    for (name, r) in results {
        let (xis, fractions) = r.curve();
        plot = plot.series(format!("{name} (AUiC {:.3})", r.auic), xis, fractions);
    }
    plot
}

/// Several results side by side: their inspectability curves, and AUiC and stability as
/// bars (figs. 6 and 10).
pub fn compare(results: &[(&str, &Inspectability)]) -> Output {
    display::show(&curves(results));
    let text: Vec<String> =
        results.iter().map(|(n, r)| format!("{n}: AUiC {:.3}, S {:.3}", r.auic, r.stability)).collect();
    auic_bars(results).render().with("text/plain", text.join("\n").into())
}

/// AUiC per result as bars (SB paper fig. 10).
pub fn auic_bars(results: &[(&str, &Inspectability)]) -> BarChart {
    BarChart::new("AUiC")
        .categories(results.iter().map(|(name, _)| name.to_string()))
        .group("AUiC", results.iter().map(|(_, r)| r.auic))
        .group("stability S", results.iter().map(|(_, r)| r.stability))
}

#[cfg(test)]
mod tests;
