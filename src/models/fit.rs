//! What `:train` and `:eval` run: any data set a model can learn from, training with a live
//! loss curve, and scores with their baseline.

use std::time::{Duration, Instant};

use super::{evaluate, train_with, Examples, ModelError, Score, Tapped, Task, TrainConfig, TrainReport};
use crate::data::{Category, ColorMnist, ConceptDataset};
use crate::display::{self, Output, Render};
use crate::viz::plot::SMOOTHING;
use crate::viz::LinePlot;

/// Data that yields examples for a task: concept data sets segment their objects,
/// ColorMNIST classifies its digits, and [`Examples`] are themselves.
pub trait TaskData {
    fn examples(&self, task: Task) -> Result<Examples, ModelError>;
}

impl<D: ConceptDataset> TaskData for D {
    fn examples(&self, task: Task) -> Result<Examples, ModelError> {
        match task {
            Task::Segmentation => Examples::from_dataset(self, Category::Object),
            Task::Classification => Err(ModelError::BadInput(
                "a concept data set labels pixels, so it trains segmentation models; this model classifies \
                 images (ColorMNIST or `Examples::classification` do)"
                    .into(),
            )),
        }
    }
}

impl TaskData for ColorMnist {
    fn examples(&self, task: Task) -> Result<Examples, ModelError> {
        match task {
            Task::Classification => Examples::classification(self.images.shallow_clone(), self.digits.shallow_clone()),
            Task::Segmentation => Err(ModelError::BadInput(
                "ColorMNIST labels whole images (digits), so it trains classification models; this model \
                 segments (concept scenes, Broden or Cityscapes do)"
                    .into(),
            )),
        }
    }
}

impl TaskData for Examples {
    fn examples(&self, task: Task) -> Result<Examples, ModelError> {
        if task != self.task() {
            return Err(ModelError::BadInput(format!("{:?} examples for a {task:?} model", self.task())));
        }
        let (images, targets) = (self.images().shallow_clone(), self.targets().shallow_clone());
        match task {
            Task::Classification => Examples::classification(images, targets),
            Task::Segmentation => Examples::segmentation(images, targets),
        }
    }
}

/// How often the live loss curve is redrawn: often enough to look live, rarely enough that
/// drawing PNGs costs nothing next to training.
const REDRAW: Duration = Duration::from_millis(500);

/// Trains `model` on `data` (see [`super::train_with`]) under a live loss curve that is
/// redrawn while it runs and left showing every step's loss, light, under its smoothed
/// trend: a loss per batch is too noisy to tell by itself whether training still helps.
pub fn fit(model: &impl Tapped, data: &impl TaskData, config: &TrainConfig) -> Result<TrainReport, ModelError> {
    let examples = data.examples(model.task())?;
    let mut curve = LinePlot::new(format!("{}: loss", config.label))
        .x_label("step")
        .y_label("loss")
        .size(560, 260)
        .smoothed(loss_smoothing(config.steps_for(examples.len())));
    let mut shown: Option<display::Handle> = None;
    let mut drawn = Instant::now();
    let report = train_with(model, &examples, config, |step| {
        curve.push("train", step.step as f64, step.loss);
        if drawn.elapsed() >= REDRAW {
            match &shown {
                Some(handle) => handle.update(&curve),
                None => shown = Some(display::show(&curve)),
            }
            drawn = Instant::now();
        }
    })?;
    match &shown {
        Some(handle) => handle.update(&curve),
        None => {
            display::show(&curve);
        }
    }
    Ok(report)
}

/// The smoothing weight of a loss curve over `steps` steps: an average over about 1% of the
/// run, so that the trend is about as smooth at the plot's fixed width however long the run
/// (at [`SMOOTHING`], 5000 steps put ten to a pixel, as many as it averages, and the trend
/// comes out jagged), and over no fewer steps than [`SMOOTHING`] averages.
fn loss_smoothing(steps: usize) -> f64 {
    (1.0 - 100.0 / steps.max(1) as f64).max(SMOOTHING)
}

/// Scores `model` on `data`, 64 examples at a time.
pub fn score(model: &impl Tapped, data: &impl TaskData) -> Result<Score, ModelError> {
    evaluate(model, &data.examples(model.task())?, 64)
}

impl Render for TrainReport {
    fn render(&self) -> Output {
        Output::text(self.to_string())
    }
}

impl Render for Score {
    fn render(&self) -> Output {
        let pct = |v: f64| format!("{:.2}%", 100.0 * v);
        let mut rows = vec![("loss", format!("{:.4}", self.loss))];
        match self.miou {
            Some(miou) => rows.extend([("mIoU", pct(miou)), ("pixel accuracy", pct(self.accuracy))]),
            None => rows.push(("accuracy", pct(self.accuracy))),
        }
        rows.push(("majority baseline", pct(self.majority)));
        let html: String = rows.iter().map(|(k, v)| format!("<tr><th>{k}</th><td>{v}</td></tr>")).collect();
        Output::html(format!("<table>{html}</table>")).and(Output::text(self.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ConceptScenes, SceneConfig};
    use crate::models::{LeNet, LeNetConfig, ResNetConfig, TappedNet};

    #[test]
    fn long_runs_smooth_their_loss_over_more_steps() {
        assert_eq!(loss_smoothing(0), SMOOTHING);
        assert_eq!(loss_smoothing(40), SMOOTHING);
        assert_eq!(loss_smoothing(1000), SMOOTHING);
        assert!((loss_smoothing(5000) - 0.98).abs() < 1e-12);
        assert!((loss_smoothing(25000) - 0.996).abs() < 1e-12);
    }

    #[test]
    fn data_must_suit_the_task() {
        let _serial = super::super::serial();
        let scenes = ConceptScenes::generate(4, &SceneConfig { size: 32, ..Default::default() }).unwrap();
        let e = scenes.examples(Task::Segmentation).unwrap();
        assert_eq!((e.len(), e.task()), (4, Task::Segmentation));
        let lenet = LeNet::new(LeNetConfig::default(), tch::Device::Cpu).unwrap();
        let err = fit(&lenet, &scenes, &TrainConfig::default()).unwrap_err().to_string();
        assert!(err.contains("trains segmentation models"), "{err}");
        let err = e.examples(Task::Classification).unwrap_err().to_string();
        assert!(err.contains("Segmentation examples for a Classification model"), "{err}");
    }

    #[test]
    fn fit_learns_and_score_reports_the_baseline() {
        let _serial = super::super::serial();
        tch::manual_seed(crate::learned::torch_seed(0));
        let classes = crate::data::Vocabulary::scenes().names(Category::Object).len() as i64;
        let config = ResNetConfig {
            widths: vec![8, 16],
            depths: vec![1, 1],
            strides: vec![1, 2],
            stem_width: 8,
            ..ResNetConfig::small(Task::Segmentation, classes)
        };
        let net = TappedNet::new(config, tch::Device::Cpu).unwrap();
        let seed = crate::learned::seed;
        let scenes =
            ConceptScenes::generate(64, &SceneConfig { size: 32, seed: seed(0), ..Default::default() }).unwrap();
        let before = score(&net, &scenes).unwrap();
        let train = TrainConfig { epochs: 4, lr: 0.05, seed: Some(seed(0)), ..Default::default() };
        let report = fit(&net, &scenes, &train).unwrap();
        let after = score(&net, &scenes).unwrap();
        assert!(report.epoch_losses.last() < report.epoch_losses.first(), "{report}");
        println!("{before} -> {after}");
        crate::learned::at_least("fit: pixel accuracy - majority", after.accuracy - after.majority, 0.1);
        crate::learned::at_least("fit: loss drop", before.loss - after.loss, 0.0);
        let shown = after.render();
        assert!(shown.data()["text/html"].as_str().unwrap().contains("majority baseline"));
    }
}
