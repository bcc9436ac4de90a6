//! Training and scoring tapped models: classification (cross-entropy, accuracy) and dense
//! segmentation (per-pixel cross-entropy ignoring `-1`, mIoU).
//!
//! The policy is the SB paper's (sec. 3.1): SGD with momentum (or Adam), weight decay, and
//! the "poly" learning rate `base * (1 - iter / max_iter)^0.9`. Training is seeded (the
//! order of examples; seed the model's initialisation yourself), shows a live
//! [`Progress`] with the loss, and stops at a step boundary when the user interrupts,
//! keeping the weights trained so far and saying so in the [`TrainReport`].

use std::fmt;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Reduction, Tensor};

use super::{ModelError, Tapped, Task};
use crate::data::{Category, ConceptDataset};
use crate::progress::Progress;

/// The label that pixels without a label carry; the loss and the metrics skip them.
pub const IGNORE: i64 = -1;

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optim {
    /// SGD with (heavy-ball) momentum, as in the SB paper.
    Sgd { momentum: f64 },
    /// Adam with the usual betas (0.9, 0.999).
    Adam,
}

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// The base learning rate of the poly policy.
    pub lr: f64,
    /// L2 weight decay on every trained variable.
    pub weight_decay: f64,
    pub optimizer: Optim,
    /// Power of the poly learning-rate policy; 0 keeps the rate constant.
    pub poly_power: f64,
    /// Seeds the order of examples; `None` takes [`crate::seed::current`].
    pub seed: Option<u64>,
    /// Shown on the progress display.
    pub label: String,
    /// Stops after this many optimisation steps, inside an epoch if need be, and gives the
    /// poly schedule that length; `None` runs every epoch. See [`TrainConfig::for_steps`].
    pub max_steps: Option<usize>,
}

/// The SB paper's base-model policy (sec. 3.1): lr 0.01, weight decay 5e-4, poly power 0.9,
/// SGD with momentum 0.9.
impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 16,
            lr: 0.01,
            weight_decay: 5e-4,
            optimizer: Optim::Sgd { momentum: 0.9 },
            poly_power: 0.9,
            seed: None,
            label: "training".to_owned(),
            max_steps: None,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::InvalidConfig(why));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad(format!("epochs ({}) and batch_size ({}) must be at least 1", self.epochs, self.batch_size));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr {} must be positive", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.poly_power >= 0.0) {
            return bad(format!(
                "weight_decay ({}) and poly_power ({}) must not be negative",
                self.weight_decay, self.poly_power
            ));
        }
        if let Optim::Sgd { momentum } = self.optimizer {
            if !(0.0..1.0).contains(&momentum) {
                return bad(format!("momentum {momentum} must be in [0, 1)"));
            }
        }
        Ok(())
    }

    /// The optimisation steps of training on `n` examples.
    pub fn steps_for(&self, n: usize) -> usize {
        let whole_epochs = self.epochs * n.div_ceil(self.batch_size.max(1));
        self.max_steps.map_or(whole_epochs, |cap| cap.min(whole_epochs))
    }

    /// This config, run for exactly `steps` steps over `n` examples: as many epochs as that
    /// takes, the last one cut short.
    pub fn for_steps(self, steps: usize, n: usize) -> TrainConfig {
        let epochs = (steps * self.batch_size).div_ceil(n.max(1)).max(1);
        TrainConfig { epochs, max_steps: Some(steps), ..self }
    }

    fn optimizer(&self, vs: &nn::VarStore) -> Result<nn::Optimizer, ModelError> {
        let opt = match self.optimizer {
            Optim::Sgd { momentum } => {
                nn::Sgd { momentum, wd: self.weight_decay, ..Default::default() }.build(vs, self.lr)
            }
            Optim::Adam => nn::Adam { wd: self.weight_decay, ..Default::default() }.build(vs, self.lr),
        };
        Ok(opt?)
    }
}

/// The "poly" learning rate at step `iter` of `max_iter`: `base * (1 - iter/max_iter)^power`
/// (SB paper sec. 3.1, power 0.9). Zero from `max_iter` on.
pub fn poly_lr(base: f64, iter: usize, max_iter: usize, power: f64) -> f64 {
    if max_iter == 0 {
        return base;
    }
    let done = iter.min(max_iter) as f64 / max_iter as f64;
    base * (1.0 - done).powf(power)
}

/// Training or test examples: images and their targets, on any device.
#[derive(Debug)]
pub struct Examples {
    images: Tensor,
    targets: Tensor,
    task: Task,
}

impl Examples {
    /// `images` `[N, C, H, W]` float, `labels` `[N]` int64 class indices.
    pub fn classification(images: Tensor, labels: Tensor) -> Result<Examples, ModelError> {
        check_images(&images)?;
        let (n, size) = (images.size()[0], labels.size());
        if size != [n] || labels.kind() != Kind::Int64 {
            return Err(ModelError::BadInput(format!(
                "labels must be int64 [{n}] for {n} images; got {:?} {size:?}",
                labels.kind()
            )));
        }
        Ok(Examples { images, targets: labels, task: Task::Classification })
    }

    /// `images` `[N, C, H, W]` float, `maps` `[N, H, W]` int64 class indices, `-1` unlabelled.
    pub fn segmentation(images: Tensor, maps: Tensor) -> Result<Examples, ModelError> {
        check_images(&images)?;
        let (i, m) = (images.size(), maps.size());
        if m != [i[0], i[2], i[3]] || maps.kind() != Kind::Int64 {
            return Err(ModelError::BadInput(format!(
                "label maps must be int64 [{}, {}, {}] for images {i:?}; got {:?} {m:?}",
                i[0],
                i[2],
                i[3],
                maps.kind()
            )));
        }
        Ok(Examples { images, targets: maps, task: Task::Segmentation })
    }

    /// Every image of `dataset` with its `category` label maps as segmentation targets
    /// (e.g. [`Category::Object`] for the concept scenes' segmentation task).
    pub fn from_dataset(dataset: &(impl ConceptDataset + ?Sized), category: Category) -> Result<Examples, ModelError> {
        let batch = dataset.batch(0..dataset.len()).map_err(|e| ModelError::BadInput(e.to_string()))?;
        let Some(maps) = batch.concept_map(category) else {
            let have: Vec<&str> = batch.concepts.keys().map(|c| c.name()).collect();
            return Err(ModelError::BadInput(format!(
                "the data set has no `{category}` maps; it has: {}",
                have.join(", ")
            )));
        };
        let maps = maps.shallow_clone();
        Examples::segmentation(batch.images, maps)
    }

    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn task(&self) -> Task {
        self.task
    }

    pub fn images(&self) -> &Tensor {
        &self.images
    }

    pub fn targets(&self) -> &Tensor {
        &self.targets
    }

    /// Checks that `model` can learn these examples: task, channels, label range.
    fn check_fits(&self, model: &impl Tapped) -> Result<(), ModelError> {
        if self.is_empty() {
            return Err(ModelError::BadInput("no examples".to_owned()));
        }
        if self.task != model.task() {
            return Err(ModelError::BadInput(format!("{:?} examples for a {:?} model", self.task, model.task())));
        }
        super::check_input(&self.images, model.in_channels())?;
        let lowest = if self.task == Task::Segmentation { IGNORE } else { 0 };
        let (min, max) = (self.targets.min().int64_value(&[]), self.targets.max().int64_value(&[]));
        if min < lowest || max >= model.num_classes() {
            return Err(ModelError::BadInput(format!(
                "labels span {min}..={max} but the model has {} classes (labels {lowest}..={})",
                model.num_classes(),
                model.num_classes() - 1
            )));
        }
        Ok(())
    }

    /// Examples `indices`, on `device`.
    pub fn take(&self, indices: &[i64], device: tch::Device) -> (Tensor, Tensor) {
        let index = Tensor::from_slice(indices).to_device(self.images.device());
        (self.images.index_select(0, &index).to_device(device), self.targets.index_select(0, &index).to_device(device))
    }
}

fn check_images(images: &Tensor) -> Result<(), ModelError> {
    let size = images.size();
    if size.len() != 4 || images.kind() != Kind::Float {
        return Err(ModelError::BadInput(format!(
            "images must be float [N, C, H, W]; got {:?} {size:?}",
            images.kind()
        )));
    }
    Ok(())
}

/// The loss of `logits` against `targets`: cross-entropy, per pixel for segmentation,
/// skipping [`IGNORE`]d pixels.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, reduction: Reduction) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(targets, None, reduction, IGNORE, 0.0)
}

/// One optimisation step, as the step callback of [`train_with`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// 0-based step.
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Optimisation steps done.
    pub steps: usize,
    /// Steps the run was planned for.
    pub max_steps: usize,
    /// Epochs run to their end.
    pub epochs: usize,
    /// The loss of every step.
    pub step_losses: Vec<f64>,
    /// The mean loss of every complete epoch.
    pub epoch_losses: Vec<f64>,
    /// Whether the user interrupted; the weights trained until then are kept.
    pub interrupted: bool,
    pub seconds: f64,
}

impl fmt::Display for TrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} steps ({} epochs) in {:.1}s", self.steps, self.max_steps, self.epochs, self.seconds)?;
        if let (Some(first), Some(last)) = (self.epoch_losses.first(), self.epoch_losses.last()) {
            write!(f, ", epoch loss {first:.4} -> {last:.4}")?;
        }
        if self.interrupted {
            write!(f, ", interrupted (weights so far kept)")?;
        }
        Ok(())
    }
}

/// Trains `model` on `data`; see [`train_with`].
pub fn train(model: &impl Tapped, data: &Examples, config: &TrainConfig) -> Result<TrainReport, ModelError> {
    train_with(model, data, config, |_| {})
}

/// Trains every trainable variable of `model` (freeze some with `set_requires_grad(false)`
/// to train only part of it) on `data`, calling `on_step` after every step (for live loss
/// curves). An interrupt ends the run after the step in progress, with
/// `interrupted: true`. Fails if the loss becomes NaN or infinite.
pub fn train_with(
    model: &impl Tapped,
    data: &Examples,
    config: &TrainConfig,
    on_step: impl FnMut(&StepInfo),
) -> Result<TrainReport, ModelError> {
    config.validate()?;
    data.check_fits(model)?;
    let step_loss = |batch: &[i64], _step: usize| {
        let (xs, ys) = data.take(batch, model.device());
        Ok(cross_entropy(&model.forward_t(&xs, true), &ys, Reduction::Mean))
    };
    optimize(model.var_store(), data.len(), config, step_loss, on_step)
}

/// The optimisation loop every trainer shares (the task trainer above, the bottleneck and
/// INN trainers): shuffles `n` examples into batches with the config's seed, sets the poly
/// learning rate, and steps the optimizer over `vs`'s trainable variables on the loss that
/// `step_loss(batch_indices, step)` returns. Shows a live progress, stops after the step in
/// progress when the user interrupts, and refuses a loss that is not finite.
pub fn optimize(
    vs: &nn::VarStore,
    n: usize,
    config: &TrainConfig,
    mut step_loss: impl FnMut(&[i64], usize) -> Result<Tensor, ModelError>,
    mut on_step: impl FnMut(&StepInfo),
) -> Result<TrainReport, ModelError> {
    config.validate()?;
    if n == 0 {
        return Err(ModelError::BadInput("no examples".to_owned()));
    }
    let started = Instant::now();
    let mut opt = config.optimizer(vs)?;
    let mut order: Vec<i64> = (0..n as i64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed.unwrap_or_else(crate::seed::current));
    let max_steps = config.steps_for(n);
    let mut progress = Progress::new(config.label.clone(), Some(max_steps as u64));
    let mut report = TrainReport {
        steps: 0,
        max_steps,
        epochs: 0,
        step_losses: Vec::new(),
        epoch_losses: Vec::new(),
        interrupted: false,
        seconds: 0.0,
    };
    'epochs: for epoch in 0..config.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut batches) = (0.0, 0);
        for batch in order.chunks(config.batch_size) {
            if report.steps >= max_steps {
                break;
            }
            let lr = poly_lr(config.lr, report.steps, max_steps, config.poly_power);
            opt.set_lr(lr);
            let loss = step_loss(batch, report.steps)?;
            opt.backward_step(&loss);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(ModelError::BadInput(format!(
                    "the loss became {value} at step {} (lr {lr:.3e}); lower the learning rate",
                    report.steps
                )));
            }
            let info = StepInfo { step: report.steps, epoch, loss: value, lr };
            report.steps += 1;
            report.step_losses.push(value);
            sum += value;
            batches += 1;
            on_step(&info);
            progress.metric("loss", value);
            if progress.step().is_err() {
                report.interrupted = true;
                break 'epochs;
            }
        }
        if batches == 0 {
            break;
        }
        report.epochs += 1;
        report.epoch_losses.push(sum / batches as f64);
    }
    progress.finish();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A model's score on examples.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    pub task: Task,
    /// Mean cross-entropy over the (labelled) examples or pixels.
    pub loss: f64,
    /// Image accuracy, or pixel accuracy for segmentation.
    pub accuracy: f64,
    /// Mean IoU over the classes present in labels or predictions (segmentation only).
    pub miou: Option<f64>,
    /// The share of the most frequent label: the accuracy of always answering it.
    pub majority: f64,
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loss {:.4}, accuracy {:.2}%", self.loss, 100.0 * self.accuracy)?;
        if let Some(miou) = self.miou {
            write!(f, ", mIoU {:.2}%", 100.0 * miou)?;
        }
        write!(f, " (majority baseline {:.2}%)", 100.0 * self.majority)
    }
}

/// Scores `model` on `data` in evaluation mode, `batch_size` examples at a time.
pub fn evaluate(model: &impl Tapped, data: &Examples, batch_size: usize) -> Result<Score, ModelError> {
    data.check_fits(model)?;
    if batch_size == 0 {
        return Err(ModelError::BadInput("batch_size must be at least 1".to_owned()));
    }
    let k = model.num_classes();
    let order: Vec<i64> = (0..data.len() as i64).collect();
    let (mut loss_sum, mut labelled) = (0.0, 0i64);
    let mut confusion = Tensor::zeros([k, k], (Kind::Int64, tch::Device::Cpu));
    tch::no_grad(|| {
        for batch in order.chunks(batch_size) {
            let (xs, ys) = data.take(batch, model.device());
            let logits = model.forward_t(&xs, false);
            loss_sum += cross_entropy(&logits, &ys, Reduction::Sum).double_value(&[]);
            labelled += ys.ge(0).sum(Kind::Int64).int64_value(&[]);
            confusion += confusion_matrix(&logits.argmax(1, false), &ys, k, IGNORE).to_device(tch::Device::Cpu);
        }
    });
    let correct = confusion.diagonal(0, 0, 1).sum(Kind::Int64).int64_value(&[]);
    let most_frequent = confusion.sum_dim_intlist(1, false, Kind::Int64).max().int64_value(&[]);
    Ok(Score {
        majority: most_frequent as f64 / labelled.max(1) as f64,
        task: data.task,
        loss: loss_sum / labelled.max(1) as f64,
        accuracy: correct as f64 / labelled.max(1) as f64,
        miou: (data.task == Task::Segmentation).then(|| miou_of(&confusion)),
    })
}

/// `[k, k]` int64 counts, row = label, column = prediction, skipping `ignore`d labels.
fn confusion_matrix(pred: &Tensor, labels: &Tensor, k: i64, ignore: i64) -> Tensor {
    let valid = labels.ne(ignore);
    let labels = labels.masked_select(&valid);
    let pred = pred.masked_select(&valid);
    (labels * k + pred).bincount::<Tensor>(None, k * k).view([k, k])
}

/// Mean IoU of a confusion matrix over the classes with a non-empty union.
fn miou_of(confusion: &Tensor) -> f64 {
    let c = confusion.to_kind(Kind::Double);
    let tp = c.diagonal(0, 0, 1);
    let union = c.sum_dim_intlist(0, false, Kind::Double) + c.sum_dim_intlist(1, false, Kind::Double) - &tp;
    let present = union.gt(0.0);
    if present.sum(Kind::Int64).int64_value(&[]) == 0 {
        return f64::NAN;
    }
    (tp.masked_select(&present) / union.masked_select(&present)).mean(Kind::Double).double_value(&[])
}

/// The fraction of labelled examples (or pixels) whose arg-max logit is the label:
/// `logits` `[N, K]` with `labels` `[N]`, or `[N, K, H, W]` with `[N, H, W]`; `-1` labels
/// are skipped. NaN when nothing is labelled.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f64, ModelError> {
    let (l, y) = (logits.size(), labels.size());
    let mut expected = l.clone();
    if l.len() >= 2 {
        expected.remove(1);
    }
    if l.len() < 2 || y != expected {
        return Err(ModelError::BadInput(format!(
            "logits {l:?} and labels {y:?} do not match: labels must be logits' shape without dim 1"
        )));
    }
    let valid = labels.ne(IGNORE);
    let n = valid.sum(Kind::Int64).int64_value(&[]);
    let correct = logits.argmax(1, false).eq_tensor(labels).logical_and(&valid).sum(Kind::Int64).int64_value(&[]);
    Ok(if n == 0 { f64::NAN } else { correct as f64 / n as f64 })
}

/// Mean intersection-over-union of predicted class maps `pred` against `labels` (same shape,
/// int64), over the classes `0..n_classes` present in either; pixels labelled `ignore`
/// (usually -1) are skipped. NaN when nothing is labelled.
pub fn miou(pred: &Tensor, labels: &Tensor, n_classes: i64, ignore: i64) -> Result<f64, ModelError> {
    if pred.size() != labels.size() || pred.kind() != Kind::Int64 || labels.kind() != Kind::Int64 {
        return Err(ModelError::BadInput(format!(
            "pred ({:?} {:?}) and labels ({:?} {:?}) must be int64 of one shape",
            pred.kind(),
            pred.size(),
            labels.kind(),
            labels.size()
        )));
    }
    let valid = labels.ne(ignore);
    let out_of_range = |t: &Tensor| {
        t.masked_select(&valid).lt(0).logical_or(&t.masked_select(&valid).ge(n_classes)).any().int64_value(&[]) != 0
    };
    if n_classes < 1 || out_of_range(pred) || out_of_range(labels) {
        return Err(ModelError::BadInput(format!("classes must be in 0..{n_classes} (or {ignore} in labels)")));
    }
    Ok(miou_of(&confusion_matrix(pred, labels, n_classes, ignore)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ConceptScenes, SceneConfig};
    use crate::models::{serial, LeNet, LeNetConfig, ResNetConfig, TappedNet};
    use tch::Device;

    #[test]
    fn the_poly_rate_decays_from_base_to_zero() {
        assert_eq!(poly_lr(0.01, 0, 100, 0.9), 0.01);
        assert!((poly_lr(0.01, 50, 100, 0.9) - 0.01 * 0.5f64.powf(0.9)).abs() < 1e-15);
        assert!((poly_lr(0.01, 50, 100, 0.9) - 0.005358867).abs() < 1e-9);
        assert!((poly_lr(0.01, 99, 100, 0.9) - 1.584893e-4).abs() < 1e-9);
        assert_eq!(poly_lr(0.01, 100, 100, 0.9), 0.0);
        assert_eq!(poly_lr(0.01, 40, 100, 0.0), 0.01);
    }

    #[test]
    fn accuracy_and_miou_on_known_maps() {
        let logits = Tensor::from_slice(&[2.0f32, 1.0, 0.0, 3.0, 5.0, 1.0]).view([3, 2]);
        let labels = Tensor::from_slice(&[0i64, 1, 1]);
        assert!((accuracy(&logits, &labels).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // Class 0: tp 1, union 2; class 1: tp 1, union 2; the -1 pixel is skipped.
        let pred = Tensor::from_slice(&[0i64, 0, 1, 1, 0]).view([1, 5]);
        let labels = Tensor::from_slice(&[0i64, 1, 1, -1, -1]).view([1, 5]);
        assert!((miou(&pred, &labels, 3, IGNORE).unwrap() - 0.5).abs() < 1e-12);
        let err = miou(&pred, &labels, 1, IGNORE).unwrap_err().to_string();
        assert!(err.contains("0..1"), "{err}");
        let err = accuracy(&logits, &Tensor::from_slice(&[0i64, 1])).unwrap_err().to_string();
        assert!(err.contains("[3, 2]"), "{err}");
    }

    /// 4 classes: which quadrant of a noisy 32x32 image holds a bright square.
    fn quadrants(n: i64, seed: i64) -> Examples {
        tch::manual_seed(seed);
        let labels = Tensor::randint(4, [n], (Kind::Int64, Device::Cpu));
        let images = Tensor::rand([n, 1, 32, 32], (Kind::Float, Device::Cpu)) * 0.3;
        for (i, label) in Vec::<i64>::try_from(&labels).unwrap().into_iter().enumerate() {
            let (y, x) = (8 + 16 * (label / 2), 8 + 16 * (label % 2));
            let _ = images.get(i as i64).narrow(1, y - 4, 8).narrow(2, x - 4, 8).fill_(1.0);
        }
        Examples::classification(images, labels).unwrap()
    }

    fn lenet(seed: i64) -> LeNet {
        tch::manual_seed(seed);
        LeNet::new(LeNetConfig { in_channels: 1, num_classes: 4, ..Default::default() }, Device::Cpu).unwrap()
    }

    fn quick() -> TrainConfig {
        TrainConfig { epochs: 3, batch_size: 16, lr: 0.05, seed: Some(7), label: "test".into(), ..Default::default() }
    }

    #[test]
    fn a_lenet_learns_a_synthetic_task() {
        let _serial = serial();
        let seed = crate::learned::torch_seed;
        let (data, test) = (quadrants(256, seed(1)), quadrants(128, seed(2)));
        let net = lenet(seed(3));
        let config = TrainConfig { epochs: 6, seed: Some(crate::learned::seed(7)), ..quick() };
        let report = train(&net, &data, &config).unwrap();
        let score = evaluate(&net, &test, 64).unwrap();
        eprintln!("lenet: {report}; test {score}");
        assert!(!report.interrupted && report.steps == 6 * 16);
        let losses = &report.epoch_losses;
        crate::learned::at_most("quadrants lenet: last epoch loss / first", losses[5] / losses[0], 0.5);
        crate::learned::at_least("quadrants lenet: test accuracy", score.accuracy, 0.9);
    }

    #[test]
    fn a_step_budget_is_met_exactly_inside_an_epoch() {
        let _serial = serial();
        let data = quadrants(64, 1);
        // 64 examples in batches of 16 are 4 steps an epoch: 10 steps end inside the third.
        let config = quick().for_steps(10, data.len());
        assert_eq!((config.epochs, config.steps_for(data.len())), (3, 10));
        let report = train(&lenet(3), &data, &config).unwrap();
        assert_eq!((report.steps, report.max_steps, report.epochs), (10, 10, 3));
        assert_eq!(report.step_losses.len(), 10);
        let third: f64 = report.step_losses[8..].iter().sum::<f64>() / 2.0;
        assert!((report.epoch_losses[2] - third).abs() < 1e-12, "{report}");
    }

    #[test]
    fn the_same_seed_trains_the_same_weights() {
        let _serial = serial();
        let data = quadrants(64, 1);
        let start = lenet(3);
        let runs: Vec<(Vec<f64>, Tensor)> = (0..2)
            .map(|_| {
                let net = start.try_clone().unwrap();
                let report = train(&net, &data, &quick()).unwrap();
                (report.step_losses, net.var_store().variables()["head.weight"].copy())
            })
            .collect();
        assert_eq!(runs[0].0, runs[1].0);
        assert!(runs[0].1.equal(&runs[1].1));
        let other = train(&start.try_clone().unwrap(), &data, &TrainConfig { seed: Some(8), ..quick() }).unwrap();
        assert_ne!(other.step_losses, runs[0].0);
    }

    #[test]
    fn an_interrupt_stops_at_a_step_and_keeps_the_weights() {
        let _serial = serial();
        let data = quadrants(64, 1);
        let net = lenet(3);
        let before = net.var_store().variables()["head.weight"].copy();
        let report = train_with(&net, &data, &quick(), |s| {
            if s.step == 2 {
                crate::interrupt::request();
            }
        })
        .unwrap();
        assert!(report.interrupted && report.steps == 3 && report.epochs == 0, "{report}");
        assert!(report.to_string().contains("interrupted"));
        assert!(!net.var_store().variables()["head.weight"].equal(&before));
    }

    #[test]
    fn examples_that_do_not_fit_are_refused() {
        let _serial = serial();
        let net = lenet(3);
        let bad = Examples::classification(
            Tensor::zeros([2, 1, 32, 32], tch::kind::FLOAT_CPU),
            Tensor::from_slice(&[0i64, 4]),
        );
        let err = train(&net, &bad.unwrap(), &quick()).unwrap_err().to_string();
        assert!(err.contains("labels span 0..=4 but the model has 4 classes"), "{err}");
        let err = Examples::segmentation(
            Tensor::zeros([2, 1, 8, 8], tch::kind::FLOAT_CPU),
            Tensor::zeros([2, 8], tch::kind::INT64_CPU),
        )
        .unwrap_err();
        assert!(err.to_string().contains("[2, 8, 8]"), "{err}");
        let err = train(&net, &quadrants(4, 1), &TrainConfig { lr: -1.0, ..quick() }).unwrap_err().to_string();
        assert!(err.contains("lr -1 must be positive"), "{err}");
    }

    #[test]
    fn a_small_resnet_learns_to_segment_concept_scenes() {
        let _serial = serial();
        let config = SceneConfig { size: 32, seed: crate::learned::seed(5), ..Default::default() };
        let scenes = ConceptScenes::generate(240, &config).unwrap();
        let train_set = Examples::from_dataset(&scenes.slice(0..200), Category::Object).unwrap();
        let test_set = Examples::from_dataset(&scenes.slice(200..240), Category::Object).unwrap();
        let classes = crate::data::Vocabulary::scenes().names(Category::Object).len() as i64;
        tch::manual_seed(crate::learned::torch_seed(11));
        let net_config =
            ResNetConfig { widths: vec![8, 16, 32], stem_width: 8, ..ResNetConfig::small(Task::Segmentation, classes) };
        let net = TappedNet::new(net_config, Device::Cpu).unwrap();
        let seed = Some(crate::learned::seed(1));
        let config = TrainConfig { epochs: 12, batch_size: 10, lr: 0.05, seed, ..Default::default() };
        let report = train(&net, &train_set, &config).unwrap();
        let score = evaluate(&net, &test_set, 40).unwrap();
        // Chance: always predicting the most frequent class of the test pixels.
        let counts = test_set.targets().flatten(0, -1).bincount::<Tensor>(None, classes);
        let majority = counts.max().double_value(&[]) / counts.sum(Kind::Double).double_value(&[]);
        let majority_miou = majority / (counts.gt(0).sum(Kind::Int64).int64_value(&[]) as f64);
        eprintln!("segmentation: {report}; test {score}; majority accuracy {majority:.3}, its mIoU {majority_miou:.3}");
        let losses = &report.epoch_losses;
        crate::learned::at_most("scenes resnet: last epoch loss / first", losses.last().unwrap() / losses[0], 0.5);
        crate::learned::at_least("scenes resnet: pixel accuracy - majority", score.accuracy - majority, 0.4);
        let miou = score.miou.unwrap();
        crate::learned::at_least("scenes resnet: test mIoU", miou, 0.25);
        crate::learned::at_least("scenes resnet: mIoU / majority's", miou / majority_miou, 10.0);
    }
}
