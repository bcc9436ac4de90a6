//! The probe: one layer's responses to a train and a val split of a concept data set, in the
//! forms Net2Vec learns from (sec. 3): per filter, where its activation exceeds the
//! top-τ quantile threshold T_k (segmentation, sec. 3.1), and its spatial mean (eq. 5,
//! classification), beside the splits' concept label maps.
//!
//! The concept weights are trained for tens of epochs over these, so they are kept in memory
//! (the binarised maps as bytes); the thresholds are therefore taken exactly, by selection
//! over every activation, instead of from the binned histograms of the one-pass metrics
//! (whose bin width would bound the error of a 0.5% tail quantile).

use std::collections::BTreeMap;
use std::ops::Range;

use tch::{Device, Kind, Tensor};

use super::super::{resolve_layer, MetricError};
use crate::data::{Category, ConceptDataset, Vocabulary};
use crate::models::{Stage, Tapped};
use crate::progress::Progress;

/// Net2Vec sec. 3.1.1: a filter marks the top τ = 0.5% of its activations over all probe
/// images and positions (NetDissect's cut-off).
pub const TAU: f64 = 0.005;

/// One concept of a probe: where its label lives and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConcept {
    pub category: Category,
    /// Its value in the category's label maps.
    pub label: i64,
    /// `category:name`.
    pub name: String,
}

/// One split's view of the layer.
#[derive(Debug)]
pub struct ProbeSplit {
    /// `[N, K, h, w]` bool: `A_k(x) > T_k` at the layer's resolution (eq. 2's indicator).
    pub fired: Tensor,
    /// `[N, K]` float: each filter's spatially averaged activation (eq. 5).
    pub means: Tensor,
    /// Per category, `[N, H, W]` int64 label maps, `-1` unlabelled.
    pub maps: BTreeMap<Category, Tensor>,
}

impl ProbeSplit {
    pub fn len(&self) -> usize {
        self.fired.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[N', C, H, W]` bool: `L_c(x)` of images `index` for every concept of `concepts`,
    /// one category's maps after another.
    pub fn targets(&self, index: &Tensor, concepts: &[ProbeConcept]) -> Tensor {
        let mut parts = Vec::new();
        for (category, map) in &self.maps {
            let labels: Vec<i64> = concepts.iter().filter(|c| c.category == *category).map(|c| c.label).collect();
            if labels.is_empty() {
                continue;
            }
            let values = Tensor::from_slice(&labels).to_device(map.device()).view([1, -1, 1, 1]);
            parts.push(map.index_select(0, index).unsqueeze(1).eq_tensor(&values));
        }
        Tensor::cat(&parts, 1)
    }

    /// `[N, C]` bool: whether each image shows each concept anywhere.
    pub fn presence(&self, concepts: &[ProbeConcept]) -> Tensor {
        let mut columns = Vec::new();
        for concept in concepts {
            let map = &self.maps[&concept.category];
            columns.push(map.eq(concept.label).flatten(1, -1).any_dim(1, false));
        }
        Tensor::stack(&columns, 1)
    }
}

/// A layer probed on two splits.
#[derive(Debug)]
pub struct Probe {
    /// The stage, as named in the model.
    pub layer: String,
    /// `T_k` per filter (sec. 3.1.1), over both splits.
    pub thresholds: Vec<f64>,
    /// The concepts that occur in, and are absent from, some image of each split: only those
    /// can be learned and scored.
    pub concepts: Vec<ProbeConcept>,
    /// The concepts of the chosen categories that were left out, and why.
    pub skipped: Vec<String>,
    pub train: ProbeSplit,
    pub val: ProbeSplit,
    /// `(H, W)` of the annotations.
    pub image_size: (i64, i64),
}

impl Probe {
    /// K, the layer's filters.
    pub fn filters(&self) -> usize {
        self.thresholds.len()
    }

    /// The column of a concept by its qualified name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.concepts.iter().position(|c| c.name == name)
    }
}

/// Runs `train` and `val` through `model` up to `layer` and keeps what Net2Vec learns from,
/// for the concepts of `categories` (every category of the data when `None`).
pub fn probe<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    layer: &str,
    train: &D,
    val: &D,
    categories: Option<&[Category]>,
    batch_size: usize,
) -> Result<Probe, MetricError> {
    let stage = resolve_layer(model, layer)?;
    let (train, val) =
        (&crate::data::at_size(train, model.input_size())?, &crate::data::at_size(val, model.input_size())?);
    if train.is_empty() || val.is_empty() || batch_size == 0 {
        return Err(MetricError::Invalid(
            "Net2Vec needs a non-empty train and val split and a batch size of 1 or more".into(),
        ));
    }
    if train.image_size() != val.image_size() {
        return Err(MetricError::Invalid(format!(
            "the train images are {:?} and the val images {:?}; they must be the same size",
            train.image_size(),
            val.image_size()
        )));
    }
    let chosen = choose_categories(train.vocabulary(), categories)?;
    let (train_acts, train_maps) = activations(model, &stage, train, &chosen, batch_size)?;
    let (val_acts, val_maps) = activations(model, &stage, val, &chosen, batch_size)?;
    let thresholds = quantile_thresholds(&[&train_acts, &val_acts], TAU);
    let split = |acts: Tensor, maps| {
        let t = Tensor::from_slice(&thresholds).to_kind(Kind::Float).to_device(acts.device()).view([1, -1, 1, 1]);
        ProbeSplit { fired: acts.gt_tensor(&t), means: acts.mean_dim(&[2i64, 3][..], false, Kind::Float), maps }
    };
    let (train, val) = (split(train_acts, train_maps), split(val_acts, val_maps));
    let (h, w) = val.maps.values().next().map_or((0, 0), |m| (m.size()[1], m.size()[2]));
    let (concepts, skipped) = usable_concepts(all_concepts(&chosen), &train, &val);
    if concepts.is_empty() {
        return Err(MetricError::Invalid(format!(
            "no concept both occurs in and is absent from some image of each split: {}",
            skipped.join("; ")
        )));
    }
    Ok(Probe { layer: stage.to_string(), thresholds, concepts, skipped, train, val, image_size: (h, w) })
}

/// Every concept of the chosen categories, in label order.
fn all_concepts(chosen: &[(Category, Vec<String>)]) -> Vec<ProbeConcept> {
    chosen
        .iter()
        .flat_map(|(category, names)| {
            names.iter().enumerate().map(move |(i, n)| ProbeConcept {
                category: *category,
                label: i as i64,
                name: format!("{category}:{n}"),
            })
        })
        .collect()
}

/// The categories asked for, each with its concept names; an error names the ones the data
/// has.
fn choose_categories(
    vocabulary: &Vocabulary,
    categories: Option<&[Category]>,
) -> Result<Vec<(Category, Vec<String>)>, MetricError> {
    let available = vocabulary.categories();
    let chosen = categories.map_or_else(|| available.clone(), <[Category]>::to_vec);
    if chosen.is_empty() {
        return Err(MetricError::Invalid("no concepts to learn; name at least one category".into()));
    }
    chosen
        .into_iter()
        .map(|category| {
            if available.contains(&category) {
                Ok((category, vocabulary.names(category).to_vec()))
            } else {
                let have: Vec<String> = available.iter().map(|c| c.to_string()).collect();
                Err(MetricError::Invalid(format!(
                    "the data set has no `{category}` concepts; it has: {}",
                    have.join(", ")
                )))
            }
        })
        .collect()
}

/// Splits `all` into the concepts each split both shows and lacks somewhere, and the rest
/// with the reason.
fn usable_concepts(all: Vec<ProbeConcept>, train: &ProbeSplit, val: &ProbeSplit) -> (Vec<ProbeConcept>, Vec<String>) {
    let counts = |split: &ProbeSplit| -> Vec<i64> {
        Vec::try_from(split.presence(&all).sum_dim_intlist(0, false, Kind::Int64).to_device(Device::Cpu)).unwrap()
    };
    let (tc, vc) = (counts(train), counts(val));
    let (tn, vn) = (train.len() as i64, val.len() as i64);
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for (i, concept) in all.into_iter().enumerate() {
        let why = match (tc[i], vc[i]) {
            (0, _) => Some("not in the train split"),
            (_, 0) => Some("not in the val split"),
            (t, v) if t == tn || v == vn => Some("in every image of a split"),
            _ => None,
        };
        match why {
            Some(why) => skipped.push(format!("{} ({why})", concept.name)),
            None => usable.push(concept),
        }
    }
    (usable, skipped)
}

/// The layer's activations `[N, K, h, w]` over `data` and its label maps for the chosen
/// categories, on the model's device.
fn activations<D: ConceptDataset + ?Sized>(
    model: &impl Tapped,
    stage: &Stage,
    data: &D,
    chosen: &[(Category, Vec<String>)],
    batch_size: usize,
) -> Result<(Tensor, BTreeMap<Category, Tensor>), MetricError> {
    let ranges: Vec<Range<usize>> =
        (0..data.len()).step_by(batch_size).map(|s| s..(s + batch_size).min(data.len())).collect();
    let mut progress = Progress::new(format!("probing {stage}"), Some(ranges.len() as u64));
    let (mut acts, mut maps): (Vec<Tensor>, BTreeMap<Category, Vec<Tensor>>) = (Vec::new(), BTreeMap::new());
    for range in ranges {
        let batch = data.batch(range)?;
        let images = batch.images.to_device(model.device());
        let (_, mut taps) = tch::no_grad(|| model.forward_taps(&images, std::slice::from_ref(stage), false))?;
        let a = taps.remove(stage).expect("tapped");
        if a.dim() != 4 {
            return Err(MetricError::Invalid(format!(
                "`{stage}` outputs {:?}, not feature maps; probe a convolutional stage",
                a.size()
            )));
        }
        acts.push(a.to_kind(Kind::Float));
        for (category, _) in chosen {
            let Some(map) = batch.concepts.get(category) else {
                let have: Vec<&str> = batch.concepts.keys().map(|c| c.name()).collect();
                return Err(MetricError::Invalid(format!(
                    "the data set has no `{category}` label maps; it has: {}",
                    have.join(", ")
                )));
            };
            maps.entry(*category).or_default().push(map.to_device(model.device()));
        }
        progress.step()?;
    }
    progress.finish();
    Ok((Tensor::cat(&acts, 0), maps.into_iter().map(|(c, m)| (c, Tensor::cat(&m, 0))).collect()))
}

/// `T_k` per filter: the value exceeded by a fraction `tau` of the filter's activations over
/// every image and position of `splits` (sec. 3.1.1), exactly, by selection.
pub fn quantile_thresholds(splits: &[&Tensor], tau: f64) -> Vec<f64> {
    let k = splits[0].size()[1];
    let rows: Vec<Tensor> = splits.iter().map(|a| a.transpose(0, 1).reshape([k, -1])).collect();
    let all = Tensor::cat(&rows, 1);
    let n = all.size()[1];
    // The (n − ⌊τn⌋)-th smallest value: at most ⌊τn⌋ values lie above it.
    let rank = (n - (tau * n as f64).floor() as i64).clamp(1, n);
    let (values, _) = all.kthvalue(rank, 1, false);
    Vec::try_from(values.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap()
}
