//! What every notebook gets with `use glassbox::prelude::*;` (the kernel runs it at start).

pub use crate::bottleneck::{self, Inference, Plain, Regularizer, SbNet, Ssb, SsbTraining, Usb};
pub use crate::data::{
    Broden, BrodenConfig, Category, Cityscapes, CityscapesConfig, ColorMnist, ColorMnistConfig, ConceptDataset,
    ConceptScenes, Factor, Mnist, SceneConfig, Split, Vocabulary,
};
pub use crate::device::{describe as describe_device, device};
pub use crate::display::{self, EvcxrDisplay, Output, Render};
pub use crate::interrupt::{Interrupted, Watch};
pub use crate::metrics::{
    self, inspect, net2vec, semantic_vectors, Binarize, InspectConfig, Inspectability, Net2Vec, Net2VecConfig,
    PointingConfig, SemanticVectors, SevecConfig, Units,
};
pub use crate::models::{
    self, fit, score, Arch, BlockKind, Edit, Editable, Examples, Insertion, LeNet, LeNetConfig, ModelError, Normalize,
    Optim, ResNetConfig, ScriptModel, ScriptOptions, Stage, Tapped, TappedNet, Task, TaskData, TrainConfig, VisionNet,
};
pub use crate::progress::Progress;
pub use crate::runtime::input;
pub use crate::tch::{self, nn, nn::Module, nn::ModuleT, nn::OptimizerConfig, Device, Kind, Tensor};
pub use crate::viz::{self, BarChart, Grid, Heatmap, LinePlot, ScatterPlot};
pub use crate::zoo::{self, Zoo};
