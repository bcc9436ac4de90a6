//! Semantic vectors (SeVec paper, Gu & Tresp): one direction per concept in a layer's
//! feature space, and the global analyses built on them.
//!
//! A layer's output for an image, flattened (every channel at every position is a unit, as
//! the paper's fc1 and pool5 vectors are; or, with [`Units::Channels`], every channel
//! averaged over its map), is binarised to `a = 1[φ(x) > 0]`: the paper
//! argues that the non-zero pattern, not the values, carries the meaning (sec. 3). In a
//! dense middle layer many units are positive on most images of every class, so
//! [`Binarize::TopQuantile`] measures each unit against its own top quantile instead. The SeVec
//! of a concept maximises the summed cosine to the binarised features of its images, whose
//! solution is `v_c = A / |A|` with `A = Σ a_i / |a_i|` (eq. 3). Each element of `A / M`
//! is then close to a unit's activation rate on the concept, which the local explanations use
//! to tell relevant units from irrelevant ones (rate > 0.5, sec. 5).
//!
//! [`semantic_vectors`] computes every concept's SeVec, activation rates and diversity
//! `D_c = 1 − mean cos(a_i, v_c)` (sec. 4.2) in one streaming pass: since `v_c` is `A/|A|`,
//! the mean cosine is `|A| / M` and needs no second pass. On a [`SemanticVectors`] value:
//! retrieval of the hold-out images nearest to a SeVec (figs. 1-2), concept relevance
//! `cos(v_a, v_b)` (fig. 5), a 2-D embedding (fig. 3), the single-unit vs SeVec perturbation
//! test (table 1) and the correlation of diversity with per-class accuracy (table 2).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::correlation::{pearson, spearman, Correlation};
use super::saliency::{class_scores, forward_from, Gate};
use super::{resolve_layer, MetricError};
use crate::data::{Category, Concept, ConceptDataset, Vocabulary};
use crate::display::{Output, Render};
use crate::models::{Stage, Tapped};
use crate::progress::Progress;
use crate::viz::{Grid, Heatmap, ScatterPlot};

/// The activation rate above which a unit counts as relevant to a concept: the SeVec
/// paper's `1[v_c > 0.5]` (table 1 and sec. 5), read as a rate, since the elements of a
/// unit-length vector of thousands of units never reach 0.5.
pub const RELEVANT_RATE: f64 = 0.5;

/// How a unit's activation becomes the 0/1 of `a`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Binarize {
    /// `1[φ(x) > 0]`: the SeVec paper's (sec. 3), for the sparse ReLU features of a
    /// classifier's last layers.
    #[default]
    Positive,
    /// `1[φ_u(x) > T_u]`, with `T_u` the value unit `u` exceeds on the top `q` of the images
    /// (Net2Vec's per-filter `T_k`, there the top 0.5% of positions): every unit against its
    /// own level, so that a unit positive on most images, as half the units of a dense middle
    /// layer are, is active only on the images that drive it most.
    TopQuantile(f64),
}

impl Binarize {
    pub fn validate(self) -> Result<(), MetricError> {
        match self {
            Binarize::TopQuantile(q) if !(q > 0.0 && q < 1.0) => {
                Err(MetricError::Invalid(format!("the top quantile must lie between 0 and 1, got {q}")))
            }
            _ => Ok(()),
        }
    }
}

/// What one unit of a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Units {
    /// Every channel at every position: the layer's output flattened, as the paper's pool5
    /// and fc1 vectors are.
    #[default]
    Positions,
    /// Every channel, averaged over its map: the feature a global-average-pooling head sees,
    /// one unit wherever on the map its pattern lies. Where objects sit anywhere, no single
    /// position of a middle layer sees a class consistently, but a channel can.
    Channels,
}

impl Units {
    /// How many units one image has at a layer whose output is `shape` (`[C, H, W]` or `[C]`).
    pub fn count(self, shape: &[i64]) -> i64 {
        match self {
            Units::Positions => shape.iter().product(),
            Units::Channels => shape.first().copied().unwrap_or(1),
        }
    }

    /// A layer's output `[N, C, ...]` as `[N, units]`.
    fn of(self, acts: &Tensor) -> Tensor {
        match self {
            Units::Channels if acts.dim() > 2 => acts.flatten(2, -1).mean_dim(&[2i64][..], false, None),
            _ => acts.flatten(1, -1),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Units::Positions => "position",
            Units::Channels => "channel",
        }
    }
}

/// What to compute SeVecs of.
#[derive(Debug, Clone, PartialEq)]
pub struct SevecConfig {
    /// The concept categories; `None` takes every category of the data set.
    pub categories: Option<Vec<Category>>,
    pub batch_size: usize,
    pub units: Units,
    pub binarize: Binarize,
}

impl Default for SevecConfig {
    fn default() -> Self {
        SevecConfig { categories: None, batch_size: 32, units: Units::Positions, binarize: Binarize::Positive }
    }
}

/// The SeVecs of a layer: one row per concept that at least one image shows.
#[derive(Debug)]
pub struct SemanticVectors {
    pub stage: Stage,
    /// One image's feature shape at the layer (`[C, H, W]`).
    pub shape: Vec<i64>,
    /// What the `D` elements of a vector are: the shape flattened, or its channels.
    pub units: Units,
    /// Qualified names (`object:car`).
    pub concepts: Vec<String>,
    pub categories: Vec<Category>,
    /// The concepts as the data set's vocabulary numbers them; an object concept's index is
    /// its class in a segmentation model of the data set.
    pub ids: Vec<Concept>,
    /// `[K, D]` unit rows, eq. 3 (CPU).
    pub vectors: Tensor,
    /// `[K, D]` the fraction of a concept's images on which each unit is active (CPU).
    pub rates: Tensor,
    /// `[D]` the level each unit must exceed to count as active (CPU), for
    /// [`Binarize::TopQuantile`]; `None`: 0, the paper's.
    pub thresholds: Option<Tensor>,
    /// M_c: the images of each concept (with at least one active unit).
    pub images: Vec<usize>,
    /// D_c = 1 − mean cos(a_i, v_c) (sec. 4.2).
    pub diversity: Vec<f64>,
}

/// The features `φ(x)` of `images` at `stage` per unit, `[N, D]`, on the model's device,
/// and one image's feature shape.
fn features(
    model: &impl Tapped,
    stage: &Stage,
    units: Units,
    images: &Tensor,
) -> Result<(Tensor, Vec<i64>), MetricError> {
    let xs = images.to_device(model.device());
    let (_, mut taps) = tch::no_grad(|| model.forward_taps(&xs, std::slice::from_ref(stage), false))?;
    let acts = taps.remove(stage).expect("tapped");
    let shape = acts.size()[1..].to_vec();
    Ok((units.of(&acts), shape))
}

/// The binarised features `a = 1[φ(x) > T]` of `images` at `stage` per unit, `[N, D]`
/// float, on the model's device, and one image's feature shape; `thresholds` `[D]` holds
/// `T` per unit, `None` the paper's 0.
pub fn binary_features(
    model: &impl Tapped,
    stage: &Stage,
    units: Units,
    images: &Tensor,
    thresholds: Option<&Tensor>,
) -> Result<(Tensor, Vec<i64>), MetricError> {
    let (acts, shape) = features(model, stage, units, images)?;
    let active = match thresholds {
        Some(t) => acts.gt_tensor(&t.to_device(acts.device())),
        None => acts.gt(0.0),
    };
    Ok((active.to_kind(Kind::Float), shape))
}

/// The most feature values the per-unit quantiles of [`Binarize::TopQuantile`] hold at once
/// (1 GiB of floats).
const MAX_QUANTILE_VALUES: i64 = 1 << 28;

/// `T_u` for every unit of `stage` over `data`, the value it exceeds on the top `q` of the
/// images ([`Binarize::TopQuantile`]).
fn unit_thresholds<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    stage: &Stage,
    units: Units,
    data: &D,
    batch_size: usize,
    q: f64,
) -> Result<Tensor, MetricError> {
    let mut rows = Vec::new();
    for batch in data.batches(batch_size) {
        let (acts, _) = features(model, stage, units, &batch?.images)?;
        rows.push(acts.to_device(Device::Cpu).to_kind(Kind::Float));
        let held: i64 = rows.iter().map(|r| r.numel() as i64).sum();
        if held > MAX_QUANTILE_VALUES {
            return Err(MetricError::Invalid(format!(
                "per-unit quantiles of {stage} over {} images would hold more than {MAX_QUANTILE_VALUES} values; \
                 use fewer images or the paper's φ > 0",
                data.len()
            )));
        }
    }
    Ok(Tensor::cat(&rows, 0).quantile_scalar(1.0 - q, Some(0), false, "linear"))
}

/// The sums eq. 3 and the diversity need, over a stream of binarised features.
#[derive(Debug)]
pub struct Accumulator {
    /// A = Σ a_i / |a_i| per concept, `[K, D]`.
    unit_sum: Tensor,
    /// Σ a_i per concept, `[K, D]`.
    active: Tensor,
    /// M per concept, `[K]`.
    images: Tensor,
}

impl Accumulator {
    pub fn new(concepts: i64, dim: i64, device: Device) -> Self {
        let zeros = |shape: &[i64]| Tensor::zeros(shape, (Kind::Double, device));
        Accumulator { unit_sum: zeros(&[concepts, dim]), active: zeros(&[concepts, dim]), images: zeros(&[concepts]) }
    }

    /// Adds binarised features `a` `[B, D]` of images whose concepts are the 0/1 rows of
    /// `membership` `[B, K]`. Images with no active unit have no direction and are skipped.
    pub fn add(&mut self, a: &Tensor, membership: &Tensor) {
        let a = a.to_kind(Kind::Double);
        let counts = a.sum_dim_intlist(1, true, Kind::Double);
        let unit = &a / counts.sqrt().clamp_min(1.0);
        let members = membership.to_device(a.device()).to_kind(Kind::Double) * counts.gt(0.0).to_kind(Kind::Double);
        self.unit_sum += members.tr().matmul(&unit);
        self.active += members.tr().matmul(&a);
        self.images += members.sum_dim_intlist(0, false, Kind::Double);
    }

    /// `(v_c, rates, M, D_c)`: eq. 3's solution `A / |A|`, the activation rates, the image
    /// counts and the diversity `1 − |A| / M` (the mean of `â_i · v_c` over the M images).
    pub fn finish(&self) -> (Tensor, Tensor, Vec<usize>, Vec<f64>) {
        let norm = self.unit_sum.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        let vectors = &self.unit_sum / norm.clamp_min(1e-30);
        let m = self.images.unsqueeze(1).clamp_min(1.0);
        let rates = &self.active / &m;
        let images: Vec<f64> = to_vec(&self.images);
        let norms: Vec<f64> = to_vec(&norm.view([-1]));
        let diversity = images.iter().zip(&norms).map(|(m, a)| if *m > 0.0 { 1.0 - a / m } else { f64::NAN }).collect();
        let cpu = |t: Tensor| t.to_kind(Kind::Float).to_device(Device::Cpu);
        (cpu(vectors), cpu(rates), images.iter().map(|m| *m as usize).collect(), diversity)
    }
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::try_from(t.to_kind(Kind::Double).to_device(Device::Cpu).contiguous().view([-1])).expect("a double tensor")
}

/// The concepts of the chosen categories, in image-label column order.
fn chosen_concepts(vocabulary: &Vocabulary, categories: Option<&[Category]>) -> Result<Vec<Concept>, MetricError> {
    let available = vocabulary.categories();
    let chosen = categories.map_or_else(|| available.clone(), <[Category]>::to_vec);
    if let Some(missing) = chosen.iter().find(|c| !available.contains(c)) {
        return Err(MetricError::Invalid(format!("the data set has no `{missing}` concepts")));
    }
    let concepts: Vec<Concept> = vocabulary.all().filter(|c| chosen.contains(&c.category)).collect();
    if concepts.is_empty() {
        return Err(MetricError::Invalid("no concepts; name at least one category".into()));
    }
    Ok(concepts)
}

/// The SeVec (eq. 3), activation rates and diversity of every concept of `data` (of the
/// chosen categories) at `layer`, from the images that show it anywhere (its image labels),
/// in one pass. Concepts no image shows are left out.
pub fn semantic_vectors<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    layer: &str,
    data: &D,
    config: &SevecConfig,
) -> Result<SemanticVectors, MetricError> {
    let stage = resolve_layer(model, layer)?;
    let data = &crate::data::at_size(data, model.input_size())?;
    if data.is_empty() || config.batch_size == 0 {
        return Err(MetricError::Invalid("needs at least one image and a batch size of 1 or more".into()));
    }
    config.binarize.validate()?;
    let thresholds = match config.binarize {
        Binarize::Positive => None,
        Binarize::TopQuantile(q) => Some(unit_thresholds(model, &stage, config.units, data, config.batch_size, q)?),
    };
    let vocabulary = data.vocabulary();
    let concepts = chosen_concepts(vocabulary, config.categories.as_deref())?;
    let columns: Vec<i64> = concepts.iter().map(|c| vocabulary.global_index(*c) as i64).collect();
    let columns = Tensor::from_slice(&columns);
    let mut acc: Option<Accumulator> = None;
    let mut shape = Vec::new();
    let mut progress = Progress::new(format!("SeVecs at {stage}"), Some(data.len().div_ceil(config.batch_size) as u64));
    for batch in data.batches(config.batch_size) {
        let batch = batch?;
        let (a, s) = binary_features(model, &stage, config.units, &batch.images, thresholds.as_ref())?;
        shape = s;
        let members = batch.image_labels.index_select(1, &columns.to_device(batch.image_labels.device()));
        acc.get_or_insert_with(|| Accumulator::new(concepts.len() as i64, a.size()[1], a.device())).add(&a, &members);
        progress.step()?;
    }
    progress.finish();
    let (vectors, rates, images, diversity) = acc.expect("at least one batch").finish();
    let seen: Vec<i64> = (0..concepts.len() as i64).filter(|i| images[*i as usize] > 0).collect();
    let keep = Tensor::from_slice(&seen);
    Ok(SemanticVectors {
        stage,
        shape,
        units: config.units,
        concepts: seen.iter().map(|i| vocabulary.qualified_name(concepts[*i as usize])).collect(),
        categories: seen.iter().map(|i| concepts[*i as usize].category).collect(),
        ids: seen.iter().map(|i| concepts[*i as usize]).collect(),
        vectors: vectors.index_select(0, &keep),
        rates: rates.index_select(0, &keep),
        thresholds,
        images: seen.iter().map(|i| images[*i as usize]).collect(),
        diversity: seen.iter().map(|i| diversity[*i as usize]).collect(),
    })
}

impl SemanticVectors {
    pub fn len(&self) -> usize {
        self.concepts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.concepts.is_empty()
    }

    /// The row of `concept`: its qualified name, or a bare name that only one concept has.
    pub fn find(&self, concept: &str) -> Result<usize, MetricError> {
        if let Some(i) = self.concepts.iter().position(|c| c == concept) {
            return Ok(i);
        }
        let bare: Vec<usize> =
            (0..self.len()).filter(|i| self.concepts[*i].split_once(':').is_some_and(|(_, n)| n == concept)).collect();
        match bare[..] {
            [i] => Ok(i),
            [] => Err(MetricError::Invalid(format!(
                "no SeVec of `{concept}`; there are: {}",
                crate::viz::short_list(&self.concepts, 30)
            ))),
            _ => Err(MetricError::Invalid(format!(
                "`{concept}` is ambiguous; say one of: {}",
                bare.iter().map(|i| self.concepts[*i].as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The model class of an object concept: its label value in the object map.
    pub fn class_index(&self, concept: &str) -> Result<i64, MetricError> {
        let id = self.ids[self.find(concept)?];
        if id.category != Category::Object {
            return Err(MetricError::Invalid(format!("`{concept}` is a {}, not an object class", id.category)));
        }
        Ok(id.index as i64)
    }

    /// The SeVec of `concept`, `[D]`.
    pub fn vector(&self, concept: &str) -> Result<Tensor, MetricError> {
        Ok(self.vectors.get(self.find(concept)? as i64))
    }

    /// The relevance of concept `a` to concept `b`: `cos(v_a, v_b)` (sec. 4.3, fig. 5).
    pub fn relevance(&self, a: &str, b: &str) -> Result<f64, MetricError> {
        Ok(self.vector(a)?.dot(&self.vector(b)?).double_value(&[]))
    }

    /// The relevance of every concept of `rows` to every concept of `cols` (fig. 5).
    pub fn relevance_table(&self, rows: &[&str], cols: &[&str]) -> Result<Relevance, MetricError> {
        let pick = |names: &[&str]| -> Result<Tensor, MetricError> {
            let idx: Vec<i64> = names.iter().map(|n| self.find(n).map(|i| i as i64)).collect::<Result<_, _>>()?;
            Ok(self.vectors.index_select(0, &Tensor::from_slice(&idx)))
        };
        let values = pick(rows)?.matmul(&pick(cols)?.tr());
        let values = (0..rows.len() as i64).map(|r| to_vec(&values.get(r))).collect();
        let name = |n: &&str| self.concepts[self.find(n).expect("found above")].clone();
        Ok(Relevance { rows: rows.iter().map(name).collect(), cols: cols.iter().map(name).collect(), values })
    }

    /// [`SemanticVectors::relevance_table`] of every concept of one category against every
    /// concept of another (classes against materials or colours, say).
    pub fn relevance_by_category(&self, rows: Category, cols: Category) -> Result<Relevance, MetricError> {
        let of = |c: Category| -> Vec<&str> {
            (0..self.len()).filter(|i| self.categories[*i] == c).map(|i| self.concepts[i].as_str()).collect()
        };
        self.relevance_table(&of(rows), &of(cols))
    }

    /// Units active on more than half of `concept`'s images, `[D]` bool (sec. 5, table 1).
    pub fn relevant_units(&self, concept: &str) -> Result<Tensor, MetricError> {
        Ok(self.rates.get(self.find(concept)? as i64).gt(RELEVANT_RATE))
    }

    /// Values per unit, `[.., D]`, over the layer's flattened output, `[.., C·H·W]`: a
    /// channel-unit's value at every position of its channel.
    pub fn spread(&self, values: &Tensor) -> Tensor {
        match self.units {
            Units::Positions => values.shallow_clone(),
            Units::Channels => {
                let positions: i64 = self.shape[1..].iter().product();
                let lead = &values.size()[..values.dim() - 1];
                let expanded: Vec<i64> = lead.iter().copied().chain([self.shape[0], positions]).collect();
                let flat: Vec<i64> = lead.iter().copied().chain([-1]).collect();
                values.unsqueeze(-1).expand(expanded.as_slice(), false).reshape(flat.as_slice())
            }
        }
    }

    /// The binarised features of `images` at this layer, as these SeVecs binarise them,
    /// `[N, D]` on the model's device.
    pub fn binarise(&self, model: &impl Tapped, images: &Tensor) -> Result<Tensor, MetricError> {
        let (a, shape) = binary_features(model, &self.stage, self.units, images, self.thresholds.as_ref())?;
        if shape != self.shape {
            return Err(MetricError::Invalid(format!("features {shape:?} at {}, SeVecs {:?}", self.stage, self.shape)));
        }
        Ok(a)
    }

    /// The gate that keeps, for image `i`, only the units relevant to `concepts[i]` in the
    /// backward pass at this layer (the semantic saliency of sec. 5).
    pub fn gate(&self, concepts: &[&str]) -> Result<Gate, MetricError> {
        let masks: Vec<Tensor> = concepts.iter().map(|c| self.relevant_units(c)).collect::<Result<_, _>>()?;
        if masks.is_empty() {
            return Err(MetricError::Invalid("a gate needs at least one concept".into()));
        }
        let shape: Vec<i64> = [masks.len() as i64].into_iter().chain(self.shape.iter().copied()).collect();
        Ok(Gate {
            stage: self.stage.clone(),
            keep: self.spread(&Tensor::stack(&masks, 0).to_kind(Kind::Float)).view(shape.as_slice()),
        })
    }

    /// The cosine of every image of `data` to every SeVec, `[N, K]` (CPU): the similarity
    /// eq. 2 ranks images by.
    pub fn similarities<D: ConceptDataset + ?Sized>(
        &self,
        model: &impl Tapped,
        data: &D,
        batch_size: usize,
    ) -> Result<Tensor, MetricError> {
        let vectors = self.vectors.to_device(model.device());
        let mut rows = Vec::new();
        for batch in data.batches(batch_size.max(1)) {
            let a = self.binarise(model, &batch?.images)?;
            let unit = &a / a.sum_dim_intlist(1, true, Kind::Float).sqrt().clamp_min(1.0);
            rows.push(unit.matmul(&vectors.tr()).to_device(Device::Cpu));
        }
        Ok(Tensor::cat(&rows, 0))
    }

    /// The `k` images of a hold-out set nearest to `concept`'s SeVec (eq. 2, figs. 1-2), and
    /// how many of them show it.
    pub fn retrieve<D: ConceptDataset + ?Sized>(
        &self,
        model: &impl Tapped,
        holdout: &D,
        concept: &str,
        k: usize,
    ) -> Result<Retrieval, MetricError> {
        let row = self.find(concept)?;
        let scores = self.similarities(model, holdout, 32)?.select(1, row as i64);
        let column = holdout.vocabulary().find(&self.concepts[row])?;
        let column = holdout.vocabulary().global_index(column) as i64;
        let mut shows = Vec::new();
        for batch in holdout.batches(64) {
            shows.extend(to_vec(&batch?.image_labels.select(1, column)).into_iter().map(|v| v > 0.5));
        }
        let (top, order) = scores.topk(k.min(holdout.len()) as i64, 0, true, true);
        let indices: Vec<usize> =
            Vec::<i64>::try_from(&order).expect("int64").into_iter().map(|i| i as usize).collect();
        let images: Vec<Tensor> =
            indices.iter().map(|i| holdout.batch(*i..*i + 1).map(|b| b.images)).collect::<Result<_, _>>()?;
        let contains: Vec<bool> = indices.iter().map(|i| shows[*i]).collect();
        Ok(Retrieval {
            concept: self.concepts[row].clone(),
            precision: contains.iter().filter(|c| **c).count() as f64 / contains.len().max(1) as f64,
            base_rate: shows.iter().filter(|c| **c).count() as f64 / shows.len().max(1) as f64,
            scores: to_vec(&top),
            indices,
            contains,
            images: Tensor::cat(&images, 0).to_device(Device::Cpu),
        })
    }

    /// Every SeVec projected on its first two principal components (fig. 3 uses t-SNE; a
    /// PCA keeps the picture deterministic).
    pub fn embedding(&self) -> Embedding {
        let x = (&self.vectors - self.vectors.mean_dim(0, true, Kind::Float)).to_kind(Kind::Double);
        let (u, s, _) = x.svd(true, true);
        let k = s.size()[0].min(2);
        let coords = u.narrow(1, 0, k) * s.narrow(0, 0, k);
        // Each axis points towards its most extreme concept, so reruns draw the same picture.
        for axis in 0..k {
            let column = coords.select(1, axis);
            let extreme = column.get(column.abs().argmax(0, false).int64_value(&[]));
            if extreme.double_value(&[]) < 0.0 {
                let _ = coords.select(1, axis).g_mul_scalar_(-1.0);
            }
        }
        let total = s.square().sum(Kind::Double).double_value(&[]).max(1e-30);
        let explained = to_vec(&(s.narrow(0, 0, k).square() / total));
        let xs = if k > 0 { to_vec(&coords.select(1, 0)) } else { vec![0.0; self.len()] };
        let ys = if k > 1 { to_vec(&coords.select(1, 1)) } else { vec![0.0; self.len()] };
        Embedding {
            concepts: self.concepts.clone(),
            categories: self.categories.clone(),
            points: xs.into_iter().zip(ys).collect(),
            explained,
        }
    }
}

/// A table of concepts: images, diversity and relevant units, most diverse first, with the
/// embedding plot.
impl Render for SemanticVectors {
    fn render(&self) -> Output {
        let relevant: Vec<i64> =
            Vec::try_from(self.rates.gt(RELEVANT_RATE).sum_dim_intlist(1, false, Kind::Int64)).expect("int64 counts");
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by(|a, b| self.diversity[*b].total_cmp(&self.diversity[*a]));
        let head = format!(
            "SeVecs of {} concepts at {} ({} {}-units of {:?})",
            self.len(),
            self.stage,
            self.units.count(&self.shape),
            self.units.name(),
            self.shape
        );
        let mut text = vec![head.clone()];
        let mut html = format!(
            "<p><b>{head}</b></p><table><tr><th>concept</th><th>images M</th><th>diversity D</th><th>units with rate &gt; 0.5</th></tr>"
        );
        for i in order {
            let (name, m, d, r) = (&self.concepts[i], self.images[i], self.diversity[i], relevant[i]);
            text.push(format!("{name:<20} M {m:>5}  D {d:.3}  relevant {r}"));
            html.push_str(&format!("<tr><td>{name}</td><td>{m}</td><td>{d:.3}</td><td>{r}</td></tr>"));
        }
        html.push_str("</table>");
        let plot = self.embedding().render();
        Output::html(html).and(Output::text(text.join("\n"))).with("image/png", plot.data()["image/png"].clone())
    }
}

/// Concept relevance `cos(v_a, v_b)`, rows against columns (fig. 5).
#[derive(Debug, Clone, PartialEq)]
pub struct Relevance {
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub values: Vec<Vec<f64>>,
}

impl Relevance {
    /// The relevance of `row` to `col`, by qualified name.
    pub fn get(&self, row: &str, col: &str) -> Option<f64> {
        let r = self.rows.iter().position(|n| n == row)?;
        let c = self.cols.iter().position(|n| n == col)?;
        Some(self.values[r][c])
    }
}

impl Render for Relevance {
    fn render(&self) -> Output {
        let mut text = vec![format!("{:<18} {}", "cos(v_a, v_b)", self.cols.join(" "))];
        for (name, row) in self.rows.iter().zip(&self.values) {
            text.push(format!("{name:<18} {}", row.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(" ")));
        }
        let map = Heatmap::new("concept relevance cos(v_a, v_b)", self.values.clone())
            .row_names(self.rows.clone())
            .col_names(self.cols.clone())
            .render();
        map.with("text/plain", text.join("\n").into())
    }
}

/// SeVecs in two dimensions, with their categories (fig. 3).
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub concepts: Vec<String>,
    pub categories: Vec<Category>,
    pub points: Vec<(f64, f64)>,
    /// The share of the variance each axis explains.
    pub explained: Vec<f64>,
}

impl Embedding {
    pub fn plot(&self) -> ScatterPlot {
        let axis = |i: usize| format!("PC{} ({:.0}%)", i + 1, 100.0 * self.explained.get(i).copied().unwrap_or(0.0));
        let mut plot =
            ScatterPlot::new("SeVecs by category").x_label(axis(0)).y_label(axis(1)).size(560, 420).radius(5);
        for category in Category::ALL {
            let points: Vec<(f64, f64)> =
                self.points.iter().zip(&self.categories).filter(|(_, c)| **c == category).map(|(p, _)| *p).collect();
            if !points.is_empty() {
                plot = plot.series(category.name(), points.iter().map(|p| p.0), points.iter().map(|p| p.1));
            }
        }
        plot
    }
}

impl Render for Embedding {
    fn render(&self) -> Output {
        let text: Vec<String> =
            self.concepts.iter().zip(&self.points).map(|(c, (x, y))| format!("{c}: ({x:.3}, {y:.3})")).collect();
        self.plot().render().with("text/plain", text.join("\n").into())
    }
}

/// The hold-out images nearest to a SeVec.
#[derive(Debug)]
pub struct Retrieval {
    pub concept: String,
    /// Indices into the hold-out set, nearest first.
    pub indices: Vec<usize>,
    /// Their cosine to the SeVec.
    pub scores: Vec<f64>,
    /// Whether each shows the concept.
    pub contains: Vec<bool>,
    /// The share of them that show it.
    pub precision: f64,
    /// The share of all hold-out images that show it: the precision of a random pick.
    pub base_rate: f64,
    /// `[k, 3, H, W]`.
    pub images: Tensor,
}

impl Render for Retrieval {
    fn render(&self) -> Output {
        let labels =
            self.scores.iter().zip(&self.contains).map(|(s, c)| format!("{s:.3} {}", if *c { "yes" } else { "no" }));
        let summary = format!(
            "{}: {} of the {} nearest images show it (precision {:.2}; {:.2} of all hold-out images do)",
            self.concept,
            self.contains.iter().filter(|c| **c).count(),
            self.contains.len(),
            self.precision,
            self.base_rate
        );
        Grid::new(&self.images).labels(labels).scale(2).columns(8).render().with("text/plain", summary.into())
    }
}

/// Per-class accuracy of a model whose classes are the data set's object concepts, what
/// table 2 correlates diversity with: pixel accuracy for a segmentation net (the share of each
/// class's pixels predicted as that class), top-1 accuracy over the images that show exactly
/// one object for a classifier ([`object_accuracy`]). Classes the data never shows are left
/// out. Names are qualified (`object:car`).
pub fn class_accuracy<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    data: &D,
    batch_size: usize,
) -> Result<Vec<(String, f64)>, MetricError> {
    let vocabulary = data.vocabulary();
    let classes = vocabulary.names(Category::Object).len() as i64;
    if model.num_classes() != classes {
        return Err(MetricError::Invalid(format!(
            "per-class accuracy needs a model of the data set's {classes} object classes, not {}",
            model.num_classes()
        )));
    }
    if model.task() == crate::models::Task::Classification {
        return object_accuracy(model, data, batch_size);
    }
    let (mut hits, mut totals) = (vec![0i64; classes as usize], vec![0i64; classes as usize]);
    for batch in data.batches(batch_size.max(1)) {
        let batch = batch?;
        let Some(target) = batch.concept_map(Category::Object) else { continue };
        let pred = tch::no_grad(|| model.forward_t(&batch.images.to_device(model.device()), false)).argmax(1, false);
        let target = target.to_device(pred.device());
        let labelled = target.ge(0);
        let safe = target.clamp_min(0).masked_select(&labelled);
        let correct = pred.eq_tensor(&target).masked_select(&labelled).to_kind(Kind::Int64);
        let add = |sums: &mut [i64], values: &Tensor| {
            let counts = Tensor::zeros([classes], (Kind::Int64, values.device())).scatter_add(0, &safe, values);
            for (s, v) in sums.iter_mut().zip(Vec::<i64>::try_from(counts.to_device(Device::Cpu)).expect("int64")) {
                *s += v;
            }
        };
        add(&mut hits, &correct);
        add(&mut totals, &correct.ones_like());
    }
    Ok(per_class(vocabulary, &hits, &totals))
}

/// Top-1 accuracy per class of a classifier whose classes are the data set's object
/// concepts, over the images that show exactly one object
/// ([`ConceptDataset::single_object`]; the classification of the SeVec paper, in small).
pub fn object_accuracy<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    data: &D,
    batch_size: usize,
) -> Result<Vec<(String, f64)>, MetricError> {
    let vocabulary = data.vocabulary();
    let classes = vocabulary.names(Category::Object).len();
    if model.task() != crate::models::Task::Classification || model.num_classes() != classes as i64 {
        return Err(MetricError::Invalid(format!(
            "object accuracy needs a classifier of the data set's {classes} object classes"
        )));
    }
    let data = &crate::data::at_size(data, model.input_size())?;
    let (mut hits, mut totals) = (vec![0i64; classes], vec![0i64; classes]);
    let batch_size = batch_size.max(1);
    for (b, batch) in data.batches(batch_size).enumerate() {
        let batch = batch?;
        let first = b * batch_size;
        let single: Vec<(i64, i64)> = (0..batch.images.size()[0])
            .filter_map(|k| data.single_object(first + k as usize).map(|class| (k, class)))
            .collect();
        if single.is_empty() {
            continue;
        }
        let rows = Tensor::from_slice(&single.iter().map(|s| s.0).collect::<Vec<_>>());
        let images = batch.images.index_select(0, &rows.to_device(batch.images.device())).to_device(model.device());
        let pred: Vec<i64> =
            Vec::try_from(tch::no_grad(|| model.forward_t(&images, false)).argmax(1, false).to_device(Device::Cpu))
                .expect("int64");
        for ((_, class), p) in single.iter().zip(pred) {
            totals[*class as usize] += 1;
            hits[*class as usize] += i64::from(p == *class);
        }
    }
    if totals.iter().all(|t| *t == 0) {
        return Err(MetricError::Invalid(format!(
            "a classifier is scored on images that show exactly one object, and none of the {} does \
             (concept scenes with one object: `:data scenes --objects 1`)",
            data.len()
        )));
    }
    Ok(per_class(vocabulary, &hits, &totals))
}

/// `(qualified name, hits / total)` of every object class with a total.
fn per_class(vocabulary: &Vocabulary, hits: &[i64], totals: &[i64]) -> Vec<(String, f64)> {
    (0..totals.len())
        .filter(|c| totals[*c] > 0)
        .map(|c| {
            let name = vocabulary.qualified_name(Concept { category: Category::Object, index: c });
            (name, hits[c] as f64 / totals[c] as f64)
        })
        .collect()
}

/// Diversity against per-class accuracy (sec. 4.2, table 2).
#[derive(Debug, Clone, PartialEq)]
pub struct DiversityStudy {
    pub concepts: Vec<String>,
    pub diversity: Vec<f64>,
    pub accuracy: Vec<f64>,
    /// The paper's test: Pearson's r and its p-value.
    pub pearson: Correlation,
    pub spearman: Correlation,
}

/// Pairs each class of `accuracy` that has a SeVec with its diversity, and correlates them.
pub fn diversity_vs_accuracy(
    sevecs: &SemanticVectors,
    accuracy: &[(String, f64)],
) -> Result<DiversityStudy, MetricError> {
    let pairs: Vec<(String, f64, f64)> = accuracy
        .iter()
        .filter_map(|(name, acc)| {
            sevecs.find(name).ok().map(|i| (sevecs.concepts[i].clone(), sevecs.diversity[i], *acc))
        })
        .collect();
    if pairs.len() < 3 {
        return Err(MetricError::Invalid(format!("{} classes have both a SeVec and an accuracy; need 3", pairs.len())));
    }
    let diversity: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let acc: Vec<f64> = pairs.iter().map(|p| p.2).collect();
    Ok(DiversityStudy {
        pearson: pearson(&diversity, &acc),
        spearman: spearman(&diversity, &acc),
        concepts: pairs.into_iter().map(|p| p.0).collect(),
        diversity,
        accuracy: acc,
    })
}

impl DiversityStudy {
    /// Diversity against accuracy, each point named by its class.
    pub fn plot(&self) -> ScatterPlot {
        let (series, names) = named_by_category(&self.concepts);
        ScatterPlot::new(format!("diversity vs accuracy (r = {:.2}, p = {:.2e})", self.pearson.r, self.pearson.p))
            .x_label("diversity D_c")
            .y_label("class accuracy")
            .series(series, self.diversity.clone(), self.accuracy.clone())
            .point_names(names)
            .size(520, 340)
    }
}

impl Render for DiversityStudy {
    fn render(&self) -> Output {
        let head = format!("diversity vs accuracy: Pearson {}; Spearman {}", self.pearson, self.spearman);
        let rows: Vec<String> = (0..self.concepts.len())
            .map(|i| format!("{:<16} D {:.3}  accuracy {:.3}", self.concepts[i], self.diversity[i], self.accuracy[i]))
            .collect();
        self.plot().render().with("text/plain", std::iter::once(head).chain(rows).collect::<Vec<_>>().join("\n").into())
    }
}

/// The legend's name for the classes and each point's name: where every class is of one
/// category, the category names the series and the points need only their bare names.
fn named_by_category(concepts: &[String]) -> (String, Vec<String>) {
    let split = |c: &str| c.split_once(':').map(|(k, n)| (k.to_owned(), n.to_owned()));
    let first = concepts.first().and_then(|c| split(c)).map(|(k, _)| k);
    match first {
        Some(category) if concepts.iter().all(|c| split(c).is_some_and(|(k, _)| k == category)) => {
            (format!("{category} classes"), concepts.iter().filter_map(|c| split(c)).map(|(_, n)| n).collect())
        }
        _ => ("classes".to_owned(), concepts.to_vec()),
    }
}

/// Table 1: the mean change of the ground-truth class's probability when the layer's
/// representation is modified in four ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Perturbation {
    pub layer: String,
    /// (image, class) pairs averaged over.
    pub trials: usize,
    /// The unit most often active on the class (the largest element of v_c) set to 1.5
    /// times the layer's largest activation on the image (a channel-unit at every position
    /// of its channel).
    pub associated: f64,
    /// The same for a random unit.
    pub random: f64,
    /// The representation multiplied by `1[rate > 0.5]`: moved towards the SeVec.
    pub sevec: f64,
    /// The representation multiplied by a random permutation of that mask.
    pub permuted: f64,
    /// The representation scaled by one factor that removes as much activation as the
    /// SeVec's mask does: the mask's loss of activation without its choice of units, a
    /// control the paper does not run.
    pub shrunk: f64,
}

impl Render for Perturbation {
    fn render(&self) -> Output {
        let cells = [
            ("associated unit", self.associated),
            ("random unit", self.random),
            ("SeVec", self.sevec),
            ("permuted SeVec", self.permuted),
            ("uniform shrink", self.shrunk),
        ];
        let head: String = cells.iter().map(|(n, _)| format!("<th>{n}</th>")).collect();
        let row: String = cells.iter().map(|(_, v)| format!("<td>{v:+.4}</td>")).collect();
        let text = format!(
            "{}: mean change of the true class's probability over {} trials: {}",
            self.layer,
            self.trials,
            cells.iter().map(|(n, v)| format!("{n} {v:+.4}")).collect::<Vec<_>>().join(", ")
        );
        Output::html(format!("<p>{text}</p><table><tr>{head}</tr><tr>{row}</tr></table>")).and(Output::text(text))
    }
}

/// The modifications [`perturbation_test`] applies to each representation, in the order of
/// [`Perturbation`]'s fields.
const MODIFICATIONS: usize = 5;

/// Table 1 in small: for every image of `data` and every one of `classes` (object concepts
/// with SeVecs; the classes the net was trained on) that it shows, the change of that
/// class's probability (softmax over the class scores of [`class_scores`]) under the five
/// modifications of [`Perturbation`] at the SeVecs' layer. Random units and permutations
/// are drawn from `seed`.
pub fn perturbation_test<D: ConceptDataset + ?Sized>(
    net: &impl Tapped,
    sevecs: &SemanticVectors,
    data: &D,
    classes: &[&str],
    seed: u64,
) -> Result<Perturbation, MetricError> {
    let vocabulary = data.vocabulary();
    let classes: Vec<(usize, i64, i64)> = classes
        .iter()
        .map(|name| {
            let (row, class) = (sevecs.find(name)?, sevecs.class_index(name)?);
            let column = vocabulary.global_index(sevecs.ids[row]) as i64;
            Ok((row, class, column))
        })
        .collect::<Result<_, MetricError>>()?;
    if classes.is_empty() {
        return Err(MetricError::Invalid("name at least one class to perturb".into()));
    }
    let dim = sevecs.units.count(&sevecs.shape);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut sums, mut trials) = ([0.0f64; MODIFICATIONS], 0usize);
    for batch in data.batches(8) {
        let batch = batch?;
        let (h, w) = (batch.images.size()[2], batch.images.size()[3]);
        let xs = batch.images.to_device(net.device());
        let (_, mut taps) = tch::no_grad(|| net.forward_taps(&xs, std::slice::from_ref(&sevecs.stage), false))?;
        let acts = taps.remove(&sevecs.stage).expect("tapped").flatten(1, -1);
        let run = |a: &Tensor| -> Result<Tensor, MetricError> {
            let shaped = a.view([-1].into_iter().chain(sevecs.shape.iter().copied()).collect::<Vec<_>>().as_slice());
            let logits = tch::no_grad(|| forward_from(net, Some(&sevecs.stage), &shaped, (h, w), &[], |_, x| x))?;
            Ok(class_scores(&logits).softmax(1, Kind::Float).to_device(Device::Cpu))
        };
        let before = run(&acts)?;
        let labels = batch.image_labels.to_device(Device::Cpu);
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for i in 0..acts.size()[0] {
            let a = acts.get(i);
            for &(row, class, column) in &classes {
                if labels.double_value(&[i, column]) < 0.5 {
                    continue;
                }
                // A channel-unit is raised at every position of its channel.
                let raise = |unit: i64| {
                    let one =
                        Tensor::zeros([dim], (Kind::Bool, Device::Cpu)).index_fill(0, &Tensor::from_slice(&[unit]), 1);
                    a.masked_fill(&sevecs.spread(&one).to_device(a.device()), 1.5 * a.max().double_value(&[]))
                };
                let associated = sevecs.vectors.get(row as i64).argmax(0, false).int64_value(&[]);
                let mask = sevecs.rates.get(row as i64).gt(RELEVANT_RATE).to_kind(Kind::Float);
                let mut order: Vec<i64> = (0..dim).collect();
                order.shuffle(&mut rng);
                let permuted = sevecs.spread(&mask.index_select(0, &Tensor::from_slice(&order)));
                let mask = sevecs.spread(&mask);
                let masked = &a * mask.to_device(a.device());
                let kept =
                    masked.sum(Kind::Double).double_value(&[]) / a.sum(Kind::Double).double_value(&[]).max(1e-30);
                rows.extend([
                    raise(associated),
                    raise(rng.gen_range(0..dim)),
                    masked,
                    &a * permuted.to_device(a.device()),
                    &a * kept,
                ]);
                targets.push((i, class));
            }
        }
        if rows.is_empty() {
            continue;
        }
        let after = run(&Tensor::stack(&rows, 0))?;
        for (t, (i, class)) in targets.iter().enumerate() {
            let p = before.double_value(&[*i, *class]);
            for (k, sum) in sums.iter_mut().enumerate() {
                *sum += after.double_value(&[(MODIFICATIONS * t + k) as i64, *class]) - p;
            }
        }
        trials += targets.len();
    }
    let mean = |k: usize| sums[k] / trials.max(1) as f64;
    Ok(Perturbation {
        layer: sevecs.stage.to_string(),
        trials,
        associated: mean(0),
        random: mean(1),
        sevec: mean(2),
        permuted: mean(3),
        shrunk: mean(4),
    })
}

#[cfg(test)]
mod tests;
