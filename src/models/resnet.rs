//! A ResNet with named, tappable and replaceable stages: `stem`, `stage1`..`stageN`, `head`.
//!
//! The architecture is a [`ResNetConfig`] plus a list of [`Edit`]s (modules inserted after a
//! stage, stages whose input was adapted to a new channel count). Edits never touch a net in
//! place behind the caller's back: [`TappedNet::edited`] builds the edited architecture in a
//! new `VarStore` and copies every variable whose name and shape are unchanged, so the
//! original keeps working; [`TappedNet::edit`] does the same and replaces `self` with the
//! result, when that is what is asked. [`TappedNet::try_clone`] is the copy with no edit.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

use super::edit::{check_channels as check, set_requires_grad, Edit, Editable, Frozen, Insertion, InsertionPoint};
use super::relu::relu;
use super::{check_input, check_taps, ModelError, Stage, StageInfo, Tapped, Taps, Task};

/// The residual block a net is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34); a stage of width `w` outputs `w` channels.
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand (ResNet-50 and PSPNet's backbone); a stage of width `w`
    /// outputs `4w` channels.
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of stage width.
    pub fn expansion(self) -> i64 {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// The shape of a [`TappedNet`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Output channels of the stem (a 3x3 convolution, batch norm, ReLU).
    pub stem_width: i64,
    /// Stride of the stem convolution.
    pub stem_stride: i64,
    /// Width of each residual stage (see [`BlockKind`] for its output channels).
    pub widths: Vec<i64>,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Stride of each stage's first block.
    pub strides: Vec<i64>,
    pub in_channels: i64,
    pub num_classes: i64,
    pub task: Task,
}

impl ResNetConfig {
    /// A small CIFAR-style net: basic blocks, widths 16-32-64, one block per stage, strides
    /// 1-2-2, a stride-1 stem; RGB input. Change fields with struct update syntax.
    pub fn small(task: Task, num_classes: i64) -> Self {
        ResNetConfig {
            block: BlockKind::Basic,
            stem_width: 16,
            stem_stride: 1,
            widths: vec![16, 32, 64],
            depths: vec![1, 1, 1],
            strides: vec![1, 2, 2],
            in_channels: 3,
            num_classes,
            task,
        }
    }

    /// Output channels of residual stage `k` (1-based), before any edit.
    fn stage_out(&self, k: usize) -> i64 {
        self.widths[k - 1] * self.block.expansion()
    }

    /// Input channels of residual stage `k` (1-based), before any edit.
    fn stage_in(&self, k: usize) -> i64 {
        if k == 1 {
            self.stem_width
        } else {
            self.stage_out(k - 1)
        }
    }

    fn n_stages(&self) -> usize {
        self.widths.len()
    }

    /// Refuses configs that would not build, saying which field is wrong.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::InvalidConfig(why));
        let n = self.widths.len();
        if n == 0 || n > u8::MAX as usize {
            return bad(format!("widths has {n} stages; 1..=255 are allowed"));
        }
        if self.depths.len() != n || self.strides.len() != n {
            return bad(format!(
                "widths, depths and strides must have one entry per stage; got {}, {} and {}",
                n,
                self.depths.len(),
                self.strides.len()
            ));
        }
        if let Some(w) = self.widths.iter().chain([&self.stem_width]).find(|w| **w < 1) {
            return bad(format!("width {w} must be positive"));
        }
        if self.depths.contains(&0) {
            return bad(format!("depths {:?} must all be at least 1", self.depths));
        }
        if let Some(s) = self.strides.iter().chain([&self.stem_stride]).find(|s| **s < 1) {
            return bad(format!("stride {s} must be positive"));
        }
        if self.in_channels < 1 || self.num_classes < 1 {
            return bad(format!(
                "in_channels ({}) and num_classes ({}) must be positive",
                self.in_channels, self.num_classes
            ));
        }
        Ok(())
    }
}

/// A convolution without bias followed by batch norm; its variables are `PATH.weight` and
/// `PATH.bn.*`.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    fn new(p: &nn::Path, in_channels: i64, out_channels: i64, kernel: i64, stride: i64) -> Self {
        let config = nn::ConvConfig { stride, padding: kernel / 2, bias: false, ..Default::default() };
        ConvBn {
            conv: nn::conv2d(p, in_channels, out_channels, kernel, config),
            bn: nn::batch_norm2d(p / "bn", out_channels, Default::default()),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train)
    }
}

/// The stem: convolution, batch norm, ReLU.
#[derive(Debug)]
struct Stem(ConvBn);

impl ModuleT for Stem {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        relu(&self.0.forward_t(xs, train))
    }
}

/// One residual block: `relu(layers(x) + shortcut(x))`, ReLU between layers.
#[derive(Debug)]
struct Block {
    layers: Vec<ConvBn>,
    /// A strided 1x1 projection where channels or resolution change, else the identity.
    shortcut: Option<ConvBn>,
}

impl Block {
    fn new(p: &nn::Path, kind: BlockKind, in_channels: i64, width: i64, stride: i64) -> Self {
        let out = width * kind.expansion();
        // (in, out, kernel, stride) per layer; the stride sits on the 3x3 as in torchvision.
        let specs = match kind {
            BlockKind::Basic => vec![(in_channels, width, 3, stride), (width, width, 3, 1)],
            BlockKind::Bottleneck => vec![(in_channels, width, 1, 1), (width, width, 3, stride), (width, out, 1, 1)],
        };
        let layers = specs
            .into_iter()
            .enumerate()
            .map(|(i, (cin, cout, k, s))| ConvBn::new(&(p / format!("conv{}", i + 1)), cin, cout, k, s))
            .collect();
        let shortcut =
            (in_channels != out || stride != 1).then(|| ConvBn::new(&(p / "shortcut"), in_channels, out, 1, stride));
        Block { layers, shortcut }
    }
}

impl ModuleT for Block {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut ys = xs.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            ys = layer.forward_t(&ys, train);
            if i < last {
                ys = relu(&ys);
            }
        }
        let skip = match &self.shortcut {
            Some(s) => s.forward_t(xs, train),
            None => xs.shallow_clone(),
        };
        relu(&(ys + skip))
    }
}

/// A residual stage: blocks in sequence, the first one strided.
#[derive(Debug)]
struct ResStage(Vec<Block>);

impl ModuleT for ResStage {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.iter().fold(xs.shallow_clone(), |x, b| b.forward_t(&x, train))
    }
}

/// The classifier on top of the last stage.
#[derive(Debug)]
enum Head {
    /// Global average pool, then linear.
    Classify(nn::Linear),
    /// 1x1 convolution, then bilinear upsampling to the input size.
    Segment(nn::Conv2D),
}

impl Head {
    fn new(p: &nn::Path, task: Task, in_channels: i64, num_classes: i64) -> Self {
        match task {
            Task::Classification => Head::Classify(nn::linear(p, in_channels, num_classes, Default::default())),
            Task::Segmentation => Head::Segment(nn::conv2d(p, in_channels, num_classes, 1, Default::default())),
        }
    }

    /// Logits: `[N, K]`, or `[N, K, H, W]` at the input's `(H, W)`.
    fn forward(&self, xs: &Tensor, input_size: [i64; 2]) -> Tensor {
        match self {
            Head::Classify(linear) => xs.mean_dim(&[2i64, 3][..], false, None).apply(linear),
            Head::Segment(conv) => xs.apply(conv).upsample_bilinear2d(input_size, false, None, None),
        }
    }
}

/// One stage of the forward chain (stem, residual stage or inserted module).
struct Slot {
    stage: Stage,
    module: Box<dyn ModuleT>,
    out_channels: i64,
    /// Set while a [`Frozen`] guard holds the stage: it runs in evaluation mode.
    frozen: AtomicBool,
}

/// A ResNet whose stage outputs can be read ([`Tapped`]) and whose architecture can be
/// edited ([`Edit`]). Owns its weights.
pub struct TappedNet {
    config: ResNetConfig,
    edits: Vec<Edit>,
    vs: nn::VarStore,
    slots: Vec<Slot>,
    head: Head,
}

impl fmt::Debug for TappedNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TappedNet({})", super::stage_list(&self.stages()))
    }
}

impl TappedNet {
    /// Builds a freshly initialised net on `device`. Initialisation draws from libtorch's
    /// generator: seed it first (`glassbox::seed::set`, `:seed`) for a reproducible net.
    pub fn new(config: ResNetConfig, device: Device) -> Result<TappedNet, ModelError> {
        Self::build(config, Vec::new(), device)
    }

    fn build(config: ResNetConfig, edits: Vec<Edit>, device: Device) -> Result<TappedNet, ModelError> {
        config.validate()?;
        let plan = plan(&config, &edits)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut slots = Vec::with_capacity(plan.len());
        let mut channels = config.in_channels;
        for step in &plan {
            let (module, out): (Box<dyn ModuleT>, i64) = match step {
                Step::Stem => (
                    Box::new(Stem(ConvBn::new(&(&root / "stem"), channels, config.stem_width, 3, config.stem_stride))),
                    config.stem_width,
                ),
                Step::Stage(k) => {
                    let p = &root / format!("stage{k}");
                    let (width, stride) = (config.widths[k - 1], config.strides[k - 1]);
                    let blocks = (0..config.depths[k - 1])
                        .map(|b| {
                            let (cin, s) = if b == 0 { (channels, stride) } else { (config.stage_out(*k), 1) };
                            Block::new(&(&p / b), config.block, cin, width, s)
                        })
                        .collect();
                    (Box::new(ResStage(blocks)), config.stage_out(*k))
                }
                Step::Insert(ins) => (ins.build(&root, channels), ins.out_channels()),
            };
            slots.push(Slot { stage: step.stage(), module, out_channels: out, frozen: AtomicBool::new(false) });
            channels = out;
        }
        let head = Head::new(&(&root / "head"), config.task, channels, config.num_classes);
        Ok(TappedNet { config, edits, vs, slots, head })
    }

    /// See [`Editable::edited`].
    pub fn edited(&self, edits: impl IntoIterator<Item = Edit>) -> Result<TappedNet, ModelError> {
        let all = self.edits.iter().cloned().chain(edits).collect();
        let net = Self::build(self.config.clone(), all, self.vs.device())?;
        super::copy_matching(&self.vs, &net.vs);
        Ok(net)
    }

    /// Applies `edits` to this net (see [`TappedNet::edited`]); on error nothing changes.
    pub fn edit(&mut self, edits: impl IntoIterator<Item = Edit>) -> Result<(), ModelError> {
        *self = self.edited(edits)?;
        Ok(())
    }

    /// An independent copy: same architecture, same weights, its own `VarStore`.
    pub fn try_clone(&self) -> Result<TappedNet, ModelError> {
        self.edited([])
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// The edits applied since the net was built from its config.
    pub fn edits(&self) -> &[Edit] {
        &self.edits
    }

    /// The module computing `stage` (any stage but the head, whose output also depends on
    /// the input size: see [`TappedNet::head`]).
    pub fn module(&self, stage: &Stage) -> Result<&dyn ModuleT, ModelError> {
        match self.slots.iter().find(|s| &s.stage == stage) {
            Some(slot) => Ok(slot.module.as_ref()),
            None => Err(ModelError::UnknownStage {
                name: stage.to_string(),
                allowed: super::stage_list(&self.stages()[..self.slots.len()]),
            }),
        }
    }

    /// The head on the last stage's output `xs`, for images of `input_size` `(H, W)`.
    pub fn head(&self, xs: &Tensor, input_size: (i64, i64)) -> Tensor {
        self.head.forward(xs, [input_size.0, input_size.1])
    }

    /// Input channels `stage` takes (after edits).
    pub fn input_channels(&self, stage: &Stage) -> Result<i64, ModelError> {
        let stages = self.stages();
        match stages.iter().position(|s| &s.stage == stage) {
            Some(0) => Ok(self.config.in_channels),
            Some(i) => Ok(stages[i - 1].channels),
            None => Err(ModelError::UnknownStage { name: stage.to_string(), allowed: super::stage_list(&stages) }),
        }
    }

    /// Moves the weights to `device`.
    pub fn set_device(&mut self, device: Device) {
        self.vs.set_device(device);
    }

    /// Freezes every stage for which `trains` is false until the guard is dropped; see
    /// [`Editable::train_only`].
    pub fn train_only(&self, trains: impl Fn(&Stage) -> bool) -> Frozen<'_> {
        for slot in &self.slots {
            slot.frozen.store(!trains(&slot.stage), Ordering::Relaxed);
        }
        let stage_of = |name: &str| {
            let first = name.split('.').next().unwrap_or(name);
            first.parse::<Stage>().unwrap_or_else(|_| Stage::Inserted(first.to_owned()))
        };
        set_requires_grad(&self.vs, |name| trains(&stage_of(name)));
        Frozen::new(move || {
            for slot in &self.slots {
                slot.frozen.store(false, Ordering::Relaxed);
            }
            set_requires_grad(&self.vs, |_| true);
        })
    }
}

/// The inherent methods are the same, for callers without the trait in scope.
impl Editable for TappedNet {
    fn edited(&self, edits: impl IntoIterator<Item = Edit>) -> Result<Self, ModelError> {
        TappedNet::edited(self, edits)
    }

    fn module(&self, stage: &Stage) -> Result<&dyn ModuleT, ModelError> {
        TappedNet::module(self, stage)
    }

    fn input_channels(&self, stage: &Stage) -> Result<i64, ModelError> {
        TappedNet::input_channels(self, stage)
    }

    /// After any stage that feeds a residual stage or the head.
    fn insertion_points(&self) -> Vec<InsertionPoint> {
        let stages = self.stages();
        stages
            .windows(2)
            .filter(|w| matches!(w[1].stage, Stage::Block(_) | Stage::Head))
            .map(|w| InsertionPoint { after: w[0].stage.clone(), next: w[1].stage.clone() })
            .collect()
    }

    fn train_only(&self, trains: impl Fn(&Stage) -> bool) -> Frozen<'_> {
        TappedNet::train_only(self, trains)
    }
}

/// The forward chain of a config with edits, checked.
enum Step {
    Stem,
    Stage(usize),
    Insert(Insertion),
}

impl Step {
    fn stage(&self) -> Stage {
        match self {
            Step::Stem => Stage::Stem,
            Step::Stage(k) => Stage::Block(*k as u8),
            Step::Insert(ins) => ins.stage(),
        }
    }
}

/// Orders stem, stages and insertions, and checks that every stage receives the channels it
/// takes; a mismatch names the fix (SB paper eq. 4 vs eq. 9).
fn plan(config: &ResNetConfig, edits: &[Edit]) -> Result<Vec<Step>, ModelError> {
    let bad = |why: String| Err(ModelError::InvalidEdit(why));
    let mut steps: Vec<Step> = std::iter::once(Step::Stem).chain((1..=config.n_stages()).map(Step::Stage)).collect();
    let mut adapted: BTreeMap<Stage, i64> = BTreeMap::new();
    for edit in edits {
        match edit {
            Edit::InsertAfter { after, insertion } => {
                let taken: Vec<String> = steps.iter().map(|s| s.stage().to_string()).collect();
                insertion.validate(taken.iter().map(String::as_str))?;
                let Some(at) = steps.iter().position(|s| &s.stage() == after) else {
                    let names: Vec<String> = steps.iter().map(|s| s.stage().to_string()).collect();
                    return bad(format!("cannot insert after `{after}`; insert after one of: {}", names.join(", ")));
                };
                steps.insert(at + 1, Step::Insert(insertion.clone()));
            }
            Edit::AdaptInput { stage, in_channels } => {
                let ok = matches!(stage, Stage::Head)
                    || matches!(stage, Stage::Block(k) if (1..=config.n_stages()).contains(&(*k as usize)));
                if !ok {
                    return bad(format!(
                        "cannot adapt the input of `{stage}`; adapt stage1..stage{} or head",
                        config.n_stages()
                    ));
                }
                if *in_channels < 1 {
                    return bad(format!("`{stage}` must take a positive number of channels, not {in_channels}"));
                }
                adapted.insert(stage.clone(), *in_channels);
            }
        }
    }
    check_flow(config, &steps, &adapted)?;
    Ok(steps)
}

/// Checks the channels flowing through `steps`: each residual stage and the head take
/// their original input channels unless adapted.
fn check_flow(config: &ResNetConfig, steps: &[Step], adapted: &BTreeMap<Stage, i64>) -> Result<(), ModelError> {
    let mut channels = config.stem_width;
    let mut from = Stage::Stem;
    let takes = |stage: &Stage, original: i64| adapted.get(stage).copied().unwrap_or(original);
    for step in &steps[1..] {
        let stage = step.stage();
        match step {
            Step::Stage(k) => {
                check(&stage, takes(&stage, config.stage_in(*k)), channels, &from)?;
                channels = config.stage_out(*k);
            }
            Step::Insert(ins) => channels = ins.out_channels(),
            Step::Stem => unreachable!("the stem comes first"),
        }
        from = stage;
    }
    check(&Stage::Head, takes(&Stage::Head, config.stage_out(config.n_stages())), channels, &from)
}

impl ModuleT for TappedNet {
    /// The logits.
    ///
    /// # Panics
    /// If `xs` is not `[N, in_channels, H, W]`; [`Tapped::forward_taps`] reports it instead.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_taps(xs, &[], train).unwrap_or_else(|e| panic!("{e}")).0
    }
}

impl Tapped for TappedNet {
    fn stages(&self) -> Vec<StageInfo> {
        let body = self.slots.iter().map(|s| StageInfo { stage: s.stage.clone(), channels: s.out_channels });
        body.chain([StageInfo { stage: Stage::Head, channels: self.config.num_classes }]).collect()
    }

    fn forward_taps(&self, xs: &Tensor, taps: &[Stage], train: bool) -> Result<(Tensor, Taps), ModelError> {
        check_input(xs, self.config.in_channels)?;
        check_taps(&self.stages(), taps)?;
        let mut out = Taps::new();
        let mut x = xs.shallow_clone();
        for slot in &self.slots {
            x = slot.module.forward_t(&x, train && !slot.frozen.load(Ordering::Relaxed));
            if taps.contains(&slot.stage) {
                out.insert(slot.stage.clone(), x.shallow_clone());
            }
        }
        let size = xs.size();
        let logits = self.head.forward(&x, [size[2], size[3]]);
        if taps.contains(&Stage::Head) {
            out.insert(Stage::Head, logits.shallow_clone());
        }
        Ok((logits, out))
    }

    fn forward_edited(
        &self,
        xs: &Tensor,
        at: &[Stage],
        edit: &dyn Fn(&Stage, Tensor) -> Tensor,
    ) -> Result<Tensor, ModelError> {
        check_input(xs, self.config.in_channels)?;
        check_taps(&self.stages(), at)?;
        let mut x = xs.shallow_clone();
        for slot in &self.slots {
            x = slot.module.forward_t(&x, false);
            if at.contains(&slot.stage) {
                x = edit(&slot.stage, x);
            }
        }
        let size = xs.size();
        let logits = self.head.forward(&x, [size[2], size[3]]);
        Ok(if at.contains(&Stage::Head) { edit(&Stage::Head, logits) } else { logits })
    }

    fn runs_in_glassbox(&self) -> bool {
        true
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn in_channels(&self) -> i64 {
        self.config.in_channels
    }

    fn task(&self) -> Task {
        self.config.task
    }

    fn num_classes(&self) -> i64 {
        self.config.num_classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn net(task: Task, block: BlockKind) -> TappedNet {
        let config = ResNetConfig { block, widths: vec![4, 8, 16], ..ResNetConfig::small(task, 5) };
        TappedNet::new(config, Device::Cpu).unwrap()
    }

    fn input() -> Tensor {
        Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu))
    }

    fn shapes(net: &TappedNet) -> Vec<(String, Vec<i64>)> {
        net.output_shapes((32, 32)).unwrap().into_iter().map(|(s, v)| (s.to_string(), v)).collect()
    }

    fn named(list: &[(&str, &[i64])]) -> Vec<(String, Vec<i64>)> {
        list.iter().map(|(s, v)| (s.to_string(), v.to_vec())).collect()
    }

    #[test]
    fn taps_equal_running_the_stages_by_hand() {
        let _serial = crate::models::serial();
        let net = net(Task::Segmentation, BlockKind::Basic);
        let x = input();
        let all: Vec<Stage> = net.stages().into_iter().map(|s| s.stage).collect();
        let (logits, taps) = net.forward_taps(&x, &all, false).unwrap();
        let mut h = x.shallow_clone();
        for stage in &all[..all.len() - 1] {
            h = net.module(stage).unwrap().forward_t(&h, false);
            assert!(taps[stage].equal(&h), "{stage}");
        }
        let by_hand = net.head(&h, (32, 32));
        assert!(taps[&Stage::Head].equal(&by_hand) && logits.equal(&by_hand));
        assert!(net.forward_t(&x, false).equal(&logits));
    }

    #[test]
    fn every_stage_has_the_expected_shape() {
        let _serial = crate::models::serial();
        let seg = net(Task::Segmentation, BlockKind::Basic);
        let expected: &[(&str, &[i64])] = &[
            ("stem", &[1, 16, 32, 32]),
            ("stage1", &[1, 4, 32, 32]),
            ("stage2", &[1, 8, 16, 16]),
            ("stage3", &[1, 16, 8, 8]),
            ("head", &[1, 5, 32, 32]),
        ];
        assert_eq!(shapes(&seg), named(expected));
        let cls = net(Task::Classification, BlockKind::Bottleneck);
        let expected: &[(&str, &[i64])] = &[
            ("stem", &[1, 16, 32, 32]),
            ("stage1", &[1, 16, 32, 32]),
            ("stage2", &[1, 32, 16, 16]),
            ("stage3", &[1, 64, 8, 8]),
            ("head", &[1, 5]),
        ];
        assert_eq!(shapes(&cls), named(expected));
        assert_eq!(cls.stage_channels(&Stage::Block(3)).unwrap(), 64);
    }

    #[test]
    fn unknown_stages_are_refused_with_the_models_stages() {
        let _serial = crate::models::serial();
        let net = net(Task::Classification, BlockKind::Basic);
        let err = net.stage("stage4").unwrap_err().to_string();
        assert!(
            err.contains("`stage4`") && err.contains("stem (16), stage1 (4), stage2 (8), stage3 (16), head (5)"),
            "{err}"
        );
        let err = net.forward_taps(&input(), &[Stage::Conv(1)], false).unwrap_err().to_string();
        assert!(err.contains("`conv1`"), "{err}");
        let err = net.forward_taps(&Tensor::zeros([2, 1, 8, 8], tch::kind::FLOAT_CPU), &[], false).unwrap_err();
        assert!(err.to_string().contains("[N, 3, H, W]"), "{err}");
    }

    #[test]
    fn a_bottleneck_with_an_adapted_next_stage_has_the_right_shapes() {
        let _serial = crate::models::serial();
        let original = net(Task::Segmentation, BlockKind::Basic);
        let x = input();
        let before = original.forward_t(&x, false);
        let edited = original
            .edited([
                Edit::insert_after(Stage::Block(2), Insertion::conv1x1("sb", 3)),
                Edit::adapt_input(Stage::Block(3), 3),
            ])
            .unwrap();
        let expected: &[(&str, &[i64])] = &[
            ("stem", &[1, 16, 32, 32]),
            ("stage1", &[1, 4, 32, 32]),
            ("stage2", &[1, 8, 16, 16]),
            ("sb", &[1, 3, 16, 16]),
            ("stage3", &[1, 16, 8, 8]),
            ("head", &[1, 5, 32, 32]),
        ];
        assert_eq!(shapes(&edited), named(expected));
        assert_eq!(edited.input_channels(&Stage::Block(3)).unwrap(), 3);
        assert_eq!(edited.stage("sb").unwrap(), Stage::Inserted("sb".into()));
        // Untouched stages carried their weights over; the original is unchanged.
        let (_, a) = original.forward_taps(&x, &[Stage::Block(2)], false).unwrap();
        let (_, b) = edited.forward_taps(&x, &[Stage::Block(2)], false).unwrap();
        assert!(a[&Stage::Block(2)].equal(&b[&Stage::Block(2)]));
        assert!(original.forward_t(&x, false).equal(&before));
        assert_eq!(original.stages().len(), 5);
        assert_eq!(original.var_store().variables()["stage3.0.conv1.weight"].size(), [16, 8, 3, 3]);
        assert_eq!(edited.var_store().variables()["stage3.0.conv1.weight"].size(), [16, 3, 3, 3]);
    }

    #[test]
    fn an_insertion_that_keeps_the_channels_needs_no_adaptation() {
        let _serial = crate::models::serial();
        let mut net = net(Task::Classification, BlockKind::Basic);
        net.edit([Edit::insert_after(Stage::Stem, Insertion::conv1x1("probe", 16))]).unwrap();
        assert_eq!(net.output_shapes((32, 32)).unwrap()[1], (Stage::Inserted("probe".into()), vec![1, 16, 32, 32]));
        assert_eq!(net.try_clone().unwrap().stages(), net.stages());
    }

    #[test]
    fn a_channel_mismatch_names_the_fix_and_changes_nothing() {
        let _serial = crate::models::serial();
        let mut net = net(Task::Segmentation, BlockKind::Basic);
        let err = net.edit([Edit::insert_after(Stage::Block(2), Insertion::conv1x1("sb", 3))]).unwrap_err().to_string();
        assert!(
            err.contains("`stage3` takes 8 channels but `sb` gives 3") && err.contains("adapt_input(stage3, 3)"),
            "{err}"
        );
        assert_eq!(net.stages().len(), 5);
        let err = net.edited([Edit::insert_after(Stage::Head, Insertion::conv1x1("x", 3))]).unwrap_err().to_string();
        assert!(err.contains("insert after one of: stem, stage1, stage2, stage3"), "{err}");
        let err =
            net.edited([Edit::insert_after(Stage::Stem, Insertion::conv1x1("stage9", 16))]).unwrap_err().to_string();
        assert!(err.contains("already a stage name"), "{err}");
    }

    #[test]
    fn bad_configs_say_which_field_is_wrong() {
        let _serial = crate::models::serial();
        let config = ResNetConfig { depths: vec![1, 1], ..ResNetConfig::small(Task::Classification, 2) };
        let err = TappedNet::new(config, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("one entry per stage; got 3, 2 and 3"), "{err}");
    }
}
