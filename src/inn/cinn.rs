//! The conditional INN t of the invariances paper (sec. 3.1, eq. 1-5): for a representation
//! z = Φ(x) of a chosen layer of a fixed model and the autoencoder code z̄ = E(x), t maps z̄
//! to v = t(z̄|z), the invariances of Φ: what z̄ knows about x and z does not. Trained by
//! maximum likelihood under v ~ N(0, I) with E and Φ frozen (eq. 3-5); sampled by drawing v
//! and inverting, z̄ = t⁻¹(v|z) (eq. 2), decoded to x̄ = D(z̄). What the layer keeps stays
//! constant over the samples of one z; what it discards varies.
//!
//! The layout follows the reference conditional transformer: a [`Flow`] of
//! `ActNorm → Coupling → Shuffle` blocks over z̄, the condition passed through an
//! [`Embedder`] (dense for vectors, convolutional for feature maps) whose code every
//! coupling receives.

use std::f64::consts::PI;
use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use super::{gaussian, model_error, Autoencoder, Embedder, EmbedderKind, Flow, FlowConfig, InnError};
use crate::display::{Output, Render};
use crate::models::{optimize, weights, Stage, Tapped, TrainConfig, TrainReport};
use crate::viz::LinePlot;

/// How to build a [`Cinn`].
#[derive(Debug, Clone, PartialEq)]
pub struct CinnConfig {
    /// The layer whose representation conditions t.
    pub stage: Stage,
    /// `None` picks a conv embedder for feature maps and a dense one for vectors.
    pub embedder: Option<EmbedderKind>,
    /// Features of the condition embedding (the reference: as many as z̄ has).
    pub embedding: i64,
    /// Channels of the conv embedder's first layer.
    pub embedder_width: i64,
    /// Blocks of the flow (the reference's ColorMNIST INNs: 12).
    pub blocks: usize,
    /// Hidden units of the coupling nets.
    pub hidden: i64,
    /// Extra hidden layers of the coupling nets (the reference: 2).
    pub depth: usize,
    /// Seeds the initial weights and the shuffles.
    pub seed: u64,
}

impl CinnConfig {
    /// A CPU-sized t for `stage`: 12 blocks as the reference, narrower nets.
    pub fn new(stage: Stage) -> CinnConfig {
        CinnConfig {
            stage,
            embedder: None,
            embedding: 64,
            embedder_width: 32,
            blocks: 12,
            hidden: 256,
            depth: 2,
            seed: 0,
        }
    }
}

/// The conditional INN t(·|z) for one layer of one model. Owns its weights.
#[derive(Debug)]
pub struct Cinn {
    config: CinnConfig,
    /// One example's representation shape at the stage, e.g. `[10]` or `[16, 5, 5]`.
    condition_shape: Vec<i64>,
    vs: nn::VarStore,
    embedder: Embedder,
    flow: Flow,
}

impl Cinn {
    /// A fresh t for `model`'s `config.stage` over `ae`'s latent, on `ae`'s device. Seeds
    /// libtorch with `config.seed` to draw its weights.
    pub fn new(model: &impl Tapped, ae: &Autoencoder, config: CinnConfig) -> Result<Cinn, InnError> {
        let size = ae.config().size;
        let shapes = model.output_shapes((size, size))?;
        let Some((_, shape)) = shapes.iter().find(|(s, _)| *s == config.stage) else {
            model.stage_channels(&config.stage)?;
            unreachable!("a stage with channels has an output shape");
        };
        let condition_shape = shape[1..].to_vec();
        let kind = config.embedder.unwrap_or(if condition_shape.len() == 3 {
            EmbedderKind::Conv
        } else {
            EmbedderKind::Dense
        });
        tch::manual_seed(config.seed as i64);
        let vs = nn::VarStore::new(ae.device());
        let root = vs.root();
        let embedder =
            Embedder::new(&(&root / "embedder"), &condition_shape, kind, config.embedding, config.embedder_width)?;
        let flow_config = FlowConfig {
            dim: ae.latent(),
            cond_dim: config.embedding,
            blocks: config.blocks,
            hidden: config.hidden,
            depth: config.depth,
            seed: config.seed,
        };
        let flow = Flow::new(&(&root / "flow"), flow_config)?;
        Ok(Cinn { config, condition_shape, vs, embedder, flow })
    }

    pub fn config(&self) -> &CinnConfig {
        &self.config
    }

    pub fn stage(&self) -> &Stage {
        &self.config.stage
    }

    pub fn embedder_kind(&self) -> EmbedderKind {
        self.embedder.kind()
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// z = Φ(x): `model`'s representation of `images` at the stage (evaluation mode, no
    /// gradient), on t's device.
    pub fn condition(&self, model: &impl Tapped, images: &Tensor) -> Result<Tensor, InnError> {
        let stage = self.config.stage.clone();
        let x = images.to_device(model.device());
        let (_, mut taps) = tch::no_grad(|| model.forward_taps(&x, std::slice::from_ref(&stage), false))?;
        let z = taps.remove(&stage).expect("forward_taps returns the asked stage");
        Ok(z.to_device(self.device()))
    }

    /// v = t(z̄|z) and log|det ∂v/∂z̄| per example.
    pub fn forward(&self, zbar: &Tensor, z: &Tensor) -> Result<(Tensor, Tensor), InnError> {
        let code = self.embedder.forward(z)?;
        self.flow.forward(zbar, Some(&code))
    }

    /// z̄ = t⁻¹(v|z), exact.
    pub fn inverse(&self, v: &Tensor, z: &Tensor) -> Result<Tensor, InnError> {
        let code = self.embedder.forward(z)?;
        self.flow.inverse(v, Some(&code))
    }

    /// −log p(z̄|z) per example in nats per dimension of z̄ (eq. 3, with the Gaussian's
    /// normalising constant): `(½|v|² + ½·D·log 2π − log|det ∇t|) / D`.
    pub fn nll(&self, zbar: &Tensor, z: &Tensor) -> Result<Tensor, InnError> {
        let (v, logdet) = self.forward(zbar, z)?;
        let d = v.size()[1] as f64;
        let energy = v.square().sum_dim_intlist(1, false, Kind::Float) * 0.5;
        Ok((energy + 0.5 * d * (2.0 * PI).ln() - logdet) / d)
    }

    /// One sample z̄ = t⁻¹(v|z) per row of `z`, v ~ N(0, I) drawn with `seed` (eq. 2).
    pub fn sample(&self, z: &Tensor, seed: u64) -> Result<Tensor, InnError> {
        let v = gaussian(&[z.size()[0], self.flow.config().dim], seed, self.device());
        tch::no_grad(|| self.inverse(&v, z))
    }

    /// Saves the weights (`.safetensors` or `.ot`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), InnError> {
        Ok(weights::save(&self.vs, path)?)
    }

    /// Loads weights saved for a t of this config.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<(), InnError> {
        Ok(weights::load(&self.vs, path)?)
    }

    /// Features of one example's condition, e.g. `[16, 5, 5]`.
    pub fn condition_shape(&self) -> &[i64] {
        &self.condition_shape
    }
}

/// The frozen inputs of t's training, computed once: the posterior of every image under E
/// and its representation under Φ.
struct Encoded {
    mean: Tensor,
    logvar: Tensor,
    z: Tensor,
}

impl Encoded {
    fn new(cinn: &Cinn, model: &impl Tapped, ae: &Autoencoder, images: &Tensor) -> Result<Encoded, InnError> {
        let n = images.size()[0];
        let (mut means, mut logvars, mut zs) = (Vec::new(), Vec::new(), Vec::new());
        for start in (0..n).step_by(500) {
            let x = images.narrow(0, start, (n - start).min(500));
            let posterior = tch::no_grad(|| ae.encode(&x))?;
            means.push(posterior.mean.to_device(cinn.device()));
            logvars.push(posterior.logvar.to_device(cinn.device()));
            zs.push(cinn.condition(model, &x)?);
        }
        Ok(Encoded { mean: Tensor::cat(&means, 0), logvar: Tensor::cat(&logvars, 0), z: Tensor::cat(&zs, 0) })
    }

    /// z̄ sampled from the posterior of examples `index` (as the reference trains), and their z.
    fn batch(&self, index: &Tensor, seed: u64) -> (Tensor, Tensor) {
        let mean = self.mean.index_select(0, index);
        let eps = gaussian(&mean.size(), seed, mean.device());
        let zbar = mean + (self.logvar.index_select(0, index) * 0.5).exp() * eps;
        (zbar, self.z.index_select(0, index))
    }

    /// Mean NLL per dimension over all examples, posterior noise from `seed`.
    fn nll(&self, cinn: &Cinn, seed: u64) -> Result<f64, InnError> {
        let n = self.mean.size()[0];
        let index = Tensor::arange(n, (Kind::Int64, self.mean.device()));
        let (zbar, z) = self.batch(&index, seed);
        Ok(tch::no_grad(|| cinn.nll(&zbar, &z))?.mean(Kind::Float).double_value(&[]))
    }
}

/// Trains a fresh t for `model`'s `config.stage` on `images` (E = `ae` and Φ = `model`
/// frozen) with the shared loop; ActNorms initialise on the first batch. The negative
/// log-likelihood of `held_out` images is measured after that initialisation and after
/// training.
pub fn train(
    model: &impl Tapped,
    ae: &Autoencoder,
    images: &Tensor,
    held_out: &Tensor,
    config: CinnConfig,
    train: &TrainConfig,
) -> Result<(Cinn, CinnReport), InnError> {
    let cinn = Cinn::new(model, ae, config)?;
    let data = Encoded::new(&cinn, model, ae, images)?;
    let test = Encoded::new(&cinn, model, ae, held_out)?;
    let seed = train.seed.unwrap_or_else(crate::seed::current);
    let n = images.size()[0];
    let first = Tensor::arange(n.min(train.batch_size as i64), (Kind::Int64, cinn.device()));
    let (zbar, z) = data.batch(&first, seed);
    let _ = tch::no_grad(|| cinn.forward(&zbar, &z))?;
    let nll_before = test.nll(&cinn, seed)?;
    let report = optimize(
        &cinn.vs,
        n as usize,
        train,
        |batch, step| {
            let index = Tensor::from_slice(batch).to_device(cinn.device());
            let (zbar, z) = data.batch(&index, seed.wrapping_mul(1_000_003).wrapping_add(step as u64 + 1));
            Ok(cinn.nll(&zbar, &z).map_err(model_error)?.mean(Kind::Float))
        },
        |_| {},
    )?;
    let nll_after = test.nll(&cinn, seed)?;
    let report = CinnReport { stage: cinn.stage().clone(), train: report, nll_before, nll_after };
    Ok((cinn, report))
}

/// What training t did.
#[derive(Debug, Clone)]
pub struct CinnReport {
    pub stage: Stage,
    pub train: TrainReport,
    /// Held-out NLL (nats per dimension of z̄) after ActNorm initialisation, before any step.
    pub nll_before: f64,
    /// Held-out NLL after training.
    pub nll_after: f64,
}

impl Render for CinnReport {
    fn render(&self) -> Output {
        let text = format!(
            "cINN on `{}`: {}; held-out NLL {:.3} -> {:.3} nats per dimension",
            self.stage, self.train, self.nll_before, self.nll_after
        );
        LinePlot::new(format!("cINN on {}", self.stage))
            .x_label("step")
            .y_label("NLL (nats / dim)")
            .series_y("training loss", self.train.step_losses.iter().copied())
            .render()
            .and(Output::text(text))
    }
}

/// Decoded samples x̄ = D(t⁻¹(v|Φ(x))) for some conditioning images x.
#[derive(Debug)]
pub struct Samples {
    pub stage: Stage,
    /// The conditioning images `[N, C, H, W]`.
    pub conditions: Tensor,
    /// `[N, n, C, H, W]`: `n` samples per conditioning image.
    pub images: Tensor,
    /// `[N, n, D]`: the codes z̄ = t⁻¹(v|z) the images decode.
    pub codes: Tensor,
}

impl Samples {
    /// Draws `n` samples for each of `images` (noise of image `i` from `seed + i`).
    pub fn draw(
        cinn: &Cinn,
        model: &impl Tapped,
        ae: &Autoencoder,
        images: &Tensor,
        n: usize,
        seed: u64,
    ) -> Result<Samples, InnError> {
        if n == 0 {
            return Err(InnError::BadInput("ask for at least one sample per image".to_owned()));
        }
        let z = cinn.condition(model, images)?;
        let rows = (0..z.size()[0])
            .map(|i| {
                let zi = z
                    .get(i)
                    .unsqueeze(0)
                    .expand([n as i64].iter().chain(&z.size()[1..]).copied().collect::<Vec<_>>(), false);
                let zbar = cinn.sample(&zi.contiguous(), seed.wrapping_add(i as u64))?;
                Ok((tch::no_grad(|| ae.decode(&zbar))?, zbar))
            })
            .collect::<Result<Vec<(Tensor, Tensor)>, InnError>>()?;
        let (images_out, codes): (Vec<Tensor>, Vec<Tensor>) = rows.into_iter().unzip();
        Ok(Samples {
            stage: cinn.stage().clone(),
            conditions: images.to_device(Device::Cpu),
            images: Tensor::stack(&images_out, 0).to_device(Device::Cpu),
            codes: Tensor::stack(&codes, 0).to_device(Device::Cpu),
        })
    }

    /// The share of the codes' total variance that lies within the samples of one image,
    /// E_z[Var_v(z̄)] / Var(z̄) summed over dimensions: what v explains and the layer leaves
    /// open (the paper's "variance explained by v", sec. B.2).
    pub fn explained_by_v(&self) -> f64 {
        let within = self.codes.var_dim(1, false, false).mean_dim(0, false, Kind::Double).sum(Kind::Double);
        let d = self.codes.size()[2];
        let total = self.codes.view([-1, d]).var_dim(0, false, false).sum(Kind::Double);
        within.double_value(&[]) / total.double_value(&[]).max(1e-12)
    }

    /// Per conditioning image: the variance of its samples over the samples, averaged over
    /// pixels and channels, `[N]` (the paper's fig. 3 right, per image).
    pub fn variance(&self) -> Tensor {
        self.images.var_dim(1, false, false).mean_dim([1, 2, 3].as_slice(), false, Kind::Float)
    }
}

impl Render for Samples {
    /// A row per conditioning image: the image, then its samples.
    fn render(&self) -> Output {
        let size = self.images.size();
        super::interpret::samples_grid(self).render().and(Output::text(format!(
            "{} samples for each of {} images, conditioned on `{}` (first column: the image)",
            size[1], size[0], self.stage
        )))
    }
}
