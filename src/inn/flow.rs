//! A stack of invertible blocks, each `ActNorm → Coupling → Shuffle` as in the invariances
//! paper's reference conditional INN, with the condition embedding fed to the coupling of
//! every block. Forward maps data to the Gaussian side and sums log|det J| over the blocks;
//! the inverse runs the blocks backwards.

use tch::{nn, Tensor};

use super::{ActNorm, Coupling, InnError, Shuffle};

/// The shape of a [`Flow`].
#[derive(Debug, Clone, PartialEq)]
pub struct FlowConfig {
    /// Features of the data (z̄: 64).
    pub dim: i64,
    /// Features of the condition embedding; 0 for an unconditional flow.
    pub cond_dim: i64,
    /// How many `ActNorm → Coupling → Shuffle` blocks.
    pub blocks: usize,
    /// Hidden units of the coupling nets.
    pub hidden: i64,
    /// Extra hidden layers of the coupling nets (the reference's `hidden_depth`: 2).
    pub depth: usize,
    /// Seeds the shuffles (block `k` uses `seed + k`).
    pub seed: u64,
}

impl FlowConfig {
    pub fn validate(&self) -> Result<(), InnError> {
        if self.dim < 2 || self.blocks == 0 || self.hidden < 1 || self.cond_dim < 0 {
            return Err(InnError::InvalidConfig(format!(
                "a flow needs dim >= 2, blocks >= 1, hidden >= 1 and cond_dim >= 0; got {self:?}"
            )));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Block {
    norm: ActNorm,
    coupling: Coupling,
    shuffle: Shuffle,
}

/// An invertible network over flat `[N, dim]` batches.
#[derive(Debug)]
pub struct Flow {
    config: FlowConfig,
    blocks: Vec<Block>,
}

impl Flow {
    /// A fresh flow under `path` (block `k` under `block{k}`); ActNorms initialise on the
    /// first batch, couplings start as the identity.
    pub fn new(path: &nn::Path, config: FlowConfig) -> Result<Flow, InnError> {
        config.validate()?;
        let blocks = (0..config.blocks)
            .map(|k| {
                let p = path / format!("block{k}");
                Ok(Block {
                    norm: ActNorm::new(&(&p / "norm"), config.dim),
                    coupling: Coupling::new(
                        &(&p / "coupling"),
                        config.dim,
                        config.cond_dim,
                        config.hidden,
                        config.depth,
                    )?,
                    shuffle: Shuffle::new(config.dim, config.seed.wrapping_add(k as u64), path.device()),
                })
            })
            .collect::<Result<_, InnError>>()?;
        Ok(Flow { config, blocks })
    }

    pub fn config(&self) -> &FlowConfig {
        &self.config
    }

    /// `y = flow(x | cond)` and log|det ∂y/∂x| per example.
    pub fn forward(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Tensor), InnError> {
        let mut h = x.shallow_clone();
        let mut logdet = Tensor::zeros([x.size()[0]], (x.kind(), x.device()));
        for block in &self.blocks {
            let (y, ld) = block.norm.forward(&h)?;
            logdet = logdet + ld;
            let (y, ld) = block.coupling.forward(&y, cond)?;
            logdet = logdet + ld;
            h = block.shuffle.forward(&y)?;
        }
        Ok((h, logdet))
    }

    /// The exact inverse `x = flow⁻¹(y | cond)`.
    pub fn inverse(&self, y: &Tensor, cond: Option<&Tensor>) -> Result<Tensor, InnError> {
        let mut h = y.shallow_clone();
        for block in self.blocks.iter().rev() {
            h = block.shuffle.inverse(&h)?;
            h = block.coupling.inverse(&h, cond)?;
            h = block.norm.inverse(&h)?;
        }
        Ok(h)
    }
}
