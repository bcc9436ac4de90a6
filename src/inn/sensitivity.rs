//! How the concepts a representation captures change over training (invariances paper sec.
//! 4.2, fig. 4): a t for the same layer of each training checkpoint of a classifier, and a
//! semantic INN e that splits z̄ into concept factors. For each factor e_i, the share of its
//! variation that z = Φ(x) fixes:
//!
//! captured_i = 1 − E_x[Var_v(e_i(t⁻¹(v|Φ(x))))] / Var(e_i),
//!
//! summed over the factor's dimensions, the total over all samples of all images (the law of
//! total variance splits it into what z explains and what v leaves open). A factor the layer
//! ignores varies as much within the samples of one z as over the data: 0. A factor the
//! layer pins down: 1.
//!
//! The factors are only as good as e, whose digit factor is 4 dimensions a probe reads
//! imperfectly; a second measure rests on no factor: the samples are decoded,
//! D(t⁻¹(v|Φ(x))), and classified by the fully trained classifier. The share it puts in the
//! class it gives x itself is how much of the class the checkpoint's layer fixes (chance: one
//! in ten classes when the layer carries none of it).

use tch::{Device, Kind, Tensor};

use super::interpret::{default_configs, predict, Frozen};
use super::{cinn, Autoencoder, InnError, SemanticInn};
use crate::display::{Output, Render};
use crate::models::zoo::{self, Pretrained};
use crate::models::Stage;
use crate::viz::LinePlot;

/// How to measure a [`Sensitivity`].
#[derive(Debug, Clone, PartialEq)]
pub struct SensitivityConfig {
    pub stage: Stage,
    /// Training steps of each checkpoint's t.
    pub steps: usize,
    /// Samples v per held-out image.
    pub samples: usize,
    pub seed: u64,
}

impl SensitivityConfig {
    pub fn new(stage: Stage) -> SensitivityConfig {
        SensitivityConfig { stage, steps: 500, samples: 8, seed: 0 }
    }
}

/// Per checkpoint: the share of each factor's variation the layer captures, and the
/// checkpoint's test accuracy.
#[derive(Debug, Clone)]
pub struct Sensitivity {
    pub model: String,
    pub stage: Stage,
    pub steps: Vec<usize>,
    pub factors: Vec<String>,
    /// `[checkpoint][factor]`.
    pub captured: Vec<Vec<f64>>,
    /// Per checkpoint: the share of decoded samples that the fully trained classifier puts in
    /// the class it gives their conditioning image.
    pub class_kept: Vec<f64>,
    pub accuracy: Vec<f64>,
}

impl Sensitivity {
    /// Measures the zoo model `name` at each of `steps` (its checkpoints; all when `None`),
    /// training each t on `images` and sampling it on `held_out`.
    pub fn measure<M: Frozen + Pretrained>(
        name: &str,
        steps: Option<&[usize]>,
        ae: &Autoencoder,
        e: &SemanticInn,
        images: &Tensor,
        held_out: &Tensor,
        config: &SensitivityConfig,
    ) -> Result<Sensitivity, InnError> {
        let device = ae.device();
        let card = zoo::card(name, device)?;
        let have: Vec<usize> = card.checkpoints.iter().map(|c| c.step).collect();
        let steps = steps.map_or_else(|| have.clone(), <[usize]>::to_vec);
        if steps.is_empty() || config.samples < 2 {
            return Err(InnError::BadInput("sensitivity needs one checkpoint or more and 2 samples or more".into()));
        }
        let mut out = Sensitivity {
            model: name.to_owned(),
            stage: config.stage.clone(),
            steps: Vec::new(),
            factors: e.factors().names.clone(),
            captured: Vec::new(),
            class_kept: Vec::new(),
            accuracy: Vec::new(),
        };
        let judge: M = zoo::load(name, device)?;
        let wanted = predict(&judge, held_out)?;
        for step in steps {
            let Some(point) = card.checkpoints.iter().find(|c| c.step == step) else {
                let have: Vec<String> = have.iter().map(usize::to_string).collect();
                return Err(InnError::BadInput(format!(
                    "`{name}` has no checkpoint at step {step}; it has: {}",
                    have.join(", ")
                )));
            };
            let model: M = zoo::load(&format!("{name}@{step}"), device)?;
            let (cinn_config, train) =
                default_configs(config.stage.clone(), config.steps, images.size()[0] as usize, config.seed);
            let train =
                crate::models::TrainConfig { label: format!("cINN on {name}@{step} {}", config.stage), ..train };
            let (t, _) = cinn::train(&model, ae, images, held_out, cinn_config, &train)?;
            let z = t.condition(&model, held_out)?;
            let zbar = t.sample(&z.repeat_interleave_self_int(config.samples as i64, 0, None), config.seed)?;
            out.captured.push(captured(e, &zbar, config.samples)?);
            let decoded = tch::no_grad(|| ae.decode(&zbar))?;
            let got = predict(&judge, &decoded)?;
            let kept = got.iter().enumerate().filter(|(i, c)| **c == wanted[i / config.samples]).count();
            out.class_kept.push(kept as f64 / got.len().max(1) as f64);
            out.accuracy.push(point.test.accuracy);
            out.steps.push(step);
        }
        Ok(out)
    }
}

/// The captured share of every factor, from `k` samples z̄ of t for each image, image by
/// image (see the module's notes).
fn captured(e: &SemanticInn, zbar: &Tensor, k: usize) -> Result<Vec<f64>, InnError> {
    let factors = tch::no_grad(|| e.forward(zbar))?.0.to_device(Device::Cpu).to_kind(Kind::Double);
    let d = factors.size()[1];
    let per_image = factors.view([-1, k as i64, d]);
    let within = per_image.var_dim(1, false, false).mean_dim(0, false, Kind::Double);
    let total = factors.var_dim(0, false, false);
    Ok(e.factors()
        .split(&Tensor::stack(&[within, total], 0))
        .iter()
        .map(|f| {
            let sums = f.sum_dim_intlist(1, false, Kind::Double);
            let (w, t) = (sums.double_value(&[0]), sums.double_value(&[1]));
            (1.0 - w / t.max(1e-12)).clamp(0.0, 1.0)
        })
        .collect())
}

impl Render for Sensitivity {
    fn render(&self) -> Output {
        let xs: Vec<f64> = self.steps.iter().map(|s| *s as f64).collect();
        let mut plot = LinePlot::new(format!("what `{}` of {} captures over training", self.stage, self.model))
            .x_label("training step")
            .y_label("share");
        // One axis holds shares of two kinds: of a factor's variation, and of images.
        for (i, f) in self.factors.iter().enumerate() {
            let name = format!("{f}: of its variation, captured");
            plot = plot.series(name, xs.iter().copied(), self.captured.iter().map(|c| c[i]));
        }
        plot =
            plot.series("of decoded samples, kept in the class", xs.iter().copied(), self.class_kept.iter().copied());
        plot = plot.series("of test images, classified right", xs.iter().copied(), self.accuracy.iter().copied());
        let mut text =
            vec![format!("captured share per factor at `{}` over the checkpoints of {}:", self.stage, self.model)];
        for (j, step) in self.steps.iter().enumerate() {
            let parts: Vec<String> =
                self.factors.iter().zip(&self.captured[j]).map(|(f, c)| format!("{f} {c:.2}")).collect();
            text.push(format!(
                "  step {step}: {}; class kept {:.1}% (accuracy {:.1}%)",
                parts.join(", "),
                100.0 * self.class_kept[j],
                100.0 * self.accuracy[j]
            ));
        }
        plot.render().and(Output::text(text.join("\n")))
    }
}
