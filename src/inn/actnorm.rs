//! Activation normalisation (Glow's ActNorm, used in every block of the invariances
//! paper's INNs): a per-channel affine map `y = scale · (x + loc)` whose parameters are set
//! from the first batch it sees, so that this batch leaves with zero mean and unit variance
//! per channel, and are trained freely after that.

use tch::nn::{self, Init};
use tch::Tensor;

use super::InnError;

/// Guards the data-dependent scale `1 / (std + EPS)` against a channel without variance
/// (as the reference code does).
pub const EPS: f64 = 1e-6;

/// A per-channel affine normalisation with data-dependent initialisation. Takes flat
/// `[N, C]` or spatial `[N, C, H, W]` batches.
#[derive(Debug)]
pub struct ActNorm {
    channels: i64,
    loc: Tensor,
    scale: Tensor,
    /// 0 until the first forward pass has set `loc` and `scale`; a variable (not a Rust
    /// flag) so that saved weights remember it and a loaded model is not re-initialised.
    initialized: Tensor,
}

impl ActNorm {
    /// An uninitialised ActNorm over `channels` channels under `path` (`loc`, `scale`,
    /// `initialized`).
    pub fn new(path: &nn::Path, channels: i64) -> ActNorm {
        let loc = path.var("loc", &[channels], Init::Const(0.0));
        let scale = path.var("scale", &[channels], Init::Const(1.0));
        let initialized = path.zeros_no_train("initialized", &[1]);
        ActNorm { channels, loc, scale, initialized }
    }

    pub fn channels(&self) -> i64 {
        self.channels
    }

    /// Whether a first batch has set the parameters.
    pub fn is_initialized(&self) -> bool {
        self.initialized.double_value(&[0]) != 0.0
    }

    /// `y = scale · (x + loc)` and log|det J| per example, `H·W·Σ log|scale|` (constant over
    /// the batch). The first call sets `loc = −mean` and `scale = 1 / (std + EPS)` per
    /// channel from `x` (population statistics over batch and positions).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor), InnError> {
        let dims = self.check(x)?;
        if !self.is_initialized() {
            self.initialize(x, &dims);
        }
        let y = self.shaped(&self.scale, x) * (x + self.shaped(&self.loc, x));
        let positions: i64 = x.size()[2..].iter().product();
        let logdet = self.scale.abs().log().sum(self.scale.kind()) * positions as f64;
        let n = x.size()[0];
        Ok((y, logdet.expand([n], false).to_kind(x.kind())))
    }

    /// The exact inverse, `x = y / scale − loc`.
    pub fn inverse(&self, y: &Tensor) -> Result<Tensor, InnError> {
        self.check(y)?;
        Ok(y / self.shaped(&self.scale, y) - self.shaped(&self.loc, y))
    }

    fn initialize(&self, x: &Tensor, dims: &[i64]) {
        tch::no_grad(|| {
            let x = x.detach();
            let mean = x.mean_dim(dims, false, x.kind());
            let std = x.std_dim(dims, false, false);
            self.loc.shallow_clone().copy_(&-mean);
            self.scale.shallow_clone().copy_(&(1.0 / (std + EPS)));
            let _ = self.initialized.shallow_clone().fill_(1.0);
        });
    }

    /// `[C]` parameters viewed to broadcast over `x`.
    fn shaped(&self, p: &Tensor, x: &Tensor) -> Tensor {
        let mut shape = vec![1, self.channels];
        shape.resize(x.dim(), 1);
        p.view(shape.as_slice())
    }

    /// Checks the input and returns the dimensions statistics are taken over.
    fn check(&self, x: &Tensor) -> Result<Vec<i64>, InnError> {
        let size = x.size();
        if !(size.len() == 2 || size.len() == 4) || size[1] != self.channels {
            return Err(InnError::BadInput(format!(
                "ActNorm over {} channels takes [N, {0}] or [N, {0}, H, W]; got {size:?}",
                self.channels
            )));
        }
        Ok(if size.len() == 2 { vec![0] } else { vec![0, 2, 3] })
    }
}
