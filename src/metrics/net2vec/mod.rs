//! Net2Vec (Fong & Vedaldi 2018): how concepts are encoded by combinations of a layer's
//! filters, and concept embeddings in filter space.
//!
//! A [`probe`] runs a train and a val split of a concept data set through a model up to one
//! layer and keeps, per filter, where it fires above its top-0.5% threshold and its spatial
//! mean. From a probe, [`segmentation`] learns per concept a weighting of the binarised
//! filters that segments it (sec. 3.1.2) and compares it with the concept's best single
//! filter (sec. 3.1.1); [`classification`] learns weights over the spatial means that tell
//! whether the concept is in the image (sec. 3.2), and re-learns them from the top-F filters.
//! [`net2vec`] does both steps. The result, a [`Net2Vec`], holds the scores and the weights
//! as a [`ConceptEmbedding`], and gives the paper's analyses as values and plots (see
//! [`analysis`]).
//!
//! All concepts are learned together as one `K × C` weight matrix (one column per concept),
//! which equals learning them one by one (see [`multi`]).

use tch::Kind;

use crate::data::{Category, ConceptDataset};
use crate::display::{Output, Render};
use crate::models::{Optim, Tapped, Task, TrainConfig, TrainReport};

use super::MetricError;
pub use multi::PixelLoss;

pub mod analysis;
pub mod classify;
pub mod embedding;
pub mod multi;
pub mod probe;
pub mod single;

pub use analysis::{decile_examples, CategoryScores, FilterUsage, WeightCorrelation};
pub use embedding::{distance_heatmap, ConceptEmbedding, EmbeddingDistance, Neighbours};
pub use probe::{probe, Probe, TAU};
pub use single::{set_iou, single_filter, SingleFilter};

/// The filter-subset sizes F of sec. 3.2.2 for segmentation.
pub const SEGMENTATION_SUBSETS: [usize; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 160, 192, 224];

/// The filter-subset sizes F of sec. 3.2.2 for classification.
pub const CLASSIFICATION_SUBSETS: [usize; 16] = [1, 2, 3, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 80, 100, 128];

/// How to learn concept weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Net2VecConfig {
    /// Segment concepts (sec. 3.1) or classify images by them (sec. 3.2).
    pub task: Task,
    /// The concept categories to learn; `None` takes every category of the data set.
    pub categories: Option<Vec<Category>>,
    /// Images per forward pass when probing.
    pub batch_size: usize,
    /// The optimisation of the weights. Its seed also orders the batches, draws the balanced
    /// classification batches and the balanced val set.
    pub training: TrainConfig,
    /// A learned bias in eq. 2 (segmentation; the paper has none). Classification always has
    /// one (eq. 5).
    pub bias: bool,
    /// The F of the top-F filter subsets to re-learn (sec. 3.2.2), capped at K (and K
    /// added). `None`: the paper's list for classification ([`CLASSIFICATION_SUBSETS`]), none
    /// for segmentation, where each subset costs a full training.
    pub subsets: Option<Vec<usize>>,
    /// How eq. 4 reduces a concept's loss over an image's pixels (segmentation): the
    /// authors' sum, for which the paper's lr is meant, or a mean.
    pub pixels: PixelLoss,
}

/// The paper's optimisation (sec. 3.1.2): SGD with momentum 0.9, lr 1e-4, batches of 64,
/// 30 epochs; a constant rate and no weight decay (it names neither).
pub fn paper_training() -> TrainConfig {
    TrainConfig {
        epochs: 30,
        batch_size: 64,
        lr: 1e-4,
        weight_decay: 0.0,
        optimizer: Optim::Sgd { momentum: 0.9 },
        poly_power: 0.0,
        seed: None,
        label: "Net2Vec".into(),
        max_steps: None,
    }
}

/// Segmentation with the paper's settings.
impl Default for Net2VecConfig {
    fn default() -> Self {
        Net2VecConfig {
            task: Task::Segmentation,
            categories: None,
            batch_size: 32,
            training: paper_training(),
            bias: false,
            subsets: None,
            pixels: PixelLoss::Sum,
        }
    }
}

impl Net2VecConfig {
    /// The paper's settings for `task`.
    pub fn paper(task: Task) -> Self {
        Net2VecConfig { task, ..Default::default() }
    }

    /// For probe sets of hundreds of images rather than Broden's tens of thousands: the
    /// paper's 30 epochs of 64 images at lr 1e-4 are some 28,000 steps on Broden but a few
    /// hundred here, which leave the weights near zero. This keeps the optimizer and
    /// momentum and raises the rate (per-pixel mean losses on filters that fire on 0.5% of
    /// positions have small gradients), with fewer epochs.
    pub fn small_data(task: Task) -> Self {
        let lr = match task {
            Task::Segmentation => 50.0,
            Task::Classification => 0.5,
        };
        Net2VecConfig {
            task,
            training: TrainConfig { epochs: 15, lr, ..paper_training() },
            pixels: PixelLoss::Mean,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<(), MetricError> {
        self.training.validate()?;
        if self.batch_size == 0 {
            return Err(MetricError::Invalid("batch_size must be at least 1".into()));
        }
        if self.subsets.as_ref().is_some_and(|s| s.contains(&0)) {
            return Err(MetricError::Invalid("filter subsets must have at least 1 filter (F ≥ 1)".into()));
        }
        Ok(())
    }

    /// The subset sizes to re-learn for a layer of `k` filters.
    fn subset_sizes(&self, k: usize) -> Vec<usize> {
        let asked: Vec<usize> = match (&self.subsets, self.task) {
            (Some(s), _) => s.clone(),
            (None, Task::Classification) => CLASSIFICATION_SUBSETS.to_vec(),
            (None, Task::Segmentation) => return Vec::new(),
        };
        let mut sizes: Vec<usize> = asked.into_iter().filter(|f| *f < k).chain([k]).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }
}

/// A concept's best single filter and its score on val.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterScore {
    pub filter: usize,
    pub score: f64,
}

/// The scores of the top-F filter subsets for one F.
#[derive(Debug, Clone, PartialEq)]
pub struct SubsetScores {
    pub filters: usize,
    /// Per concept, on val.
    pub scores: Vec<f64>,
}

/// Net2Vec on one layer for one task: per concept, learned weights and how well they and the
/// best single filter do on the val split.
#[derive(Debug, Clone, PartialEq)]
pub struct Net2Vec {
    /// The stage, as named in the model.
    pub layer: String,
    pub task: Task,
    /// The category of each concept.
    pub categories: Vec<Category>,
    /// The concepts (`category:name`) and their learned weights `w`.
    pub embedding: ConceptEmbedding,
    pub bias: Vec<f64>,
    /// `T_k` per filter.
    pub thresholds: Vec<f64>,
    /// Segmentation: `k*(c)` chosen on train and `IoU_set(c; M_k*, val)` (sec. 3.1.1).
    /// Classification: the filter of largest `|w_k|` and the val accuracy of weights
    /// re-learned on it alone (F = 1, sec. 3.2.2).
    pub single: Vec<FilterScore>,
    /// Val set IoU (segmentation) or balanced val accuracy (classification) of the weights.
    pub multi: Vec<f64>,
    /// Segmentation: per concept, `IoU_ind` (eq. 3) of the weights on each val image that
    /// contains it. Empty for classification.
    pub individual: Vec<Vec<f64>>,
    /// Segmentation: `IoU_set(c; M_k, val)` of every filter, `[C][K]` (sec. 5.2). Empty for
    /// classification.
    pub filter_ious: Vec<Vec<f64>>,
    pub subsets: Vec<SubsetScores>,
    /// Concepts of the chosen categories that could not be learned, with the reason.
    pub skipped: Vec<String>,
    pub training: TrainReport,
    /// Images in the train and val splits.
    pub images: (usize, usize),
}

/// Probes `layer` of `model` on `train` and `val` and learns concept weights for
/// `config.task` (sec. 3).
pub fn net2vec<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    layer: &str,
    train: &D,
    val: &D,
    config: &Net2VecConfig,
) -> Result<Net2Vec, MetricError> {
    config.validate()?;
    let probe = probe(model, layer, train, val, config.categories.as_deref(), config.batch_size)?;
    match config.task {
        Task::Segmentation => segmentation(&probe, config),
        Task::Classification => classification(&probe, config),
    }
}

/// Sec. 3.1 on a probe: the best single filter per concept, the learned weights, and the
/// re-learned top-F subsets if asked for.
pub fn segmentation(probe: &Probe, config: &Net2VecConfig) -> Result<Net2Vec, MetricError> {
    config.validate()?;
    let training = labelled(&config.training, "Net2Vec segmentation");
    let single = single::single_filter(probe);
    let trained =
        multi::train(&probe.train, &probe.concepts, probe.image_size, None, config.bias, config.pixels, &training)?;
    let scores = multi::score(probe, &trained);
    let mut subsets = Vec::new();
    for f in config.subset_sizes(probe.filters()) {
        let mask = classify::top_filters(&trained.weights, f);
        let again = multi::train(
            &probe.train,
            &probe.concepts,
            probe.image_size,
            Some(&mask),
            config.bias,
            config.pixels,
            &training,
        )?;
        subsets.push(SubsetScores { filters: f, scores: multi::score(probe, &again).set_iou });
    }
    let best = single.scores();
    Ok(Net2Vec {
        single: single.best.iter().zip(best).map(|(&filter, score)| FilterScore { filter, score }).collect(),
        multi: scores.set_iou,
        individual: scores.individual,
        filter_ious: single.val,
        subsets,
        ..result(probe, Task::Segmentation, &trained)?
    })
}

/// Sec. 3.2 on a probe: weights over the spatial means learned on balanced batches, their
/// balanced val accuracy, and the top-F subsets re-learned (F = 1 is the single filter).
pub fn classification(probe: &Probe, config: &Net2VecConfig) -> Result<Net2Vec, MetricError> {
    config.validate()?;
    let training = labelled(&config.training, "Net2Vec classification");
    let seed = training.seed.unwrap_or_else(crate::seed::current);
    let (train, val) = (
        classify::Sides::of(&probe.train.presence(&probe.concepts)),
        classify::Sides::of(&probe.val.presence(&probe.concepts)),
    );
    let trained = classify::train(&probe.train, &train, None, &training)?;
    let multi = classify::balanced_accuracy(&probe.val, &val, &trained, seed);
    let mut sizes = config.subset_sizes(probe.filters());
    if !sizes.contains(&1) {
        sizes.insert(0, 1);
    }
    let mut subsets = Vec::new();
    for f in sizes {
        let mask = classify::top_filters(&trained.weights, f);
        let again = classify::train(&probe.train, &train, Some(&mask), &training)?;
        subsets.push(SubsetScores { filters: f, scores: classify::balanced_accuracy(&probe.val, &val, &again, seed) });
    }
    let top = multi::to_rows(&trained.weights.abs().argmax(0, false).to_kind(Kind::Double).view([1, -1]));
    let single = top[0].iter().zip(&subsets[0].scores).map(|(k, s)| FilterScore { filter: *k as usize, score: *s });
    Ok(Net2Vec { single: single.collect(), multi, subsets, ..result(probe, Task::Classification, &trained)? })
}

fn labelled(config: &TrainConfig, label: &str) -> TrainConfig {
    let label = if config.label == paper_training().label { label.to_owned() } else { config.label.clone() };
    TrainConfig { label, ..config.clone() }
}

/// The parts of a result every task fills alike.
fn result(probe: &Probe, task: Task, trained: &multi::Trained) -> Result<Net2Vec, MetricError> {
    let weights = multi::to_rows(&trained.weights.transpose(0, 1));
    let names = probe.concepts.iter().map(|c| c.name.clone()).collect();
    Ok(Net2Vec {
        layer: probe.layer.clone(),
        task,
        categories: probe.concepts.iter().map(|c| c.category).collect(),
        embedding: ConceptEmbedding::new(names, weights)?,
        bias: multi::to_rows(&trained.bias.view([1, -1])).remove(0),
        thresholds: probe.thresholds.clone(),
        single: Vec::new(),
        multi: Vec::new(),
        individual: Vec::new(),
        filter_ious: Vec::new(),
        subsets: Vec::new(),
        skipped: probe.skipped.clone(),
        training: trained.report.clone(),
        images: (probe.train.len(), probe.val.len()),
    })
}

impl Net2Vec {
    /// What the scores measure.
    pub fn metric(&self) -> &'static str {
        match self.task {
            Task::Segmentation => "set IoU",
            Task::Classification => "accuracy",
        }
    }

    /// The concepts' names (`category:name`).
    pub fn concepts(&self) -> &[String] {
        &self.embedding.names
    }

    /// The fraction of concepts whose weights do at least as well as their best single
    /// filter (table 1).
    pub fn multi_wins(&self) -> f64 {
        let wins = self.multi.iter().zip(&self.single).filter(|(m, s)| **m >= s.score).count();
        wins as f64 / self.multi.len().max(1) as f64
    }

    /// [`ConceptEmbedding::nearest`] in this result's embedding.
    pub fn nearest(&self, concept: &str, n: usize) -> Result<Neighbours, MetricError> {
        self.embedding.nearest(concept, n)
    }

    /// [`ConceptEmbedding::arith`] in this result's embedding.
    pub fn arith(&self, expression: &str, n: usize) -> Result<Neighbours, MetricError> {
        self.embedding.arith(expression, n)
    }

    /// [`ConceptEmbedding::distance`] between this result's embedding and another's.
    pub fn distance(&self, other: &Net2Vec) -> Result<EmbeddingDistance, MetricError> {
        self.embedding.distance(&other.embedding)
    }

    fn summary(&self) -> String {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let single: Vec<f64> = self.single.iter().map(|s| s.score).collect();
        format!(
            "Net2Vec {} on {} ({} filters, {} concepts; {} train / {} val images): mean val {} {:.3} with learned \
             weights vs {:.3} with the best single filter; weights at least as good for {:.0}% of concepts",
            self.task_name(),
            self.layer,
            self.thresholds.len(),
            self.multi.len(),
            self.images.0,
            self.images.1,
            self.metric(),
            mean(&self.multi),
            mean(&single),
            100.0 * self.multi_wins()
        )
    }

    fn task_name(&self) -> &'static str {
        match self.task {
            Task::Segmentation => "segmentation",
            Task::Classification => "classification",
        }
    }
}

/// The summary, the per-category means, every concept's scores, and fig. 2 as bars.
impl Render for Net2Vec {
    fn render(&self) -> Output {
        let head = self.summary();
        let mut text = vec![head.clone()];
        let mut html = format!(
            "<p>{head}</p><table><tr><th>category</th><th>concepts</th><th>single filter</th><th>weights</th></tr>"
        );
        for c in self.by_category() {
            text.push(format!(
                "  {}: {} concepts, single {:.3} ± {:.3}, weights {:.3} ± {:.3}",
                c.category, c.concepts, c.single_mean, c.single_se, c.multi_mean, c.multi_se
            ));
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{:.3} ± {:.3}</td><td>{:.3} ± {:.3}</td></tr>",
                c.category, c.concepts, c.single_mean, c.single_se, c.multi_mean, c.multi_se
            ));
        }
        html.push_str(&format!(
            "</table><table><tr><th>concept</th><th>best filter</th><th>single {0}</th><th>weights {0}</th>{1}</tr>",
            self.metric(),
            if self.individual.is_empty() { "" } else { "<th>mean per-image IoU</th>" }
        ));
        let per_image: Vec<f64> =
            self.individual.iter().map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64).collect();
        for (i, name) in self.concepts().iter().enumerate() {
            let (s, m) = (self.single[i], self.multi[i]);
            let extra = per_image.get(i).map_or(String::new(), |p| format!("<td>{p:.3}</td>"));
            html.push_str(&format!(
                "<tr><td>{name}</td><td>{}</td><td>{:.3}</td><td>{m:.3}</td>{extra}</tr>",
                s.filter, s.score
            ));
            text.push(format!("  {name:<24} filter {:>4} {:.3} | weights {m:.3}", s.filter, s.score));
        }
        html.push_str("</table>");
        if !self.skipped.is_empty() {
            let skipped = format!("not learned: {}", self.skipped.join(", "));
            html.push_str(&format!("<p>{skipped}</p>"));
            text.push(skipped);
        }
        let chart = self.category_chart().render();
        Output::html(html).and(Output::text(text.join("\n"))).with("image/png", chart.data()["image/png"].clone())
    }
}

#[cfg(test)]
mod tests;
