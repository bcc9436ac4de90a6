//! Inspectability metrics: how well single channels of a layer align with annotated concepts.
//!
//! [`inspect`] streams a concept data set through a tapped model once, builds the
//! [`histogram`]s of one layer's channels against the concepts, and derives from them the
//! SB paper's alignment, AUiC and stability ([`auic`], eq. 22-27) and the NetDissect
//! baseline beside it. The result, an [`Inspectability`], is a value cells can use and shows
//! as a table with the inspectability curve.

use std::ops::Range;

use tch::{Kind, Tensor};

use crate::data::{Category, ConceptDataset, DataError, Vocabulary};
use crate::display::{self, Output, Render};
use crate::interrupt::Interrupted;
use crate::models::{ModelError, Tapped};
use crate::progress::Progress;
use crate::viz::{BarChart, LinePlot};

pub mod auic;
pub mod bench;
pub mod correlation;
pub mod histogram;
pub mod net2vec;
pub mod pictures;
pub mod pointing;
pub mod saliency;
pub mod sevec;

pub use auic::ChannelScore;
pub use correlation::{pearson, spearman, Correlation};
pub use net2vec::{net2vec, ConceptEmbedding, Net2Vec, Net2VecConfig};
pub use pictures::{channel_overlay, top_channels};
pub use pointing::{pointing_game, pointing_hits, HitRule, PointingConfig, PointingGame};
pub use saliency::{compare_saliency, energy, explain, saliency, Gate, Method, SaliencyComparison};
pub use sevec::{
    class_accuracy, diversity_vs_accuracy, object_accuracy, perturbation_test, semantic_vectors, DiversityStudy,
    Embedding, Perturbation, Relevance, Retrieval, SemanticVectors, SevecConfig,
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
    pub bins: i64,
    pub resolution: Resolution,
    pub batch_size: usize,
}

/// 1024 bins keep AUiC within 1e-3 of the exact value on the zoo net's layers (checked in
/// the tests), at a fixed cost per pixel.
impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig { categories: None, exact: false, bins: 1024, resolution: Resolution::Annotation, batch_size: 32 }
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
    if data.is_empty() || config.batch_size == 0 || !(2..=histogram::MAX_BINS).contains(&config.bins) {
        return Err(MetricError::Invalid(format!(
            "needs at least one image, a batch size of 1 or more and 2 to {} bins",
            histogram::MAX_BINS
        )));
    }
    let c = concepts.names.len() as i64;
    let mut binned = histogram::Binned::new(config.bins, c);
    let mut exact = histogram::Exact::new(c);
    let ranges: Vec<Range<usize>> =
        (0..data.len()).step_by(config.batch_size).map(|s| s..(s + config.batch_size).min(data.len())).collect();
    let mut progress = Progress::new(format!("aligning {stage}"), Some(ranges.len() as u64));
    for range in ranges {
        let (acts, labels) = batch_activations(model, &stage, data, range, &concepts, config.resolution)?;
        if config.exact {
            exact.add(&acts, &labels);
        } else {
            binned.add(&acts, &labels);
        }
        progress.step()?;
    }
    progress.finish();
    let k = if config.exact { exact.channels() } else { binned.channels() };
    let mut channels = Vec::with_capacity(k);
    for channel in 0..k {
        let counts = if config.exact { exact.counts(channel) } else { binned.counts(channel) }.expect("counted");
        channels.push(auic::score_channel(channel, &counts));
    }
    Ok(Inspectability::new(stage.to_string(), concepts.names, channels, config.exact, data.len()))
}

/// A stage of `model` by name; `sb` names a bottlenecked net's bottleneck (`ssb` or `usb`).
pub fn resolve_layer(model: &impl Tapped, name: &str) -> Result<crate::models::Stage, MetricError> {
    if name == "sb" {
        let sb = model.stages().into_iter().map(|s| s.stage).find(|s| matches!(s.to_string().as_str(), "ssb" | "usb"));
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

    fn new(layer: String, concepts: Vec<String>, channels: Vec<ChannelScore>, exact: bool, images: usize) -> Self {
        let mious: Vec<f64> = channels.iter().map(|c| c.miou).collect();
        let psis: Vec<f64> = channels.iter().map(|c| c.psi).collect();
        let auic = auic::auic(&mious);
        let stability = if auic > 0.0 { auic::auic(&psis) / auic } else { 0.0 };
        let detectors = channels.iter().filter(|c| c.dissect_iou > auic::DISSECT_IOU).count();
        Inspectability { layer, concepts, channels, auic, stability, detectors, exact, images }
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
            if self.exact { " (exact)" } else { "" },
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

/// One batch's activations `[K, P]` and label rows `[L, P]` (concept indices of `concepts`,
/// `-1` unlabelled) at the chosen resolution.
fn batch_activations<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    stage: &crate::models::Stage,
    data: &D,
    range: Range<usize>,
    concepts: &ConceptSet,
    resolution: Resolution,
) -> Result<(Tensor, Tensor), MetricError> {
    let batch = data.batch(range)?;
    let images = batch.images.to_device(model.device());
    let (_, mut taps) = tch::no_grad(|| model.forward_taps(&images, std::slice::from_ref(stage), false))?;
    let acts = taps.remove(stage).expect("tapped");
    if acts.dim() != 4 {
        return Err(MetricError::Invalid(format!(
            "`{stage}` outputs {:?}, not feature maps; align a convolutional stage",
            acts.size()
        )));
    }
    let (h, w) = (batch.images.size()[2], batch.images.size()[3]);
    let mut rows = Vec::new();
    for (category, offset) in &concepts.offsets {
        let Some(map) = batch.concepts.get(category) else { continue };
        let map = match resolution {
            Resolution::Annotation => map.shallow_clone(),
            Resolution::Feature => {
                let (fh, fw) = (acts.size()[2], acts.size()[3]);
                map.unsqueeze(1)
                    .to_kind(Kind::Float)
                    .upsample_nearest2d([fh, fw], None, None)
                    .squeeze_dim(1)
                    .to_kind(Kind::Int64)
            }
        };
        rows.push((&map + *offset).masked_fill(&map.lt(0), -1).view([1, -1]));
    }
    let acts = match resolution {
        Resolution::Annotation if acts.size()[2..] != [h, w] => acts.upsample_bilinear2d([h, w], false, None, None),
        _ => acts,
    };
    let k = acts.size()[1];
    let acts = acts.transpose(0, 1).reshape([k, -1]);
    let labels = if rows.is_empty() {
        Tensor::full([1, acts.size()[1]], -1, (Kind::Int64, acts.device()))
    } else {
        Tensor::cat(&rows, 0).to_device(acts.device())
    };
    Ok((acts, labels))
}

#[cfg(test)]
mod tests;
