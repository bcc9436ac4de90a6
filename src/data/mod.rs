//! Images with pixel-level concept annotations.
//!
//! Every data set here answers the same questions through [`ConceptDataset`]: how many
//! images, how large, which [`Vocabulary`], and the images with their concept label maps by
//! batch. The procedural [`ConceptScenes`] need no files; the loaders for real data sets on
//! disk, [`Broden`] and [`Cityscapes`], implement the same trait, so probes and metrics do not
//! care where pixels come from.

use std::collections::BTreeMap;
use std::ops::Range;

use tch::{Device, Tensor};

pub mod broden;
pub mod cityscapes;
pub mod colormnist;
pub mod preprocess;
pub mod scenes;
pub mod vocab;

pub use broden::{Broden, BrodenConfig};
pub use cityscapes::{Cityscapes, CityscapesConfig};
pub use colormnist::{ColorMnist, ColorMnistConfig, Factor, Mnist, Split};
pub use preprocess::{at_size, AtSize, Preprocess, Preprocessed};
pub use scenes::{BoundingBox, Colour, ConceptScenes, SceneConfig};
pub use vocab::{Category, Concept, Vocabulary};

/// What can go wrong naming concepts or asking a data set for images.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("unknown category `{name}`; the categories are: {allowed}")]
    UnknownCategory { name: String, allowed: String },
    #[error("unknown concept `{0}`")]
    UnknownConcept(String),
    #[error("concept `{name}` is ambiguous; say one of: {candidates}")]
    AmbiguousConcept { name: String, candidates: String },
    #[error("invalid vocabulary: {0}")]
    InvalidVocabulary(String),
    #[error("invalid scene config: {0}")]
    InvalidConfig(String),
    #[error("data not available: {0}")]
    MissingData(String),
    /// A line of a data set's table that cannot be read; `line` counts from 1, the header too.
    #[error("{file}, line {line}: {why}")]
    BadLine { file: String, line: usize, why: String },
    /// A data set's file that is present but unreadable or inconsistent with the rest.
    #[error("{file}: {why}")]
    BadFile { file: String, why: String },
    #[error("images {start}..{end} asked of a data set of {len}")]
    OutOfRange { start: usize, end: usize, len: usize },
}

/// Images and their concept annotations, all with the same leading batch dimension `N`.
#[derive(Debug)]
pub struct ConceptBatch {
    /// `[N, 3, H, W]` float in `[0, 1]`.
    pub images: Tensor,
    /// Per category a `[N, H, W]` int64 map of concept indices, `-1` where unlabelled.
    /// Categories the data set does not annotate are absent.
    pub concepts: BTreeMap<Category, Tensor>,
    /// Per category `[N, R, H, W]` int64: the further concepts of the category a pixel
    /// carries beyond the one in `concepts` (`-1` elsewhere). Broden's masks of one category
    /// overlap, and NetDissect counts such a pixel for each of its concepts. A pixel's extra
    /// concepts fill layers `0..` in order and never repeat one it already carries. A
    /// category is absent when no pixel of the batch carries two of its concepts, so data
    /// sets with one concept per pixel and category leave this empty.
    pub overlaps: BTreeMap<Category, Tensor>,
    /// `[N, n_concepts]` float, 1 where a concept is visible anywhere in the image; columns
    /// in [`Vocabulary::global_index`] order.
    pub image_labels: Tensor,
}

impl ConceptBatch {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The label map of one category, if annotated.
    pub fn concept_map(&self, category: Category) -> Option<&Tensor> {
        self.concepts.get(&category)
    }

    /// The same batch on another device.
    pub fn to_device(&self, device: Device) -> ConceptBatch {
        ConceptBatch {
            images: self.images.to_device(device),
            concepts: self.concepts.iter().map(|(c, t)| (*c, t.to_device(device))).collect(),
            overlaps: self.overlaps.iter().map(|(c, t)| (*c, t.to_device(device))).collect(),
            image_labels: self.image_labels.to_device(device),
        }
    }
}

/// A data set of images with pixel-level concept annotations.
pub trait ConceptDataset {
    /// The number of images.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(height, width)` of every image and label map.
    fn image_size(&self) -> (usize, usize);

    /// The concepts that label values refer to.
    fn vocabulary(&self) -> &Vocabulary;

    /// Images `range`, on the device the data set lives on.
    fn batch(&self, range: Range<usize>) -> Result<ConceptBatch, DataError>;

    /// The object class of image `index` when it shows exactly one object: what a classifier
    /// of the data set's objects is scored on. `None` where the image shows several, or the
    /// data set does not say.
    fn single_object(&self, index: usize) -> Option<i64> {
        let _ = index;
        None
    }

    /// Consecutive batches of `batch_size` images, the last one possibly shorter.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    fn batches(&self, batch_size: usize) -> Batches<'_, Self> {
        assert!(batch_size > 0, "batch size must be positive");
        Batches { dataset: self, batch_size, next: 0 }
    }
}

/// A borrowed data set is one, so views such as [`Preprocessed`] can borrow what they read.
impl<D: ConceptDataset + ?Sized> ConceptDataset for &D {
    fn len(&self) -> usize {
        (**self).len()
    }

    fn image_size(&self) -> (usize, usize) {
        (**self).image_size()
    }

    fn vocabulary(&self) -> &Vocabulary {
        (**self).vocabulary()
    }

    fn batch(&self, range: Range<usize>) -> Result<ConceptBatch, DataError> {
        (**self).batch(range)
    }

    fn single_object(&self, index: usize) -> Option<i64> {
        (**self).single_object(index)
    }
}

/// Checks a batch range against a data set length, for [`ConceptDataset::batch`].
pub fn check_range(range: &Range<usize>, len: usize) -> Result<(), DataError> {
    if range.start > range.end || range.end > len {
        return Err(DataError::OutOfRange { start: range.start, end: range.end, len });
    }
    Ok(())
}

/// The iterator of [`ConceptDataset::batches`].
pub struct Batches<'a, D: ConceptDataset + ?Sized> {
    dataset: &'a D,
    batch_size: usize,
    next: usize,
}

impl<D: ConceptDataset + ?Sized> Iterator for Batches<'_, D> {
    type Item = Result<ConceptBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let len = self.dataset.len();
        if self.next >= len {
            return None;
        }
        let end = (self.next + self.batch_size).min(len);
        let range = self.next..end;
        self.next = end;
        Some(self.dataset.batch(range))
    }
}

/// A data set shows as its summary: size, and the concepts of each category.
impl<D: ConceptDataset> crate::display::Render for D {
    fn render(&self) -> crate::display::Output {
        let vocab = self.vocabulary();
        let (h, w) = self.image_size();
        let head = format!("{} images of {h}×{w}", self.len());
        let rows: Vec<(Category, usize, String)> =
            vocab.categories().into_iter().map(|c| (c, vocab.names(c).len(), vocab.names(c).join(", "))).collect();
        let text: Vec<String> = std::iter::once(head.clone())
            .chain(rows.iter().map(|(c, n, names)| format!("{c} ({n}): {names}")))
            .collect();
        let html: String =
            rows.iter().map(|(c, n, names)| format!("<tr><td>{c}</td><td>{n}</td><td>{names}</td></tr>")).collect();
        crate::display::Output::html(format!(
            "<p>{head}</p><table><tr><th>category</th><th>concepts</th><th>names</th></tr>{html}</table>"
        ))
        .and(crate::display::Output::text(text.join("\n")))
    }
}
