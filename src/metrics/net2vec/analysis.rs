//! The paper's analyses of a [`Net2Vec`] result, as values and plots: single against learned
//! weights per category (fig. 2), scores against the number of filters (fig. 3), how many
//! concepts each filter is best for (fig. 5), the correlation of the weights with the
//! filters' own set IoU (sec. 5.2, fig. 9), and examples picked at every decile of the
//! per-image IoU (fig. 8).

use tch::{Device, Kind, Tensor};

use super::multi::logits;
use super::single::{individual_ious, upsample_masks};
use super::Net2Vec;
use crate::data::{Category, ConceptDataset};
use crate::display::{Output, Render};
use crate::metrics::correlation::{self, Correlation};
use crate::metrics::{resolve_layer, MetricError};
use crate::models::{Tapped, Task};
use crate::viz::{BarChart, Grid, LinePlot, ScatterPlot};

/// The mean scores of one category's concepts, with their standard errors (fig. 2).
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryScores {
    pub category: Category,
    pub concepts: usize,
    pub single_mean: f64,
    pub single_se: f64,
    pub multi_mean: f64,
    pub multi_se: f64,
}

/// Mean and standard error of the mean.
fn mean_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if n == 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    if n < 2.0 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// How many concepts each filter of a layer is the best single filter for (fig. 5).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterUsage {
    pub layer: String,
    /// Per filter, the number of concepts it is best for.
    pub counts: Vec<usize>,
}

impl FilterUsage {
    /// `histogram[n]`: how many filters are best for exactly `n` concepts.
    pub fn histogram(&self) -> Vec<usize> {
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let mut h = vec![0; max + 1];
        for &n in &self.counts {
            h[n] += 1;
        }
        h
    }
}

impl Render for FilterUsage {
    fn render(&self) -> Output {
        let h = self.histogram();
        let never = h.first().copied().unwrap_or(0);
        let most = self.counts.iter().enumerate().max_by_key(|(_, n)| **n).map_or((0, 0), |(k, n)| (k, *n));
        let text = format!(
            "{}: {} of {} filters are the best filter of no concept; filter {} is best for {} concepts",
            self.layer,
            never,
            self.counts.len(),
            most.0,
            most.1
        );
        BarChart::new(format!("{}: filters by the number of concepts they are best for", self.layer))
            .categories((0..h.len()).map(|n| n.to_string()))
            .group("filters", h.iter().map(|&v| v as f64))
            .x_label("concepts")
            .y_label("filters")
            .render()
            .with("text/plain", text.into())
    }
}

/// Per concept, Pearson's r between `max(w_k, 0)` and `IoU_set(c; M_k, val)` over the filters
/// `k` (sec. 5.2), with its two-sided p-value.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightCorrelation {
    pub layer: String,
    pub concepts: Vec<String>,
    pub r: Vec<f64>,
    pub p: Vec<f64>,
}

impl WeightCorrelation {
    /// The fraction of concepts whose correlation is significant at `p < level` (the paper
    /// reports it at 0.01).
    pub fn significant(&self, level: f64) -> f64 {
        self.p.iter().filter(|p| **p < level).count() as f64 / self.p.len().max(1) as f64
    }
}

impl Render for WeightCorrelation {
    fn render(&self) -> Output {
        let head = format!(
            "{}: max(w, 0) against single-filter set IoU: {:.0}% of {} concepts significantly correlated (p < 0.01)",
            self.layer,
            100.0 * self.significant(0.01),
            self.concepts.len()
        );
        let rows = self.concepts.iter().zip(&self.r).zip(&self.p);
        let text: Vec<String> = std::iter::once(head.clone())
            .chain(rows.clone().map(|((c, r), p)| format!("  {c:<24} r {r:+.3}  p {p:.2e}")))
            .collect();
        let html: String =
            rows.map(|((c, r), p)| format!("<tr><td>{c}</td><td>{r:+.3}</td><td>{p:.2e}</td></tr>")).collect();
        Output::html(format!("<p>{head}</p><table><tr><th>concept</th><th>r</th><th>p</th></tr>{html}</table>"))
            .and(Output::text(text.join("\n")))
    }
}

/// Pearson's r and its p-value, with a constant side read as no correlation (r 0, p 1).
fn pearson(x: &[f64], y: &[f64]) -> Correlation {
    let c = correlation::pearson(x, y);
    if c.r.is_nan() {
        Correlation { r: 0.0, p: 1.0, ..c }
    } else {
        c
    }
}

impl Net2Vec {
    /// Fig. 2: per category, the mean val score of the best single filter and of the
    /// learned weights.
    pub fn by_category(&self) -> Vec<CategoryScores> {
        let mut categories: Vec<Category> = self.categories.clone();
        categories.dedup();
        categories
            .into_iter()
            .map(|category| {
                let of = |values: Vec<f64>| -> Vec<f64> {
                    values.into_iter().zip(&self.categories).filter(|(_, c)| **c == category).map(|(v, _)| v).collect()
                };
                let single = of(self.single.iter().map(|s| s.score).collect());
                let multi = of(self.multi.clone());
                let ((single_mean, single_se), (multi_mean, multi_se)) = (mean_se(&single), mean_se(&multi));
                CategoryScores { category, concepts: multi.len(), single_mean, single_se, multi_mean, multi_se }
            })
            .collect()
    }

    /// Fig. 2 as grouped bars: per category, single filter beside learned weights.
    pub fn category_chart(&self) -> BarChart {
        let scores = self.by_category();
        BarChart::new(format!("{} {}: single filter vs learned weights", self.layer, self.task_name()))
            .categories(scores.iter().map(|c| c.category.to_string()))
            .group("single filter", scores.iter().map(|c| c.single_mean))
            .group("learned weights", scores.iter().map(|c| c.multi_mean))
            .y_label(format!("mean val {}", self.metric()))
            .size(560, 340)
    }

    /// Fig. 3: the mean val score per category against the number F of top filters the
    /// weights were re-learned on.
    pub fn subset_plot(&self) -> Result<LinePlot, MetricError> {
        if self.subsets.is_empty() {
            return Err(MetricError::Invalid(format!(
                "this {} result has no filter subsets; learn it with `subsets: Some(vec![1, 2, 4, ...])`",
                self.task_name()
            )));
        }
        let mut plot = LinePlot::new(format!("{} {}: top-F filters", self.layer, self.task_name()))
            .x_label("F (filters)")
            .y_label(format!("mean val {}", self.metric()))
            .size(560, 340);
        let mut categories = self.categories.clone();
        categories.dedup();
        for category in categories {
            let mean = |scores: &[f64]| {
                let v: Vec<f64> =
                    scores.iter().zip(&self.categories).filter(|(_, c)| **c == category).map(|(s, _)| *s).collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            let xs = self.subsets.iter().map(|s| s.filters as f64);
            plot = plot.series(category.to_string(), xs, self.subsets.iter().map(|s| mean(&s.scores)));
        }
        Ok(plot)
    }

    /// Fig. 5: for every filter, the number of concepts it is the best single filter for.
    pub fn filter_usage(&self) -> FilterUsage {
        let mut counts = vec![0; self.thresholds.len()];
        for s in &self.single {
            counts[s.filter] += 1;
        }
        FilterUsage { layer: self.layer.clone(), counts }
    }

    /// Sec. 5.2: per concept, the correlation of `max(w, 0)` with the filters' own val set
    /// IoUs. Segmentation only.
    pub fn weight_correlation(&self) -> Result<WeightCorrelation, MetricError> {
        self.need_segmentation("the correlation of weights with single-filter IoU")?;
        let (mut r, mut p) = (Vec::new(), Vec::new());
        for (w, ious) in self.embedding.vectors.iter().zip(&self.filter_ious) {
            let relu: Vec<f64> = w.iter().map(|x| x.max(0.0)).collect();
            let c = pearson(&relu, ious);
            r.push(c.r);
            p.push(c.p);
        }
        Ok(WeightCorrelation { layer: self.layer.clone(), concepts: self.concepts().to_vec(), r, p })
    }

    /// Sec. 5.2: how much each filter contributes to `concept`'s encoding, `|w_k| / ‖w‖₁`.
    pub fn filter_contributions(&self, concept: &str) -> Result<Vec<f64>, MetricError> {
        let w = &self.embedding.vectors[self.embedding.find(concept)?];
        let l1: f64 = w.iter().map(|x| x.abs()).sum();
        Ok(w.iter().map(|x| if l1 > 0.0 { x.abs() / l1 } else { 0.0 }).collect())
    }

    /// Sec. 5.2: per concept, the best single filter's share of the learned weights' score,
    /// `IoU_set(c; M_k*, val) / IoU_set(c; M(·; w), val)` (or the accuracies' ratio); 0 where the
    /// weights score 0.
    pub fn single_share(&self) -> Vec<f64> {
        self.single.iter().zip(&self.multi).map(|(s, m)| if *m > 0.0 { s.score / m } else { 0.0 }).collect()
    }

    /// Fig. 9 for one concept: every filter's `max(w_k, 0)` against its val set IoU.
    pub fn weight_scatter(&self, concept: &str) -> Result<ScatterPlot, MetricError> {
        self.need_segmentation("the weights against single-filter IoU")?;
        let c = self.embedding.find(concept)?;
        let relu: Vec<f64> = self.embedding.vectors[c].iter().map(|x| x.max(0.0)).collect();
        let r = pearson(&relu, &self.filter_ious[c]).r;
        Ok(ScatterPlot::new(format!("{} (r = {r:.2})", self.concepts()[c]))
            .series("filters", relu, self.filter_ious[c].clone())
            .x_label("max(w, 0)")
            .y_label("single-filter val set IoU")
            .size(420, 320))
    }

    fn need_segmentation(&self, what: &str) -> Result<(), MetricError> {
        match self.task {
            Task::Segmentation => Ok(()),
            Task::Classification => {
                Err(MetricError::Invalid(format!("{what} needs a segmentation result; this one is classification")))
            }
        }
    }
}

/// Fig. 8: for `concept`, the val images that contain it are segmented by its best single
/// filter (top row) and by its learned weights (bottom row); for each, an image is picked at
/// every decile of the non-zero part of its per-image IoUs (sec. 5.1), lowest first, and
/// shown with its mask. `val` must be the val split `result` was learned with, or one like it.
pub fn decile_examples<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    result: &Net2Vec,
    val: &D,
    concept: &str,
) -> Result<Output, MetricError> {
    result.need_segmentation("decile examples")?;
    let c = result.embedding.find(concept)?;
    let name = &result.concepts()[c];
    let vocabulary = val.vocabulary();
    let found = vocabulary.find(name)?;
    let batch = val.batch(0..val.len())?;
    let Some(map) = batch.concepts.get(&found.category) else {
        return Err(MetricError::Invalid(format!("the data set has no `{}` label maps", found.category)));
    };
    let labels = map.eq(found.index as i64).to_device(Device::Cpu);
    let with = labels.flatten(1, -1).any_dim(1, false).nonzero().view([-1]);
    if with.size()[0] == 0 {
        return Err(MetricError::Invalid(format!("no image of the data set shows `{name}`")));
    }
    let images = batch.images.index_select(0, &with.to_device(batch.images.device())).to_device(Device::Cpu);
    let targets = labels.index_select(0, &with).unsqueeze(1);
    let stage = resolve_layer(model, &result.layer)?;
    let (_, mut taps) =
        tch::no_grad(|| model.forward_taps(&images.to_device(model.device()), &[stage.clone()], false))?;
    let acts = taps.remove(&stage).expect("tapped").to_device(Device::Cpu).to_kind(Kind::Float);
    let thresholds = Tensor::from_slice(&result.thresholds).to_kind(Kind::Float).view([1, -1, 1, 1]);
    let fired = acts.gt_tensor(&thresholds);
    let size = (targets.size()[2], targets.size()[3]);
    let k = result.single[c].filter as i64;
    let single = upsample_masks(&fired.narrow(1, k, 1), size);
    let w = Tensor::from_slice(&result.embedding.vectors[c]).to_kind(Kind::Float).view([-1, 1]);
    let b = Tensor::from_slice(&[result.bias[c]]).to_kind(Kind::Float);
    let multi = logits(&fired, &w, &b, size).gt(0.0);
    let mut rows = Vec::new();
    for (masks, label) in [(&single, format!("filter {k}")), (&multi, "weights".to_owned())] {
        let ious = Vec::<f64>::try_from(individual_ious(masks, &targets).view([-1])).unwrap();
        let row: Vec<(Tensor, Tensor, String)> = deciles(&ious)
            .into_iter()
            .map(|(i, iou)| (images.get(i as i64), masks.get(i as i64).squeeze_dim(0), format!("{label} {iou:.2}")))
            .collect();
        rows.push(row);
    }
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    if columns == 0 {
        return Err(MetricError::Invalid(format!("neither segmenter overlaps `{name}` on any val image")));
    }
    // Rows padded with blank cells, so that each segmenter keeps its own row.
    let blank = || (images.get(0).zeros_like(), targets.get(0).squeeze_dim(0).zeros_like(), String::new());
    let cells: Vec<(Tensor, Tensor, String)> = rows
        .into_iter()
        .flat_map(|mut row| {
            row.resize_with(columns, blank);
            row
        })
        .collect();
    let picked = Tensor::stack(&cells.iter().map(|c| c.0.shallow_clone()).collect::<Vec<_>>(), 0);
    let masks = Tensor::stack(&cells.iter().map(|c| c.1.shallow_clone()).collect::<Vec<_>>(), 0);
    let grid = Grid::overlay(&picked, &masks, 0.55).columns(columns).scale(2).labels(cells.into_iter().map(|c| c.2));
    Ok(grid
        .render()
        .with("text/plain", format!("{name}: decile examples, best filter {k} then learned weights").into()))
}

/// Up to ten `(index, value)` of the non-zero `values`, one at the middle of every decile of
/// their sorted order.
pub fn deciles(values: &[f64]) -> Vec<(usize, f64)> {
    let mut nonzero: Vec<(usize, f64)> = values.iter().copied().enumerate().filter(|(_, v)| *v > 0.0).collect();
    nonzero.sort_by(|a, b| a.1.total_cmp(&b.1));
    let n = nonzero.len();
    let mut picked: Vec<usize> = (0..10).map(|d| ((2 * d + 1) * n / 20).min(n.saturating_sub(1))).collect();
    picked.dedup();
    if n == 0 {
        return Vec::new();
    }
    picked.into_iter().map(|i| nonzero[i]).collect()
}
