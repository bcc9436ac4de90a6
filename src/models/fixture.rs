//! Reading the fixtures that `scripts/fixtures/*.py` made with PyTorch itself: the formula
//! their inputs and weights come from, and the comparison with what PyTorch saw.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::{Kind, Tensor};

/// `tests/fixtures/DIR/NAME`.
pub fn path(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir).join(name)
}

pub fn json(dir: &str, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path(dir, name)).unwrap()).unwrap()
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3))
}

/// `n` numbers in `[0, 1)`: splitmix64 seeded by the FNV-1a hash of `name`, exactly as the
/// fixture scripts' `uniform` computes them.
pub fn uniform(name: &str, n: usize) -> impl Iterator<Item = f64> {
    let seed = fnv1a(name);
    (1..=n as u64).map(move |i| {
        let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 * 2f64.powi(-53)
    })
}

/// The fixtures' input: `uniform("input")` in `shape`.
pub fn input(shape: [i64; 4]) -> Tensor {
    let values: Vec<f32> = uniform("input", shape.iter().product::<i64>() as usize).map(|u| u as f32).collect();
    Tensor::from_slice(&values).view(shape)
}

/// The largest error of `got` against what PyTorch saw (`expected`: shape, mean, rms and
/// values at the sampled positions), relative to the root mean square of PyTorch's output.
pub fn relative_error(got: &Tensor, expected: &Value, what: &str) -> f64 {
    let shape: Vec<i64> = expected["shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(got.size(), shape, "{what}: shape");
    let flat = got.to_kind(Kind::Double).reshape([-1]);
    let numel = flat.size()[0] as u64;
    let rms = expected["rms"].as_f64().unwrap().max(1e-12);
    let mut worst = (flat.mean(None).double_value(&[]) - expected["mean"].as_f64().unwrap()).abs();
    worst = worst.max((flat.square().mean(None).sqrt().double_value(&[]) - rms).abs());
    for (k, e) in expected["samples"].as_array().unwrap().iter().enumerate() {
        let i = (k as u64 * 2_654_435_761 + 12345) % numel;
        worst = worst.max((flat.double_value(&[i as i64]) - e.as_f64().unwrap()).abs());
    }
    worst / rms
}
