//! The generalised pointing game (SeVec paper sec. 5.2): how well saliency maps single out
//! the object they explain.
//!
//! The original game (Zhang et al. 2016) counts a hit when a map's maximum lies in the
//! target's bounding box. The generalised one first thresholds the map so that a share `m`
//! of its energy is kept (the fewest, strongest pixels whose energy reaches `m` of the
//! total) and counts a hit when the kept area lies in the box. At `m = 0` only the maximum is
//! kept, which is the original game; as `m` grows the kept area must stay inside the box,
//! so a map that spreads over other objects loses. Accuracy is hits over trials, per `m`
//! (fig. 7). Concept scenes give exact boxes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::saliency::{at_input_size, energy, saliency, Method};
use super::sevec::SemanticVectors;
use super::MetricError;
use crate::data::{BoundingBox, Category, Concept, ConceptDataset, ConceptScenes};
use crate::display::{Output, Render};
use crate::models::Tapped;
use crate::progress::Progress;
use crate::viz::LinePlot;

/// How to play.
#[derive(Debug, Clone, PartialEq)]
pub struct PointingConfig {
    /// The shares of energy kept, in [0, 1].
    pub levels: Vec<f64>,
    pub rule: HitRule,
    /// Objects with fewer visible pixels are not targets.
    pub min_pixels: usize,
    pub batch_size: usize,
    /// Draws the random-saliency baseline.
    pub seed: u64,
}

impl Default for PointingConfig {
    fn default() -> Self {
        PointingConfig {
            levels: (0..=20).map(|i| i as f64 / 20.0).collect(),
            rule: HitRule::default(),
            min_pixels: 40,
            batch_size: 16,
            seed: 0,
        }
    }
}

/// When kept pixels count as lying in a box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HitRule {
    /// Pixels by which boxes are widened on every side (the original game allows 15 at
    /// 224×224; the paper's generalised rule, and the default, allow none).
    pub tolerance: usize,
    /// The share of the kept pixels that must lie in the box: 1 (the default) is the
    /// paper's "a hit is counted if the remaining foreground area (containing relevant
    /// pixels) lies in the bounding box of the corresponding target object" (sec. 5.2);
    /// lower shares give partial credit to maps that spill over the box's edge. Under the
    /// paper's rule a map with energy everywhere misses at m = 1.
    pub inside: f64,
}

impl Default for HitRule {
    fn default() -> Self {
        HitRule { tolerance: 0, inside: 1.0 }
    }
}

/// Whether each map hits its box at each level: `[N][levels]`. `energy` is `[N, H, W]`,
/// non-negative; a map with no energy misses.
pub fn pointing_hits(energy: &Tensor, boxes: &[BoundingBox], levels: &[f64], rule: &HitRule) -> Vec<Vec<bool>> {
    let tolerance = rule.tolerance;
    let (n, h, w) = (energy.size()[0], energy.size()[1] as usize, energy.size()[2] as usize);
    assert_eq!(n as usize, boxes.len(), "one box per map");
    let e = energy.to_device(Device::Cpu).to_kind(Kind::Double).clamp_min(0.0).view([n, -1]);
    let (sorted, order) = e.sort(1, true);
    let cumulative = sorted.cumsum(1, Kind::Double);
    let total: Vec<f64> = Vec::try_from(cumulative.select(1, -1)).expect("double");
    // Energy before each pixel in the sorted order: exact zeros after the last non-zero.
    let before =
        Tensor::cat(&[cumulative.zeros_like().narrow(1, 0, 1), cumulative.narrow(1, 0, (h * w) as i64 - 1)], 1);
    let inside: Vec<bool> = boxes
        .iter()
        .flat_map(|b| {
            let (x0, y0) = (b.x0.saturating_sub(tolerance), b.y0.saturating_sub(tolerance));
            let (x1, y1) = (b.x1 + tolerance, b.y1 + tolerance);
            (0..h * w).map(move |p| (x0..x1).contains(&(p % w)) && (y0..y1).contains(&(p / w)))
        })
        .collect();
    let inside = Tensor::from_slice(&inside).view([n, -1]).gather(1, &order, false);
    // How many of the first k sorted pixels lie in the box, for every k.
    let inside_so_far = inside.to_kind(Kind::Int64).cumsum(1, Kind::Int64);
    let mut hits = vec![Vec::with_capacity(levels.len()); n as usize];
    for m in levels {
        let threshold = Tensor::from_slice(&total).unsqueeze(1) * m.clamp(0.0, 1.0);
        // The kept pixels are a prefix of the sorted order, the maximum at least.
        let kept = before.lt_tensor(&threshold).sum_dim_intlist(1, true, Kind::Int64).clamp_min(1);
        let kept_inside = inside_so_far.gather(1, &(&kept - 1), false);
        let (kept, kept_inside): (Vec<i64>, Vec<i64>) =
            (Vec::try_from(kept.view([-1])).expect("int64"), Vec::try_from(kept_inside.view([-1])).expect("int64"));
        for i in 0..n as usize {
            let share = kept_inside[i] as f64 / kept[i] as f64;
            hits[i].push(total[i] > 0.0 && share >= rule.inside - 1e-12);
        }
    }
    hits
}

/// Pointing accuracy against the kept share of energy, per method (fig. 7).
#[derive(Debug, Clone, PartialEq)]
pub struct PointingGame {
    pub levels: Vec<f64>,
    /// `(method, accuracy per level)`.
    pub curves: Vec<(String, Vec<f64>)>,
    /// Targets (object boxes) played.
    pub trials: usize,
}

impl PointingGame {
    pub fn curve(&self, method: &str) -> Option<&[f64]> {
        self.curves.iter().find(|(n, _)| n == method).map(|(_, c)| c.as_slice())
    }

    /// A method's accuracy averaged over the levels: the area under its curve.
    pub fn mean(&self, method: &str) -> Option<f64> {
        self.curve(method).map(|c| c.iter().sum::<f64>() / c.len().max(1) as f64)
    }

    pub fn plot(&self) -> LinePlot {
        let mut plot = LinePlot::new(format!("generalised pointing game ({} targets)", self.trials))
            .x_label("energy kept m")
            .y_label("accuracy")
            .size(560, 340);
        for (name, curve) in &self.curves {
            plot = plot.series(name.clone(), self.levels.clone(), curve.clone());
        }
        plot
    }
}

impl Render for PointingGame {
    fn render(&self) -> Output {
        let shown: Vec<usize> = (0..self.levels.len()).filter(|i| i % 5 == 0 || *i + 1 == self.levels.len()).collect();
        let head: String = shown.iter().map(|i| format!("<th>m={:.2}</th>", self.levels[*i])).collect();
        let mut html = format!("<table><tr><th>method</th>{head}<th>mean</th></tr>");
        let mut text = vec![format!("generalised pointing game, {} targets", self.trials)];
        for (name, curve) in &self.curves {
            let cells: String = shown.iter().map(|i| format!("<td>{:.3}</td>", curve[*i])).collect();
            let mean = self.mean(name).unwrap_or(f64::NAN);
            html.push_str(&format!("<tr><td>{name}</td>{cells}<td>{mean:.3}</td></tr>"));
            let values: Vec<String> = shown.iter().map(|i| format!("{:.3}", curve[*i])).collect();
            text.push(format!("{name:<14} {} | mean {mean:.3}", values.join(" ")));
        }
        html.push_str("</table>");
        let plot = self.plot().render();
        Output::html(html).and(Output::text(text.join("\n"))).with("image/png", plot.data()["image/png"].clone())
    }
}

/// One object to point at: an image, its box and its class.
#[derive(Debug, Clone)]
struct Target {
    image: i64,
    bbox: BoundingBox,
    concept: String,
}

/// The targets of `scenes`: every object with at least `min_pixels` visible pixels whose
/// class has a SeVec and occurs once in its image (a second object of the class would make
/// "its box" ambiguous).
fn targets(scenes: &ConceptScenes, sevecs: &SemanticVectors, min_pixels: usize) -> Vec<Target> {
    let vocabulary = scenes.vocabulary();
    let mut out = Vec::new();
    for (image, boxes) in scenes.boxes.iter().enumerate() {
        for b in boxes.iter().filter(|b| b.pixels >= min_pixels) {
            if boxes.iter().filter(|o| o.object == b.object).count() > 1 {
                continue;
            }
            let concept = vocabulary.qualified_name(Concept { category: Category::Object, index: b.object as usize });
            if sevecs.find(&concept).is_ok() {
                out.push(Target { image: image as i64, bbox: *b, concept });
            }
        }
    }
    out
}

/// Plays the generalised pointing game on every target of `scenes` with Guided Backprop and
/// Gradient×Input, plain and semantic (gated by the SeVecs of each target's class), a map
/// of uniform random energy, and a map peaked at the image centre (the paper's warning that
/// pointing at the centre scores surprisingly well).
pub fn pointing_game(
    net: &impl Tapped,
    sevecs: &SemanticVectors,
    scenes: &ConceptScenes,
    config: &PointingConfig,
) -> Result<PointingGame, MetricError> {
    let mut targets = targets(scenes, sevecs, config.min_pixels);
    // An object the net has no class for cannot be explained as a class.
    targets.retain(|t| sevecs.class_index(&t.concept).is_ok_and(|c| c < net.num_classes()));
    if targets.is_empty() || config.levels.is_empty() || config.batch_size == 0 {
        return Err(MetricError::Invalid("no target objects, levels or batch size to play with".into()));
    }
    let (h, w) = (scenes.images.size()[2], scenes.images.size()[3]);
    // Guided Backprop and the semantic gates reach inside the model; an export, which runs
    // in libtorch as one piece, plays with plain Gradient×Input.
    let open = net.runs_in_glassbox();
    let methods: Vec<Method> = [Method::GuidedBackprop, Method::GradientInput]
        .into_iter()
        .filter(|m| open || *m == Method::GradientInput)
        .collect();
    let variants: &[bool] = if open { &[false, true] } else { &[false] };
    let names: Vec<String> = methods
        .iter()
        .flat_map(|m| {
            variants.iter().map(move |semantic| format!("{}{}", if *semantic { "semantic " } else { "" }, m.name()))
        })
        .chain(["random".to_owned(), "centre".to_owned()])
        .collect();
    let mut hits = vec![vec![0usize; config.levels.len()]; names.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut progress = Progress::new("pointing game", Some(targets.len().div_ceil(config.batch_size) as u64));
    for chunk in targets.chunks(config.batch_size) {
        let index: Vec<i64> = chunk.iter().map(|t| t.image).collect();
        let images = at_input_size(net, &scenes.images.index_select(0, &Tensor::from_slice(&index)));
        // Energy back at the scene's size, where the boxes are.
        let at_scene = |e: Tensor| {
            if e.size()[1..] == [h, w] {
                e
            } else {
                e.unsqueeze(1).upsample_bilinear2d([h, w], false, None, None).squeeze_dim(1)
            }
        };
        let concepts: Vec<&str> = chunk.iter().map(|t| t.concept.as_str()).collect();
        let classes: Vec<i64> = concepts.iter().map(|c| sevecs.class_index(c)).collect::<Result<_, _>>()?;
        let gate = sevecs.gate(&concepts)?;
        let mut maps = Vec::new();
        for &method in &methods {
            for &semantic in variants {
                let gate = semantic.then_some(&gate);
                maps.push(at_scene(energy(&saliency(net, &images, &classes, method, gate)?)));
            }
        }
        let noise: Vec<f32> = (0..chunk.len() as i64 * h * w).map(|_| rng.gen::<f32>()).collect();
        maps.push(Tensor::from_slice(&noise).view([-1, h, w]));
        maps.push(centre_map(chunk.len() as i64, h, w));
        let boxes: Vec<BoundingBox> = chunk.iter().map(|t| t.bbox).collect();
        for (method, map) in maps.iter().enumerate() {
            for row in pointing_hits(map, &boxes, &config.levels, &config.rule) {
                for (level, hit) in row.into_iter().enumerate() {
                    hits[method][level] += usize::from(hit);
                }
            }
        }
        progress.step()?;
    }
    progress.finish();
    let trials = targets.len();
    Ok(PointingGame {
        levels: config.levels.clone(),
        curves: names
            .iter()
            .zip(hits)
            .map(|(n, h)| (n.to_string(), h.into_iter().map(|c| c as f64 / trials as f64).collect()))
            .collect(),
        trials,
    })
}

/// Energy falling off with the distance from the image centre, `[n, h, w]`.
fn centre_map(n: i64, h: i64, w: i64) -> Tensor {
    let axis = |len: i64| {
        let t = Tensor::arange(len, (Kind::Float, Device::Cpu)) + 0.5 - len as f64 / 2.0;
        t.square() / (len * len) as f64
    };
    let d = axis(h).unsqueeze(1) + axis(w).unsqueeze(0);
    (d * 50.0 + 1.0).reciprocal().unsqueeze(0).expand([n, h, w], false).contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x0: usize, y0: usize, x1: usize, y1: usize) -> BoundingBox {
        BoundingBox { object: 5, x0, y0, x1, y1, pixels: (x1 - x0) * (y1 - y0) }
    }

    fn levels() -> Vec<f64> {
        (0..=10).map(|i| i as f64 / 10.0).collect()
    }

    #[test]
    fn energy_inside_the_box_hits_at_every_level_and_outside_misses_at_every_level() {
        let b = bbox(2, 3, 6, 7);
        let inside = Tensor::zeros([1, 10, 10], tch::kind::FLOAT_CPU);
        let _ = inside.narrow(1, 3, 4).narrow(2, 2, 4).fill_(1.0);
        let _ = inside.get(0).get(4).get(4).fill_(5.0); // a peak inside
        let outside = Tensor::ones([1, 10, 10], tch::kind::FLOAT_CPU) - inside.gt(0.0).to_kind(Kind::Float);
        let hits = pointing_hits(&Tensor::cat(&[&inside, &outside], 0), &[b, b], &levels(), &HitRule::default());
        assert_eq!(hits[0], vec![true; 11]);
        assert_eq!(hits[1], vec![false; 11]);
        let empty =
            pointing_hits(&Tensor::zeros([1, 10, 10], tch::kind::FLOAT_CPU), &[b], &[0.0, 1.0], &HitRule::default());
        assert_eq!(empty[0], [false, false]);
    }

    /// 70% of the energy on two strong pixels in the box, 30% on three weak ones outside:
    /// a hit while the kept share stays within the box's 70%, a miss beyond.
    #[test]
    fn a_map_split_between_box_and_background_hits_only_while_the_kept_energy_fits() {
        let b = bbox(0, 0, 2, 2);
        let e = Tensor::zeros([1, 4, 4], tch::kind::FLOAT_CPU);
        for (y, x, v) in [(0, 0, 4.0), (1, 1, 3.0), (3, 3, 1.0), (3, 2, 1.0), (2, 3, 1.0)] {
            let _ = e.get(0).get(y).get(x).fill_(v);
        }
        let hits = pointing_hits(&e, &[b], &levels(), &HitRule::default());
        let expected: Vec<bool> = levels().iter().map(|m| *m <= 0.7 + 1e-9).collect();
        assert_eq!(hits[0], expected);
        // Widening the box by the tolerance takes in the weak pixels too.
        let wide = HitRule { tolerance: 2, inside: 1.0 };
        assert_eq!(pointing_hits(&e, &[b], &[1.0], &wide)[0], [true]);
        // Asking for half the kept pixels in the box: 2 of 3 at m = 0.8, 2 of 5 at m = 1.
        let half = HitRule { tolerance: 0, inside: 0.5 };
        assert_eq!(pointing_hits(&e, &[b], &[0.7, 0.8, 1.0], &half)[0], [true, true, false]);
    }

    #[test]
    fn the_centre_map_peaks_in_the_middle() {
        let c = centre_map(2, 8, 8);
        assert_eq!(c.size(), [2, 8, 8]);
        let hits = pointing_hits(&c, &[bbox(3, 3, 5, 5), bbox(0, 0, 2, 2)], &[0.0], &HitRule::default());
        assert_eq!((hits[0][0], hits[1][0]), (true, false));
    }
}
