//! The semantic INN e of the invariances paper (sec. 3.2, eq. 6), after Esser et al. 2020 as
//! the reference `iin` code implements it: an unconditional [`Flow`] that maps the
//! autoencoder's z̄ to factors (e_i)_i, a residual first and then one block of dimensions
//! per semantic concept, so that two images that share a concept share that concept's
//! factor.
//!
//! Concepts are given only by pairs of images that share them. Eq. 6's joint density
//! p(e(z̄ᵃ), e(z̄ᵇ)) is the reference's: every factor standard normal, and the shared
//! factor of the second image correlated with the first's, e_iᵇ ~ N(ρ·e_iᵃ, (1 − ρ²)·I)
//! with ρ = 0.975; the residual is never shared.
//!
//! Factor sizes are given, or estimated from the pairs as Esser et al. do: a concept's score
//! is the summed covariance of z̄ over its pairs relative to z̄'s total variance, the
//! residual scores 1, and the dimensions are split by the softmax of the scores.

use std::fmt;

use tch::{nn, Device, Kind, Tensor};

use super::{gaussian, model_error, Autoencoder, Flow, FlowConfig, InnError};
use crate::data::{ColorMnist, ColorMnistConfig, Factor, Mnist};
use crate::display::{Output, Render};
use crate::models::{optimize, TrainConfig, TrainReport};
use crate::viz::{BarChart, Grid, LinePlot};

/// The reference's correlation of a shared factor between the two images of a pair.
pub const RHO: f64 = 0.975;

/// The name of the factor that holds what no concept explains; always factor 0.
pub const RESIDUAL: &str = "residual";

/// Images `a` and `b` (`[N, C, S, S]`, row `k` of each a pair) that share `concept`.
#[derive(Debug)]
pub struct FactorPairs {
    pub concept: String,
    pub a: Tensor,
    pub b: Tensor,
}

/// ColorMNIST pairs, `n` for each of `factors`, drawn from `config`'s split and seed (the
/// pairs of factor `k` from seed `config.seed + k`).
pub fn colormnist_pairs(
    mnist: &Mnist,
    factors: &[Factor],
    n: usize,
    config: &ColorMnistConfig,
) -> Result<Vec<FactorPairs>, InnError> {
    factors
        .iter()
        .enumerate()
        .map(|(k, &factor)| {
            let config = ColorMnistConfig { seed: config.seed.wrapping_add(k as u64), ..config.clone() };
            let (a, b) = ColorMnist::pairs(mnist, factor, n, &config)?;
            Ok(FactorPairs { concept: factor.name().to_owned(), a: a.images, b: b.images })
        })
        .collect()
}

/// e on ColorMNIST pairs (train split) for the factors named `factors` (digit, fg, bg),
/// `pairs` per factor, trained for `steps` steps of Adam (batch 64, 3e-3 decaying
/// linearly): what `:semantic-inn` runs.
pub fn train_colormnist(
    ae: &Autoencoder,
    factors: &[&str],
    pairs: usize,
    steps: usize,
    sizes: Option<Vec<i64>>,
    seed: u64,
) -> Result<(SemanticInn, SemanticReport), InnError> {
    if factors.is_empty() || pairs == 0 || steps == 0 {
        return Err(InnError::BadInput("give one factor or more, pairs >= 1 and steps >= 1".into()));
    }
    let factors = factors.iter().map(|f| f.parse()).collect::<Result<Vec<Factor>, _>>()?;
    let mnist = Mnist::load()?;
    let config = ColorMnistConfig { size: ae.config().size as usize, split: crate::data::Split::Train, seed };
    let pairs = colormnist_pairs(&mnist, &factors, pairs, &config)?;
    let total: usize = pairs.iter().map(|p| p.a.size()[0] as usize).sum();
    let schedule = TrainConfig {
        batch_size: 64,
        lr: 3e-3,
        weight_decay: 0.0,
        optimizer: crate::models::Optim::Adam,
        poly_power: 1.0,
        seed: Some(seed),
        label: "semantic INN".into(),
        ..Default::default()
    }
    .for_steps(steps, total);
    train(ae, &pairs, SemanticConfig { sizes, blocks: 8, hidden: 128, seed, ..Default::default() }, &schedule)
}

/// How to build and train a [`SemanticInn`].
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticConfig {
    /// Dimensions per concept, in the order of the pairs; `None` estimates them. The
    /// residual takes the rest.
    pub sizes: Option<Vec<i64>>,
    /// Blocks of the flow (the reference: 12).
    pub blocks: usize,
    /// Hidden units of the coupling nets (the reference: 512; smaller for the CPU).
    pub hidden: i64,
    /// Extra hidden layers of the coupling nets (the reference: 2).
    pub depth: usize,
    /// Correlation of a shared factor (the reference: 0.975).
    pub rho: f64,
    /// Seeds the weights and the shuffles.
    pub seed: u64,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig { sizes: None, blocks: 12, hidden: 256, depth: 2, rho: RHO, seed: 0 }
    }
}

/// Dimensions of each factor of e's output, residual first.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorSizes {
    pub names: Vec<String>,
    pub sizes: Vec<i64>,
}

impl FactorSizes {
    /// The index of factor `name`; the error lists the factors.
    pub fn index(&self, name: &str) -> Result<usize, InnError> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            InnError::BadInput(format!("no factor `{name}`; the factors are: {}", self.names.join(", ")))
        })
    }

    /// The factors of `e` (`[N, D]`), a tensor each.
    pub fn split(&self, e: &Tensor) -> Vec<Tensor> {
        e.split_with_sizes(self.sizes.as_slice(), 1)
    }
}

impl fmt::Display for FactorSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.names.iter().zip(&self.sizes).map(|(n, s)| format!("{n} {s}")).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// Esser et al.'s estimate of the factor sizes from the codes of pairs `(a, b)` per concept
/// (`[N, D]` each): score_F = Σ_i Cov(z̄ᵃ_i, z̄ᵇ_i) / Σ_i Var(z̄_i), residual score 1,
/// sizes ⌊softmax(scores)·D⌋ with the remainder to the residual; every factor gets at least one.
pub fn estimate_sizes(names: &[String], codes: &[(Tensor, Tensor)]) -> Result<FactorSizes, InnError> {
    let Some((first, _)) = codes.first() else {
        return Err(InnError::BadInput("estimating factor sizes needs pairs of at least one concept".into()));
    };
    let dim = first.size()[1];
    if dim < codes.len() as i64 + 1 {
        return Err(InnError::BadInput(format!("{dim} dimensions cannot hold {} factors and a residual", codes.len())));
    }
    let all =
        Tensor::cat(&codes.iter().flat_map(|(a, b)| [a.shallow_clone(), b.shallow_clone()]).collect::<Vec<_>>(), 0)
            .to_kind(Kind::Double);
    let total = all.var_dim(0, false, false).sum(Kind::Double).double_value(&[]);
    let mut scores = vec![1.0];
    for (a, b) in codes {
        let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
        let mean = (a.mean_dim(0, true, Kind::Double) + b.mean_dim(0, true, Kind::Double)) * 0.5;
        let cov = ((&a - &mean) * (&b - &mean)).mean_dim(0, false, Kind::Double).sum(Kind::Double);
        scores.push(cov.double_value(&[]) / total.max(1e-12));
    }
    let top = scores.iter().cloned().fold(f64::MIN, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<i64> = weights.iter().map(|w| ((w / sum * dim as f64).floor() as i64).max(1)).collect();
    sizes[0] = dim - sizes[1..].iter().sum::<i64>();
    let names = std::iter::once(RESIDUAL.to_owned()).chain(names.iter().cloned()).collect();
    Ok(FactorSizes { names, sizes })
}

/// The semantic INN e over an autoencoder's z̄. Owns its weights.
#[derive(Debug)]
pub struct SemanticInn {
    config: SemanticConfig,
    factors: FactorSizes,
    vs: nn::VarStore,
    flow: Flow,
}

impl SemanticInn {
    /// A fresh e over codes of `dim` features with `factors`; seeds libtorch with
    /// `config.seed`.
    pub fn new(dim: i64, factors: FactorSizes, config: SemanticConfig, device: Device) -> Result<Self, InnError> {
        if factors.sizes.iter().sum::<i64>() != dim || factors.sizes.iter().any(|s| *s < 1) {
            return Err(InnError::InvalidConfig(format!(
                "factor sizes must be positive and sum to z̄'s {dim} dimensions; got {factors}"
            )));
        }
        if !(0.0..1.0).contains(&config.rho) {
            return Err(InnError::InvalidConfig(format!("rho must lie in [0, 1); got {}", config.rho)));
        }
        tch::manual_seed(config.seed as i64);
        let vs = nn::VarStore::new(device);
        let flow_config = FlowConfig {
            dim,
            cond_dim: 0,
            blocks: config.blocks,
            hidden: config.hidden,
            depth: config.depth,
            seed: config.seed,
        };
        let flow = Flow::new(&(vs.root() / "flow"), flow_config)?;
        Ok(SemanticInn { config, factors, vs, flow })
    }

    pub fn factors(&self) -> &FactorSizes {
        &self.factors
    }

    pub fn config(&self) -> &SemanticConfig {
        &self.config
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// e(z̄) and log|det ∂e/∂z̄| per example.
    pub fn forward(&self, zbar: &Tensor) -> Result<(Tensor, Tensor), InnError> {
        self.flow.forward(&zbar.to_device(self.device()), None)
    }

    /// z̄ = e⁻¹(e), exact.
    pub fn inverse(&self, e: &Tensor) -> Result<Tensor, InnError> {
        self.flow.inverse(&e.to_device(self.device()), None)
    }

    /// The factors of images under E (posterior means) and e: `[N, D]`, no gradient.
    pub fn encode(&self, ae: &Autoencoder, images: &Tensor) -> Result<Tensor, InnError> {
        tch::no_grad(|| {
            let zbar = ae.encode(images)?.mean.to_device(self.device());
            Ok(self.forward(&zbar)?.0)
        })
    }

    /// Eq. 6 with the reference's joint density, per pair: the NLL of e(z̄ᵃ) under N(0, I),
    /// of e(z̄ᵇ) given e(z̄ᵃ) with factor `shared[k]` correlated by ρ, minus both log-dets;
    /// in nats per dimension (without the constant normalisers).
    pub fn pair_loss(&self, za: &Tensor, zb: &Tensor, shared: &Tensor) -> Result<Tensor, InnError> {
        let (ea, logdet_a) = self.forward(za)?;
        let (eb, logdet_b) = self.forward(zb)?;
        let rho = self.config.rho;
        let mut nll = ea.square().sum_dim_intlist(1, false, Kind::Float) * 0.5;
        for (i, (fa, fb)) in self.factors.split(&ea).iter().zip(self.factors.split(&eb)).enumerate() {
            let mask = shared.eq(i as i64).to_kind(Kind::Float);
            let residual = fb - fa * (&mask * rho).unsqueeze(1);
            let energy = residual.square().sum_dim_intlist(1, false, Kind::Float) * 0.5;
            nll = nll + energy / (1.0 - &mask * rho * rho);
        }
        let d = ea.size()[1] as f64;
        Ok((nll - logdet_a - logdet_b) / (2.0 * d))
    }

    /// Replaces factor `factor` of each image of `a` by the same factor of the image of `b`
    /// in the same row, and decodes: D(e⁻¹(e_a with e_b's factor)) (eq. 7).
    pub fn swap(&self, ae: &Autoencoder, a: &Tensor, b: &Tensor, factor: usize) -> Result<Tensor, InnError> {
        let (ea, eb) = (self.encode(ae, a)?, self.encode(ae, b)?);
        let mut parts = self.factors.split(&ea);
        parts[factor] = self.factors.split(&eb)[factor].shallow_clone();
        tch::no_grad(|| ae.decode(&self.inverse(&Tensor::cat(&parts, 1))?))
    }
}

/// The codes of every pair under E (posterior means and log-variances), for sampling z̄ as
/// the reference trains.
struct PairCodes {
    a: (Tensor, Tensor),
    b: (Tensor, Tensor),
    /// Index of the shared factor of each pair (1 + the concept's position).
    shared: Tensor,
}

impl PairCodes {
    fn new(ae: &Autoencoder, pairs: &[FactorPairs], device: Device) -> Result<PairCodes, InnError> {
        let encode = |images: &Tensor| -> Result<(Tensor, Tensor), InnError> {
            let n = images.size()[0];
            let (mut means, mut logvars) = (Vec::new(), Vec::new());
            for start in (0..n).step_by(500) {
                let p = tch::no_grad(|| ae.encode(&images.narrow(0, start, (n - start).min(500))))?;
                means.push(p.mean.to_device(device));
                logvars.push(p.logvar.to_device(device));
            }
            Ok((Tensor::cat(&means, 0), Tensor::cat(&logvars, 0)))
        };
        let (mut a, mut b, mut shared) = (Vec::new(), Vec::new(), Vec::new());
        for (k, p) in pairs.iter().enumerate() {
            if p.a.size() != p.b.size() || p.a.size().first().map_or(true, |n| *n == 0) {
                return Err(InnError::BadInput(format!(
                    "the pairs of `{}` need as many images a as b, and some; got {:?} and {:?}",
                    p.concept,
                    p.a.size(),
                    p.b.size()
                )));
            }
            a.push(encode(&p.a)?);
            b.push(encode(&p.b)?);
            shared.push(Tensor::full([p.a.size()[0]], k as i64 + 1, (Kind::Int64, device)));
        }
        let cat = |parts: &[(Tensor, Tensor)]| {
            let (m, l): (Vec<Tensor>, Vec<Tensor>) =
                parts.iter().map(|(m, l)| (m.shallow_clone(), l.shallow_clone())).unzip();
            (Tensor::cat(&m, 0), Tensor::cat(&l, 0))
        };
        Ok(PairCodes { a: cat(&a), b: cat(&b), shared: Tensor::cat(&shared, 0) })
    }

    fn len(&self) -> i64 {
        self.shared.size()[0]
    }

    /// z̄ drawn from the posteriors of pairs `index`, and their shared factors.
    fn batch(&self, index: &Tensor, seed: u64) -> (Tensor, Tensor, Tensor) {
        let draw = |(mean, logvar): &(Tensor, Tensor), seed: u64| {
            let mean = mean.index_select(0, index);
            let eps = gaussian(&mean.size(), seed, mean.device());
            mean + (logvar.index_select(0, index) * 0.5).exp() * eps
        };
        (draw(&self.a, seed), draw(&self.b, seed ^ 0x5555), self.shared.index_select(0, index))
    }

    /// The posterior means of each concept's pairs, for the size estimate.
    fn means_by_concept(&self, concepts: usize) -> Vec<(Tensor, Tensor)> {
        (1..=concepts as i64)
            .map(|k| {
                let index = self.shared.eq(k).nonzero().squeeze_dim(1);
                (self.a.0.index_select(0, &index), self.b.0.index_select(0, &index))
            })
            .collect()
    }
}

/// Trains a fresh e on `pairs` (E = `ae` frozen): sizes given or estimated, ActNorms
/// initialised on the first batch, then the shared loop. The loss of all pairs is
/// measured after initialisation and after training.
pub fn train(
    ae: &Autoencoder,
    pairs: &[FactorPairs],
    config: SemanticConfig,
    train: &TrainConfig,
) -> Result<(SemanticInn, SemanticReport), InnError> {
    let names: Vec<String> = pairs.iter().map(|p| p.concept.clone()).collect();
    if names.iter().any(|n| n == RESIDUAL) || (1..names.len()).any(|i| names[..i].contains(&names[i])) {
        return Err(InnError::BadInput(format!(
            "concepts must be distinct and not `{RESIDUAL}`; got {}",
            names.join(", ")
        )));
    }
    let device = ae.device();
    let codes = PairCodes::new(ae, pairs, device)?;
    let factors = match &config.sizes {
        Some(sizes) if sizes.len() == names.len() => {
            let rest = ae.latent() - sizes.iter().sum::<i64>();
            FactorSizes {
                names: std::iter::once(RESIDUAL.to_owned()).chain(names.iter().cloned()).collect(),
                sizes: std::iter::once(rest).chain(sizes.iter().copied()).collect(),
            }
        }
        Some(sizes) => {
            return Err(InnError::InvalidConfig(format!(
                "give one size per concept ({}); got {} sizes",
                names.join(", "),
                sizes.len()
            )))
        }
        None => estimate_sizes(&names, &codes.means_by_concept(names.len()))?,
    };
    let e = SemanticInn::new(ae.latent(), factors, config, device)?;
    let seed = train.seed.unwrap_or_else(crate::seed::current);
    let n = codes.len();
    // ActNorms initialise on a first batch that mixes every concept.
    let first = Tensor::randperm(n, (Kind::Int64, device)).narrow(0, 0, n.min(train.batch_size.max(64) as i64));
    let (za, _, _) = codes.batch(&first, seed);
    let _ = tch::no_grad(|| e.forward(&za))?;
    let all = Tensor::arange(n, (Kind::Int64, device));
    let mean_loss = |e: &SemanticInn| -> Result<f64, InnError> {
        let (za, zb, shared) = codes.batch(&all, seed);
        Ok(tch::no_grad(|| e.pair_loss(&za, &zb, &shared))?.mean(Kind::Float).double_value(&[]))
    };
    let loss_before = mean_loss(&e)?;
    let report = optimize(
        &e.vs,
        n as usize,
        train,
        |batch, step| {
            let index = Tensor::from_slice(batch).to_device(device);
            let (za, zb, shared) = codes.batch(&index, seed.wrapping_mul(1_000_003).wrapping_add(step as u64 + 1));
            Ok(e.pair_loss(&za, &zb, &shared).map_err(model_error)?.mean(Kind::Float))
        },
        |_| {},
    )?;
    let loss_after = mean_loss(&e)?;
    let report = SemanticReport { factors: e.factors.clone(), train: report, loss_before, loss_after };
    Ok((e, report))
}

/// What training e did.
#[derive(Debug, Clone)]
pub struct SemanticReport {
    pub factors: FactorSizes,
    pub train: TrainReport,
    /// Mean pair loss (eq. 6, nats per dimension) after ActNorm initialisation.
    pub loss_before: f64,
    pub loss_after: f64,
}

impl Render for SemanticReport {
    fn render(&self) -> Output {
        let text = format!(
            "semantic INN, factors {}: {}; pair loss {:.3} -> {:.3} nats per dimension",
            self.factors, self.train, self.loss_before, self.loss_after
        );
        LinePlot::new("semantic INN")
            .x_label("step")
            .y_label("pair loss (nats / dim)")
            .series_y("training loss", self.train.step_losses.iter().copied())
            .render()
            .and(Output::text(text))
    }
}

/// How well a linear probe (logistic regression) reads labels from each factor, fitted on
/// the first half of the images and scored on the second.
#[derive(Debug, Clone)]
pub struct FactorProbe {
    pub target: String,
    pub factors: Vec<String>,
    /// Held-out accuracy per factor.
    pub accuracy: Vec<f64>,
    /// Held-out accuracy from all of z̄ at once, before e: what a factor can hope for.
    pub whole: f64,
    /// Accuracy of always answering the most frequent class of the fitting half.
    pub majority: f64,
}

impl FactorProbe {
    /// Probes `labels` (`[N]` classes) from the factors of `images`.
    pub fn fit(
        e: &SemanticInn,
        ae: &Autoencoder,
        images: &Tensor,
        labels: &Tensor,
        target: &str,
    ) -> Result<FactorProbe, InnError> {
        let n = images.size()[0];
        if n < 4 || labels.size() != [n] {
            return Err(InnError::BadInput(format!(
                "a probe needs at least 4 images and one label each; got {n} images and labels {:?}",
                labels.size()
            )));
        }
        let zbar = tch::no_grad(|| ae.encode(images))?.mean.to_device(Device::Cpu).to_kind(Kind::Double);
        let codes = e.encode(ae, images)?.to_device(Device::Cpu).to_kind(Kind::Double);
        let labels = labels.to_device(Device::Cpu).to_kind(Kind::Int64);
        let half = n / 2;
        let accuracy = e.factors.split(&codes).iter().map(|f| probe(f, &labels, half)).collect();
        let (fit_labels, test_labels) = (labels.narrow(0, 0, half), labels.narrow(0, half, n - half));
        let counts = fit_labels.bincount::<Tensor>(None, labels.max().int64_value(&[]) + 1);
        let top = counts.argmax(0, false).int64_value(&[]);
        let majority = test_labels.eq(top).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
        Ok(FactorProbe {
            target: target.to_owned(),
            factors: e.factors.names.clone(),
            accuracy,
            whole: probe(&zbar, &labels, half),
            majority,
        })
    }
}

/// Held-out accuracy of a multinomial logistic regression (standardised inputs, zero
/// initial weights, 300 full-batch Adam steps) fitted on the first `half` rows of `x` and
/// scored on the rest: deterministic and linear.
fn probe(x: &Tensor, labels: &Tensor, half: i64) -> f64 {
    let n = x.size()[0];
    let classes = labels.max().int64_value(&[]) + 1;
    let x = x.to_kind(Kind::Float);
    let (fit, test) = (x.narrow(0, 0, half), x.narrow(0, half, n - half));
    let (mean, std) = (fit.mean_dim(0, true, Kind::Float), fit.std_dim(0, false, true) + 1e-6);
    let (fit, test) = ((&fit - &mean) / &std, (&test - &mean) / &std);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let linear = tch::nn::linear(
        vs.root(),
        x.size()[1],
        classes,
        tch::nn::LinearConfig { ws_init: tch::nn::Init::Const(0.0), ..Default::default() },
    );
    let mut opt = tch::nn::OptimizerConfig::build(tch::nn::Adam::default(), &vs, 0.05).expect("an optimizer");
    let fit_labels = labels.narrow(0, 0, half);
    for _ in 0..300 {
        opt.backward_step(&tch::nn::Module::forward(&linear, &fit).cross_entropy_for_logits(&fit_labels));
    }
    let predicted = tch::no_grad(|| tch::nn::Module::forward(&linear, &test)).argmax(1, false);
    predicted.eq_tensor(&labels.narrow(0, half, n - half)).to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
}

impl Render for FactorProbe {
    fn render(&self) -> Output {
        let parts: Vec<String> =
            self.factors.iter().zip(&self.accuracy).map(|(f, a)| format!("{f} {:.1}%", 100.0 * a)).collect();
        let text = format!(
            "linear probe for {} from each factor: {} (all of z̄ {:.1}%, majority {:.1}%)",
            self.target,
            parts.join(", "),
            100.0 * self.whole,
            100.0 * self.majority
        );
        BarChart::new(format!("{} from each factor", self.target))
            .y_label("held-out accuracy")
            .categories(self.factors.iter().cloned())
            .group("linear probe", self.accuracy.iter().copied())
            .render()
            .and(Output::text(text))
    }
}

/// Factor swaps (fig. 7): for each image of `a`, every factor in turn replaced by that of the
/// image of `b` in the same column.
#[derive(Debug)]
pub struct Swap {
    pub factors: Vec<String>,
    /// `[N, C, S, S]` the images whose factors are replaced.
    pub a: Tensor,
    /// `[N, C, S, S]` the images that give their factor.
    pub b: Tensor,
    /// `[F, N, C, S, S]`: row `f` has factor `f` of `b`.
    pub swapped: Tensor,
}

impl Swap {
    pub fn new(e: &SemanticInn, ae: &Autoencoder, a: &Tensor, b: &Tensor) -> Result<Swap, InnError> {
        if a.size() != b.size() {
            return Err(InnError::BadInput(format!(
                "swapping needs as many images on each side; got {:?} and {:?}",
                a.size(),
                b.size()
            )));
        }
        let rows = (0..e.factors.names.len())
            .map(|f| Ok(e.swap(ae, a, b, f)?.to_device(Device::Cpu)))
            .collect::<Result<Vec<_>, InnError>>()?;
        Ok(Swap {
            factors: e.factors.names.clone(),
            a: a.to_device(Device::Cpu),
            b: b.to_device(Device::Cpu),
            swapped: Tensor::stack(&rows, 0),
        })
    }
}

impl Render for Swap {
    /// Rows: the images, the donors, then one row per swapped factor.
    fn render(&self) -> Output {
        let n = self.a.size()[0];
        let mut rows = vec![self.a.shallow_clone(), self.b.shallow_clone()];
        rows.extend((0..self.swapped.size()[0]).map(|f| self.swapped.get(f)));
        let grid = Grid::new(&Tensor::cat(&rows, 0)).columns(n as usize).scale(2);
        let names: Vec<String> = ["image", "donor"]
            .iter()
            .map(|s| s.to_string())
            .chain(self.factors.iter().map(|f| format!("{f} swapped")))
            .collect();
        grid.render().and(Output::text(format!("factor swaps of {n} images; rows: {}", names.join(", "))))
    }
}
