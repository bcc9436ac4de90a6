//! Supervised Semantic Bottlenecks (SB paper sec. 3.1, eq. 8-15).

use tch::{Kind, Reduction, Tensor};

use super::{Inference, SbError, SbNet};
use crate::data::{Category, ConceptBatch, ConceptDataset, Vocabulary};
use crate::models::{cross_entropy, optimize, train_with, Editable, Optim, TrainConfig, IGNORE};

/// An SSB: one group per concept category (eq. 11 uses parts and materials), one channel per
/// concept of that category in the data set's vocabulary, each a 1x1 convolution with bias
/// (eq. 12-13) and no non-linearity at inference (eq. 9).
#[derive(Debug, Clone, PartialEq)]
pub struct Ssb {
    pub groups: Vec<Category>,
    sizes: Vec<i64>,
    /// What the adapted next stage receives, in training and at inference.
    pub output: SsbOutput,
}

/// What an SSB hands the next stage. The concept loss (eq. 10) applies its softmax either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SsbOutput {
    /// The 1x1 convolutions' outputs as they are: the paper's SSB (eq. 9, "we do not apply a
    /// non-linearity to SSB-outputs").
    #[default]
    Linear,
    /// A softmax per group, in training and at inference: the second SSB of SB paper table 2,
    /// which lost 31.7 points of the task's mIoU (43.0% against 74.7%).
    Softmax,
}

impl SsbOutput {
    /// The names a command line may give, in the order of [`SsbOutput::ALL`].
    pub const NAMES: &'static [&'static str] = &["linear", "softmax"];
    pub const ALL: [SsbOutput; 2] = [SsbOutput::Linear, SsbOutput::Softmax];

    /// The output named `name` (one of [`SsbOutput::NAMES`]).
    pub fn named(name: &str) -> Option<SsbOutput> {
        Self::NAMES.iter().position(|n| *n == name).map(|i| Self::ALL[i])
    }

    /// The bottleneck's mode in training and at inference.
    pub(super) fn mode(self) -> Inference {
        match self {
            SsbOutput::Linear => Inference::Linear,
            SsbOutput::Softmax => Inference::Softmax,
        }
    }
}

impl Ssb {
    /// An SSB for `groups`, sized by `vocabulary` (the concept data set's). A category the
    /// vocabulary has no concepts for is refused with the ones it has.
    pub fn new(groups: &[Category], vocabulary: &Vocabulary) -> Result<Ssb, SbError> {
        let have: Vec<String> = vocabulary.categories().iter().map(|c| c.to_string()).collect();
        if groups.is_empty() {
            return Err(SbError::Invalid(format!(
                "an SSB needs at least one concept group; choose from {}",
                have.join(", ")
            )));
        }
        let mut sizes = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            if groups[..i].contains(g) {
                return Err(SbError::Invalid(format!("the concept group `{g}` is listed twice")));
            }
            match vocabulary.names(*g).len() {
                0 => {
                    return Err(SbError::Invalid(format!(
                        "the data set has no `{g}` concepts to supervise a group with; it has: {}",
                        have.join(", ")
                    )))
                }
                n => sizes.push(n as i64),
            }
        }
        Ok(Ssb { groups: groups.to_vec(), sizes, output: SsbOutput::Linear })
    }

    /// This SSB handing the next stage `output`.
    pub fn with_output(self, output: SsbOutput) -> Ssb {
        Ssb { output, ..self }
    }

    pub(super) fn group_sizes(&self) -> Vec<i64> {
        self.sizes.clone()
    }
}

/// The two training phases of an SSB.
#[derive(Debug, Clone, PartialEq)]
pub struct SsbTraining {
    /// Phase 1 (eq. 14): only the SSB, on concept data.
    pub phase1: TrainConfig,
    /// Phase 2 (eq. 15): the adapted next stage and every later stage, on the task, with the
    /// SSB and everything before it frozen.
    pub phase2: TrainConfig,
    /// What the SSB hands the next stage (table 2 compares the two).
    pub output: SsbOutput,
}

/// SB paper sec. 3.1, training details: phase 1 for 5 epochs at lr 0.01 with weight decay
/// 5e-3, phase 2 for 60 epochs at lr 0.002 with weight decay 5e-4, both SGD with momentum 0.9
/// and the poly policy (power 0.9).
impl Default for SsbTraining {
    fn default() -> Self {
        let base = TrainConfig { optimizer: Optim::Sgd { momentum: 0.9 }, poly_power: 0.9, ..Default::default() };
        SsbTraining {
            phase1: TrainConfig {
                epochs: 5,
                lr: 0.01,
                weight_decay: 5e-3,
                label: "SSB phase 1".into(),
                ..base.clone()
            },
            phase2: TrainConfig { epochs: 60, lr: 0.002, weight_decay: 5e-4, label: "SSB phase 2".into(), ..base },
            output: SsbOutput::Linear,
        }
    }
}

/// Inserts `ssb` after `after` in (a copy of) `net` and trains it in two phases on `data`:
/// the concept maps of its groups in phase 1, the object maps (the segmentation task) in
/// phase 2. The report compares it with `net` on `test`, or on the last fifth of `data`
/// (then held out of training) when there is no `test`. `net` must segment: the paper
/// trains SSBs on pixel-level annotations of segmentation data; a classifier is refused.
pub fn ssb<N: Editable, D: ConceptDataset + ?Sized>(
    net: &N,
    after: &str,
    groups: &[Category],
    data: &D,
    test: Option<&D>,
    training: &SsbTraining,
) -> Result<SbNet<N>, SbError> {
    let ssb = Ssb::new(groups, data.vocabulary())?.with_output(training.output);
    let (train, test) = super::split(data, test)?;
    super::check_annotations(net, &train, &ssb.groups)?;
    let mut sb = SbNet::insert(net, after, ssb.clone(), super::Restore::AdaptNext)?;
    phase1(&sb, &ssb, &train, &training.phase1)?;
    phase2(&sb, &train, &training.phase2)?;
    let mut report = super::report(net, &sb, &super::task_examples(&test)?)?;
    report.concepts = concept_accuracy(&sb, &test)?;
    sb.report = Some(report);
    Ok(sb)
}

/// Phase 1 (eq. 14): trains θ_Phase1 = the SSB's parameters with the per-group softmax
/// cross-entropy of eq. 10 against the concept maps, upsampled to the image; pixels without
/// a label in a group do not count for that group. The loss reads the SSB's logits whatever
/// it hands the next stage ([`SsbOutput`]).
pub fn phase1<N: Editable>(sb: &SbNet<N>, ssb: &Ssb, data: &ConceptBatch, config: &TrainConfig) -> Result<(), SbError> {
    let (net, stage, after) = (sb.net(), sb.sb_stage(), sb.after().clone());
    let module = net.module(&stage)?;
    let maps: Vec<&Tensor> = ssb.groups.iter().map(|c| &data.concepts[c]).collect();
    let size = data.images.size();
    let _frozen = net.train_only(|s| *s == stage);
    let step_loss = |batch: &[i64], _step: usize| {
        let index = Tensor::from_slice(batch);
        let xs = data.images.index_select(0, &index).to_device(net.device());
        let features = tch::no_grad(|| net.forward_taps(&xs, std::slice::from_ref(&after), false))?.1.remove(&after);
        // The module has no layer that trains differently; evaluation mode only picks its
        // output, and gradients still flow.
        let logits = sb.with_inference(Inference::Linear, || module.forward_t(&features.expect("tapped"), false));
        let groups = logits.split_with_sizes(ssb.sizes.as_slice(), 1);
        let mut loss = Tensor::zeros([], (Kind::Float, net.device()));
        for (logits, map) in groups.iter().zip(&maps) {
            let labels = map.index_select(0, &index).to_device(net.device());
            let up = logits.upsample_bilinear2d([size[2], size[3]], false, None, None);
            let labelled = labels.ne(IGNORE).sum(Kind::Float).clamp_min(1.0);
            loss += cross_entropy(&up, &labels, Reduction::Sum) / labelled;
        }
        Ok(loss)
    };
    optimize(net.var_store(), data.images.size()[0] as usize, config, step_loss, |_| {})?;
    Ok(())
}

/// Phase 2 (eq. 15): fine-tunes θ_Phase2 = the adapted next stage and every later stage on
/// the segmentation task, with the SSB and everything before it frozen.
pub fn phase2<N: Editable>(sb: &SbNet<N>, data: &ConceptBatch, config: &TrainConfig) -> Result<(), SbError> {
    let examples = super::task_examples(data)?;
    let net = sb.net();
    let _frozen = net.train_only(super::after_stage(net, &sb.sb_stage()));
    train_with(net, &examples, config, |_| {})?;
    Ok(())
}

/// The fraction of labelled pixels where each group's arg-max channel is the pixel's
/// concept, with the majority concept's share: how well the SSB's channels predict their
/// concepts on `data`.
fn concept_accuracy<N: Editable>(sb: &SbNet<N>, data: &ConceptBatch) -> Result<Vec<super::ConceptScore>, SbError> {
    let super::Bottleneck::Ssb(ssb) = sb.bottleneck() else {
        return Ok(Vec::new());
    };
    let groups = &ssb.groups;
    let size = data.images.size();
    let mut correct = vec![0i64; groups.len()];
    let mut labelled = vec![0i64; groups.len()];
    let mut counts: Vec<Tensor> =
        ssb.sizes.iter().map(|k| Tensor::zeros([*k], (Kind::Int64, tch::Device::Cpu))).collect();
    sb.with_inference(Inference::Linear, || -> Result<(), SbError> {
        for start in (0..size[0]).step_by(64) {
            let len = 64.min(size[0] - start);
            let xs = data.images.narrow(0, start, len).to_device(sb.net().device());
            let out = sb.sb_outputs(&xs)?.upsample_bilinear2d([size[2], size[3]], false, None, None);
            for (g, logits) in out.split_with_sizes(ssb.sizes.as_slice(), 1).iter().enumerate() {
                let labels = data.concepts[&groups[g]].narrow(0, start, len).to_device(logits.device());
                let valid = labels.ne(IGNORE);
                let hit = logits.argmax(1, false).eq_tensor(&labels).logical_and(&valid);
                correct[g] += hit.sum(Kind::Int64).int64_value(&[]);
                labelled[g] += valid.sum(Kind::Int64).int64_value(&[]);
                counts[g] +=
                    labels.masked_select(&valid).bincount::<Tensor>(None, ssb.sizes[g]).to_device(tch::Device::Cpu);
            }
        }
        Ok(())
    })?;
    Ok(groups
        .iter()
        .enumerate()
        .map(|(g, category)| {
            let n = labelled[g].max(1) as f64;
            super::ConceptScore {
                category: *category,
                accuracy: correct[g] as f64 / n,
                majority: counts[g].max().int64_value(&[]) as f64 / n,
            }
        })
        .collect())
}
