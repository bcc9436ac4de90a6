//! Resizing and centre cropping on the way into a network: torchvision's
//! `Resize(size)` followed by `CenterCrop(crop)`, applied alike to images (bilinear, with
//! antialiasing when shrinking, as torchvision does on tensors) and to concept label maps
//! (nearest, so labels stay labels). The mean/std normalization of ImageNet preprocessing is
//! the network's own ([`crate::models::Normalize`]), so what comes out of here is still
//! images in `[0, 1]` that every data set and picture understands.

use std::collections::BTreeMap;
use std::ops::Range;

use tch::{Kind, Tensor};

use super::{Category, Concept, ConceptBatch, ConceptDataset, DataError, Vocabulary};

/// `Resize(resize)` then `CenterCrop(crop)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preprocess {
    /// The length the shorter side is resized to; the longer keeps the aspect ratio.
    pub resize: i64,
    /// `(height, width)` of the centre crop.
    pub crop: (i64, i64),
}

impl Preprocess {
    /// ImageNet's evaluation transform: shorter side to 256, centre crop 224x224.
    pub const IMAGENET: Preprocess = Preprocess { resize: 256, crop: (224, 224) };

    /// Shorter side to `size`, then the centre square of `size`.
    pub fn square(size: i64) -> Preprocess {
        Preprocess { resize: size, crop: (size, size) }
    }

    fn check(&self) -> Result<(), DataError> {
        let (ch, cw) = self.crop;
        if self.resize < 1 || ch < 1 || cw < 1 {
            return Err(DataError::InvalidConfig(format!(
                "resize {} and crop {ch}x{cw} must be positive",
                self.resize
            )));
        }
        Ok(())
    }

    /// The size an `(h, w)` image has after `Resize`: torchvision's rule, the shorter side
    /// at `resize` and the longer truncated to keep the ratio.
    fn resized(&self, (h, w): (i64, i64)) -> (i64, i64) {
        if h <= w {
            (self.resize, (self.resize as f64 * w as f64 / h as f64) as i64)
        } else {
            ((self.resize as f64 * h as f64 / w as f64) as i64, self.resize)
        }
    }

    /// Top-left corner of the centre crop of an `(h, w)` image, rounded as Python's
    /// `round` does (half to even), as torchvision computes it.
    fn corner(&self, (h, w): (i64, i64)) -> Result<(i64, i64), DataError> {
        let (ch, cw) = self.crop;
        if ch > h || cw > w {
            return Err(DataError::InvalidConfig(format!(
                "a {ch}x{cw} crop of a {h}x{w} image: the crop must fit the resized image"
            )));
        }
        let centre = |len: i64, crop: i64| ((len - crop) as f64 / 2.0).round_ties_even() as i64;
        Ok((centre(h, ch), centre(w, cw)))
    }

    /// `[N, C, H, W]` float images, resized and cropped.
    pub fn images(&self, xs: &Tensor) -> Result<Tensor, DataError> {
        self.check()?;
        let size = xs.size();
        if size.len() != 4 {
            return Err(DataError::InvalidConfig(format!("images must be [N, C, H, W]; got {size:?}")));
        }
        let (h, w) = self.resized((size[2], size[3]));
        let resized = xs.to_kind(Kind::Float).internal_upsample_bilinear2d_aa([h, w], false, None, None);
        self.cropped(&resized)
    }

    /// `[N, H, W]` integer label maps, resized (nearest) and cropped.
    pub fn labels(&self, maps: &Tensor) -> Result<Tensor, DataError> {
        self.check()?;
        let size = maps.size();
        if size.len() != 3 {
            return Err(DataError::InvalidConfig(format!("label maps must be [N, H, W]; got {size:?}")));
        }
        let (h, w) = self.resized((size[1], size[2]));
        let resized = maps.to_kind(Kind::Float).unsqueeze(1).upsample_nearest2d([h, w], None, None).squeeze_dim(1);
        Ok(self.cropped(&resized)?.to_kind(maps.kind()))
    }

    fn cropped(&self, xs: &Tensor) -> Result<Tensor, DataError> {
        let d = xs.dim();
        let (h, w) = (xs.size()[d - 2], xs.size()[d - 1]);
        let (top, left) = self.corner((h, w))?;
        Ok(xs.narrow(d as i64 - 2, top, self.crop.0).narrow(d as i64 - 1, left, self.crop.1).contiguous())
    }

    /// `[N, R, H, W]` overlap layers ([`ConceptBatch::overlaps`]), resized and cropped as
    /// [`Preprocess::labels`] does maps, so every layer keeps the pixels its map keeps.
    pub fn overlaps(&self, layers: &Tensor) -> Result<Tensor, DataError> {
        let size = layers.size();
        if size.len() != 4 {
            return Err(DataError::InvalidConfig(format!("overlap layers must be [N, R, H, W]; got {size:?}")));
        }
        let maps = self.labels(&layers.reshape([size[0] * size[1], size[2], size[3]]))?;
        Ok(maps.view([size[0], size[1], self.crop.0, self.crop.1]))
    }

    /// A batch as the network sees it: images, label maps and overlaps transformed, and each
    /// image's concept labels recounted from what the crop kept. Overlaps the crop leaves
    /// without a concept are dropped, as a data set leaves them out.
    pub fn batch(&self, batch: &ConceptBatch, vocabulary: &Vocabulary) -> Result<ConceptBatch, DataError> {
        let images = self.images(&batch.images)?;
        let concepts = batch
            .concepts
            .iter()
            .map(|(c, m)| Ok((*c, self.labels(m)?)))
            .collect::<Result<BTreeMap<Category, Tensor>, DataError>>()?;
        let mut overlaps = BTreeMap::new();
        for (category, layers) in &batch.overlaps {
            let layers = self.overlaps(layers)?;
            if layers.ge(0).any().int64_value(&[]) == 1 {
                overlaps.insert(*category, layers);
            }
        }
        let image_labels = batch.image_labels.copy();
        for (category, map) in &concepts {
            let k = vocabulary.names(*category).len() as i64;
            if k == 0 {
                continue;
            }
            let first = vocabulary.global_index(Concept { category: *category, index: 0 }) as i64;
            let ids = Tensor::arange(k, (Kind::Int64, map.device())).view([1, 1, 1, k]);
            let shown = |map: &Tensor| map.unsqueeze(-1).eq_tensor(&ids).any_dims(&[1i64, 2][..], false);
            let mut present = shown(map);
            if let Some(layers) = overlaps.get(category) {
                let n = layers.size()[0];
                let (h, w) = (self.crop.0, self.crop.1);
                let flat = layers.transpose(0, 1).reshape([-1, h, w]);
                present = present.logical_or(&shown(&flat).view([-1, n, k]).any_dim(0, false));
            }
            image_labels.narrow(1, first, k).copy_(&present.to_kind(image_labels.kind()));
        }
        Ok(ConceptBatch { images, concepts, overlaps, image_labels })
    }
}

/// A concept data set seen through a [`Preprocess`]: every batch transformed as it is read,
/// so nothing is stored twice.
pub struct Preprocessed<D> {
    data: D,
    preprocess: Preprocess,
}

impl<D: ConceptDataset> Preprocessed<D> {
    pub fn new(data: D, preprocess: Preprocess) -> Result<Self, DataError> {
        preprocess.check()?;
        let (h, w) = data.image_size();
        preprocess.corner(preprocess.resized((h as i64, w as i64)))?;
        Ok(Preprocessed { data, preprocess })
    }

    /// The data set underneath.
    pub fn inner(&self) -> &D {
        &self.data
    }
}

impl<D: ConceptDataset> ConceptDataset for Preprocessed<D> {
    fn len(&self) -> usize {
        self.data.len()
    }

    fn image_size(&self) -> (usize, usize) {
        (self.preprocess.crop.0 as usize, self.preprocess.crop.1 as usize)
    }

    fn vocabulary(&self) -> &Vocabulary {
        self.data.vocabulary()
    }

    fn batch(&self, range: Range<usize>) -> Result<ConceptBatch, DataError> {
        self.preprocess.batch(&self.data.batch(range)?, self.data.vocabulary())
    }

    fn single_object(&self, index: usize) -> Option<i64> {
        self.data.single_object(index)
    }
}

/// A data set at the size a model takes its images: the data set itself when the model
/// takes any size or the images already have it, else read through a resize of the shorter
/// side and a centre crop to that size, label maps alike. This is how concept data sets
/// meet a network trained at a fixed size (an ImageNet classifier's 224x224, an export
/// probed at 32x32).
pub enum AtSize<'a, D: ?Sized> {
    Same(&'a D),
    Resized(Preprocessed<&'a D>),
}

/// [`AtSize`] for a model's [`input_size`](crate::models::Tapped::input_size).
pub fn at_size<D: ConceptDataset + ?Sized>(data: &D, size: Option<(i64, i64)>) -> Result<AtSize<'_, D>, DataError> {
    let (h, w) = data.image_size();
    match size {
        Some((th, tw)) if (th, tw) != (h as i64, w as i64) => {
            Ok(AtSize::Resized(Preprocessed::new(data, Preprocess { resize: th.max(tw), crop: (th, tw) })?))
        }
        _ => Ok(AtSize::Same(data)),
    }
}

impl<D: ConceptDataset + ?Sized> ConceptDataset for AtSize<'_, D> {
    fn len(&self) -> usize {
        match self {
            AtSize::Same(d) => d.len(),
            AtSize::Resized(d) => d.len(),
        }
    }

    fn image_size(&self) -> (usize, usize) {
        match self {
            AtSize::Same(d) => d.image_size(),
            AtSize::Resized(d) => d.image_size(),
        }
    }

    fn vocabulary(&self) -> &Vocabulary {
        match self {
            AtSize::Same(d) => d.vocabulary(),
            AtSize::Resized(d) => d.vocabulary(),
        }
    }

    fn batch(&self, range: Range<usize>) -> Result<ConceptBatch, DataError> {
        match self {
            AtSize::Same(d) => d.batch(range),
            AtSize::Resized(d) => d.batch(range),
        }
    }

    fn single_object(&self, index: usize) -> Option<i64> {
        match self {
            AtSize::Same(d) => d.single_object(index),
            AtSize::Resized(d) => d.single_object(index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ConceptScenes, SceneConfig};
    use crate::models::fixture::{self, relative_error};

    /// torchvision's `Resize` and `CenterCrop`, run by PyTorch on the fixture input
    /// (`scripts/fixtures/vision.py`).
    #[test]
    fn resize_and_crop_equal_torchvision() {
        let expected = fixture::json("vision", "preprocess.json");
        for case in expected["cases"].as_array().unwrap() {
            let shape: Vec<i64> = case["input"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            let x = fixture::input([shape[0], shape[1], shape[2], shape[3]]);
            let p = Preprocess {
                resize: case["resize"].as_i64().unwrap(),
                crop: (case["crop"][0].as_i64().unwrap(), case["crop"][1].as_i64().unwrap()),
            };
            let err = relative_error(&p.images(&x).unwrap(), &case["images"], "images");
            assert!(err < 1e-4, "{case}: relative error {err:.2e}");
            let maps = (x.select(1, 0) * 7.0).floor().to_kind(Kind::Int64) - 1;
            let got = p.labels(&maps).unwrap();
            assert_eq!(got.kind(), Kind::Int64);
            assert!(relative_error(&got, &case["labels"], "labels") == 0.0, "{case}: labels");
        }
    }

    #[test]
    fn a_preprocessed_data_set_reads_transformed_batches_and_recounts_labels() {
        let scenes = ConceptScenes::generate(4, &SceneConfig { size: 48, seed: 2, ..Default::default() }).unwrap();
        let again = ConceptScenes::generate(4, &SceneConfig { size: 48, seed: 2, ..Default::default() }).unwrap();
        let crop = Preprocessed::new(again, Preprocess { resize: 64, crop: (16, 24) }).unwrap();
        assert_eq!((crop.len(), crop.image_size()), (4, (16, 24)));
        let batch = crop.batch(0..4).unwrap();
        assert_eq!(batch.images.size(), [4, 3, 16, 24]);
        assert!(batch.overlaps.is_empty());
        let vocabulary = crop.vocabulary();
        for (category, map) in &batch.concepts {
            assert_eq!(map.size(), [4, 16, 24]);
            let k = vocabulary.names(*category).len();
            for i in 0..4 {
                for index in 0..k {
                    let column = vocabulary.global_index(Concept { category: *category, index }) as i64;
                    let shown = map.get(i).eq(index as i64).any().int64_value(&[]) == 1;
                    assert_eq!(batch.image_labels.double_value(&[i, column]) == 1.0, shown, "{category} {index}");
                }
            }
        }
        assert!(matches!(at_size(&scenes, None).unwrap(), AtSize::Same(_)));
        assert!(matches!(at_size(&scenes, Some((48, 48))).unwrap(), AtSize::Same(_)));
        let big = at_size(&scenes, Some((64, 64))).unwrap();
        assert_eq!(big.image_size(), (64, 64));
        assert_eq!(big.batch(1..3).unwrap().concepts[&Category::Object].size(), [2, 64, 64]);
        let err = Preprocessed::new(scenes, Preprocess { resize: 16, crop: (32, 32) }).err().unwrap().to_string();
        assert!(err.contains("crop"), "{err}");
        assert!(Preprocess::IMAGENET.images(&Tensor::zeros([3, 8, 8], tch::kind::FLOAT_CPU)).is_err());
    }

    /// A 4x4 image all `a`, whose left column is also `b` and top-right pixel also `c`.
    fn overlapping_batch() -> (ConceptBatch, Vocabulary) {
        let vocabulary = Vocabulary::new([(Category::Object, vec!["a", "b", "c"])]).unwrap();
        let mut layer = vec![-1i64; 16];
        for y in 0..4 {
            layer[y * 4] = 1;
        }
        layer[3] = 2;
        let batch = ConceptBatch {
            images: Tensor::rand([1, 3, 4, 4], tch::kind::FLOAT_CPU),
            concepts: [(Category::Object, Tensor::zeros([1, 4, 4], tch::kind::INT64_CPU))].into(),
            overlaps: [(Category::Object, Tensor::from_slice(&layer).view([1, 1, 4, 4]))].into(),
            image_labels: Tensor::ones([1, 3], tch::kind::FLOAT_CPU),
        };
        (batch, vocabulary)
    }

    #[test]
    fn overlaps_are_resized_like_the_maps_and_counted_in_image_labels() {
        let (batch, vocabulary) = overlapping_batch();
        let grow = Preprocess::square(8);
        let out = grow.batch(&batch, &vocabulary).unwrap();
        let layers = &out.overlaps[&Category::Object];
        assert_eq!((layers.size(), layers.kind()), (vec![1, 1, 8, 8], Kind::Int64));
        let expected = grow.labels(&batch.overlaps[&Category::Object].select(1, 0)).unwrap();
        assert!(layers.select(1, 0).equal(&expected));
        assert_eq!(layers.select(1, 0).get(0).get(7).int64_value(&[0]), 1);
        assert_eq!(Vec::<f32>::try_from(&out.image_labels.view([-1])).unwrap(), [1., 1., 1.]);
        // The centre 2x2 keeps neither extra concept: no overlaps, and b and c unlabelled.
        let centre = Preprocess { resize: 4, crop: (2, 2) }.batch(&batch, &vocabulary).unwrap();
        assert!(centre.overlaps.is_empty());
        assert_eq!(Vec::<f32>::try_from(&centre.image_labels.view([-1])).unwrap(), [1., 0., 0.]);
        assert!(Preprocess::square(2).overlaps(&Tensor::zeros([1, 4, 4], tch::kind::INT64_CPU)).is_err());
    }

    /// An export that takes only 32x32 images is inspected on 48x48 scenes: the scenes are
    /// resized to what it takes on the way in.
    #[test]
    fn metrics_read_a_data_set_at_the_size_the_model_takes() {
        let scenes = ConceptScenes::generate(6, &SceneConfig { size: 48, seed: 3, ..Default::default() }).unwrap();
        let export = crate::models::fixture::path("script", "taps.pt");
        let model = crate::models::ScriptModel::load(export, tch::Device::Cpu).unwrap();
        assert_eq!(crate::models::Tapped::input_size(&model), Some((32, 32)));
        let config = crate::metrics::InspectConfig { batch_size: 4, ..Default::default() };
        let result = crate::metrics::inspect(&model, "conv2", &scenes, &config).unwrap();
        assert_eq!((result.images, result.channels.len()), (6, 8));
    }
}
