//! The USB size sweep of SB paper fig. 5: the task score against the bottleneck's size N·K.

use super::{Inference, Regularizer, SbError, SbReport, Usb};
use crate::display::{Output, Render};
use crate::models::{Editable, TaskData, TrainConfig};
use crate::viz::LinePlot;

/// One USB of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    pub n: usize,
    pub k: i64,
    pub report: SbReport,
}

/// Every `n × k` USB after one stage, trained the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub after: String,
    pub points: Vec<SweepPoint>,
}

/// Trains one USB per `(n, k)` after `after` (each from the same seed, so points differ only
/// in size) and reports each: fig. 5's sweep.
#[allow(clippy::too_many_arguments)]
pub fn sweep_usb<N: Editable, D: TaskData + ?Sized>(
    net: &N,
    after: &str,
    ns: &[usize],
    ks: &[i64],
    regularizer: Regularizer,
    data: &D,
    test: Option<&D>,
    config: &TrainConfig,
) -> Result<Sweep, SbError> {
    if ns.is_empty() || ks.is_empty() {
        return Err(SbError::Invalid("the sweep needs at least one N and one K".into()));
    }
    let seed = config.seed.unwrap_or_else(crate::seed::current);
    let mut points = Vec::new();
    for &n in ns {
        for &k in ks {
            let usb = Usb::new(n, k)?.with(regularizer);
            tch::manual_seed(seed as i64);
            let label = format!("USB {n}×{k}");
            let sb = super::usb(net, after, usb, data, test, &TrainConfig { label, ..config.clone() })?;
            let report = sb.report.expect("a trained USB has a report");
            points.push(SweepPoint { n, k, report });
        }
    }
    Ok(Sweep { after: after.to_owned(), points })
}

impl Sweep {
    /// Score vs N·K, one line per N under arg-max inference, and the original net's score.
    pub fn plot(&self) -> LinePlot {
        let headline = |r: &SbReport, mode| r.score(mode).map_or(f64::NAN, SbReport::headline);
        let metric = self.points.first().map_or("score", |p| p.report.metric());
        let mut plot = LinePlot::new(format!("USB after {}: {metric} vs channels", self.after))
            .x_label("N·K channels")
            .y_label(format!("{metric} (argmax)"))
            .size(560, 320);
        for p in &self.points {
            plot.push(&format!("N = {}", p.n), (p.n as i64 * p.k) as f64, headline(&p.report, Inference::Argmax));
        }
        if let (Some(first), Some(last)) = (self.points.first(), self.points.iter().map(|p| p.n as i64 * p.k).max()) {
            let original = SbReport::headline(&first.report.original);
            let least = self.points.iter().map(|p| p.n as i64 * p.k).min().unwrap_or(last);
            plot.push("original", least as f64, original);
            plot.push("original", last as f64, original);
        }
        plot
    }
}

impl Render for Sweep {
    fn render(&self) -> Output {
        let rows: Vec<String> = self.points.iter().map(|p| format!("{}×{}: {}", p.n, p.k, p.report)).collect();
        self.plot().render().with("text/plain", rows.join("\n").into())
    }
}
