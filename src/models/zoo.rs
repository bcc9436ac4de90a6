//! The model zoo: small named models with fixed recipes (data, architecture, training policy,
//! seeds) that train on the CPU in a minute or two the first time they are asked for and are
//! cached on disk after that, for every later kernel.
//!
//! | name | model | task |
//! |---|---|---|
//! | `scenes-resnet` | [`TappedNet`], basic blocks 16-32-64 | object segmentation of concept scenes |
//! | `scenes-classifier` | [`TappedNet`], basic blocks 16-32-64 | the class of the one object of a concept scene |
//! | `colormnist-lenet` | [`LeNet`] | digit classification on ColorMNIST |
//! | `colormnist-lenet@STEP` | the same, after `STEP` training steps | checkpoints |
//!
//! The checkpoints follow the invariances paper (sec. 4.3, Fig. 4), which couples an INN to
//! 20 checkpoints of a ColorMNIST classifier taken evenly between the first and the last
//! training iteration to see how the digit factor becomes relevant; ours are fewer and the
//! classifier smaller.
//!
//! A trained model lives in `<cache>/zoo/<name>-<fingerprint>/` (see [`crate::cache`]) with
//! its weights, its checkpoints and a [`Card`] of its scores. The fingerprint hashes the
//! recipe, so a changed recipe trains anew instead of loading stale weights.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Device;

use super::{evaluate, weights, Examples, LeNet, LeNetConfig, ModelError, Optim, ResNetConfig, Score, TappedNet, Task};
use super::{Tapped, TrainConfig};
use crate::data::{Category, ColorMnist, ColorMnistConfig, DataError, Mnist, SceneConfig, Split};
use crate::display::{Output, Render};

/// What can go wrong finding, training or loading a zoo model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZooError {
    #[error("no zoo model `{name}`{hint}; the zoo has: {allowed}")]
    Unknown { name: String, hint: String, allowed: String },
    #[error("`{name}` has no checkpoint at step {step}; its checkpoints are at steps {allowed}")]
    NoCheckpoint { name: String, step: String, allowed: String },
    #[error("`{name}` is a {is}, not a {asked}; load it as `let m: {is} = zoo::load(\"{name}\", device)?`")]
    WrongType { name: String, is: &'static str, asked: &'static str },
    #[error("training `{0}` was interrupted; nothing was cached, and loading it again starts over")]
    Interrupted(String),
    #[error("zoo cache `{path}`: {message}")]
    Cache { path: String, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] DataError),
}

pub(crate) fn cache_error(path: &Path, e: impl fmt::Display) -> ZooError {
    ZooError::Cache { path: path.display().to_string(), message: e.to_string() }
}

/// A zoo model's architecture.
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    ResNet(ResNetConfig),
    LeNet(LeNetConfig),
}

impl Arch {
    fn type_name(&self) -> &'static str {
        match self {
            Arch::ResNet(_) => TappedNet::TYPE,
            Arch::LeNet(_) => LeNet::TYPE,
        }
    }
}

/// The data a zoo model learns from and is scored on; train and test never share an image.
#[derive(Debug, Clone, PartialEq)]
pub enum DataRecipe {
    /// Concept scenes, object maps as targets; the test scenes use `config.seed + 1`.
    Scenes { train: usize, test: usize, config: SceneConfig },
    /// Concept scenes of one object each (`config.objects` is ignored), labelled with the
    /// object's class (its value in the object map, so the classes are the scenes' object
    /// concepts and the backgrounds never occur); the test scenes use `config.seed + 1`.
    /// The image classification of the SeVec paper in small: one object class per image.
    SceneObject { train: usize, test: usize, config: SceneConfig },
    /// ColorMNIST digits: training images from the training digits, test images from the
    /// held-out ones.
    ColorMnist { train: usize, test: usize, size: usize, seed: u64 },
}

impl DataRecipe {
    /// The training and test examples.
    pub(crate) fn examples(&self) -> Result<(Examples, Examples), ZooError> {
        match self {
            DataRecipe::Scenes { train, test, config } => {
                let scenes = |n: usize, seed: u64| -> Result<Examples, ZooError> {
                    let data = crate::data::ConceptScenes::generate(n, &SceneConfig { seed, ..config.clone() })?;
                    Ok(Examples::from_dataset(&data, Category::Object)?)
                };
                Ok((scenes(*train, config.seed)?, scenes(*test, config.seed + 1)?))
            }
            DataRecipe::SceneObject { train, test, config } => {
                let scenes = |n: usize, seed: u64| -> Result<Examples, ZooError> {
                    let config = SceneConfig { seed, objects: 1..=1, ..config.clone() };
                    Ok(single_objects(&crate::data::ConceptScenes::generate(n, &config)?)?)
                };
                Ok((scenes(*train, config.seed)?, scenes(*test, config.seed + 1)?))
            }
            DataRecipe::ColorMnist { train, test, size, seed } => {
                let mnist = Mnist::load()?;
                let digits = |n: usize, split: Split| -> Result<Examples, ZooError> {
                    let config = ColorMnistConfig { size: *size, split, seed: *seed };
                    let data = ColorMnist::generate(&mnist, n, &config)?;
                    Ok(Examples::classification(data.images, data.digits)?)
                };
                Ok((digits(*train, Split::Train)?, digits(*test, Split::Test)?))
            }
        }
    }

    /// `8000 ColorMNIST digits at 32×32`.
    pub(crate) fn describe(&self) -> String {
        match self {
            DataRecipe::Scenes { train, config, .. } => {
                format!("{train} concept scenes at {0}×{0}", config.size)
            }
            DataRecipe::SceneObject { train, config, .. } => {
                format!("{train} one-object concept scenes at {0}×{0}", config.size)
            }
            DataRecipe::ColorMnist { train, size, .. } => {
                format!("{train} ColorMNIST digits at {size}×{size}")
            }
        }
    }
}

/// The scenes that show exactly one object, labelled with its class.
fn single_objects(scenes: &crate::data::ConceptScenes) -> Result<Examples, ModelError> {
    let (index, labels): (Vec<i64>, Vec<i64>) = scenes
        .boxes
        .iter()
        .enumerate()
        .filter_map(|(i, boxes)| match boxes[..] {
            [only] => Some((i as i64, only.object)),
            _ => None,
        })
        .unzip();
    Examples::classification(
        scenes.images.index_select(0, &tch::Tensor::from_slice(&index)),
        tch::Tensor::from_slice(&labels),
    )
}

/// Everything that decides a zoo model's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub arch: Arch,
    pub data: DataRecipe,
    pub train: TrainConfig,
    /// Seeds libtorch before the model is built (its initialisation).
    pub init_seed: u64,
    /// How many checkpoints to keep, evenly spaced from step 0 to the last step; 0 keeps none.
    pub checkpoints: usize,
}

impl Recipe {
    fn train_len(&self) -> usize {
        match self.data {
            DataRecipe::Scenes { train, .. }
            | DataRecipe::SceneObject { train, .. }
            | DataRecipe::ColorMnist { train, .. } => train,
        }
    }

    /// The optimisation steps the recipe runs.
    pub fn max_steps(&self) -> usize {
        self.train.steps_for(self.train_len())
    }

    /// The steps after which a checkpoint is kept (0 is the untrained model).
    pub fn checkpoint_steps(&self) -> Vec<usize> {
        match self.checkpoints {
            0 => Vec::new(),
            1 => vec![self.max_steps()],
            n => (0..n).map(|k| k * self.max_steps() / (n - 1)).collect(),
        }
    }

    /// A stable hash of the recipe: the cache key.
    fn fingerprint(&self) -> String {
        fingerprint(self)
    }
}

/// A stable hash of a recipe (FNV-1a over its debug form), the cache key of whatever it
/// trains: a changed recipe gets a new directory instead of stale weights.
pub(crate) fn fingerprint(recipe: &impl fmt::Debug) -> String {
    let hash = format!("{recipe:?}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("{:08x}", hash >> 32)
}

/// One model of the zoo.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    pub summary: &'static str,
    pub recipe: fn() -> Recipe,
}

/// The zoo. Names are what `:model` and [`load`] take.
pub static ENTRIES: &[Entry] = &[
    Entry {
        name: "scenes-resnet",
        summary: "segments the objects of concept scenes (basic blocks, widths 16-32-64)",
        recipe: scenes_resnet,
    },
    Entry {
        name: "scenes-classifier",
        summary: "classifies the one object of a concept scene (basic blocks, widths 16-32-64)",
        recipe: scenes_classifier,
    },
    Entry {
        name: "colormnist-lenet",
        summary: "classifies ColorMNIST digits; checkpoints over its training",
        recipe: colormnist_lenet,
    },
];

/// SB paper sec. 3.1's policy (SGD, momentum 0.9, weight decay 5e-4, poly 0.9) with a base
/// rate that suits a net this small.
fn scenes_resnet() -> Recipe {
    let classes = crate::data::Vocabulary::scenes().names(Category::Object).len() as i64;
    Recipe {
        arch: Arch::ResNet(ResNetConfig::small(Task::Segmentation, classes)),
        data: DataRecipe::Scenes { train: 800, test: 200, config: SceneConfig { seed: 1000, ..Default::default() } },
        train: TrainConfig {
            epochs: 10,
            batch_size: 16,
            lr: 0.05,
            label: "scenes-resnet".into(),
            seed: Some(0),
            ..Default::default()
        },
        init_seed: 0,
        checkpoints: 0,
    }
}

/// The classifier the SeVec paper's experiments need (class scores `o_i`, one class per
/// training image), with `scenes-resnet`'s architecture. Shapes painted in random colours
/// and textures are hard to tell apart for a net this small: with the segmentation recipe's
/// 800 scenes and SGD it stays at chance, so it sees 4000 scenes with Adam (47% test
/// accuracy against a 19.5% majority class, in about 150 s on 2 CPU cores).
fn scenes_classifier() -> Recipe {
    let classes = crate::data::Vocabulary::scenes().names(Category::Object).len() as i64;
    Recipe {
        arch: Arch::ResNet(ResNetConfig::small(Task::Classification, classes)),
        data: DataRecipe::SceneObject {
            train: 4000,
            test: 400,
            config: SceneConfig { seed: 2000, objects: 1..=1, ..Default::default() },
        },
        train: TrainConfig {
            epochs: 6,
            batch_size: 32,
            lr: 2e-3,
            weight_decay: 0.0,
            optimizer: Optim::Adam,
            label: "scenes-classifier".into(),
            seed: Some(0),
            ..Default::default()
        },
        init_seed: 0,
        checkpoints: 0,
    }
}

/// Plain SGD with a small constant rate, so that accuracy rises over many steps and the
/// checkpoints span the whole way from chance to a trained classifier.
fn colormnist_lenet() -> Recipe {
    Recipe {
        arch: Arch::LeNet(LeNetConfig::default()),
        data: DataRecipe::ColorMnist { train: 8000, test: 2000, size: 32, seed: 1000 },
        train: TrainConfig {
            epochs: 8,
            batch_size: 50,
            lr: 0.02,
            weight_decay: 0.0,
            optimizer: Optim::Sgd { momentum: 0.9 },
            poly_power: 0.0,
            seed: Some(0),
            label: "colormnist-lenet".into(),
            max_steps: None,
        },
        init_seed: 0,
        checkpoints: 11,
    }
}

/// A zoo name: an entry, and a checkpoint step after `@` if any.
#[derive(Debug, Clone, Copy)]
pub struct Name {
    pub entry: &'static Entry,
    pub step: Option<usize>,
}

impl FromStr for Name {
    type Err = ZooError;

    fn from_str(name: &str) -> Result<Name, ZooError> {
        let (base, step) = match name.split_once('@') {
            Some((b, s)) => (b, Some(s)),
            None => (name, None),
        };
        let Some(entry) = ENTRIES.iter().find(|e| e.name == base) else {
            let names = ENTRIES.iter().map(|e| e.name);
            let hint = crate::suggest::closest(base, names.clone())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(ZooError::Unknown {
                name: name.to_owned(),
                hint,
                allowed: names.collect::<Vec<_>>().join(", "),
            });
        };
        let Some(step) = step else {
            return Ok(Name { entry, step: None });
        };
        let steps = (entry.recipe)().checkpoint_steps();
        match step.parse::<usize>() {
            Ok(s) if steps.contains(&s) => Ok(Name { entry, step: Some(s) }),
            _ => Err(ZooError::NoCheckpoint {
                name: base.to_owned(),
                step: step.to_owned(),
                allowed: if steps.is_empty() {
                    "none (it keeps no checkpoints)".into()
                } else {
                    steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
                },
            }),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(s) => write!(f, "{}@{s}", self.entry.name),
            None => f.write_str(self.entry.name),
        }
    }
}

/// Every name [`load`] takes, checkpoints included (for completion).
pub fn names() -> Vec<String> {
    ENTRIES
        .iter()
        .flat_map(|e| {
            let steps = (e.recipe)().checkpoint_steps();
            std::iter::once(e.name.to_owned()).chain(steps.into_iter().map(move |s| format!("{}@{s}", e.name)))
        })
        .collect()
}

/// The Rust type of a zoo name's model (for the kernel, which declares the variable).
pub fn type_of(name: &str) -> Result<&'static str, ZooError> {
    let name: Name = name.parse()?;
    Ok((name.entry.recipe)().arch.type_name())
}

/// A model type the zoo can build.
pub trait Pretrained: Tapped + Sized {
    /// The type's name in messages and in the variables the kernel declares.
    const TYPE: &'static str;

    /// A fresh model of `arch`, or `None` when `arch` is another type's.
    fn build(arch: &Arch, device: Device) -> Option<Result<Self, ModelError>>;
}

impl Pretrained for TappedNet {
    const TYPE: &'static str = "TappedNet";

    fn build(arch: &Arch, device: Device) -> Option<Result<Self, ModelError>> {
        match arch {
            Arch::ResNet(config) => Some(TappedNet::new(config.clone(), device)),
            _ => None,
        }
    }
}

impl Pretrained for LeNet {
    const TYPE: &'static str = "LeNet";

    fn build(arch: &Arch, device: Device) -> Option<Result<Self, ModelError>> {
        match arch {
            Arch::LeNet(config) => Some(LeNet::new(config.clone(), device)),
            _ => None,
        }
    }
}

/// A trained zoo model's record: how it was trained and what it scores on its test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub name: String,
    pub model: String,
    pub data: String,
    pub fingerprint: String,
    pub steps: usize,
    pub train_seconds: f64,
    /// Where it was trained (`cpu`, `cuda:0`).
    pub trained_on: String,
    pub test: Score,
    pub checkpoints: Vec<Checkpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub step: usize,
    pub test: Score,
}

/// The file that marks a trained model's directory complete.
pub(crate) const CARD: &str = "card.json";
const WEIGHTS: &str = "weights.safetensors";

fn step_file(step: usize) -> String {
    format!("step-{step:06}.safetensors")
}

/// Where trained zoo models are kept: `<cache>/zoo`.
pub fn root() -> PathBuf {
    crate::cache::dir().join("zoo")
}

/// Where `entry`'s trained files live under `root` (whether or not they exist yet).
fn entry_dir(root: &Path, entry: &Entry) -> PathBuf {
    root.join(format!("{}-{}", entry.name, (entry.recipe)().fingerprint()))
}

/// The card of a trained entry, or `None` when it has not been trained (on this machine).
pub fn cached_card(entry: &Entry) -> Option<Card> {
    read_card(&entry_dir(&root(), entry)).ok()
}

fn read_card(dir: &Path) -> Result<Card, ZooError> {
    let path = dir.join(CARD);
    let text = std::fs::read_to_string(&path).map_err(|e| cache_error(&path, e))?;
    serde_json::from_str(&text).map_err(|e| cache_error(&path, e))
}

/// The model called `name` (`colormnist-lenet@128` for a checkpoint) on `device`, trained
/// first if this machine has not trained it yet (a live progress display shows it; an
/// interrupt stops it and caches nothing). Declare the type you want:
/// `let net: TappedNet = zoo::load("scenes-resnet", device)?;`.
pub fn load<M: Pretrained>(name: &str, device: Device) -> Result<M, ZooError> {
    load_in(&root(), name, device)
}

fn load_in<M: Pretrained>(root: &Path, name: &str, device: Device) -> Result<M, ZooError> {
    let name: Name = name.parse()?;
    load_entry(root, &name, name.entry, device)
}

/// `entry` at `name`'s step (the final weights when it names none).
fn load_entry<M: Pretrained>(root: &Path, name: &Name, entry: &Entry, device: Device) -> Result<M, ZooError> {
    let recipe = (entry.recipe)();
    let model = match M::build(&recipe.arch, device) {
        Some(model) => model?,
        None => {
            return Err(ZooError::WrongType { name: name.to_string(), is: recipe.arch.type_name(), asked: M::TYPE })
        }
    };
    let dir = trained(root, entry, device)?;
    let file = name.step.map_or_else(|| WEIGHTS.to_owned(), step_file);
    model.load_weights(dir.join(file))?;
    Ok(model)
}

/// The card of `name`'s entry, training it first if needed.
pub fn card(name: &str, device: Device) -> Result<Card, ZooError> {
    let name: Name = name.parse()?;
    read_card(&trained(&root(), name.entry, device)?)
}

/// The directory of `entry`'s trained files under `root`, training it now if it has none.
fn trained(root: &Path, entry: &Entry, device: Device) -> Result<PathBuf, ZooError> {
    let recipe = (entry.recipe)();
    let name = format!("{}-{}", entry.name, recipe.fingerprint());
    cached(root, &name, |partial| {
        println!(
            // A `glassbox: ` line is a note about the session, not a result (notebook checks skip it).
            "glassbox: {} trains on first use ({} steps on {}, {}); cached for later kernels",
            entry.name,
            recipe.max_steps(),
            recipe.data.describe(),
            crate::device::describe(device)
        );
        train_into(entry, &recipe, partial, device)
    })
}

/// The directory `root/name` of something trained once and kept (zoo models, the INN
/// autoencoders), made now by `train_into` if it lacks its [`CARD`]. `train_into` writes
/// into a private directory that is renamed into place when complete (the card last), so
/// a kernel reading the cache never sees half a model and two kernels training at once do
/// not mix files; on failure nothing is kept. Training reseeds libtorch's generator, so the
/// caller's random stream is [preserved](crate::seed::preserving) on a hit and a miss alike.
pub(crate) fn cached<E: From<ZooError>>(
    root: &Path,
    name: &str,
    train_into: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<PathBuf, E> {
    crate::seed::preserving(|| fill(root, name, train_into))
}

fn fill<E: From<ZooError>>(
    root: &Path,
    name: &str,
    train_into: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<PathBuf, E> {
    let dir = root.join(name);
    if dir.join(CARD).is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(root).map_err(|e| cache_error(root, e))?;
    let partial = root.join(format!(".{name}-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| cache_error(&partial, e))?;
    if let Err(e) = train_into(&partial) {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    if !partial.join(CARD).is_file() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(cache_error(&partial, "training wrote no card").into());
    }
    if std::fs::rename(&partial, &dir).is_err() {
        // Another kernel finished first; its files are as good as ours.
        let _ = std::fs::remove_dir_all(&partial);
        if !dir.join(CARD).is_file() {
            return Err(cache_error(&dir, "cannot move the trained model into place").into());
        }
    }
    Ok(dir)
}

fn train_into(entry: &Entry, recipe: &Recipe, dir: &Path, device: Device) -> Result<(), ZooError> {
    let (train, test) = recipe.data.examples()?;
    tch::manual_seed(recipe.init_seed as i64);
    match &recipe.arch {
        Arch::ResNet(c) => fit(entry, recipe, TappedNet::new(c.clone(), device)?, &train, &test, dir),
        Arch::LeNet(c) => fit(entry, recipe, LeNet::new(c.clone(), device)?, &train, &test, dir),
    }
}

fn fit(
    entry: &Entry,
    recipe: &Recipe,
    model: impl Tapped,
    train: &Examples,
    test: &Examples,
    dir: &Path,
) -> Result<(), ZooError> {
    let started = Instant::now();
    let steps = recipe.checkpoint_steps();
    let save = |step: usize| weights::save(model.var_store(), dir.join(step_file(step)));
    if steps.first() == Some(&0) {
        save(0)?;
    }
    let mut failed = None;
    let report = super::train_with(&model, train, &recipe.train, |info| {
        if failed.is_none() && steps.contains(&(info.step + 1)) {
            failed = save(info.step + 1).err();
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if report.interrupted {
        return Err(ZooError::Interrupted(entry.name.to_owned()));
    }
    let train_seconds = started.elapsed().as_secs_f64();
    weights::save(model.var_store(), dir.join(WEIGHTS))?;
    let final_scores = evaluate(&model, test, 100)?;
    let mut checkpoints = Vec::new();
    for step in steps {
        weights::load(model.var_store(), dir.join(step_file(step)))?;
        checkpoints.push(Checkpoint { step, test: evaluate(&model, test, 100)? });
    }
    let card = Card {
        name: entry.name.to_owned(),
        model: describe_arch(&recipe.arch),
        data: recipe.data.describe(),
        fingerprint: recipe.fingerprint(),
        steps: report.steps,
        train_seconds,
        trained_on: format!("{:?}", model.device()).to_lowercase(),
        test: final_scores,
        checkpoints,
    };
    let json = serde_json::to_string_pretty(&card).expect("cards serialize");
    std::fs::write(dir.join(CARD), json).map_err(|e| cache_error(dir, e))
}

fn describe_arch(arch: &Arch) -> String {
    match arch {
        Arch::ResNet(c) => format!(
            "TappedNet ({:?} blocks, widths {:?}, {:?} task, {} classes)",
            c.block, c.widths, c.task, c.num_classes
        ),
        Arch::LeNet(c) => {
            format!("LeNet (channels {:?}, features {:?}, {} classes)", c.conv_channels, c.fc_features, c.num_classes)
        }
    }
}

impl Render for Card {
    fn render(&self) -> Output {
        let mut text = vec![
            format!("{}: {}", self.name, self.model),
            format!(
                "trained on {} for {} steps in {:.0} s on {}",
                self.data, self.steps, self.train_seconds, self.trained_on
            ),
            format!("test: {}", self.test),
        ];
        if !self.checkpoints.is_empty() {
            let list: Vec<String> =
                self.checkpoints.iter().map(|c| format!("@{} {:.1}%", c.step, 100.0 * c.test.accuracy)).collect();
            text.push(format!("checkpoints (test accuracy): {}", list.join(", ")));
        }
        let rows: String = self
            .checkpoints
            .iter()
            .map(|c| format!("<tr><td>{}@{}</td><td>{}</td></tr>", self.name, c.step, c.test))
            .collect();
        let table = if rows.is_empty() {
            String::new()
        } else {
            format!("<table><tr><th>checkpoint</th><th>test</th></tr>{rows}</table>")
        };
        let html = format!(
            "<p><b>{}</b>: {}<br>trained on {} for {} steps in {:.0} s on {}<br>test: {}</p>{table}",
            self.name, self.model, self.data, self.steps, self.train_seconds, self.trained_on, self.test,
        );
        Output::html(html).and(Output::text(text.join("\n")))
    }
}

/// The zoo as a notebook value: lists its models and loads them on request, so the kernel
/// prelude can offer every model without training any at start-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Zoo {
    device: Device,
}

impl Zoo {
    pub fn new(device: Device) -> Self {
        Zoo { device }
    }

    /// [`load`] on the zoo's device.
    pub fn load<M: Pretrained>(&self, name: &str) -> Result<M, ZooError> {
        load(name, self.device)
    }

    /// [`card`] on the zoo's device.
    pub fn card(&self, name: &str) -> Result<Card, ZooError> {
        card(name, self.device)
    }
}

impl Render for Zoo {
    fn render(&self) -> Output {
        let rows: Vec<[String; 4]> = ENTRIES
            .iter()
            .map(|e| {
                let recipe = (e.recipe)();
                let status = match cached_card(e) {
                    Some(card) => format!("cached: {}", card.test),
                    None => format!("trains on first use ({} steps)", recipe.max_steps()),
                };
                let steps = recipe.checkpoint_steps();
                let name = match (steps.first(), steps.last()) {
                    (Some(a), Some(b)) => format!("{} (@{a}..@{b})", e.name),
                    _ => e.name.to_owned(),
                };
                [name, recipe.arch.type_name().to_owned(), e.summary.to_owned(), status]
            })
            .collect();
        let text: Vec<String> = rows.iter().map(|r| format!("{}: {}, {}; {}", r[0], r[1], r[2], r[3])).collect();
        let html: String = rows
            .iter()
            .map(|r| format!("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", r[0], r[1], r[2], r[3]))
            .collect();
        Output::html(format!("<table><tr><th>model</th><th>type</th><th>what</th><th>status</th></tr>{html}</table>"))
            .and(Output::text(text.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_with_checkpoints_and_errors_list_what_exists() {
        let name: Name = "colormnist-lenet".parse().unwrap();
        assert_eq!(name.step, None);
        let steps = (name.entry.recipe)().checkpoint_steps();
        assert_eq!(steps.len(), 11);
        assert_eq!((steps[0], *steps.last().unwrap()), (0, (name.entry.recipe)().max_steps()));
        let last: Name = format!("colormnist-lenet@{}", steps[1]).parse().unwrap();
        assert_eq!(last.step, Some(steps[1]));
        let e = "scenes-resnt".parse::<Name>().unwrap_err().to_string();
        assert!(e.contains("did you mean `scenes-resnet`") && e.contains("colormnist-lenet"), "{e}");
        let e = "colormnist-lenet@7".parse::<Name>().unwrap_err().to_string();
        assert!(e.contains("steps 0, "), "{e}");
        let e = "scenes-resnet@0".parse::<Name>().unwrap_err().to_string();
        assert!(e.contains("keeps no checkpoints"), "{e}");
        assert!(names().contains(&format!("colormnist-lenet@{}", steps[1])));
        assert_eq!(type_of("scenes-resnet").unwrap(), "TappedNet");
    }

    #[test]
    fn fingerprints_follow_the_recipe() {
        let a = scenes_resnet();
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.train.epochs += 1;
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn asking_for_the_wrong_type_names_the_right_one() {
        let e = load::<LeNet>("scenes-resnet", Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("is a TappedNet, not a LeNet"), "{e}");
    }
}

#[cfg(test)]
mod training {
    use super::*;

    /// The real recipe, end to end, in a scratch cache: it learns, its checkpoints trace the
    /// learning, and a second load comes from the cache with the same weights. (Its seeds move
    /// with the learning tests' seed offset, so that their spread can be measured.)
    #[test]
    fn colormnist_lenet_learns_and_is_cached_with_its_checkpoints() {
        let _serial = super::super::serial();
        fn recipe() -> Recipe {
            let real = colormnist_lenet();
            let train = TrainConfig { seed: real.train.seed.map(crate::learned::seed), ..real.train };
            Recipe { init_seed: crate::learned::seed(real.init_seed), train, ..real }
        }
        let entry = Entry { recipe, ..*ENTRIES.iter().find(|e| e.name == "colormnist-lenet").unwrap() };
        let root = std::env::temp_dir().join(format!("glassbox-zoo-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let load = |name: &str| -> LeNet {
            let name: Name = name.parse().unwrap();
            load_entry(&root, &name, &entry, Device::Cpu).unwrap()
        };
        // Training on first use and a cache hit leave a seeded caller the same random stream.
        let stream_after = |name: &str| {
            tch::manual_seed(3);
            let net = load(name);
            (net, tch::Tensor::randn([8], tch::kind::FLOAT_CPU))
        };
        let (net, after_training) = stream_after("colormnist-lenet");
        let (_, after_hit) = stream_after("colormnist-lenet");
        assert!(after_training.equal(&after_hit), "{after_training} vs {after_hit}");
        let dir = entry_dir(&root, &entry);
        let card = read_card(&dir).unwrap();
        println!("{card:#?}");
        let at_least = |name: &str, value: f64, bound: f64| {
            crate::learned::at_least(&format!("colormnist-lenet: {name}"), value, bound)
        };
        at_least("test accuracy", card.test.accuracy, 0.8);
        at_least("test accuracy - majority", card.test.accuracy - card.test.majority, 0.6);
        let (first, last) = (&card.checkpoints[0], card.checkpoints.last().unwrap());
        crate::learned::at_most("colormnist-lenet: accuracy at step 0", first.test.accuracy, 0.25);
        at_least("accuracy at the last checkpoint", last.test.accuracy, 0.8);
        assert_eq!(last.step, card.steps);
        // The weights on disk are the ones scored: re-score them.
        let (_, test) = recipe().data.examples().unwrap();
        assert_eq!(evaluate(&net, &test, 100).unwrap().accuracy, card.test.accuracy);
        let modified = std::fs::metadata(dir.join(CARD)).unwrap().modified().unwrap();
        let early = load(&format!("colormnist-lenet@{}", first.step));
        assert_eq!(std::fs::metadata(dir.join(CARD)).unwrap().modified().unwrap(), modified, "trained twice");
        assert_eq!(evaluate(&early, &test, 100).unwrap().accuracy, first.test.accuracy);
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release --lib zoo::timing -- --ignored --nocapture`: trains every
    /// entry into a scratch cache and prints its card (the figures the zoo docs quote).
    #[test]
    #[ignore]
    fn train_every_entry() {
        let root = std::env::temp_dir().join("glassbox-zoo-timing");
        for e in ENTRIES {
            let card = read_card(&trained(&root, e, Device::Cpu).unwrap()).unwrap();
            println!("{card:#?}");
        }
    }
}
