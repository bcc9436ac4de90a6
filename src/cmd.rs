//! What the kernel's `:commands` call: one typed function per command whose work is more than
//! a single library call, so that its orchestration is Rust that `cargo build` checks. The
//! kernel validates flags and names variables; these functions take the values themselves.

use crate::bottleneck::{self, Plain, Regularizer, SbError, SbNet, SsbTraining, Usb};
use crate::data::{Category, ColorMnist, ColorMnistConfig, ConceptDataset, ConceptScenes, DataError, Mnist};
use crate::display::Output;
use crate::inn::interpret::{first, split_held_out, train_layer};
use crate::inn::{
    AttackDecoding, Autoencoder, FactorProbe, Frozen, InnError, Invariances, LayerInn, SemanticInn, Sensitivity,
    SensitivityConfig, Swap,
};
use crate::metrics::{explain, Method, MetricError, SaliencyComparison, SemanticVectors};
use crate::models::{Editable, Tapped, TaskData, TrainConfig};
use crate::zoo;
use crate::zoo::Pretrained;

/// `:data colormnist`: `n` coloured digits drawn from the MNIST digits fetched at set-up.
pub fn colormnist(n: usize, config: &ColorMnistConfig) -> Result<ColorMnist, DataError> {
    ColorMnist::generate(&Mnist::load()?, n, config)
}

/// `:ssb`: a supervised semantic bottleneck after stage `after` of `net`, trained on the
/// concept `groups` of `data` in two phases (SB paper sec. 3.1); `seed` seeds libtorch
/// before the bottleneck's weights are drawn.
pub fn ssb<N: Editable, D: ConceptDataset + ?Sized>(
    net: &N,
    after: &str,
    groups: &[Category],
    data: &D,
    test: Option<&D>,
    training: &SsbTraining,
    seed: Option<i64>,
) -> Result<SbNet<N>, SbError> {
    if let Some(seed) = seed {
        tch::manual_seed(seed);
    }
    bottleneck::ssb(net, after, groups, data, test, training)
}

/// `:usb`: an unsupervised semantic bottleneck of `groups` one-hot groups of `width`
/// channels after stage `after` of `net`, trained with `regularizer` on `data` (SB paper
/// sec. 3.2, eq. 21-22); `seed` seeds libtorch before the bottleneck's weights are drawn.
#[allow(clippy::too_many_arguments)]
pub fn usb<N: Editable, D: TaskData + ?Sized>(
    net: &N,
    after: &str,
    groups: usize,
    width: i64,
    regularizer: Regularizer,
    data: &D,
    test: Option<&D>,
    config: &TrainConfig,
    seed: Option<i64>,
) -> Result<SbNet<N>, SbError> {
    let usb = Usb::new(groups, width)?.with(regularizer);
    if let Some(seed) = seed {
        tch::manual_seed(seed);
    }
    bottleneck::usb(net, after, usb, data, test, config)
}

/// `:bottleneck`: a plain bottleneck of `width` linear channels after stage `after` of
/// `net`, trained as a USB is without its softmax (SB paper table 7's baseline); `seed`
/// seeds libtorch before its weights are drawn.
pub fn plain<N: Editable, D: TaskData + ?Sized>(
    net: &N,
    after: &str,
    width: i64,
    data: &D,
    test: Option<&D>,
    config: &TrainConfig,
    seed: Option<i64>,
) -> Result<SbNet<N>, SbError> {
    let plain = Plain::new(width)?;
    if let Some(seed) = seed {
        tch::manual_seed(seed);
    }
    bottleneck::plain(net, after, plain, data, test, config)
}

/// How many held-out images `:sensitivity` samples each checkpoint's t on.
const SENSITIVITY_HELD_OUT: usize = 200;

/// `:cinn`: t for `layer` of `model`, trained on the images of `data` (invariances paper
/// sec. 3.1).
pub fn cinn<M: Frozen>(
    model: &M,
    ae: &Autoencoder,
    layer: &str,
    data: &ColorMnist,
    steps: usize,
    seed: u64,
) -> Result<LayerInn<M>, InnError> {
    train_layer(model, ae, layer, &data.images, steps, seed)
}

/// `:invariance`: how much of each layer's t is invariance, on `count` held-out images of
/// `data`, with `n` samples each (invariances paper fig. 3).
pub fn invariance<M: Frozen>(
    cinns: &[&LayerInn<M>],
    data: &ColorMnist,
    count: usize,
    n: usize,
    seed: u64,
) -> Result<Invariances, InnError> {
    let (_, held_out) = split_held_out(&data.images)?;
    Invariances::measure(cinns, &first(&held_out, count), n, seed)
}

/// `:fgsm`: adversarial attacks on the first `count` images of `data`, decoded by each t
/// (invariances paper fig. 5).
pub fn fgsm<M: Frozen>(
    cinns: &[&LayerInn<M>],
    data: &ColorMnist,
    count: usize,
    eps: f64,
) -> Result<AttackDecoding, InnError> {
    AttackDecoding::new(cinns, &first(&data.images, count), &first(&data.digits, count), eps)
}

/// `:swap`: the semantic factors of the first `count` images of `data` swapped with those of
/// the next `count` (invariances paper fig. 7).
pub fn swap(e: &SemanticInn, ae: &Autoencoder, data: &ColorMnist, count: usize) -> Result<Swap, InnError> {
    let have = data.images.size()[0];
    let count = count as i64;
    if have < 2 * count {
        return Err(InnError::BadInput(format!(
            "swapping {count} images needs {} of the data set; it has {have}",
            2 * count
        )));
    }
    Swap::new(e, ae, &data.images.narrow(0, 0, count), &data.images.narrow(0, count, count))
}

/// `:factor-probe`: how well the digit factor of `e` predicts the digits of `data`.
pub fn factor_probe(e: &SemanticInn, ae: &Autoencoder, data: &ColorMnist) -> Result<FactorProbe, InnError> {
    FactorProbe::fit(e, ae, &data.images, &data.digits, "digit")
}

/// `:sensitivity`: the zoo model `name` at each of its `checkpoints` (all when `None`): its
/// stage `layer`'s t, trained on `data` but its held-out eighth, and how its semantic
/// factors change (invariances paper fig. 4).
#[allow(clippy::too_many_arguments)]
pub fn sensitivity<M: Frozen + Pretrained>(
    name: &str,
    layer: &str,
    checkpoints: Option<&[usize]>,
    e: &SemanticInn,
    ae: &Autoencoder,
    data: &ColorMnist,
    steps: usize,
    samples: usize,
    seed: u64,
) -> Result<Sensitivity, InnError> {
    let model: M = zoo::load(name, ae.device())?;
    let stage = model.stage(layer)?;
    let (train, held_out) = split_held_out(&data.images)?;
    let config = SensitivityConfig { stage, steps, samples, seed };
    Sensitivity::measure::<M>(name, checkpoints, ae, e, &train, &first(&held_out, SENSITIVITY_HELD_OUT), &config)
}

/// `:saliency`: image `index` of `data` explained for `classes` by each of `methods`, and
/// when `semantic` beside each its SeVec-guided version (SeVec paper fig. 7).
pub fn saliency(
    net: &impl Tapped,
    sevecs: &SemanticVectors,
    data: &ConceptScenes,
    index: usize,
    classes: &[&str],
    methods: &[Method],
    semantic: bool,
) -> Result<SaliencyComparison, MetricError> {
    if index >= data.len() {
        return Err(MetricError::Invalid(format!(
            "the data set has {} images; IMAGE takes an index below that, got {index}",
            data.len()
        )));
    }
    explain(net, sevecs, &data.images.get(index as i64), classes, methods, semantic)
}

/// `:relevance A B` for two concepts: the cosine of their semantic vectors (SeVec paper
/// eq. 4), as a line.
pub fn relevance(sevecs: &SemanticVectors, a: &str, b: &str) -> Result<Output, MetricError> {
    Ok(Output::text(format!("cos(v_{a}, v_{b}) = {:.3}", sevecs.relevance(a, b)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inn::semantic::RESIDUAL;
    use crate::inn::{AutoencoderConfig, FactorSizes, SemanticConfig};
    use tch::{Device, Kind, Tensor};

    fn digits(n: i64) -> ColorMnist {
        let zeros = |shape: &[i64]| Tensor::zeros(shape, tch::kind::FLOAT_CPU);
        ColorMnist {
            images: Tensor::rand([n, 3, 32, 32], tch::kind::FLOAT_CPU),
            digits: Tensor::zeros([n], (Kind::Int64, Device::Cpu)),
            foreground: zeros(&[n, 3]),
            background: zeros(&[n, 3]),
            sources: vec![0; n as usize],
        }
    }

    #[test]
    fn swap_takes_its_images_and_donors_from_the_data_set_or_says_how_many_it_lacks() {
        tch::manual_seed(0);
        let factors = FactorSizes { names: vec![RESIDUAL.into(), "x".into()], sizes: vec![60, 4] };
        let config = SemanticConfig { blocks: 2, hidden: 16, ..Default::default() };
        let e = SemanticInn::new(64, factors, config, Device::Cpu).unwrap();
        let ae =
            Autoencoder::new(AutoencoderConfig { widths: vec![4, 4, 4], ..Default::default() }, Device::Cpu).unwrap();
        let err = swap(&e, &ae, &digits(5), 3).unwrap_err().to_string();
        assert!(err.contains("swapping 3 images needs 6 of the data set; it has 5"), "{err}");
        let data = digits(6);
        let swapped = swap(&e, &ae, &data, 3).unwrap();
        let direct = Swap::new(&e, &ae, &data.images.narrow(0, 0, 3), &data.images.narrow(0, 3, 3)).unwrap();
        assert!(swapped.a.equal(&direct.a) && swapped.b.equal(&direct.b));
        assert!(swapped.swapped.allclose(&direct.swapped, 1e-6, 1e-6, false));
    }
}
