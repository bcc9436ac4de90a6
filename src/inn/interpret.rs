//! The experiments of the invariances paper (sec. 4) on a trained t: what a layer keeps and
//! discards, shown as samples for several layers with the amount of invariance per layer
//! (fig. 3), and what an FGSM attack changes in each layer's representation (fig. 5).
//!
//! A [`LayerInn`] bundles a t with the frozen model Φ and autoencoder E/D it was trained
//! for, so that a notebook variable holds everything needed to sample it.

use tch::{Device, Kind, Tensor};

use super::{cinn, Autoencoder, Cinn, CinnConfig, CinnReport, InnError, Samples};
use crate::display::{Output, Render};
use crate::models::{LeNet, ModelError, ScriptModel, Stage, Tapped, TappedNet, TrainConfig, VisionNet};
use crate::viz::{BarChart, Grid};

/// A model whose weights can be copied into an independent frozen twin, so that an INN
/// can keep the Φ it interprets.
pub trait Frozen: Tapped + Sized {
    fn frozen_copy(&self) -> Result<Self, ModelError>;
}

impl Frozen for LeNet {
    fn frozen_copy(&self) -> Result<Self, ModelError> {
        self.try_clone()
    }
}

impl Frozen for TappedNet {
    fn frozen_copy(&self) -> Result<Self, ModelError> {
        self.try_clone()
    }
}

impl Frozen for VisionNet {
    fn frozen_copy(&self) -> Result<Self, ModelError> {
        self.try_clone()
    }
}

impl Frozen for ScriptModel {
    fn frozen_copy(&self) -> Result<Self, ModelError> {
        self.try_clone()
    }
}

/// A conditional INN t for one layer, with the model and autoencoder it interprets.
#[derive(Debug)]
pub struct LayerInn<M> {
    pub model: M,
    pub ae: Autoencoder,
    pub cinn: Cinn,
    pub report: CinnReport,
}

impl<M: Frozen> LayerInn<M> {
    /// Trains t for `config.stage` of a frozen copy of `model` on `images`, reporting the NLL
    /// of `held_out`.
    pub fn train(
        model: &M,
        ae: &Autoencoder,
        images: &Tensor,
        held_out: &Tensor,
        config: CinnConfig,
        train: &TrainConfig,
    ) -> Result<LayerInn<M>, InnError> {
        let (model, ae) = (model.frozen_copy()?, ae.try_clone()?);
        let (cinn, report) = cinn::train(&model, &ae, images, held_out, config, train)?;
        Ok(LayerInn { model, ae, cinn, report })
    }

    pub fn stage(&self) -> &Stage {
        self.cinn.stage()
    }

    /// `n` decoded samples for each of `images` (eq. 2).
    pub fn samples(&self, images: &Tensor, n: usize, seed: u64) -> Result<Samples, InnError> {
        Samples::draw(&self.cinn, &self.model, &self.ae, images, n, seed)
    }

    /// The invariances v = t(E(x)|Φ(x)) of `images` (posterior means of E).
    pub fn invariances(&self, images: &Tensor) -> Result<Tensor, InnError> {
        let zbar = tch::no_grad(|| self.ae.encode(images))?.mean.to_device(self.cinn.device());
        let z = self.cinn.condition(&self.model, images)?;
        Ok(tch::no_grad(|| self.cinn.forward(&zbar, &z))?.0)
    }

    /// D(t⁻¹(v|Φ(x))): the images `v` describes under the representation of `images`.
    pub fn decode(&self, v: &Tensor, images: &Tensor) -> Result<Tensor, InnError> {
        let z = self.cinn.condition(&self.model, images)?;
        tch::no_grad(|| self.ae.decode(&self.cinn.inverse(v, &z)?))
    }

    /// The model's class for each image.
    pub fn predict(&self, images: &Tensor) -> Result<Vec<i64>, InnError> {
        predict(&self.model, images)
    }
}

impl<M> Render for LayerInn<M> {
    fn render(&self) -> Output {
        self.report.render()
    }
}

/// The class `model` gives each of `images`.
pub(super) fn predict(model: &impl Tapped, images: &Tensor) -> Result<Vec<i64>, InnError> {
    let logits = tch::no_grad(|| model.forward_taps(&images.to_device(model.device()), &[], false))?.0;
    Ok(Vec::<i64>::try_from(logits.argmax(1, false).to_device(Device::Cpu)).expect("int64 classes"))
}

/// Of each sample, whether the model puts it in the class it gives its conditioning image:
/// the share that agrees.
fn class_agreement(model: &impl Tapped, samples: &Samples) -> Result<f64, InnError> {
    let size = samples.images.size();
    let wanted = predict(model, &samples.conditions)?;
    let got = predict(model, &samples.images.view([-1, size[2], size[3], size[4]]))?;
    let per = size[1] as usize;
    let agree = got.iter().enumerate().filter(|(i, c)| **c == wanted[i / per]).count();
    Ok(agree as f64 / got.len().max(1) as f64)
}

/// Per layer: samples for the same images, how much they vary, and how often the model
/// agrees with itself on them (fig. 3).
#[derive(Debug)]
pub struct Invariances {
    pub stages: Vec<Stage>,
    pub samples: Vec<Samples>,
    /// Mean per-pixel variance of the samples of one image, per layer (fig. 3 right).
    pub variance: Vec<f64>,
    /// Share of z̄'s variance that v explains: the part the layer leaves open (sec. B.2).
    pub invariance: Vec<f64>,
    /// Share of samples the model puts in the class of their conditioning image.
    pub agreement: Vec<f64>,
}

impl Invariances {
    /// Draws `n` samples for each of `images` from every layer's t (seeds as
    /// [`Samples::draw`]).
    pub fn measure<M: Frozen>(
        layers: &[&LayerInn<M>],
        images: &Tensor,
        n: usize,
        seed: u64,
    ) -> Result<Invariances, InnError> {
        if layers.is_empty() || n < 2 {
            return Err(InnError::BadInput("measuring invariances needs one layer or more and n >= 2 samples".into()));
        }
        let mut out = Invariances {
            stages: Vec::new(),
            samples: Vec::new(),
            variance: Vec::new(),
            invariance: Vec::new(),
            agreement: Vec::new(),
        };
        for layer in layers {
            let samples = layer.samples(images, n, seed)?;
            out.variance.push(samples.variance().mean(Kind::Float).double_value(&[]));
            out.invariance.push(samples.explained_by_v());
            out.agreement.push(class_agreement(&layer.model, &samples)?);
            out.stages.push(layer.stage().clone());
            out.samples.push(samples);
        }
        Ok(out)
    }

    /// One line per layer with its three measures.
    pub fn render_text(&self) -> String {
        let rows: Vec<String> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{s}: sample variance {:.4}, z̄ variance explained by v {:.1}%, class kept {:.1}%",
                    self.variance[i],
                    100.0 * self.invariance[i],
                    100.0 * self.agreement[i]
                )
            })
            .collect();
        rows.join("\n")
    }
}

impl Render for Invariances {
    fn render(&self) -> Output {
        let names: Vec<String> = self.stages.iter().map(|s| s.to_string()).collect();
        let mut figures: Vec<(String, Vec<u8>)> = self
            .samples
            .iter()
            .map(|s| {
                let k = s.images.size()[1] as usize;
                (format!("`{}`: each row an image, then {k} samples", s.stage), samples_grid(s).png())
            })
            .collect();
        let chart = BarChart::new("invariance per layer")
            .y_label("share")
            .categories(names.iter().cloned())
            .group("variance of the code left open (explained by v)", self.invariance.iter().copied())
            .group("samples that keep the class", self.agreement.iter().copied());
        figures.push(("what each layer leaves open, and whether its samples keep the class".into(), chart.png()));
        Output::figures(&figures, self.render_text())
    }
}

/// A row per conditioning image: the image, then its samples.
pub(crate) fn samples_grid(samples: &Samples) -> Grid {
    let size = samples.images.size();
    let rows: Vec<Tensor> = (0..size[0])
        .map(|i| Tensor::cat(&[samples.conditions.get(i).unsqueeze(0), samples.images.get(i)], 0))
        .collect();
    Grid::new(&Tensor::cat(&rows, 0)).columns(size[1] as usize + 1).scale(2)
}

/// The fast gradient sign attack (Goodfellow et al. 2015), as the paper's sec. 4.3 uses it:
/// x* = clip(x + ε·sign(∇ₓ CE(f(x), y)), 0, 1), one step away from the true class `labels`.
pub fn fgsm(model: &impl Tapped, images: &Tensor, labels: &Tensor, eps: f64) -> Result<Tensor, InnError> {
    if !(eps > 0.0 && eps <= 1.0) {
        return Err(InnError::BadInput(format!("the attack's eps must lie in (0, 1]; got {eps}")));
    }
    let x = images.to_device(model.device()).detach().set_requires_grad(true);
    let logits = model.forward_taps(&x, &[], false)?.0;
    let loss = logits.cross_entropy_for_logits(&labels.to_device(model.device()));
    let grad = Tensor::run_backward(&[loss], &[&x], false, false).remove(0);
    Ok((x.detach() + grad.sign() * eps).clamp(0.0, 1.0))
}

/// An FGSM attack seen through each layer (fig. 5): the attacked representation z* = Φ(x*)
/// decoded with the original image's invariances v, D(t⁻¹(v|z*)).
#[derive(Debug)]
pub struct AttackDecoding {
    pub eps: f64,
    pub stages: Vec<Stage>,
    pub images: Tensor,
    pub attacked: Tensor,
    /// The model's class of the images and of the attacked images.
    pub before: Vec<i64>,
    pub after: Vec<i64>,
    /// Per layer `[N, C, S, S]`: the attacked representation with the original v.
    pub decoded: Vec<Tensor>,
    /// Per layer: the model's class of each decoded image.
    pub decoded_class: Vec<Vec<i64>>,
}

impl AttackDecoding {
    /// Attacks `images` (true classes `labels`) on the model of `layers` (all must interpret
    /// the same model) and decodes the attack at every layer.
    pub fn new<M: Frozen>(
        layers: &[&LayerInn<M>],
        images: &Tensor,
        labels: &Tensor,
        eps: f64,
    ) -> Result<Self, InnError> {
        let Some(first) = layers.first() else {
            return Err(InnError::BadInput("decoding an attack needs one layer or more".into()));
        };
        let images = images.to_device(first.model.device());
        let attacked = fgsm(&first.model, &images, labels, eps)?;
        let mut decoded = Vec::new();
        let mut decoded_class = Vec::new();
        for layer in layers {
            let v = layer.invariances(&images)?;
            let x = layer.decode(&v, &attacked)?;
            decoded_class.push(predict(&first.model, &x)?);
            decoded.push(x.to_device(Device::Cpu));
        }
        Ok(AttackDecoding {
            eps,
            stages: layers.iter().map(|l| l.stage().clone()).collect(),
            before: predict(&first.model, &images)?,
            after: predict(&first.model, &attacked)?,
            images: images.to_device(Device::Cpu),
            attacked: attacked.to_device(Device::Cpu),
            decoded,
            decoded_class,
        })
    }

    /// Share of attacks that changed the model's class.
    pub fn success(&self) -> f64 {
        let flipped = self.before.iter().zip(&self.after).filter(|(b, a)| b != a).count();
        flipped as f64 / self.before.len().max(1) as f64
    }

    /// Per layer: share of decoded images the model puts in the attacked class, among the
    /// successful attacks (how far the attack has carried into what the layer encodes).
    pub fn carried(&self) -> Vec<f64> {
        let flipped: Vec<usize> = (0..self.before.len()).filter(|&i| self.before[i] != self.after[i]).collect();
        self.decoded_class
            .iter()
            .map(|classes| {
                let hits = flipped.iter().filter(|&&i| classes[i] == self.after[i]).count();
                hits as f64 / flipped.len().max(1) as f64
            })
            .collect()
    }
}

impl Render for AttackDecoding {
    /// Rows: the images, the attacked images, then each layer's decoding.
    fn render(&self) -> Output {
        let n = self.images.size()[0];
        let mut rows = vec![self.images.shallow_clone(), self.attacked.shallow_clone()];
        rows.extend(self.decoded.iter().map(|d| d.shallow_clone()));
        let grid = Grid::new(&Tensor::cat(&rows, 0)).columns(n as usize).scale(2);
        let carried = self.carried();
        let mut text = vec![format!(
            "FGSM, eps {}: the class changed for {:.0}% of {n} images; rows: images, attacked, then decoded with the \
             original invariances at {}",
            self.eps,
            100.0 * self.success(),
            self.stages.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        )];
        for (s, c) in self.stages.iter().zip(&carried) {
            text.push(format!("{s}: {:.0}% of the decoded attacks show the attacked class", 100.0 * c));
        }
        let chart = BarChart::new("the attack in each layer")
            .y_label("decoded images in the attacked class")
            .categories(self.stages.iter().map(|s| s.to_string()))
            .group("share of successful attacks", carried);
        Output::figures(
            &[
                ("rows: images, attacked images, then each layer's decoding with the original v".into(), grid.png()),
                ("how far the attack carries into each layer".into(), chart.png()),
            ],
            text.join("\n"),
        )
    }
}

/// What [`CinnConfig`] and [`TrainConfig`] the experiments use for one layer when nothing
/// else is asked: 8 blocks of 128 hidden units, Adam at 2e-3, batch 64, `steps` steps over
/// `n` training images.
pub fn default_configs(stage: Stage, steps: usize, n: usize, seed: u64) -> (CinnConfig, TrainConfig) {
    let config = CinnConfig { blocks: 8, hidden: 128, seed, ..CinnConfig::new(stage.clone()) };
    let train = TrainConfig {
        batch_size: 64,
        lr: 2e-3,
        weight_decay: 0.0,
        optimizer: crate::models::Optim::Adam,
        poly_power: 1.0,
        seed: Some(seed),
        label: format!("cINN on {stage}"),
        ..Default::default()
    }
    .for_steps(steps, n);
    (config, train)
}

/// Splits `images` into the part t trains on and the last eighth it holds out for its NLL.
pub fn split_held_out(images: &Tensor) -> Result<(Tensor, Tensor), InnError> {
    let n = images.size()[0];
    if n < 16 {
        return Err(InnError::BadInput(format!(
            "training a t needs 16 images or more (an eighth is held out); got {n}"
        )));
    }
    let held = n / 8;
    Ok((images.narrow(0, 0, n - held), images.narrow(0, n - held, held)))
}

/// The first `count` images (all when there are fewer).
pub fn first(images: &Tensor, count: usize) -> Tensor {
    images.narrow(0, 0, (count as i64).min(images.size()[0]))
}

/// t for the stage called `layer` of `model`, trained for `steps` steps of the default
/// configs on `images` but their last eighth, which measures the NLL: what `:cinn` runs.
pub fn train_layer<M: Frozen>(
    model: &M,
    ae: &Autoencoder,
    layer: &str,
    images: &Tensor,
    steps: usize,
    seed: u64,
) -> Result<LayerInn<M>, InnError> {
    if steps == 0 {
        return Err(InnError::BadInput("train t for at least one step".into()));
    }
    let stage = model.stage(layer)?;
    let (train_images, held_out) = split_held_out(images)?;
    let (config, train) = default_configs(stage, steps, train_images.size()[0] as usize, seed);
    LayerInn::train(model, ae, &train_images, &held_out, config, &train)
}
