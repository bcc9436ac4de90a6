//! Semantic Bottlenecks (SB paper, sec. 3): low-dimensional layers inserted into a trained
//! network whose channels each stand for one concept.
//!
//! - [`Ssb`] (supervised, sec. 3.1): one 1x1 convolution per concept category, each channel
//!   supervised by one concept, trained in two phases ([`ssb`]).
//! - [`Usb`] (unsupervised, sec. 3.2): N groups of K channels, softmax per group pushed
//!   towards one-hot by temperature annealing or an entropy loss, trained jointly with the
//!   later stages ([`usb`]).
//! - [`Plain`]: K linear channels trained as a USB is, without its softmax: table 7's
//!   "Bottleneck" baseline ([`plain`]).
//!
//! Both go into any [`Editable`] net: glassbox's [`TappedNet`] after a stage, or a
//! torchvision ResNet ([`VisionNet`]) after a residual block (`layer4.2`) or a whole layer,
//! where the SB paper puts them. [`SbNet::insert`] (or `net.insert_after`, eq. 4 and 9)
//! returns an [`SbNet`]: the edited network, the bottleneck's inference mode, and once
//! trained the [`SbReport`] that is one row of the paper's tables 3-5. The original network
//! is not touched. SSBs need a segmentation net and pixel-level concept annotations; USBs
//! train on any task.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use tch::nn::{self, ModuleT};
use tch::{Kind, Reduction, Tensor};

use crate::data::{Category, ConceptBatch, ConceptDataset, DataError};
use crate::display::{Output, Render};
use crate::models::{
    cross_entropy, evaluate, optimize, Edit, Editable, Examples, Insertion, InsertionPoint, ModelError, Score, Stage,
    StageInfo, Tapped, TappedNet, Taps, Task, TaskData, TrainConfig, TrainReport, VisionNet,
};

pub mod plain;
pub mod ssb;
pub mod sweep;
pub mod usb;

pub use plain::{plain, Plain};
pub use ssb::{ssb, Ssb, SsbOutput, SsbTraining};
pub use sweep::{sweep_usb, Sweep};
pub use usb::{usb, Regularizer, Usb};

/// What can go wrong building or training a bottleneck.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SbError {
    #[error("invalid bottleneck: {0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] DataError),
}

/// How the bottleneck forms its outputs outside training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inference {
    /// The 1x1 convolutions' outputs as they are: SSBs at inference (SB paper eq. 9: no
    /// non-linearity on SSB outputs).
    Linear,
    /// Softmax per group, at the training temperature: the "softmax" columns of tables 2
    /// and 4.
    Softmax,
    /// One-hot of the arg-max per group: USBs at inference (sec. 3.2.1), the "argmax"
    /// column of table 4.
    Argmax,
}

impl Inference {
    const ALL: [Inference; 3] = [Inference::Linear, Inference::Softmax, Inference::Argmax];
}

/// What the module inside the net and the [`SbNet`] handle share: the inference mode and
/// the softmax temperature (SB paper eq. 20), both changed while the net is in use.
#[derive(Debug)]
struct Shared {
    inference: AtomicU8,
    temperature: AtomicU64,
}

impl Shared {
    fn new(inference: Inference) -> Arc<Shared> {
        Arc::new(Shared { inference: AtomicU8::new(inference as u8), temperature: AtomicU64::new(1f64.to_bits()) })
    }

    fn inference(&self) -> Inference {
        Inference::ALL[self.inference.load(Ordering::Relaxed) as usize]
    }

    fn set_inference(&self, mode: Inference) {
        self.inference.store(mode as u8, Ordering::Relaxed);
    }

    fn temperature(&self) -> f64 {
        f64::from_bits(self.temperature.load(Ordering::Relaxed))
    }

    fn set_temperature(&self, t: f64) {
        self.temperature.store(t.to_bits(), Ordering::Relaxed);
    }
}

/// The bottleneck layer `f_SB`: one 1x1 convolution with bias per group, outputs
/// concatenated along channels (SB paper eq. 11-13 and 16-18).
struct SbModule {
    convs: Vec<nn::Conv2D>,
    /// The mode during training: linear logits for SSBs (the loss applies the softmax,
    /// eq. 10), tempered softmax for USBs (eq. 18, 20).
    training: Inference,
    shared: Arc<Shared>,
}

impl fmt::Debug for SbModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SbModule({} groups)", self.convs.len())
    }
}

impl ModuleT for SbModule {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mode = if train { self.training } else { self.shared.inference() };
        let t = self.shared.temperature();
        let groups: Vec<Tensor> = self.convs.iter().map(|c| activate(&xs.apply(c), mode, t)).collect();
        Tensor::cat(&groups, 1)
    }
}

/// One group's output from its logits `[N, K, H, W]`.
fn activate(logits: &Tensor, mode: Inference, temperature: f64) -> Tensor {
    match mode {
        Inference::Linear => logits.shallow_clone(),
        // σ_T(x) = σ(x / T), SB paper eq. 20.
        Inference::Softmax => (logits / temperature).softmax(1, Kind::Float),
        Inference::Argmax => {
            let k = logits.size()[1];
            logits.argmax(1, false).one_hot(k).permute([0, 3, 1, 2]).to_kind(Kind::Float)
        }
    }
}

/// Which bottleneck an [`SbNet`] carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Bottleneck {
    Ssb(Ssb),
    Usb(Usb),
    Plain(Plain),
}

impl Bottleneck {
    /// Channels per group.
    fn group_sizes(&self) -> Vec<i64> {
        match self {
            Bottleneck::Ssb(s) => s.group_sizes(),
            Bottleneck::Usb(u) => vec![u.k; u.n],
            Bottleneck::Plain(p) => vec![p.channels],
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Bottleneck::Ssb(_) => "ssb",
            Bottleneck::Usb(_) => "usb",
            Bottleneck::Plain(_) => "plain",
        }
    }

    /// `N_SB`: the bottleneck's output channels (eq. 3).
    pub fn channels(&self) -> i64 {
        self.group_sizes().iter().sum()
    }

    fn modes(&self) -> (Inference, Inference) {
        match self {
            Bottleneck::Ssb(s) => (s.output.mode(), s.output.mode()),
            Bottleneck::Usb(_) => (Inference::Softmax, Inference::Argmax),
            Bottleneck::Plain(_) => (Inference::Linear, Inference::Linear),
        }
    }

    fn describe(&self) -> String {
        match self {
            Bottleneck::Ssb(s) => {
                let groups: Vec<String> =
                    s.groups.iter().zip(s.group_sizes()).map(|(g, n)| format!("{g} {n}")).collect();
                let output = match s.output {
                    SsbOutput::Linear => "",
                    SsbOutput::Softmax => ", softmax outputs",
                };
                format!("SSB ({}{output})", groups.join(", "))
            }
            Bottleneck::Usb(u) => format!("USB {}×{} ({})", u.n, u.k, u.regularizer),
            Bottleneck::Plain(p) => format!("plain bottleneck ({} linear channels)", p.channels),
        }
    }
}

impl From<Ssb> for Bottleneck {
    fn from(s: Ssb) -> Self {
        Bottleneck::Ssb(s)
    }
}

impl From<Usb> for Bottleneck {
    fn from(u: Usb) -> Self {
        Bottleneck::Usb(u)
    }
}

impl From<Plain> for Bottleneck {
    fn from(p: Plain) -> Self {
        Bottleneck::Plain(p)
    }
}

/// How the stage after the bottleneck gets the channels it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restore {
    /// Rebuild the next stage's (or residual block's) first convolution and shortcut for
    /// `N_SB` input channels, or the classifier if it comes next: f̂_stage-(i+1) of eq. 9,
    /// the paper's choice.
    #[default]
    AdaptNext,
    /// Add a 1x1 convolution `f_r` from `N_SB` back to `N_i` channels (eq. 4).
    Project,
}

/// A network with a semantic bottleneck: the edited net (a [`TappedNet`] unless said
/// otherwise; the original is untouched), the bottleneck and its inference mode, and its
/// report once trained. Every tapped-model tool (`:layers`, `:eval`, metrics) takes it; the
/// bottleneck's output is the stage named `ssb`, `usb` or `plain`.
pub struct SbNet<N = TappedNet> {
    net: N,
    bottleneck: Bottleneck,
    after: Stage,
    shared: Arc<Shared>,
    pub(crate) report: Option<SbReport>,
}

impl<N: Editable> fmt::Debug for SbNet<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SbNet({} after {}: {:?})", self.bottleneck.describe(), self.after, self.net)
    }
}

impl<N: Editable> SbNet<N> {
    /// A copy of `net` with `bottleneck` inserted after the stage named `after`, the stage
    /// that reads its output fed as `restore` says (SB paper eq. 4 or 9).
    pub fn insert(net: &N, after: &str, bottleneck: impl Into<Bottleneck>, restore: Restore) -> Result<Self, SbError> {
        let bottleneck = bottleneck.into();
        let points = net.insertion_points();
        if points.is_empty() {
            return Err(SbError::Invalid(format!(
                "{net:?} has no stage a bottleneck can follow; bottlenecks go into glassbox's TappedNet and \
                 torchvision's ResNets (after a residual block or layer)"
            )));
        }
        let Some(InsertionPoint { after, next }) = points.iter().find(|p| p.after.to_string() == after).cloned() else {
            let allowed: Vec<String> = points.iter().map(|p| p.after.to_string()).collect();
            let why = match net.stage(after) {
                Err(_) => format!("unknown stage `{after}`"),
                Ok(_) => format!(
                    "a bottleneck goes after a stage whose output feeds a residual stage or block, or the head; \
                     `{after}` does not"
                ),
            };
            return Err(SbError::Invalid(format!("{why}; insert after one of: {}", allowed.join(", "))));
        };
        let (training, inference) = bottleneck.modes();
        let shared = Shared::new(inference);
        let sizes = bottleneck.group_sizes();
        let name = bottleneck.name();
        let module_shared = shared.clone();
        let module_sizes = sizes.clone();
        let sb = Insertion::new(name, sizes.iter().sum(), move |p, in_channels| {
            let convs = module_sizes
                .iter()
                .enumerate()
                .map(|(g, k)| nn::conv2d(p / g, in_channels, *k, 1, Default::default()))
                .collect();
            Box::new(SbModule { convs, training, shared: module_shared.clone() })
        });
        let sb_stage = Stage::Inserted(name.to_owned());
        let edits = match restore {
            Restore::AdaptNext => {
                vec![Edit::insert_after(after.clone(), sb), Edit::adapt_input(next, sizes.iter().sum())]
            }
            Restore::Project => vec![
                Edit::insert_after(after.clone(), sb),
                Edit::insert_after(sb_stage, Insertion::conv1x1(format!("{name}_r"), net.stage_channels(&after)?)),
            ],
        };
        let net = net.edited(edits)?;
        Ok(SbNet { net, bottleneck, after, shared, report: None })
    }
}

/// `net.insert_after(..)` on the nets bottlenecks go into, for callers without a trait in
/// scope.
macro_rules! insert_after {
    ($($net:ty),*) => {$(
        impl $net {
            /// A copy of this net with `bottleneck` inserted after `stage` and the stage that
            /// reads its output adapted to its channels (SB paper eq. 9); see
            #[doc = concat!("[`", stringify!($net), "::insert_after_with`]")]
            /// for `f_r` (eq. 4).
            pub fn insert_after(&self, stage: &str, bottleneck: impl Into<Bottleneck>) -> Result<SbNet<$net>, SbError> {
                SbNet::insert(self, stage, bottleneck, Restore::AdaptNext)
            }

            /// `insert_after`, choosing how the next stage is fed (eq. 4 or 9).
            pub fn insert_after_with(
                &self,
                stage: &str,
                bottleneck: impl Into<Bottleneck>,
                restore: Restore,
            ) -> Result<SbNet<$net>, SbError> {
                SbNet::insert(self, stage, bottleneck, restore)
            }
        }
    )*};
}

insert_after!(TappedNet, VisionNet);

impl<N: Editable> SbNet<N> {
    /// The edited network.
    pub fn net(&self) -> &N {
        &self.net
    }

    pub fn bottleneck(&self) -> &Bottleneck {
        &self.bottleneck
    }

    /// The stage the bottleneck follows.
    pub fn after(&self) -> &Stage {
        &self.after
    }

    /// The bottleneck's own stage (`ssb`, `usb` or `plain`): tap it to read its channels.
    pub fn sb_stage(&self) -> Stage {
        Stage::Inserted(self.bottleneck.name().to_owned())
    }

    pub fn inference(&self) -> Inference {
        self.shared.inference()
    }

    /// Changes how the bottleneck forms its outputs outside training (table 2 and 4).
    pub fn set_inference(&self, mode: Inference) {
        self.shared.set_inference(mode);
    }

    /// The softmax temperature (eq. 20): annealed during USB training, kept afterwards.
    pub fn temperature(&self) -> f64 {
        self.shared.temperature()
    }

    fn set_temperature(&self, t: f64) {
        self.shared.set_temperature(t);
    }

    /// The report of the last training, if any.
    pub fn report(&self) -> Option<&SbReport> {
        self.report.as_ref()
    }

    /// Runs `f` with the bottleneck in `mode`, then restores the mode it had.
    fn with_inference<T>(&self, mode: Inference, f: impl FnOnce() -> T) -> T {
        let before = self.inference();
        self.set_inference(mode);
        let out = f();
        self.set_inference(before);
        out
    }

    /// The bottleneck's outputs for `images`, `[N, N_SB, h, w]`, in evaluation mode.
    pub fn sb_outputs(&self, images: &Tensor) -> Result<Tensor, SbError> {
        let stage = self.sb_stage();
        let (_, taps) = tch::no_grad(|| self.net.forward_taps(images, std::slice::from_ref(&stage), false))?;
        Ok(taps[&stage].shallow_clone())
    }

    /// `Σ>0` of table 5: the channels whose arg-max output is active at least once over
    /// `images`, evaluated `batch` images at a time.
    pub fn active_channels(&self, images: &Tensor, batch: i64) -> Result<i64, SbError> {
        let n = images.size()[0];
        let mut active = Tensor::zeros([self.bottleneck.channels()], (Kind::Bool, self.net.device()));
        self.with_inference(Inference::Argmax, || -> Result<(), SbError> {
            for start in (0..n).step_by(batch.max(1) as usize) {
                let xs = images.narrow(0, start, batch.min(n - start)).to_device(self.net.device());
                let out = self.sb_outputs(&xs)?;
                active = active.logical_or(&out.gt(0.0).any_dims(&[0i64, 2, 3][..], false));
            }
            Ok(())
        })?;
        Ok(active.sum(Kind::Int64).int64_value(&[]))
    }
}

impl<N: Editable> ModuleT for SbNet<N> {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(xs, train)
    }
}

impl<N: Editable> Tapped for SbNet<N> {
    fn stages(&self) -> Vec<StageInfo> {
        self.net.stages()
    }

    fn forward_taps(&self, xs: &Tensor, taps: &[Stage], train: bool) -> Result<(Tensor, Taps), ModelError> {
        self.net.forward_taps(xs, taps, train)
    }

    fn forward_edited(
        &self,
        xs: &Tensor,
        at: &[Stage],
        edit: &dyn Fn(&Stage, Tensor) -> Tensor,
    ) -> Result<Tensor, ModelError> {
        self.net.forward_edited(xs, at, edit)
    }

    fn runs_in_glassbox(&self) -> bool {
        self.net.runs_in_glassbox()
    }

    fn input_size(&self) -> Option<(i64, i64)> {
        self.net.input_size()
    }

    fn var_store(&self) -> &nn::VarStore {
        self.net.var_store()
    }

    fn in_channels(&self) -> i64 {
        self.net.in_channels()
    }

    fn task(&self) -> Task {
        self.net.task()
    }

    fn num_classes(&self) -> i64 {
        self.net.num_classes()
    }
}

/// One row of the SB paper's tables 3-5: where the bottleneck sits, its size, and the task
/// scores of the original net and of the bottlenecked net in each inference mode.
#[derive(Debug, Clone, PartialEq)]
pub struct SbReport {
    pub bottleneck: String,
    pub after: String,
    /// `N_i`: the channels of the stage the bottleneck follows.
    pub stage_channels: i64,
    /// `N_SB`.
    pub channels: i64,
    /// `Σ>0` (USB): channels active at least once under arg-max on the test data.
    pub active: Option<i64>,
    pub original: Score,
    /// The score in each inference mode that applies: linear and softmax for SSBs, softmax
    /// and arg-max for USBs.
    pub scores: Vec<(Inference, Score)>,
    /// SSB: per group, the pixel accuracy of the group's arg-max against its concept labels,
    /// and the majority-concept share that chance would score.
    pub concepts: Vec<ConceptScore>,
    /// How many test images the scores are on.
    pub test_images: usize,
}

/// How well one SSB group's channels predict their concepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptScore {
    pub category: Category,
    pub accuracy: f64,
    pub majority: f64,
}

impl SbReport {
    pub fn score(&self, mode: Inference) -> Option<&Score> {
        self.scores.iter().find(|(m, _)| *m == mode).map(|(_, s)| s)
    }

    /// The headline figure of a task score: mIoU for segmentation, else accuracy.
    pub(crate) fn headline(score: &Score) -> f64 {
        score.miou.unwrap_or(score.accuracy)
    }

    pub(crate) fn metric(&self) -> &'static str {
        if self.original.miou.is_some() {
            "mIoU"
        } else {
            "accuracy"
        }
    }
}

impl fmt::Display for SbReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |s: &Score| format!("{:.1}%", 100.0 * Self::headline(s));
        write!(f, "{} after {} ({} -> {} channels", self.bottleneck, self.after, self.stage_channels, self.channels)?;
        if let Some(active) = self.active {
            write!(f, ", {active} active")?;
        }
        write!(f, "): {} original {}", self.metric(), pct(&self.original))?;
        for (mode, score) in &self.scores {
            write!(f, ", {} {}", format!("{mode:?}").to_lowercase(), pct(score))?;
        }
        for c in &self.concepts {
            write!(f, "; {} accuracy {:.1}% (chance {:.1}%)", c.category, 100.0 * c.accuracy, 100.0 * c.majority)?;
        }
        write!(f, " on {} test images", self.test_images)
    }
}

impl Render for SbReport {
    fn render(&self) -> Output {
        let pct = |v: f64| format!("{:.1}", 100.0 * v);
        let mut head = vec!["bottleneck".to_owned(), "after".into(), "N_i".into(), "N_SB".into()];
        let mut row = vec![
            self.bottleneck.clone(),
            self.after.clone(),
            self.stage_channels.to_string(),
            self.channels.to_string(),
        ];
        if let Some(active) = self.active {
            head.push("Σ>0".into());
            row.push(active.to_string());
        }
        head.push(format!("original {}", self.metric()));
        row.push(pct(Self::headline(&self.original)));
        for (mode, score) in &self.scores {
            head.push(format!("{} {}", format!("{mode:?}").to_lowercase(), self.metric()));
            row.push(pct(Self::headline(score)));
        }
        for c in &self.concepts {
            head.push(format!("{} acc. (chance)", c.category));
            row.push(format!("{} ({})", pct(c.accuracy), pct(c.majority)));
        }
        let cells = |tag: &str, v: &[String]| v.iter().map(|c| format!("<{tag}>{c}</{tag}>")).collect::<String>();
        Output::html(format!("<table><tr>{}</tr><tr>{}</tr></table>", cells("th", &head), cells("td", &row)))
            .and(Output::text(self.to_string()))
    }
}

impl<N: Editable> Render for SbNet<N> {
    fn render(&self) -> Output {
        match &self.report {
            Some(report) => report.render(),
            None => Output::text(format!("{self:?} (not trained yet)")),
        }
    }
}

/// How many of `n` examples are held out for the report when no test data is given: the
/// last fifth.
fn held_out(n: usize) -> Result<usize, SbError> {
    if n < 2 {
        return Err(SbError::Invalid(format!("{n} images cannot be split into training and test images")));
    }
    Ok((n / 5).max(1))
}

/// Training and test batches of concept data: `test` when given, else the last fifth of
/// `data`, held out of training.
fn split<D: ConceptDataset + ?Sized>(data: &D, test: Option<&D>) -> Result<(ConceptBatch, ConceptBatch), SbError> {
    if let Some(test) = test {
        return Ok((data.batch(0..data.len())?, test.batch(0..test.len())?));
    }
    let n = data.len();
    let held = held_out(n)?;
    Ok((data.batch(0..n - held)?, data.batch(n - held..n)?))
}

/// Training and test examples of `net`'s task, split as [`split`] does.
fn split_examples<N: Tapped, D: TaskData + ?Sized>(
    net: &N,
    data: &D,
    test: Option<&D>,
) -> Result<(Examples, Examples), SbError> {
    let examples = data.examples(net.task())?;
    if let Some(test) = test {
        return Ok((examples, test.examples(net.task())?));
    }
    let n = examples.len();
    let held = held_out(n)?;
    let part = |start: usize, len: usize| -> Result<Examples, SbError> {
        let (start, len) = (start as i64, len as i64);
        let images = examples.images().narrow(0, start, len);
        let targets = examples.targets().narrow(0, start, len);
        Ok(match examples.task() {
            Task::Classification => Examples::classification(images, targets)?,
            Task::Segmentation => Examples::segmentation(images, targets)?,
        })
    };
    Ok((part(0, n - held)?, part(n - held, held)?))
}

/// Refuses what the SSB trainer cannot use: a net that does not segment (the task the
/// concept data sets label is the object map), or data without the annotations the groups
/// need.
fn check_annotations(net: &impl Tapped, data: &ConceptBatch, groups: &[Category]) -> Result<(), SbError> {
    if net.task() != Task::Segmentation {
        return Err(SbError::Invalid(
            "an SSB is trained on a concept data set: its concept maps, then its object maps, a segmentation \
             task (SB paper sec. 3.1), but this net classifies images; a USB (`usb`, :usb) trains on the \
             net's own task"
                .into(),
        ));
    }
    let have: Vec<String> = data.concepts.keys().map(|c| c.to_string()).collect();
    match groups.iter().chain([&Category::Object]).find(|g| !data.concepts.contains_key(g)) {
        Some(missing) => Err(SbError::Invalid(format!(
            "the data set has no `{missing}` annotations; it annotates: {}",
            have.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The segmentation task of a concept batch: its object maps.
fn task_examples(data: &ConceptBatch) -> Result<Examples, SbError> {
    let objects = data.concepts.get(&Category::Object).ok_or_else(|| {
        SbError::Invalid("the data set has no object maps, the segmentation task bottlenecks train on".into())
    })?;
    Ok(Examples::segmentation(data.images.shallow_clone(), objects.shallow_clone())?)
}

/// Whether a stage comes after `stage` in `net`'s forward order (the head always does): the
/// θ of the bottleneck trainers (eq. 15 and 21). A torchvision net lists a module after
/// the modules inside it, so a layer that contains `stage` counts as later; it holds no
/// variables of its own, so [`Editable::train_only`] never trains it for that.
fn after_stage(net: &impl Tapped, stage: &Stage) -> impl Fn(&Stage) -> bool {
    let stages: Vec<Stage> = net.stages().into_iter().map(|s| s.stage).collect();
    let at = stages.iter().position(|s| s == stage).unwrap_or(stages.len());
    let later = stages[at + 1..].to_vec();
    move |s| later.contains(s)
}

/// Trains θ of eq. 21 on `examples`: the bottleneck, the adapted next stage and every later
/// stage, on the task's cross-entropy plus `penalty` of the bottleneck's outputs where it
/// gives one; `schedule` runs before each step's forward pass (a USB's temperature, eq. 20).
fn fit_with_later_stages<N: Editable>(
    sb: &SbNet<N>,
    examples: &Examples,
    config: &TrainConfig,
    schedule: impl Fn(usize),
    penalty: impl Fn(&Tensor) -> Option<Tensor>,
) -> Result<TrainReport, SbError> {
    let net = sb.net();
    let stage = sb.sb_stage();
    let _frozen = net.train_only(after_stage(net, sb.after()));
    let step_loss = |batch: &[i64], step: usize| {
        schedule(step);
        let (xs, ys) = examples.take(batch, net.device());
        let (logits, taps) = net.forward_taps(&xs, std::slice::from_ref(&stage), true)?;
        let loss = cross_entropy(&logits, &ys, Reduction::Mean);
        Ok(match penalty(&taps[&stage]) {
            Some(term) => loss + term,
            None => loss,
        })
    };
    Ok(optimize(net.var_store(), examples.len(), config, step_loss, |_| {})?)
}

/// Scores `sb` against the `original` net on `test`: the row of tables 3-5, without the
/// SSB's concept scores (they need concept maps).
fn report<N: Editable>(original: &N, sb: &SbNet<N>, test: &Examples) -> Result<SbReport, SbError> {
    let modes: &[Inference] = match sb.bottleneck {
        Bottleneck::Ssb(_) => &[Inference::Linear, Inference::Softmax],
        Bottleneck::Usb(_) => &[Inference::Softmax, Inference::Argmax],
        Bottleneck::Plain(_) => &[Inference::Linear],
    };
    let mut scores = Vec::new();
    for mode in modes {
        scores.push((*mode, sb.with_inference(*mode, || evaluate(sb, test, 64))?));
    }
    let active = match sb.bottleneck {
        Bottleneck::Usb(_) => Some(sb.active_channels(test.images(), 64)?),
        Bottleneck::Ssb(_) | Bottleneck::Plain(_) => None,
    };
    Ok(SbReport {
        bottleneck: sb.bottleneck.describe(),
        after: sb.after.to_string(),
        stage_channels: original.stage_channels(&sb.after)?,
        channels: sb.bottleneck.channels(),
        active,
        original: evaluate(original, test, 64)?,
        scores,
        concepts: Vec::new(),
        test_images: test.len(),
    })
}

/// The report of a trained bottlenecked net (`:sb-report`).
pub fn report_of<N: Editable>(sb: &SbNet<N>) -> Result<SbReport, SbError> {
    sb.report.clone().ok_or_else(|| {
        SbError::Invalid("this net's bottleneck has not been trained; train it with :ssb, :usb or :bottleneck".into())
    })
}

#[cfg(test)]
mod tests;
