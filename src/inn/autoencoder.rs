//! The autoencoder E/D of the invariances paper (sec. 3.1): z̄ = E(x) must hold everything
//! about x, including what a model Φ discards, so that the conditional INN can recover the
//! invariances from it and D can show them as images.
//!
//! The architecture follows the reference autoencoder for 32×32 ColorMNIST (strided 4×4
//! convolutions with ActNorm and leaky ReLU (0.2), a dense layer to the mean and
//! log-variance of a Gaussian z̄ of 64 features, a mirrored decoder), smaller so that it
//! trains on a CPU in minutes: three down-sampling steps instead of four, narrower layers,
//! and a sigmoid output since our images lie in [0, 1]. The loss keeps the reference's form
//! without its optional perceptual and adversarial terms: a reconstruction term under a
//! learned global log-scale λ (`(x − x̄)² / e^λ + λ` per pixel, twice a Gaussian NLL), plus
//! the KL divergence of the posterior from N(0, I).
//!
//! Two choices differ from the reference, both measured on ColorMNIST (8000 images, 2000
//! steps): its L1 term with KL weight 1 learns the background colour and blurs the digit
//! away (the classifier recognises 10% of the reconstructions, chance), because the median
//! of a pixel that is mostly background is the background; a squared error with KL weight
//! 0.01 keeps the strokes (70%).
//!
//! Like the zoo models, an autoencoder is trained once per data set: [`load`] trains it on
//! first use and keeps it in `<cache>/zoo/<name>-<fingerprint>/`.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::{gaussian, leaky, ActNorm, InnError};
use crate::display::{Output, Render};
use crate::models::zoo::{self, DataRecipe, ZooError};
use crate::models::{optimize, weights, Optim, TrainConfig, TrainReport};
use crate::viz::LinePlot;

/// The shape of an [`Autoencoder`] and the weight of its KL term.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoencoderConfig {
    pub in_channels: i64,
    /// Side of the (square) images; divisible by `2^widths.len()`.
    pub size: i64,
    /// Channels after each down-sampling convolution of the encoder (the decoder mirrors
    /// them).
    pub widths: Vec<i64>,
    /// Features of z̄ (the paper's ColorMNIST autoencoder: 64).
    pub latent: i64,
    /// Weight of the KL term (the reference: 1; ours 0.01, see the module's notes).
    pub kl_weight: f64,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        AutoencoderConfig { in_channels: 3, size: 32, widths: vec![32, 64, 128], latent: 64, kl_weight: 0.01 }
    }
}

impl AutoencoderConfig {
    pub fn validate(&self) -> Result<(), InnError> {
        let downs = self.widths.len() as u32;
        let ok = self.in_channels >= 1
            && self.latent >= 1
            && !self.widths.is_empty()
            && self.widths.iter().all(|w| *w >= 1)
            && self.size >= 2i64.pow(downs)
            && self.size % 2i64.pow(downs) == 0
            && self.kl_weight >= 0.0;
        if !ok {
            return Err(InnError::InvalidConfig(format!(
                "an autoencoder needs positive channels, widths and latent size, a side divisible by \
                 2^(number of widths) and a KL weight >= 0; got {self:?}"
            )));
        }
        Ok(())
    }

    /// Side of the feature map before the dense layer.
    fn bottom_side(&self) -> i64 {
        self.size >> self.widths.len()
    }
}

/// The Gaussian posterior q(z̄|x) the encoder outputs.
#[derive(Debug)]
pub struct Posterior {
    /// `[N, latent]`.
    pub mean: Tensor,
    /// `[N, latent]`, clamped to [−30, 20] as in the reference.
    pub logvar: Tensor,
}

impl Posterior {
    /// One draw z̄ = mean + σ·ε per example, ε from `seed`.
    pub fn sample(&self, seed: u64) -> Tensor {
        let eps = gaussian(&self.mean.size(), seed, self.mean.device());
        &self.mean + (&self.logvar * 0.5).exp() * eps
    }

    /// KL(q(z̄|x) ‖ N(0, I)) per example, `[N]`.
    pub fn kl(&self) -> Tensor {
        let terms = self.mean.square() + self.logvar.exp() - 1.0 - &self.logvar;
        terms.sum_dim_intlist(1, false, Kind::Float) * 0.5
    }
}

/// A strided (transposed) convolution, ActNorm, leaky ReLU.
#[derive(Debug)]
struct Stage {
    conv: Box<dyn Module>,
    norm: ActNorm,
}

impl Stage {
    fn forward(&self, x: &Tensor) -> Result<Tensor, InnError> {
        Ok(leaky(&self.norm.forward(&self.conv.forward(x))?.0, 0.2))
    }
}

/// The autoencoder: E (`encode`) and D (`decode`). Owns its weights.
#[derive(Debug)]
pub struct Autoencoder {
    config: AutoencoderConfig,
    vs: nn::VarStore,
    down: Vec<Stage>,
    to_latent: nn::Linear,
    from_latent: nn::Linear,
    up: Vec<Stage>,
    to_image: nn::ConvTranspose2D,
    /// λ, the learned log-scale of the reconstruction term.
    log_scale: Tensor,
}

impl Autoencoder {
    /// A fresh autoencoder (draws from libtorch's generator: seed it first).
    pub fn new(config: AutoencoderConfig, device: Device) -> Result<Autoencoder, InnError> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let conv = nn::ConvConfig { stride: 2, padding: 1, bias: false, ..Default::default() };
        let deconv = nn::ConvTransposeConfig { stride: 2, padding: 1, bias: false, ..Default::default() };
        let mut channels = config.in_channels;
        let mut down = Vec::new();
        for (i, &w) in config.widths.iter().enumerate() {
            let p = &root / format!("down{i}");
            down.push(Stage {
                conv: Box::new(nn::conv2d(&p / "conv", channels, w, 4, conv)),
                norm: ActNorm::new(&(&p / "norm"), w),
            });
            channels = w;
        }
        let bottom = channels * config.bottom_side() * config.bottom_side();
        let to_latent = nn::linear(&root / "to_latent", bottom, 2 * config.latent, Default::default());
        let from_latent = nn::linear(&root / "from_latent", config.latent, bottom, Default::default());
        let mut up = Vec::new();
        for (i, w) in config.widths.windows(2).enumerate().rev() {
            let p = &root / format!("up{i}");
            let conv = nn::conv_transpose2d(&p / "conv", w[1], w[0], 4, deconv);
            up.push(Stage { conv: Box::new(conv), norm: ActNorm::new(&(&p / "norm"), w[0]) });
        }
        let to_image = nn::conv_transpose2d(&root / "to_image", config.widths[0], config.in_channels, 4, deconv);
        let log_scale = root.zeros("log_scale", &[1]);
        Ok(Autoencoder { config, vs, down, to_latent, from_latent, up, to_image, log_scale })
    }

    /// An independent copy: same weights (ActNorm state included), its own `VarStore`.
    pub fn try_clone(&self) -> Result<Autoencoder, InnError> {
        let copy = Autoencoder::new(self.config.clone(), self.device())?;
        crate::models::copy_matching(&self.vs, &copy.vs);
        Ok(copy)
    }

    pub fn config(&self) -> &AutoencoderConfig {
        &self.config
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Features of z̄.
    pub fn latent(&self) -> i64 {
        self.config.latent
    }

    /// E: the posterior q(z̄|x) of images `[N, C, S, S]` in [0, 1].
    pub fn encode(&self, x: &Tensor) -> Result<Posterior, InnError> {
        let (c, s) = (self.config.in_channels, self.config.size);
        let size = x.size();
        if size.len() != 4 || size[1..] != [c, s, s] {
            return Err(InnError::BadInput(format!("the autoencoder takes images [N, {c}, {s}, {s}]; got {size:?}")));
        }
        let mut h = x.to_device(self.device());
        for stage in &self.down {
            h = stage.forward(&h)?;
        }
        let stats = h.flatten(1, -1).apply(&self.to_latent);
        let parts = stats.chunk(2, 1);
        Ok(Posterior { mean: parts[0].shallow_clone(), logvar: parts[1].clamp(-30.0, 20.0) })
    }

    /// D: images `[N, C, S, S]` in [0, 1] of codes z̄ `[N, latent]`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor, InnError> {
        super::check_flat(z, self.config.latent, "a latent code z̄")?;
        let side = self.config.bottom_side();
        let top = *self.config.widths.last().expect("validated: at least one width");
        let mut h = leaky(&z.to_device(self.device()).apply(&self.from_latent), 0.2).view([-1, top, side, side]);
        for stage in &self.up {
            h = stage.forward(&h)?;
        }
        Ok(h.apply(&self.to_image).sigmoid())
    }

    /// The training loss of a batch (mean per image) with its parts: the reconstruction
    /// of a posterior sample drawn with `seed`.
    pub fn loss(&self, x: &Tensor, seed: u64) -> Result<Losses, InnError> {
        let x = x.to_device(self.device());
        let posterior = self.encode(&x)?;
        let recon = self.decode(&posterior.sample(seed))?;
        let diff = &x - &recon;
        let nll = (diff.square() * (-&self.log_scale).exp() + &self.log_scale).sum_dim_intlist(
            [1, 2, 3].as_slice(),
            false,
            Kind::Float,
        );
        let kl = posterior.kl();
        let total = (nll + &kl * self.config.kl_weight).mean(Kind::Float);
        Ok(Losses {
            total,
            l1: diff.abs().mean(Kind::Float).double_value(&[]),
            kl: kl.mean(Kind::Float).double_value(&[]),
        })
    }

    /// Mean absolute error per pixel and channel of the posterior-mean reconstructions of
    /// `images`, and their mean KL, in evaluation batches of 200.
    pub fn score(&self, images: &Tensor) -> Result<AeScore, InnError> {
        let n = images.size()[0];
        let (mut l1, mut kl) = (0.0, 0.0);
        tch::no_grad(|| -> Result<(), InnError> {
            for start in (0..n).step_by(200) {
                let x = images.narrow(0, start, (n - start).min(200)).to_device(self.device());
                let posterior = self.encode(&x)?;
                let recon = self.decode(&posterior.mean)?;
                l1 += (&x - recon).abs().sum(Kind::Double).double_value(&[]);
                kl += posterior.kl().sum(Kind::Double).double_value(&[]);
            }
            Ok(())
        })?;
        let pixels = (n * self.config.in_channels * self.config.size * self.config.size) as f64;
        Ok(AeScore { l1: l1 / pixels, kl: kl / n as f64 })
    }

    /// Saves the weights (`.safetensors` or `.ot`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), InnError> {
        Ok(weights::save(&self.vs, path)?)
    }

    /// Loads weights saved for this architecture.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<(), InnError> {
        Ok(weights::load(&self.vs, path)?)
    }
}

/// One batch's loss and its parts.
#[derive(Debug)]
pub struct Losses {
    /// What is minimised: reconstruction NLL + weighted KL, mean per image.
    pub total: Tensor,
    /// Mean absolute error per pixel and channel.
    pub l1: f64,
    /// Mean KL per image (nats).
    pub kl: f64,
}

/// How well an autoencoder reconstructs held-out images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AeScore {
    /// Mean absolute error per pixel and channel (images in [0, 1]).
    pub l1: f64,
    /// Mean KL of the posterior from N(0, I), nats per image.
    pub kl: f64,
}

impl fmt::Display for AeScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L1 {:.4} per pixel, KL {:.1} nats per image", self.l1, self.kl)
    }
}

/// Trains `ae` on `images` (`[N, C, S, S]` in [0, 1]) with the shared loop (Adam, progress,
/// interrupts, NaN check); the posterior noise of step `k` is seeded by the config's seed
/// and `k`. Records the L1 error of every step.
pub fn train(ae: &Autoencoder, images: &Tensor, config: &TrainConfig) -> Result<AutoencoderReport, InnError> {
    let seed = config.seed.unwrap_or_else(crate::seed::current);
    let mut l1 = Vec::new();
    let report = optimize(
        &ae.vs,
        images.size()[0] as usize,
        config,
        |batch, step| {
            let index = Tensor::from_slice(batch).to_device(images.device());
            let losses = ae
                .loss(&images.index_select(0, &index), seed.wrapping_mul(1_000_003).wrapping_add(step as u64))
                .map_err(super::model_error)?;
            l1.push(losses.l1);
            Ok(losses.total)
        },
        |_| {},
    )?;
    Ok(AutoencoderReport { train: report, step_l1: l1 })
}

/// What a training run did, with the reconstruction error of every step.
#[derive(Debug, Clone)]
pub struct AutoencoderReport {
    pub train: TrainReport,
    /// Mean absolute error per pixel of every step's batch.
    pub step_l1: Vec<f64>,
}

impl Render for AutoencoderReport {
    fn render(&self) -> Output {
        LinePlot::new("autoencoder training")
            .x_label("step")
            .y_label("L1 per pixel")
            .series_y("reconstruction L1", self.step_l1.iter().copied())
            .render()
            .and(Output::text(format!("autoencoder: {}", self.train)))
    }
}

/// A cached autoencoder's recipe: everything that decides its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub config: AutoencoderConfig,
    pub data: DataRecipe,
    pub train: TrainConfig,
    /// Seeds libtorch before the autoencoder is built.
    pub init_seed: u64,
}

/// The autoencoders [`load`] knows, by name, with what they are for.
pub static NAMES: &[(&str, &str, fn() -> Recipe)] =
    &[("colormnist-ae", "ColorMNIST autoencoder, z̄ of 64 (invariances paper sec. 4)", colormnist_ae)];

/// The ColorMNIST images the zoo's `colormnist-lenet` learns from, 2000 steps of Adam at
/// 2e-3 decaying linearly (the reference trains far longer at a far lower rate on a GPU).
fn colormnist_ae() -> Recipe {
    Recipe {
        config: AutoencoderConfig::default(),
        data: DataRecipe::ColorMnist { train: 8000, test: 2000, size: 32, seed: 1000 },
        train: TrainConfig {
            epochs: 16,
            batch_size: 64,
            lr: 2e-3,
            weight_decay: 0.0,
            optimizer: Optim::Adam,
            poly_power: 1.0,
            seed: Some(0),
            label: "colormnist-ae".into(),
            max_steps: None,
        },
        init_seed: 0,
    }
}

/// A trained autoencoder's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub name: String,
    pub data: String,
    pub fingerprint: String,
    pub steps: usize,
    pub train_seconds: f64,
    pub trained_on: String,
    /// Posterior-mean reconstructions of the held-out images.
    pub test: AeScore,
}

impl Render for Card {
    fn render(&self) -> Output {
        let text = format!(
            "{}: trained on {} for {} steps in {:.0} s on {}; test: {}",
            self.name, self.data, self.steps, self.train_seconds, self.trained_on, self.test
        );
        Output::html(format!("<p>{text}</p>")).and(Output::text(text))
    }
}

const WEIGHTS: &str = "weights.safetensors";

/// The autoencoder called `name` (see [`NAMES`]) on `device`, trained first if this machine
/// has not trained it yet (an interrupt stops it and caches nothing), with its card.
pub fn load(name: &str, device: Device) -> Result<(Autoencoder, Card), InnError> {
    load_in(&zoo::root(), name, device)
}

fn load_in(root: &Path, name: &str, device: Device) -> Result<(Autoencoder, Card), InnError> {
    let Some((_, _, recipe)) = NAMES.iter().find(|(n, _, _)| *n == name) else {
        let names: Vec<&str> = NAMES.iter().map(|(n, _, _)| *n).collect();
        return Err(InnError::InvalidConfig(format!("no autoencoder `{name}`; there are: {}", names.join(", "))));
    };
    cached(root, name, &recipe(), device)
}

/// `recipe`'s autoencoder from `root/<name>-<fingerprint>`, trained there first if missing.
pub(crate) fn cached(
    root: &Path,
    name: &str,
    recipe: &Recipe,
    device: Device,
) -> Result<(Autoencoder, Card), InnError> {
    let dir = zoo::cached(root, &format!("{name}-{}", zoo::fingerprint(recipe)), |partial| {
        train_into(name, recipe, partial, device)
    })?;
    let ae = Autoencoder::new(recipe.config.clone(), device)?;
    ae.load_weights(dir.join(WEIGHTS))?;
    let path = dir.join(zoo::CARD);
    let text = std::fs::read_to_string(&path).map_err(|e| zoo::cache_error(&path, e))?;
    let card = serde_json::from_str(&text).map_err(|e| zoo::cache_error(&path, e))?;
    Ok((ae, card))
}

fn train_into(name: &str, recipe: &Recipe, dir: &Path, device: Device) -> Result<(), InnError> {
    let (train_set, test_set) = recipe.data.examples()?;
    println!(
        "glassbox: {name} trains on first use ({} steps on {}, {}); cached for later kernels",
        recipe.train.steps_for(train_set.len()),
        recipe.data.describe(),
        crate::device::describe(device)
    );
    tch::manual_seed(recipe.init_seed as i64);
    let started = Instant::now();
    let ae = Autoencoder::new(recipe.config.clone(), device)?;
    let report = train(&ae, train_set.images(), &recipe.train)?;
    if report.train.interrupted {
        return Err(ZooError::Interrupted(name.to_owned()).into());
    }
    ae.save(dir.join(WEIGHTS))?;
    let card = Card {
        name: name.to_owned(),
        data: recipe.data.describe(),
        fingerprint: zoo::fingerprint(recipe),
        steps: report.train.steps,
        train_seconds: started.elapsed().as_secs_f64(),
        trained_on: format!("{device:?}").to_lowercase(),
        test: ae.score(test_set.images())?,
    };
    let json = serde_json::to_string_pretty(&card).expect("cards serialize");
    let path = dir.join(zoo::CARD);
    std::fs::write(&path, json).map_err(|e| zoo::cache_error(&path, e))?;
    Ok(())
}
