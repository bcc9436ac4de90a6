//! Saliency maps for a class, and their semantic versions (SeVec paper sec. 5).
//!
//! Two backpropagation methods, as the paper takes them: Guided Backprop, a local method
//! (gradients cross every ReLU only where both gradient and input are positive, see
//! [`crate::models::relu`]), and Gradient×Input, a global one (the plain gradient times the
//! input, the marginal effect against a black reference). Their semantic versions suppress,
//! in the backward pass at one layer, the units that are irrelevant to the explained class:
//! those active on at most half of the class's images, read off its SeVec
//! ([`crate::metrics::sevec::SemanticVectors::gate`]): `R^l = R^{l+1} 1[... and V_i > 0.5]`.
//! The forward pass is untouched; a [`Gate`] only stops gradients.
//!
//! The class score `o_i` of a segmentation net is the spatial mean of its class logits
//! ([`class_scores`]). Its head is a 1×1 convolution upsampled to the image, so that mean is
//! a linear function of the (upsampled) last stage averaged over the image: the global
//! average-pooling classifier of a classification net, trained here through the pixels.

use tch::{Device, Kind, Tensor};

use super::MetricError;
use crate::display::{Output, Render};
use crate::models::relu::{guided_rule, record};
use crate::models::{Stage, Tapped};
use crate::viz::Grid;

/// How a saliency map is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Guided Backprop (Springenberg et al. 2014).
    GuidedBackprop,
    /// Gradient×Input (Shrikumar et al. 2017; equal to ε-LRP in ReLU nets).
    GradientInput,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::GuidedBackprop => "GBP",
            Method::GradientInput => "GxI",
        }
    }
}

/// Which units of a stage let gradients through: `keep` is `[N or 1, C, H, W]` of 0 and 1
/// over the stage's output.
#[derive(Debug)]
pub struct Gate {
    pub stage: Stage,
    pub keep: Tensor,
}

impl Gate {
    /// `xs` unchanged in the forward pass; in the backward pass the gradient reaches `xs`
    /// only at kept units (exactly the plain gradient there, exactly zero elsewhere).
    pub fn apply(&self, xs: &Tensor) -> Tensor {
        let keep = self.keep.to_device(xs.device()).to_kind(xs.kind());
        let dropped: Tensor = 1.0 - &keep;
        let passed: Tensor = xs * &keep;
        passed + (xs * dropped).detach()
    }
}

/// Class scores `[N, K]` from logits: the logits of a classifier, the spatial mean of a
/// segmentation net's per-pixel logits (see the module docs).
pub fn class_scores(logits: &Tensor) -> Tensor {
    match logits.dim() {
        4 => logits.mean_dim(&[2i64, 3][..], false, None),
        _ => logits.shallow_clone(),
    }
}

/// Runs `net` from after stage `from` (from the input `xs` when `None`) to the logits, the
/// output of each stage of `at` passing through `edit`. With `from`, `xs` is that stage's
/// output for images of `input_size` `(H, W)`: it replaces the stage's output in a pass over
/// blank images, which is exactly running the rest of the net for any stage whose output
/// is all that later stages see (every stage of a chain; a residual block, not a layer
/// inside one, whose skip path would still carry the blank image's features).
pub fn forward_from(
    net: &impl Tapped,
    from: Option<&Stage>,
    xs: &Tensor,
    input_size: (i64, i64),
    at: &[Stage],
    edit: impl Fn(&Stage, Tensor) -> Tensor,
) -> Result<Tensor, MetricError> {
    let Some(from) = from else {
        return Ok(net.forward_edited(xs, at, &edit)?);
    };
    if *from == Stage::Head || !net.stages().iter().any(|s| &s.stage == from) {
        return Err(MetricError::Invalid(format!("cannot run from `{from}`; it is not a stage before the head")));
    }
    let (h, w) = input_size;
    let blank = Tensor::zeros([xs.size()[0], net.in_channels(), h, w], (Kind::Float, net.device()));
    let mut edited: Vec<Stage> = at.to_vec();
    edited.push(from.clone());
    let replace = |stage: &Stage, y: Tensor| {
        if stage == from {
            xs.shallow_clone()
        } else if at.contains(stage) {
            edit(stage, y)
        } else {
            y
        }
    };
    Ok(net.forward_edited(&blank, &edited, &replace)?)
}

/// Saliency maps `[N, 3, H, W]` (CPU) of `images` for `classes` (one per image), by
/// `method`, with gradients stopped at the units `gate` drops if given.
pub fn saliency(
    net: &impl Tapped,
    images: &Tensor,
    classes: &[i64],
    method: Method,
    gate: Option<&Gate>,
) -> Result<Tensor, MetricError> {
    let size = images.size();
    if size.len() != 4 || size[0] != classes.len() as i64 {
        return Err(MetricError::Invalid(format!("{} classes for images {size:?}; give one per image", classes.len())));
    }
    if let Some(bad) = classes.iter().find(|c| !(0..net.num_classes()).contains(*c)) {
        return Err(MetricError::Invalid(format!("class {bad} is not among the net's {}", net.num_classes())));
    }
    let (h, w) = (size[2], size[3]);
    if let Some(gate) = gate {
        check_gate(net, gate, (h, w), size[0])?;
    }
    if method == Method::GuidedBackprop && !net.runs_in_glassbox() {
        return Err(MetricError::Invalid(
            "Guided Backprop rewrites how gradients cross glassbox's own ReLUs, and this model's ReLUs run inside \
             libtorch (a TorchScript export); use Gradient×Input (`--method gxi`)"
                .into(),
        ));
    }
    let xs = images.to_device(net.device());
    let index = Tensor::from_slice(classes).to_device(net.device()).unsqueeze(1);
    let score = |x: &Tensor| -> Result<Tensor, MetricError> {
        let at: Vec<Stage> = gate.iter().map(|g| g.stage.clone()).collect();
        let edit = |_: &Stage, y: Tensor| match gate {
            Some(g) => g.apply(&y),
            None => y,
        };
        let logits = forward_from(net, None, x, (h, w), &at, edit)?;
        Ok(class_scores(&logits).gather(1, &index, false).sum(Kind::Float))
    };
    let maps = match method {
        Method::GuidedBackprop => {
            let (s, tape) = record(&xs, score);
            tape.backward(&s?, guided_rule)
        }
        Method::GradientInput => {
            let leaf = xs.detach().set_requires_grad(true);
            let grad = tch::with_grad(|| -> Result<Tensor, MetricError> {
                let s = score(&leaf)?;
                Ok(Tensor::run_backward(&[&s], &[&leaf], false, false).remove(0))
            })?;
            grad * &xs
        }
    };
    Ok(maps.detach().to_device(Device::Cpu))
}

fn check_gate(net: &impl Tapped, gate: &Gate, input: (i64, i64), n: i64) -> Result<(), MetricError> {
    let shapes = net.output_shapes(input)?;
    let Some((_, shape)) = shapes.iter().find(|(s, _)| *s == gate.stage && *s != Stage::Head) else {
        return Err(MetricError::Invalid(format!("the gate is at `{}`, which is not a stage of the net", gate.stage)));
    };
    let keep = gate.keep.size();
    if keep.len() != shape.len() || keep[1..] != shape[1..] || (keep[0] != 1 && keep[0] != n) {
        return Err(MetricError::Invalid(format!(
            "the gate keeps {keep:?} but `{}` outputs {:?} per image for {n} images",
            gate.stage,
            &shape[1..]
        )));
    }
    Ok(())
}

/// `images` `[N, C, H, W]` resized (whole, not cropped) to the size `net` takes when it
/// has one, so that its units line up with SeVecs measured at that size; positions in the
/// frame, and so bounding boxes, keep their relative place.
pub fn at_input_size(net: &impl Tapped, images: &Tensor) -> Tensor {
    let size = images.size();
    match net.input_size() {
        Some((h, w)) if (h, w) != (size[2], size[3]) => {
            images.to_kind(Kind::Float).internal_upsample_bilinear2d_aa([h, w], false, None, None)
        }
        _ => images.shallow_clone(),
    }
}

/// The energy of saliency maps `[N, C, H, W]`: `|map|` summed over channels, `[N, H, W]`.
pub fn energy(maps: &Tensor) -> Tensor {
    maps.abs().sum_dim_intlist(1, false, Kind::Float)
}

/// Fig. 6: one image explained for several classes, by each method and its semantic version.
#[derive(Debug)]
pub struct SaliencyComparison {
    pub classes: Vec<String>,
    /// Column names: `GBP`, `semantic GBP`, `GxI`, `semantic GxI`.
    pub methods: Vec<String>,
    /// `[3, H, W]`.
    pub image: Tensor,
    /// `[classes, methods, H, W]` energies.
    pub energies: Tensor,
}

/// Explains `image` (`[3, H, W]`) for each of `classes` (object concepts with SeVecs at a
/// stage of `net`) with Guided Backprop and Gradient×Input, plain and semantic (fig. 6).
pub fn compare_saliency(
    net: &impl Tapped,
    sevecs: &super::sevec::SemanticVectors,
    image: &Tensor,
    classes: &[&str],
) -> Result<SaliencyComparison, MetricError> {
    explain(net, sevecs, image, classes, &[Method::GuidedBackprop, Method::GradientInput], true)
}

/// As [`compare_saliency`] with a choice of `methods`, each plain and, when `semantic`, beside
/// it its SeVec-guided version.
pub fn explain(
    net: &impl Tapped,
    sevecs: &super::sevec::SemanticVectors,
    image: &Tensor,
    classes: &[&str],
    methods: &[Method],
    semantic: bool,
) -> Result<SaliencyComparison, MetricError> {
    if methods.is_empty() || classes.is_empty() {
        return Err(MetricError::Invalid("name at least one method and one class to explain".into()));
    }
    let image = if image.dim() == 4 { image.get(0) } else { image.shallow_clone() };
    let image = at_input_size(net, &image.unsqueeze(0)).get(0);
    let indices: Vec<i64> = classes.iter().map(|c| sevecs.class_index(c)).collect::<Result<_, _>>()?;
    let n = classes.len() as i64;
    let images = image.unsqueeze(0).expand([n, -1, -1, -1], false).contiguous();
    let gate = sevecs.gate(classes)?;
    let mut columns = Vec::new();
    let mut names = Vec::new();
    for &method in methods {
        for guided in [false, true].into_iter().filter(|g| !g || semantic) {
            let maps = saliency(net, &images, &indices, method, guided.then_some(&gate))?;
            columns.push(energy(&maps));
            names.push(format!("{}{}", if guided { "semantic " } else { "" }, method.name()));
        }
    }
    Ok(SaliencyComparison {
        classes: classes.iter().map(|c| sevecs.concepts[sevecs.find(c).expect("resolved")].clone()).collect(),
        methods: names,
        image: image.to_device(Device::Cpu),
        energies: Tensor::stack(&columns, 1),
    })
}

/// Rows of classes: the image, then each method's map in grey, scaled to its 99th
/// percentile so that a few strong pixels do not hide the rest.
impl Render for SaliencyComparison {
    fn render(&self) -> Output {
        let (r, m) = (self.energies.size()[0], self.energies.size()[1]);
        let mut cells = Vec::new();
        let mut labels = Vec::new();
        for row in 0..r {
            cells.push(self.image.shallow_clone());
            labels.push(self.classes[row as usize].clone());
            for col in 0..m {
                let e = self.energies.get(row).get(col);
                let top = e.flatten(0, -1).quantile_scalar(0.99, None, false, "linear").double_value(&[]).max(1e-12);
                cells.push((e / top).clamp(0.0, 1.0).unsqueeze(0).expand([3, -1, -1], false));
                labels.push(self.methods[col as usize].clone());
            }
        }
        let summary = format!("saliency of {} for {}", self.methods.join(", "), self.classes.join(", "));
        Grid::new(&Tensor::stack(&cells, 0))
            .columns(1 + m as usize)
            .labels(labels)
            .scale(3)
            .render()
            .with("text/plain", summary.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Arch, ResNetConfig, ScriptModel, TappedNet, Task, VisionNet};
    use tch::nn::ModuleT;

    #[test]
    fn saliency_runs_on_torchvision_nets_and_exports_say_what_they_cannot_do() {
        let _serial = crate::models::serial();
        tch::manual_seed(1);
        let net = VisionNet::new(Arch::ResNet18, 5, Device::Cpu).unwrap();
        let x = Tensor::rand([2, 3, 32, 32], tch::kind::FLOAT_CPU);
        let stage = net.stage("layer2.1").unwrap();
        let all = Gate { stage: stage.clone(), keep: Tensor::ones([1, 128, 4, 4], tch::kind::FLOAT_CPU) };
        let none = Gate { stage: stage.clone(), keep: Tensor::zeros([1, 128, 4, 4], tch::kind::FLOAT_CPU) };
        for method in [Method::GuidedBackprop, Method::GradientInput] {
            let plain = saliency(&net, &x, &[0, 4], method, None).unwrap();
            assert!(plain.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{method:?}");
            assert!(saliency(&net, &x, &[0, 4], method, Some(&all)).unwrap().allclose(&plain, 1e-6, 1e-7, false));
            assert_eq!(saliency(&net, &x, &[0, 4], method, Some(&none)).unwrap().abs().max().double_value(&[]), 0.0);
        }
        // Running on from a block's output is running the rest of the net.
        let (logits, taps) = net.forward_taps(&x, std::slice::from_ref(&stage), false).unwrap();
        let rest = forward_from(&net, Some(&stage), &taps[&stage], (32, 32), &[], |_, t| t).unwrap();
        assert!(rest.allclose(&logits, 1e-5, 1e-6, false));

        let export = crate::models::fixture::path("script", "taps.pt");
        let script = ScriptModel::load(export, Device::Cpu).unwrap();
        let plain = saliency(&script, &x, &[0, 4], Method::GradientInput, None).unwrap();
        assert!(plain.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        let err = saliency(&script, &x, &[0, 4], Method::GuidedBackprop, None).unwrap_err().to_string();
        assert!(err.contains("--method gxi"), "{err}");
        let conv2 = script.stage("conv2").unwrap();
        let gate = Gate { stage: conv2, keep: Tensor::ones([1, 8, 10, 10], tch::kind::FLOAT_CPU) };
        let err = saliency(&script, &x, &[0, 4], Method::GradientInput, Some(&gate)).unwrap_err().to_string();
        assert!(err.contains("runs as one piece"), "{err}");
    }

    fn tiny(task: Task) -> TappedNet {
        tch::manual_seed(4);
        let config = ResNetConfig {
            widths: vec![4, 8],
            depths: vec![1, 1],
            strides: vec![1, 2],
            stem_width: 4,
            ..ResNetConfig::small(task, 3)
        };
        TappedNet::new(config, Device::Cpu).unwrap()
    }

    /// The gradient at a gated stage is exactly zero on dropped units and exactly the plain
    /// gradient on kept ones, and the forward pass does not change.
    #[test]
    fn a_gate_passes_gradient_only_through_kept_units() {
        let _serial = crate::models::serial();
        let net = tiny(Task::Segmentation);
        let x = Tensor::rand([2, 3, 8, 8], tch::kind::FLOAT_CPU);
        let stage = Stage::Block(1);
        let (_, taps) = net.forward_taps(&x, std::slice::from_ref(&stage), false).unwrap();
        let acts = taps[&stage].detach();
        let keep = Tensor::rand(acts.size(), tch::kind::FLOAT_CPU).gt(0.5).to_kind(Kind::Float);
        let gate = Gate { stage: stage.clone(), keep: keep.shallow_clone() };
        let grad = |gated: bool| {
            let leaf = acts.detach().set_requires_grad(true);
            tch::with_grad(|| {
                let y = if gated { gate.apply(&leaf) } else { leaf.shallow_clone() };
                let logits = forward_from(&net, Some(&stage), &y, (8, 8), &[], |_, t| t).unwrap();
                let s = class_scores(&logits).select(1, 2).sum(Kind::Float);
                (logits.detach(), Tensor::run_backward(&[s], &[&leaf], false, false).remove(0))
            })
        };
        let ((plain_logits, plain), (gated_logits, gated)) = (grad(false), grad(true));
        assert!(plain_logits.equal(&gated_logits));
        let dropped = keep.eq(0.0);
        assert_eq!(gated.masked_select(&dropped).abs().max().double_value(&[]), 0.0);
        assert!(gated.masked_select(&keep.eq(1.0)).equal(&plain.masked_select(&keep.eq(1.0))));
        assert!(plain.masked_select(&dropped).abs().max().double_value(&[]) > 0.0, "the test must drop something");
        assert!(forward_from(&net, None, &x, (8, 8), &[], |_, t| t).unwrap().equal(&net.forward_t(&x, false)));
    }

    #[test]
    fn saliency_maps_have_the_image_shape_and_gates_change_them() {
        let _serial = crate::models::serial();
        let net = tiny(Task::Classification);
        let x = Tensor::rand([2, 3, 8, 8], tch::kind::FLOAT_CPU);
        let stage = Stage::Block(2);
        let all = Gate { stage: stage.clone(), keep: Tensor::ones([1, 8, 4, 4], tch::kind::FLOAT_CPU) };
        let none = Gate { stage: stage.clone(), keep: Tensor::zeros([2, 8, 4, 4], tch::kind::FLOAT_CPU) };
        for method in [Method::GuidedBackprop, Method::GradientInput] {
            let plain = saliency(&net, &x, &[0, 2], method, None).unwrap();
            assert_eq!(plain.size(), [2, 3, 8, 8]);
            assert!(plain.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{method:?}");
            assert!(saliency(&net, &x, &[0, 2], method, Some(&all)).unwrap().allclose(&plain, 1e-6, 1e-7, false));
            assert_eq!(saliency(&net, &x, &[0, 2], method, Some(&none)).unwrap().abs().max().double_value(&[]), 0.0);
        }
        let gbp = saliency(&net, &x, &[0, 2], Method::GuidedBackprop, None).unwrap();
        let gxi = saliency(&net, &x, &[0, 2], Method::GradientInput, None).unwrap();
        assert!(!gbp.allclose(&gxi, 1e-4, 1e-6, false));
        assert_eq!(energy(&gbp).size(), [2, 8, 8]);
        let bad = Gate { stage, keep: Tensor::ones([1, 8, 2, 2], tch::kind::FLOAT_CPU) };
        let e = saliency(&net, &x, &[0, 2], Method::GradientInput, Some(&bad)).unwrap_err().to_string();
        assert!(e.contains("outputs [8, 4, 4]"), "{e}");
        assert!(saliency(&net, &x, &[0], Method::GradientInput, None).is_err());
        assert!(saliency(&net, &x, &[0, 3], Method::GradientInput, None).is_err());
    }
}
