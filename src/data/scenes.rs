//! Procedural concept scenes: a stand-in for Broden and Cityscapes whose labels are exact.
//!
//! A scene is a background (one surface, or an upper and a lower one split at a horizon)
//! with a few objects standing on it. Each object is made of parts, and each part is painted
//! with a material (a texture pattern) in one or two colours. Because every pixel is drawn by
//! this code, its object, part, material and colour labels are known exactly, occlusion
//! included: a later object overwrites both the pixels and the labels of earlier ones.
//!
//! Colours are drawn independently of object class, so a probe cannot read an object off
//! its colour; objects vary in kind-specific shape, scale, position and facing. As in Broden,
//! some parts belong to several kinds of object (windows of cars and houses, lights of cars
//! and lamps, arms of people and lamps), and `wall` is both a background and a house part,
//! which the vocabulary tells apart as `object:wall` and `part:wall`.
//!
//! Scene `i` depends only on the seed and `i` (each scene has its own ChaCha stream), so a
//! data set of 100 scenes is the first 100 of a data set of 1000 with the same config.

use std::collections::BTreeMap;
use std::ops::{Range, RangeInclusive};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::{check_range, Category, Concept, ConceptBatch, ConceptDataset, DataError, Vocabulary};

/// A closed set of concepts with their vocabulary names; the label value is the position.
macro_rules! named {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident => $label:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($variant,)+ }

        impl $name {
            /// Every value, in label order.
            $vis const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The concept name in the vocabulary.
            $vis fn name(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }
        }
    };
}

named! {
    /// The object classes of a scene's background regions ("stuff").
    pub enum Background {
        Sky => "sky",
        Wall => "wall",
        Road => "road",
        Grass => "grass",
        Water => "water",
    }
}

named! {
    /// The object classes drawn on the background, with their parts ("things"): what a study
    /// of objects (SeVec table 2, say) is about.
    pub enum Thing {
        Car => "car",
        House => "house",
        Person => "person",
        Tree => "tree",
        Boat => "boat",
        Lamp => "lamp",
    }
}

named! {
    enum Part {
        Body => "body",
        Window => "window",
        Wheel => "wheel",
        Light => "light",
        Wall => "wall",
        Roof => "roof",
        Door => "door",
        Head => "head",
        Torso => "torso",
        Arm => "arm",
        Leg => "leg",
        Trunk => "trunk",
        Crown => "crown",
        Hull => "hull",
        Sail => "sail",
        Mast => "mast",
        Pole => "pole",
    }
}

named! {
    enum Material {
        Plain => "plain",
        Stripes => "stripes",
        Checker => "checker",
        Dots => "dots",
        Noise => "noise",
        Brick => "brick",
        Waves => "waves",
    }
}

named! {
    /// The colour names of the scenes, each with an RGB prototype.
    pub enum Colour {
        Red => "red",
        Orange => "orange",
        Yellow => "yellow",
        Green => "green",
        Blue => "blue",
        Purple => "purple",
        Pink => "pink",
        Brown => "brown",
        White => "white",
        Grey => "grey",
        Black => "black",
    }
}

impl Colour {
    /// The prototype every pixel of this colour is drawn near: within
    /// `colour_jitter + pixel_noise` per channel.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [200, 30, 30],
            Colour::Orange => [240, 140, 20],
            Colour::Yellow => [235, 220, 40],
            Colour::Green => [40, 160, 50],
            Colour::Blue => [40, 80, 210],
            Colour::Purple => [130, 50, 170],
            Colour::Pink => [240, 140, 190],
            Colour::Brown => [120, 75, 35],
            Colour::White => [240, 240, 240],
            Colour::Grey => [128, 128, 128],
            Colour::Black => [20, 20, 20],
        }
    }
}

/// The largest `colour_jitter + pixel_noise`: prototypes are at least 78 apart in some
/// channel, so up to this every pixel stays nearer its own prototype than any other.
pub const MAX_COLOUR_DEVIATION: u8 = 36;

/// The object labels: backgrounds first, then things.
fn background_label(background: Background) -> i64 {
    background as i64
}

fn thing_label(thing: Thing) -> i64 {
    (Background::ALL.len() + thing as usize) as i64
}

/// The scenes' vocabulary; `Vocabulary::scenes()` keeps the one instance.
pub(super) fn vocabulary() -> Vocabulary {
    let objects = Background::ALL.iter().map(|b| b.name()).chain(Thing::ALL.iter().map(|t| t.name()));
    Vocabulary::new([
        (Category::Object, objects.collect()),
        (Category::Part, Part::ALL.iter().map(|p| p.name()).collect()),
        (Category::Material, Material::ALL.iter().map(|m| m.name()).collect()),
        (Category::Colour, Colour::ALL.iter().map(|c| c.name()).collect::<Vec<_>>()),
    ])
    .expect("the scene vocabulary has unique names")
}

/// How to generate scenes. `SceneConfig { seed: 7, ..Default::default() }` varies the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneConfig {
    /// Height and width of every image, in pixels. Textures scale with it.
    pub size: usize,
    /// How many objects a scene has, drawn uniformly.
    pub objects: RangeInclusive<usize>,
    /// Object height as a fraction of the image size, before each kind's own proportion.
    pub scale: RangeInclusive<f32>,
    /// Every scene derives from this seed and its index.
    pub seed: u64,
    /// Largest per-channel offset of a part's tone from its colour prototype.
    pub colour_jitter: u8,
    /// Largest per-channel, per-pixel noise on top of the tone.
    pub pixel_noise: u8,
}

impl Default for SceneConfig {
    fn default() -> Self {
        SceneConfig { size: 64, objects: 1..=4, scale: 0.3..=0.7, seed: 0, colour_jitter: 12, pixel_noise: 6 }
    }
}

/// The most objects a scene takes: more would hide one another behind the nearest.
pub const MAX_OBJECTS: usize = 16;

impl SceneConfig {
    /// Refuses configs whose scenes would be empty, degenerate or mislabelled.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |why: String| Err(DataError::InvalidConfig(why));
        if !(16..=1024).contains(&self.size) {
            return bad(format!("size {} is outside 16..=1024", self.size));
        }
        if self.objects.is_empty() {
            return bad(format!("objects range {:?} is empty", self.objects));
        }
        if *self.objects.end() > MAX_OBJECTS {
            return bad(format!("at most {MAX_OBJECTS} objects fit a scene, got up to {}", self.objects.end()));
        }
        let (lo, hi) = (*self.scale.start(), *self.scale.end());
        if !(0.05..=2.0).contains(&lo) || !(0.05..=2.0).contains(&hi) || lo > hi {
            return bad(format!("scale {lo}..={hi} must be a range within 0.05..=2.0"));
        }
        if self.colour_jitter as u16 + self.pixel_noise as u16 > MAX_COLOUR_DEVIATION as u16 {
            return bad(format!("colour_jitter + pixel_noise exceeds {MAX_COLOUR_DEVIATION}"));
        }
        Ok(())
    }

    /// Texture periods are tuned for 64-pixel images.
    fn texture_scale(&self) -> f32 {
        self.size as f32 / 64.0
    }
}

/// Where an object is visible, after occlusion. Half-open: `x0 <= x < x1`, `y0 <= y < y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundingBox {
    /// The object's label value in the object map.
    pub object: i64,
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
    /// How many pixels of the object are visible.
    pub pixels: usize,
}

impl BoundingBox {
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }

    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }

    pub fn contains(&self, x: usize, y: usize) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }
}

/// A texture pattern; each pixel shows the first or the second colour of its paint.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Plain,
    Stripes { dx: i32, dy: i32, width: i32, phase: i32 },
    Checker { cell: i32, px: i32, py: i32 },
    Dots { spacing: i32, radius: f32, px: i32, py: i32 },
    Noise { cell: f32, threshold: f32, seed: u64 },
    Brick { height: i32, width: i32, px: i32, py: i32 },
    Waves { band: f32, amplitude: f32, wavelength: f32, phase: f32 },
}

impl Pattern {
    /// A pattern of the given material with random period, orientation and phase; `k`
    /// scales periods with the image size.
    fn random(material: Material, k: f32, rng: &mut impl Rng) -> Pattern {
        let scaled = |v: i32| ((v as f32 * k).round() as i32).max(1);
        fn phase(rng: &mut impl Rng, period: i32) -> i32 {
            rng.gen_range(0..period.max(1))
        }
        match material {
            Material::Plain => Pattern::Plain,
            Material::Stripes => {
                let (dx, dy) = *[(1, 0), (0, 1), (1, 1), (1, -1)].choose(rng).unwrap();
                let width = scaled(rng.gen_range(2..=3));
                Pattern::Stripes { dx, dy, width, phase: phase(rng, 2 * width) }
            }
            Material::Checker => {
                let cell = scaled(rng.gen_range(2..=4));
                Pattern::Checker { cell, px: phase(rng, cell), py: phase(rng, cell) }
            }
            Material::Dots => {
                let spacing = scaled(rng.gen_range(4..=6));
                let radius = spacing as f32 * rng.gen_range(0.25..0.35);
                Pattern::Dots { spacing, radius, px: phase(rng, spacing), py: phase(rng, spacing) }
            }
            Material::Noise => {
                let cell = rng.gen_range(2.5..5.0) * k;
                Pattern::Noise { cell, threshold: rng.gen_range(0.4..0.6), seed: rng.gen() }
            }
            Material::Brick => {
                let height = scaled(rng.gen_range(3..=5));
                let width = 2 * height + scaled(rng.gen_range(0..=2));
                Pattern::Brick { height, width, px: phase(rng, width), py: phase(rng, height) }
            }
            Material::Waves => Pattern::Waves {
                band: rng.gen_range(2.0..3.0) * k,
                amplitude: rng.gen_range(1.0..2.0) * k,
                wavelength: rng.gen_range(8.0..14.0) * k,
                phase: rng.gen_range(0.0..std::f32::consts::TAU),
            },
        }
    }

    fn material(self) -> Material {
        match self {
            Pattern::Plain => Material::Plain,
            Pattern::Stripes { .. } => Material::Stripes,
            Pattern::Checker { .. } => Material::Checker,
            Pattern::Dots { .. } => Material::Dots,
            Pattern::Noise { .. } => Material::Noise,
            Pattern::Brick { .. } => Material::Brick,
            Pattern::Waves { .. } => Material::Waves,
        }
    }

    /// Whether pixel `(x, y)` shows the second colour. Patterns are anchored to the image,
    /// not the object, like a texture seen through a cut-out.
    fn second(self, x: i32, y: i32) -> bool {
        match self {
            Pattern::Plain => false,
            Pattern::Stripes { dx, dy, width, phase } => (x * dx + y * dy + phase).div_euclid(width) % 2 != 0,
            Pattern::Checker { cell, px, py } => ((x + px).div_euclid(cell) + (y + py).div_euclid(cell)) % 2 != 0,
            Pattern::Dots { spacing, radius, px, py } => {
                let centre = (spacing - 1) as f32 / 2.0;
                let ox = (x + px).rem_euclid(spacing) as f32 - centre;
                let oy = (y + py).rem_euclid(spacing) as f32 - centre;
                ox * ox + oy * oy <= radius * radius
            }
            Pattern::Noise { cell, threshold, seed } => value_noise(seed, x as f32 / cell, y as f32 / cell) > threshold,
            Pattern::Brick { height, width, px, py } => {
                let row = (y + py).div_euclid(height);
                let shift = if row % 2 != 0 { width / 2 } else { 0 };
                (y + py).rem_euclid(height) == 0 || (x + px + shift).rem_euclid(width) == 0
            }
            Pattern::Waves { band, amplitude, wavelength, phase } => {
                let t = y as f32 + amplitude * (std::f32::consts::TAU * x as f32 / wavelength + phase).sin();
                (t / band).floor() as i64 % 2 != 0
            }
        }
    }
}

/// Smooth random field in `[0, 1)`: bilinear interpolation of hashed lattice values.
fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (ix, iy) = (x.floor(), y.floor());
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let (tx, ty) = (smooth(x - ix), smooth(y - iy));
    let (ix, iy) = (ix as i64, iy as i64);
    let at = |dx: i64, dy: i64| lattice(seed, ix + dx, iy + dy);
    let top = at(0, 0) + (at(1, 0) - at(0, 0)) * tx;
    let bottom = at(0, 1) + (at(1, 1) - at(0, 1)) * tx;
    top + (bottom - top) * ty
}

/// A uniform value in `[0, 1)` for a lattice point (splitmix64 finaliser).
fn lattice(seed: u64, x: i64, y: i64) -> f32 {
    let mut h = seed ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// A material in two colours, each with its own jittered tone, and per-pixel noise.
#[derive(Debug, Clone, Copy)]
struct Paint {
    pattern: Pattern,
    colours: [Colour; 2],
    tones: [[i16; 3]; 2],
    noise: i16,
}

impl Paint {
    fn new(material: Material, colours: [Colour; 2], config: &SceneConfig, rng: &mut impl Rng) -> Paint {
        let pattern = Pattern::random(material, config.texture_scale(), rng);
        let jitter = config.colour_jitter as i16;
        let mut tone = |c: Colour| c.rgb().map(|v| v as i16 + rng.gen_range(-jitter..=jitter));
        let tones = [tone(colours[0]), tone(colours[1])];
        Paint { pattern, colours, tones, noise: config.pixel_noise as i16 }
    }

    /// The colour pixel `(x, y)` shows, and its value.
    fn at(&self, x: usize, y: usize, rng: &mut impl Rng) -> (Colour, [u8; 3]) {
        let which = usize::from(self.pattern.second(x as i32, y as i32));
        let value = self.tones[which].map(|t| (t + rng.gen_range(-self.noise..=self.noise)).clamp(0, 255) as u8);
        (self.colours[which], value)
    }
}

/// The looks a background can take: its material, first colours, second colours. A look
/// with no second colours is drawn in one colour.
fn background_looks(background: Background) -> &'static [(Material, &'static [Colour], &'static [Colour])] {
    use Colour::*;
    match background {
        Background::Sky => &[(Material::Plain, &[Blue, White], &[]), (Material::Noise, &[Blue, Grey], &[White])],
        Background::Wall => &[(Material::Brick, &[Red, Brown, Grey, Yellow, White], &[White, Grey, Black])],
        Background::Road => &[(Material::Plain, &[Grey, Black], &[]), (Material::Noise, &[Grey], &[Black])],
        Background::Grass => &[(Material::Plain, &[Green], &[]), (Material::Noise, &[Green], &[Yellow, Brown])],
        Background::Water => &[(Material::Waves, &[Blue, Green], &[White, Grey, Blue])],
    }
}

fn background_paint(background: Background, config: &SceneConfig, rng: &mut impl Rng) -> Paint {
    let (material, firsts, seconds) = *background_looks(background).choose(rng).unwrap();
    let first = *firsts.choose(rng).unwrap();
    let others: Vec<Colour> = seconds.iter().copied().filter(|c| *c != first).collect();
    let second = others.choose(rng).copied().unwrap_or(first);
    Paint::new(material, [first, second], config, rng)
}

/// A part outline in the object's unit box: `u` runs left to right, `v` top to bottom.
#[derive(Debug, Clone)]
enum Shape {
    Rect {
        u0: f32,
        v0: f32,
        u1: f32,
        v1: f32,
    },
    Ellipse {
        cu: f32,
        cv: f32,
        ru: f32,
        rv: f32,
    },
    /// A convex polygon, either winding.
    Convex(Vec<(f32, f32)>),
}

impl Shape {
    fn contains(&self, u: f32, v: f32) -> bool {
        match self {
            Shape::Rect { u0, v0, u1, v1 } => (*u0..*u1).contains(&u) && (*v0..*v1).contains(&v),
            Shape::Ellipse { cu, cv, ru, rv } => ((u - cu) / ru).powi(2) + ((v - cv) / rv).powi(2) <= 1.0,
            Shape::Convex(points) => {
                let sides = points
                    .iter()
                    .zip(points.iter().cycle().skip(1))
                    .map(|(a, b)| (b.0 - a.0) * (v - a.1) - (b.1 - a.1) * (u - a.0));
                let (mut left, mut right) = (false, false);
                for side in sides {
                    left |= side > 0.0;
                    right |= side < 0.0;
                }
                !(left && right)
            }
        }
    }
}

fn rect(u0: f32, v0: f32, u1: f32, v1: f32) -> Shape {
    Shape::Rect { u0, v0, u1, v1 }
}

/// A circle of vertical radius `rv` in a box `aspect` times wider than high.
fn circle(cu: f32, cv: f32, rv: f32, aspect: f32) -> Shape {
    Shape::Ellipse { cu, cv, ru: rv / aspect, rv }
}

impl Thing {
    /// Width over height of the unit box, and height relative to the drawn scale.
    fn proportions(self) -> (f32, f32) {
        match self {
            Thing::Car => (1.9, 0.55),
            Thing::House => (1.0, 0.9),
            Thing::Person => (0.42, 1.0),
            Thing::Tree => (0.7, 1.0),
            Thing::Boat => (1.1, 0.8),
            Thing::Lamp => (0.4, 1.1),
        }
    }

    /// The parts in drawing order (later parts cover earlier ones), with shape variations.
    fn layout(self, aspect: f32, rng: &mut impl Rng) -> Vec<(Part, Shape)> {
        match self {
            Thing::Car => {
                let (c0, c1) = (rng.gen_range(0.18..0.3), rng.gen_range(0.65..0.8));
                let mid = (c0 + c1) / 2.0;
                vec![
                    (Part::Body, rect(0.0, 0.38, 1.0, 0.82)),
                    (Part::Body, Shape::Convex(vec![(c0 + 0.08, 0.0), (c1 - 0.06, 0.0), (c1, 0.4), (c0, 0.4)])),
                    (Part::Window, rect(c0 + 0.1, 0.08, mid - 0.02, 0.36)),
                    (Part::Window, rect(mid + 0.02, 0.08, c1 - 0.08, 0.36)),
                    (Part::Light, rect(0.93, 0.44, 1.0, 0.58)),
                    (Part::Wheel, circle(0.22, 0.8, 0.2, aspect)),
                    (Part::Wheel, circle(0.78, 0.8, 0.2, aspect)),
                ]
            }
            Thing::House => {
                let base = rng.gen_range(0.32..0.45);
                let roof = if rng.gen_bool(0.5) {
                    Shape::Convex(vec![(0.0, base + 0.02), (0.5, 0.0), (1.0, base + 0.02)])
                } else {
                    Shape::Convex(vec![(0.0, base + 0.02), (0.2, 0.05), (0.8, 0.05), (1.0, base + 0.02)])
                };
                let door = rng.gen_range(0.2..0.62);
                let mut parts = vec![(Part::Wall, rect(0.1, base, 0.9, 1.0)), (Part::Roof, roof)];
                for u in [0.18f32, 0.62] {
                    if (u - door).abs() > 0.2 || rng.gen_bool(0.3) {
                        parts.push((Part::Window, rect(u, base + 0.1, u + 0.18, base + 0.26)));
                    }
                }
                parts.push((Part::Door, rect(door, 0.7, door + 0.18, 1.0)));
                parts
            }
            Thing::Person => {
                let reach = rng.gen_range(0.5..0.66);
                let stride = rng.gen_range(0.0..0.08);
                vec![
                    (Part::Leg, rect(0.28 - stride, 0.6, 0.46, 1.0)),
                    (Part::Leg, rect(0.54, 0.6, 0.72 + stride, 1.0)),
                    (Part::Arm, rect(0.06, 0.26, 0.25, reach)),
                    (Part::Arm, rect(0.75, 0.26, 0.94, 1.16 - reach)),
                    (Part::Torso, rect(0.24, 0.23, 0.76, 0.63)),
                    (Part::Head, circle(0.5, 0.12, 0.11, aspect)),
                ]
            }
            Thing::Tree => {
                let crown = if rng.gen_bool(0.6) {
                    Shape::Ellipse { cu: 0.5, cv: 0.36, ru: 0.5, rv: 0.36 }
                } else {
                    Shape::Convex(vec![(0.5, 0.0), (1.0, 0.78), (0.0, 0.78)])
                };
                vec![(Part::Trunk, rect(0.4, 0.55, 0.6, 1.0)), (Part::Crown, crown)]
            }
            Thing::Boat => {
                let deck = rng.gen_range(0.62..0.72);
                vec![
                    (Part::Mast, rect(0.46, 0.02, 0.54, deck)),
                    (
                        Part::Sail,
                        Shape::Convex(vec![(0.57, 0.06), (0.57, deck - 0.05), (rng.gen_range(0.85..1.0), deck - 0.05)]),
                    ),
                    (Part::Hull, Shape::Convex(vec![(0.0, deck), (1.0, deck), (0.82, 1.0), (0.18, 1.0)])),
                ]
            }
            Thing::Lamp => {
                let reach = rng.gen_range(0.8..1.0);
                vec![
                    (Part::Pole, rect(0.4, 0.08, 0.6, 1.0)),
                    (Part::Arm, rect(0.5, 0.08, reach, 0.14)),
                    (Part::Light, rect(reach - 0.3, 0.14, reach, 0.26)),
                ]
            }
        }
    }

    #[cfg(test)]
    fn parts(self) -> &'static [Part] {
        match self {
            Thing::Car => &[Part::Body, Part::Window, Part::Wheel, Part::Light],
            Thing::House => &[Part::Wall, Part::Roof, Part::Door, Part::Window],
            Thing::Person => &[Part::Head, Part::Torso, Part::Arm, Part::Leg],
            Thing::Tree => &[Part::Trunk, Part::Crown],
            Thing::Boat => &[Part::Hull, Part::Sail, Part::Mast],
            Thing::Lamp => &[Part::Pole, Part::Arm, Part::Light],
        }
    }
}

impl Part {
    /// Parts a few pixels thin would show too little of a pattern to carry its label.
    fn materials(self) -> &'static [Material] {
        match self {
            Part::Light | Part::Mast | Part::Pole => &[Material::Plain],
            _ => Material::ALL,
        }
    }
}

/// An object placed in the image, in pixel units.
#[derive(Debug, Clone)]
struct Placed {
    thing: Thing,
    left: f32,
    top: f32,
    width: f32,
    height: f32,
    flip: bool,
    parts: Vec<(Part, Shape)>,
}

impl Placed {
    /// Stands an object with its foot in the `ground` rows.
    fn random(config: &SceneConfig, ground: Range<f32>, rng: &mut impl Rng) -> Placed {
        let thing = *Thing::ALL.choose(rng).unwrap();
        let (aspect, proportion) = thing.proportions();
        let aspect = aspect * rng.gen_range(0.85..1.15);
        let height = rng.gen_range(config.scale.clone()) * proportion * config.size as f32;
        let width = height * aspect;
        let centre = rng.gen_range(0.0..config.size as f32);
        let bottom = rng.gen_range(ground);
        let flip = rng.gen_bool(0.5);
        let parts = thing.layout(aspect, rng);
        Placed { thing, left: centre - width / 2.0, top: bottom - height, width, height, flip, parts }
    }

    fn bottom(&self) -> f32 {
        self.top + self.height
    }

    /// The part at pixel `(x, y)`, as an index into `parts`; the last part drawn wins.
    fn part_at(&self, x: usize, y: usize) -> Option<usize> {
        let mut u = (x as f32 + 0.5 - self.left) / self.width;
        let v = (y as f32 + 0.5 - self.top) / self.height;
        if self.flip {
            u = 1.0 - u;
        }
        self.parts.iter().rposition(|(_, shape)| shape.contains(u, v))
    }

    /// Rows or columns `start..start + len` clipped to the image.
    fn span(start: f32, len: f32, size: usize) -> Range<usize> {
        let clip = |t: f32| t.clamp(0.0, size as f32) as usize;
        clip(start.floor())..clip((start + len).ceil())
    }
}

/// One scene in plain buffers, before a data set stacks scenes into tensors.
struct Scene {
    size: usize,
    /// `[3, H, W]`.
    rgb: Vec<u8>,
    /// `[H, W]` per category, in `Category::ALL` order.
    labels: [Vec<i64>; 4],
    /// `[H, W]`, `-1` on background, else the index of the object's box.
    instances: Vec<i64>,
    boxes: Vec<BoundingBox>,
}

impl Scene {
    fn blank(size: usize) -> Scene {
        let n = size * size;
        Scene {
            size,
            rgb: vec![0; 3 * n],
            labels: std::array::from_fn(|_| vec![-1; n]),
            instances: vec![-1; n],
            boxes: Vec::new(),
        }
    }

    /// Paints pixel `(x, y)` for `owner` and overwrites all its labels.
    fn put(&mut self, x: usize, y: usize, paint: &Paint, owner: Owner, rng: &mut impl Rng) {
        let i = y * self.size + x;
        let (colour, value) = paint.at(x, y, rng);
        for (c, v) in value.into_iter().enumerate() {
            self.rgb[c * self.size * self.size + i] = v;
        }
        let labels = [owner.object, owner.part, paint.pattern.material() as i64, colour as i64];
        for (map, label) in self.labels.iter_mut().zip(labels) {
            map[i] = label;
        }
        self.instances[i] = owner.instance;
    }
}

/// Whose pixel it is: object and part labels and the instance number (`-1` for none).
#[derive(Debug, Clone, Copy)]
struct Owner {
    object: i64,
    part: i64,
    instance: i64,
}

/// The random stream of scene `index`: independent of how many scenes are generated.
fn scene_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// Draws scene `index` of a data set.
fn render(config: &SceneConfig, index: usize) -> Scene {
    let mut rng = scene_rng(config.seed, index);
    let mut scene = Scene::blank(config.size);
    let (used, ground) = draw_backgrounds(&mut scene, config, &mut rng);
    let count = rng.gen_range(config.objects.clone());
    let mut objects: Vec<Placed> = (0..count).map(|_| Placed::random(config, ground.clone(), &mut rng)).collect();
    // Nearer objects stand lower in the image and hide the ones behind them.
    objects.sort_by(|a, b| a.bottom().total_cmp(&b.bottom()));
    for (instance, object) in objects.iter().enumerate() {
        draw_object(&mut scene, object, instance as i64, &used, config, &mut rng);
    }
    find_boxes(&mut scene);
    scene
}

/// Fills the scene with one background, or an upper and a lower one; returns the colours
/// used and the rows objects may stand on.
fn draw_backgrounds(scene: &mut Scene, config: &SceneConfig, rng: &mut impl Rng) -> (Vec<Colour>, Range<f32>) {
    let size = config.size as f32;
    let layers: Vec<(Background, usize)> = if rng.gen_bool(0.2) {
        vec![(*Background::ALL.choose(rng).unwrap(), 0)]
    } else {
        let upper = *[Background::Sky, Background::Wall].choose(rng).unwrap();
        let lower = *[Background::Road, Background::Grass, Background::Water].choose(rng).unwrap();
        vec![(upper, 0), (lower, (rng.gen_range(0.3..0.65) * size) as usize)]
    };
    let mut used = Vec::new();
    for (i, &(background, top)) in layers.iter().enumerate() {
        let paint = background_paint(background, config, rng);
        used.extend(paint.colours);
        let owner = Owner { object: background_label(background), part: -1, instance: -1 };
        let bottom = layers.get(i + 1).map_or(config.size, |next| next.1);
        for y in top..bottom {
            for x in 0..config.size {
                scene.put(x, y, &paint, owner, rng);
            }
        }
    }
    let horizon = layers.last().map_or(0, |layer| layer.1) as f32;
    let foot = horizon.max(0.4 * size) + 0.15 * (size - horizon);
    (used, foot..1.05 * size)
}

/// Paints an object. Pieces of the same part (both wheels, the two halves of a car body)
/// share one paint. Each part gets its own first colour, which no other part of the object
/// and no background of the scene has, so that no part blends into its surroundings.
fn draw_object(
    scene: &mut Scene,
    object: &Placed,
    instance: i64,
    used: &[Colour],
    config: &SceneConfig,
    rng: &mut impl Rng,
) {
    let mut firsts: Vec<Colour> = Colour::ALL.iter().copied().filter(|c| !used.contains(c)).collect();
    firsts.shuffle(rng);
    let mut paints: Vec<(Part, Paint)> = Vec::new();
    for (part, _) in &object.parts {
        if paints.iter().all(|(p, _)| p != part) {
            // At most 4 parts and 4 background colours leave 7 colours: the modulo never wraps.
            let first = firsts[paints.len() % firsts.len()];
            let seconds: Vec<Colour> = Colour::ALL.iter().copied().filter(|c| *c != first).collect();
            let second = *seconds.choose(rng).unwrap();
            let material = *part.materials().choose(rng).unwrap();
            paints.push((*part, Paint::new(material, [first, second], config, rng)));
        }
    }
    for y in Placed::span(object.top, object.height, config.size) {
        for x in Placed::span(object.left, object.width, config.size) {
            if let Some(i) = object.part_at(x, y) {
                let part = object.parts[i].0;
                let paint = &paints.iter().find(|(p, _)| *p == part).unwrap().1;
                let owner = Owner { object: thing_label(object.thing), part: part as i64, instance };
                scene.put(x, y, paint, owner, rng);
            }
        }
    }
}

/// Boxes the visible pixels of each object and renumbers instances so that an instance
/// value indexes `boxes`; objects hidden entirely get no box and no number.
fn find_boxes(scene: &mut Scene) {
    let size = scene.size;
    let mut found: BTreeMap<i64, BoundingBox> = BTreeMap::new();
    for (i, &instance) in scene.instances.iter().enumerate().filter(|(_, k)| **k >= 0) {
        let (x, y) = (i % size, i / size);
        let object = scene.labels[0][i];
        let b = found.entry(instance).or_insert(BoundingBox { object, x0: x, y0: y, x1: x + 1, y1: y + 1, pixels: 0 });
        b.x0 = b.x0.min(x);
        b.y0 = b.y0.min(y);
        b.x1 = b.x1.max(x + 1);
        b.y1 = b.y1.max(y + 1);
        b.pixels += 1;
    }
    let renumber: BTreeMap<i64, i64> = found.keys().enumerate().map(|(new, old)| (*old, new as i64)).collect();
    for instance in scene.instances.iter_mut().filter(|k| **k >= 0) {
        *instance = renumber[instance];
    }
    scene.boxes = found.into_values().collect();
}

/// Sets the image-label column of every concept some pixel of the scene shows.
fn mark_present(scene: &Scene, vocabulary: &Vocabulary, row: &mut [f32]) {
    for (category, map) in Category::ALL.into_iter().zip(&scene.labels) {
        let offset = vocabulary.global_index(Concept { category, index: 0 });
        for &label in map.iter().filter(|l| **l >= 0) {
            row[offset + label as usize] = 1.0;
        }
    }
}

/// A data set of procedural scenes with exact concept annotations, as tensors.
#[derive(Debug)]
pub struct ConceptScenes {
    /// `[N, 3, H, W]` float in `[0, 1]`.
    pub images: Tensor,
    /// Per category a `[N, H, W]` int64 map, `-1` where the category does not apply (parts
    /// on background pixels). The object map is the segmentation task: backgrounds and
    /// things, never `-1`.
    pub concepts: BTreeMap<Category, Tensor>,
    /// `[N, H, W]` int64: `-1` on background, else the index into that image's `boxes`.
    pub instances: Tensor,
    /// `[N, n_concepts]` float multi-hot: concepts visible anywhere in the image.
    pub image_labels: Tensor,
    /// Per image, the visible objects back to front.
    pub boxes: Vec<Vec<BoundingBox>>,
}

impl ConceptScenes {
    /// Generates `n` scenes on the CPU; scene `i` is the same for every `n > i`.
    pub fn generate(n: usize, config: &SceneConfig) -> Result<ConceptScenes, DataError> {
        config.validate()?;
        let vocabulary = Vocabulary::scenes();
        let pixels = config.size * config.size;
        let mut rgb = Vec::with_capacity(n * 3 * pixels);
        let mut labels: [Vec<i64>; 4] = std::array::from_fn(|_| Vec::with_capacity(n * pixels));
        let mut instances = Vec::with_capacity(n * pixels);
        let mut image_labels = vec![0f32; n * vocabulary.len()];
        let mut boxes = Vec::with_capacity(n);
        for (index, row) in image_labels.chunks_mut(vocabulary.len()).enumerate().take(n) {
            let scene = render(config, index);
            mark_present(&scene, vocabulary, row);
            rgb.extend_from_slice(&scene.rgb);
            for (all, one) in labels.iter_mut().zip(&scene.labels) {
                all.extend_from_slice(one);
            }
            instances.extend_from_slice(&scene.instances);
            boxes.push(scene.boxes);
        }
        let (n, s) = (n as i64, config.size as i64);
        let map = |buffer: &[i64]| Tensor::from_slice(buffer).view([n, s, s]);
        Ok(ConceptScenes {
            images: Tensor::from_slice(&rgb).view([n, 3, s, s]).to_kind(Kind::Float) / 255.0,
            concepts: Category::ALL.into_iter().zip(&labels).map(|(c, l)| (c, map(l))).collect(),
            instances: map(&instances),
            image_labels: Tensor::from_slice(&image_labels).view([n, vocabulary.len() as i64]),
            boxes,
        })
    }

    /// The number of scenes.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// The segmentation target: the object map.
    pub fn objects(&self) -> &Tensor {
        &self.concepts[&Category::Object]
    }

    /// The label map of one category.
    pub fn concept_map(&self, category: Category) -> &Tensor {
        &self.concepts[&category]
    }

    /// Scenes `range`, sharing memory with these.
    ///
    /// # Panics
    /// If `range` is not within `0..len()`.
    pub fn slice(&self, range: Range<usize>) -> ConceptScenes {
        if let Err(e) = check_range(&range, self.len()) {
            panic!("{e}");
        }
        let narrow = |t: &Tensor| t.narrow(0, range.start as i64, range.len() as i64);
        ConceptScenes {
            images: narrow(&self.images),
            concepts: self.concepts.iter().map(|(c, t)| (*c, narrow(t))).collect(),
            instances: narrow(&self.instances),
            image_labels: narrow(&self.image_labels),
            boxes: self.boxes[range.clone()].to_vec(),
        }
    }

    /// The same scenes on another device.
    pub fn to_device(&self, device: Device) -> ConceptScenes {
        ConceptScenes {
            images: self.images.to_device(device),
            concepts: self.concepts.iter().map(|(c, t)| (*c, t.to_device(device))).collect(),
            instances: self.instances.to_device(device),
            image_labels: self.image_labels.to_device(device),
            boxes: self.boxes.clone(),
        }
    }

    /// The images and concept maps, without instances and boxes; a scene pixel carries one
    /// concept per category, so there are no overlaps.
    pub fn into_batch(self) -> ConceptBatch {
        ConceptBatch {
            images: self.images,
            concepts: self.concepts,
            overlaps: BTreeMap::new(),
            image_labels: self.image_labels,
        }
    }
}

impl ConceptDataset for ConceptScenes {
    fn len(&self) -> usize {
        self.boxes.len()
    }

    fn image_size(&self) -> (usize, usize) {
        let size = self.images.size();
        (size[2] as usize, size[3] as usize)
    }

    fn vocabulary(&self) -> &Vocabulary {
        Vocabulary::scenes()
    }

    fn batch(&self, range: Range<usize>) -> Result<ConceptBatch, DataError> {
        check_range(&range, ConceptDataset::len(self))?;
        Ok(self.slice(range).into_batch())
    }

    /// A scene's objects are its things (its backgrounds are the ground they stand on).
    fn single_object(&self, index: usize) -> Option<i64> {
        match self.boxes.get(index).map(Vec::as_slice) {
            Some([only]) => Some(only.object),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat<T: tch::kind::Element + Copy>(t: &Tensor) -> Vec<T> {
        Vec::try_from(&t.reshape([-1])).unwrap()
    }

    fn config(seed: u64) -> SceneConfig {
        SceneConfig { seed, ..Default::default() }
    }

    fn same(a: &ConceptScenes, b: &ConceptScenes) -> bool {
        a.images.equal(&b.images)
            && Category::ALL.iter().all(|c| a.concepts[c].equal(&b.concepts[c]))
            && a.instances.equal(&b.instances)
            && a.image_labels.equal(&b.image_labels)
            && a.boxes == b.boxes
    }

    /// Checks every annotation of `scenes` against its pixels and against the other maps.
    fn check_invariants(scenes: &ConceptScenes, config: &SceneConfig) {
        let vocabulary = Vocabulary::scenes();
        let (n, s) = (scenes.len(), config.size);
        let rgb: Vec<u8> = flat::<f32>(&scenes.images).iter().map(|v| (v * 255.0).round() as u8).collect();
        let maps: Vec<Vec<i64>> = Category::ALL.iter().map(|c| flat(&scenes.concepts[c])).collect();
        let instances: Vec<i64> = flat(&scenes.instances);
        let image_labels: Vec<f32> = flat(&scenes.image_labels);
        let deviation = (config.colour_jitter + config.pixel_noise) as i16;
        let backgrounds = Background::ALL.len() as i64;
        for image in 0..n {
            let mut present = vec![0f32; vocabulary.len()];
            let mut boxes: BTreeMap<i64, (usize, usize, usize, usize, usize)> = BTreeMap::new();
            let mut paints: BTreeMap<(i64, i64), (i64, Vec<i64>)> = BTreeMap::new();
            for p in 0..s * s {
                let i = image * s * s + p;
                let [object, part, material, colour] = [0, 1, 2, 3].map(|c| maps[c][i]);
                assert!((0..vocabulary.names(Category::Object).len() as i64).contains(&object));
                assert!((0..Material::ALL.len() as i64).contains(&material));
                assert!((0..Colour::ALL.len() as i64).contains(&colour));
                if object < backgrounds {
                    assert_eq!((part, instances[i]), (-1, -1), "background pixel with a part or instance");
                } else {
                    let thing = Thing::ALL[(object - backgrounds) as usize];
                    assert!(part >= 0, "object pixel without a part");
                    assert!(thing.parts().contains(&Part::ALL[part as usize]), "{thing:?} has no part {part}");
                    let b = boxes.entry(instances[i]).or_insert((usize::MAX, usize::MAX, 0, 0, 0));
                    let (x, y) = (p % s, p / s);
                    *b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), b.3.max(y + 1), b.4 + 1);
                    assert_eq!(scenes.boxes[image][instances[i] as usize].object, object);
                    let (first_material, colours) =
                        paints.entry((instances[i], part)).or_insert((material, Vec::new()));
                    assert_eq!(*first_material, material, "one part of one object in two materials");
                    if !colours.contains(&colour) {
                        colours.push(colour);
                    }
                    assert!(colours.len() <= 2, "one part of one object in more than two colours");
                }
                let prototype = Colour::ALL[colour as usize].rgb();
                let pixel = [0, 1, 2].map(|c| rgb[image * 3 * s * s + c * s * s + p]);
                let far = |proto: [u8; 3]| (0..3).map(|c| (pixel[c] as i16 - proto[c] as i16).abs()).max().unwrap();
                assert!(far(prototype) <= deviation, "pixel {pixel:?} is not {:?}", Colour::ALL[colour as usize]);
                let nearest = Colour::ALL.iter().min_by_key(|c| far(c.rgb())).unwrap();
                assert_eq!(*nearest as i64, colour);
                for (category, label) in Category::ALL.into_iter().zip([object, part, material, colour]) {
                    if label >= 0 {
                        present[vocabulary.global_index(Concept { category, index: label as usize })] = 1.0;
                    }
                }
            }
            assert_eq!(image_labels[image * vocabulary.len()..(image + 1) * vocabulary.len()], present[..]);
            let expected: Vec<(usize, usize, usize, usize, usize)> = boxes.into_values().collect();
            let found: Vec<_> = scenes.boxes[image].iter().map(|b| (b.x0, b.y0, b.x1, b.y1, b.pixels)).collect();
            assert_eq!(found, expected, "boxes of image {image}");
        }
    }

    #[test]
    fn tensors_have_the_documented_shapes_and_kinds() {
        let scenes = ConceptScenes::generate(5, &config(1)).unwrap();
        assert_eq!(scenes.images.size(), [5, 3, 64, 64]);
        assert_eq!(scenes.images.kind(), Kind::Float);
        assert!(scenes.images.min().double_value(&[]) >= 0.0 && scenes.images.max().double_value(&[]) <= 1.0);
        assert_eq!(scenes.concepts.keys().copied().collect::<Vec<_>>(), Category::ALL);
        for map in scenes.concepts.values().chain([&scenes.instances]) {
            assert_eq!((map.size(), map.kind()), (vec![5, 64, 64], Kind::Int64));
        }
        assert_eq!(scenes.image_labels.size(), [5, Vocabulary::scenes().len() as i64]);
        assert_eq!(scenes.boxes.len(), 5);
        assert_eq!(ConceptDataset::image_size(&scenes), (64, 64));
    }

    #[test]
    fn annotations_match_the_pixels() {
        let default = config(2);
        check_invariants(&ConceptScenes::generate(300, &default).unwrap(), &default);
    }

    #[test]
    fn annotations_match_the_pixels_at_other_sizes_and_crowds() {
        for config in [
            SceneConfig { size: 32, objects: 3..=6, seed: 3, ..Default::default() },
            SceneConfig {
                size: 96,
                scale: 0.1..=1.2,
                colour_jitter: 30,
                pixel_noise: 6,
                seed: 4,
                ..Default::default()
            },
            SceneConfig { objects: 0..=0, colour_jitter: 0, pixel_noise: 0, seed: 5, ..Default::default() },
        ] {
            check_invariants(&ConceptScenes::generate(40, &config).unwrap(), &config);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_scenes() {
        let a = ConceptScenes::generate(20, &config(7)).unwrap();
        assert!(same(&a, &ConceptScenes::generate(20, &config(7)).unwrap()));
        assert!(!ConceptScenes::generate(20, &config(8)).unwrap().images.equal(&a.images));
    }

    #[test]
    fn a_scene_does_not_depend_on_how_many_are_generated() {
        let many = ConceptScenes::generate(12, &config(9)).unwrap();
        assert!(same(&many.slice(0..5), &ConceptScenes::generate(5, &config(9)).unwrap()));
    }

    #[test]
    fn scenes_in_one_data_set_differ() {
        let scenes = ConceptScenes::generate(2, &config(10)).unwrap();
        assert!(!scenes.images.get(0).equal(&scenes.images.get(1)));
    }

    #[test]
    fn every_category_and_concept_occurs_in_200_scenes() {
        let scenes = ConceptScenes::generate(200, &config(11)).unwrap();
        let vocabulary = Vocabulary::scenes();
        let seen: Vec<f32> = flat(&scenes.image_labels.sum_dim_intlist([0i64].as_slice(), false, Kind::Float));
        let missing: Vec<String> = vocabulary
            .all()
            .filter(|c| seen[vocabulary.global_index(*c)] == 0.0)
            .map(|c| vocabulary.qualified_name(c))
            .collect();
        assert!(missing.is_empty(), "never drawn: {missing:?}");
        for category in Category::ALL {
            let labelled = scenes.concepts[&category].ge(0).sum(Kind::Int64).int64_value(&[]);
            assert!(labelled > 0, "no {category} pixel");
        }
    }

    #[test]
    fn colour_is_not_tied_to_object_class() {
        let scenes = ConceptScenes::generate(200, &config(12)).unwrap();
        let (objects, colours): (Vec<i64>, Vec<i64>) =
            (flat(scenes.objects()), flat(scenes.concept_map(Category::Colour)));
        for thing in Thing::ALL {
            let mut shown = vec![false; Colour::ALL.len()];
            for (o, c) in objects.iter().zip(&colours) {
                if *o == thing_label(*thing) {
                    shown[*c as usize] = true;
                }
            }
            assert!(shown.iter().all(|s| *s), "{thing:?} never shows some colour: {shown:?}");
        }
    }

    #[test]
    fn vocabulary_matches_the_label_values() {
        let v = Vocabulary::scenes();
        assert_eq!(v.names(Category::Object).len(), Background::ALL.len() + Thing::ALL.len());
        assert_eq!(v.find("object:car").unwrap().index as i64, thing_label(Thing::Car));
        assert_eq!(v.find("sky").unwrap().index as i64, background_label(Background::Sky));
        assert_eq!(v.find("wheel").unwrap().index, Part::Wheel as usize);
        assert_eq!(v.find("brick").unwrap().index, Material::Brick as usize);
        assert_eq!(v.find("colour:grey").unwrap().index, Colour::Grey as usize);
        assert!(v.find("wall").is_err(), "wall is both a background and a house part");
    }

    #[test]
    fn colour_prototypes_are_told_apart_at_the_largest_deviation() {
        for (i, a) in Colour::ALL.iter().enumerate() {
            for b in &Colour::ALL[i + 1..] {
                let gap = (0..3).map(|c| (a.rgb()[c] as i16 - b.rgb()[c] as i16).abs()).max().unwrap();
                assert!(gap > 2 * MAX_COLOUR_DEVIATION as i16, "{a:?} and {b:?} are {gap} apart");
            }
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        for bad in [
            SceneConfig { size: 8, ..Default::default() },
            #[allow(clippy::reversed_empty_ranges)]
            SceneConfig { objects: 3..=2, ..Default::default() },
            SceneConfig { objects: 1..=1000, ..Default::default() },
            SceneConfig { scale: 0.5..=0.2, ..Default::default() },
            SceneConfig { scale: 0.0..=0.5, ..Default::default() },
            SceneConfig { colour_jitter: 30, pixel_noise: 10, ..Default::default() },
        ] {
            assert!(matches!(ConceptScenes::generate(1, &bad), Err(DataError::InvalidConfig(_))), "{bad:?}");
        }
    }

    #[test]
    fn batches_cover_the_data_set_in_order() {
        let scenes = ConceptScenes::generate(10, &config(13)).unwrap();
        let batches: Vec<ConceptBatch> = scenes.batches(4).collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.iter().map(ConceptBatch::len).collect::<Vec<_>>(), [4, 4, 2]);
        let images = Tensor::cat(&batches.iter().map(|b| &b.images).collect::<Vec<_>>(), 0);
        assert!(images.equal(&scenes.images));
        let parts: Vec<&Tensor> = batches.iter().map(|b| b.concept_map(Category::Part).unwrap()).collect();
        assert!(Tensor::cat(&parts, 0).equal(scenes.concept_map(Category::Part)));
        assert!(matches!(scenes.batch(8..11), Err(DataError::OutOfRange { .. })));
        assert!(scenes.batch(10..10).unwrap().is_empty());
    }

    #[test]
    fn slices_and_device_copies_keep_everything() {
        let scenes = ConceptScenes::generate(6, &config(14)).unwrap();
        let part = scenes.slice(2..5);
        assert_eq!((part.len(), part.boxes[..].to_vec()), (3, scenes.boxes[2..5].to_vec()));
        assert!(part.images.equal(&scenes.images.narrow(0, 2, 3)));
        let moved = scenes.to_device(crate::device()).to_device(Device::Cpu);
        assert!(same(&moved, &scenes));
    }

    #[test]
    fn the_empty_data_set_is_well_formed() {
        let scenes = ConceptScenes::generate(0, &config(15)).unwrap();
        assert!(scenes.is_empty());
        assert_eq!(scenes.images.size(), [0, 3, 64, 64]);
        assert_eq!(scenes.batches(8).count(), 0);
    }
}
