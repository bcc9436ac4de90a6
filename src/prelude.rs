//! What every notebook gets with `use glassbox::prelude::*;` (the kernel runs it at start).

pub use crate::data::{Category, ConceptDataset, ConceptScenes, SceneConfig, Vocabulary};
pub use crate::device::{describe as describe_device, device};
pub use crate::tch::{self, nn, nn::Module, nn::ModuleT, nn::OptimizerConfig, Device, Kind, Tensor};
