//! Invertible interpretation (invariances paper, sec. 3): invertible networks that recover
//! what a model's representation discards, and decode it back into images.
//!
//! - The building blocks of an INN, each with a forward pass, its exact inverse and
//!   log|det J|: [`ActNorm`] (data-dependent initialisation), the conditional affine
//!   [`Coupling`], fixed random [`Shuffle`]s, stacked into a [`Flow`].
//! - The [`Autoencoder`] E/D whose Gaussian latent z̄ = E(x) holds everything about an
//!   image (sec. 3.1, "Learning an Encoding to Help Recover Invariances"), trained once per
//!   data set and cached beside the zoo models.
//! - The conditional INN [`Cinn`] t (eq. 1-5): v = t(z̄|z) for a representation z = Φ(x) of a
//!   chosen layer of a fixed model, trained by maximum likelihood with E and Φ frozen, and
//!   sampled as z̄ = t⁻¹(v|z), v ~ N(0, I) (eq. 2).
//! - The experiments of sec. 4 ([`interpret`]): samples and the amount of invariance per
//!   layer (fig. 3), FGSM attacks decoded with the original invariances (fig. 5).
//! - The semantic INN e ([`semantic`], eq. 6): z̄ to concept factors learned from pairs,
//!   factor swaps (fig. 7), and the [`sensitivity`] of a layer to each factor over a
//!   classifier's training (fig. 4).
//!
//! Every random thing takes a seed: shuffles, initial weights (through the seeds of the
//! configs), the noise of samples.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::data::DataError;
use crate::models::zoo::ZooError;
use crate::models::ModelError;

pub mod actnorm;
pub mod autoencoder;
pub mod cinn;
pub mod coupling;
pub mod embedder;
pub mod flow;
pub mod interpret;
pub mod semantic;
pub mod sensitivity;
pub mod shuffle;

pub use actnorm::ActNorm;
pub use autoencoder::{Autoencoder, AutoencoderConfig, AutoencoderReport, Posterior};
pub use cinn::{Cinn, CinnConfig, CinnReport, Samples};
pub use coupling::Coupling;
pub use embedder::{Embedder, EmbedderKind};
pub use flow::{Flow, FlowConfig};
pub use interpret::{fgsm, AttackDecoding, Frozen, Invariances, LayerInn};
pub use semantic::{FactorPairs, FactorProbe, FactorSizes, SemanticConfig, SemanticInn, SemanticReport, Swap};
pub use sensitivity::{Sensitivity, SensitivityConfig};
pub use shuffle::Shuffle;

/// What can go wrong building, running or training an invertible network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InnError {
    #[error("invalid INN config: {0}")]
    InvalidConfig(String),
    #[error("bad input: {0}")]
    BadInput(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Zoo(#[from] ZooError),
}

impl From<tch::TchError> for InnError {
    fn from(e: tch::TchError) -> Self {
        InnError::Model(e.into())
    }
}

/// Standard normal noise of `shape` drawn from its own generator seeded by `seed` (not
/// libtorch's global one), so that samples depend on nothing but their seed.
pub fn gaussian(shape: &[i64], seed: u64, device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n as usize);
    // Box-Muller: two uniforms give two independent standard normals.
    while values.len() < n as usize {
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        values.push((r * a.cos()) as f32);
        values.push((r * a.sin()) as f32);
    }
    values.truncate(n as usize);
    Tensor::from_slice(&values).view(shape).to_device(device)
}

/// An error inside the shared training loop, which speaks [`ModelError`].
pub(crate) fn model_error(e: InnError) -> ModelError {
    match e {
        InnError::Model(m) => m,
        other => ModelError::BadInput(other.to_string()),
    }
}

/// Leaky ReLU with negative slope `slope` (< 1); the reference nets use 0.2 where tch's
/// `leaky_relu` has 0.01.
pub(crate) fn leaky(x: &Tensor, slope: f64) -> Tensor {
    x.maximum(&(x * slope))
}

/// Checks that `x` is a float batch `[N, D]` with `D == dim`, for the flat blocks.
pub(crate) fn check_flat(x: &Tensor, dim: i64, what: &str) -> Result<(), InnError> {
    let size = x.size();
    if size.len() != 2 || size[1] != dim || x.kind() != Kind::Float && x.kind() != Kind::Double {
        return Err(InnError::BadInput(format!(
            "{what} must be a float [N, {dim}] batch; got {:?} {size:?}",
            x.kind()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
