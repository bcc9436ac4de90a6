//! Fixed random permutations of the features between coupling blocks, so that every
//! feature is, in some block, among those a coupling updates (as in the reference INNs).
//! Drawn once from a seed and never trained; a permutation has |det J| = 1.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use super::{check_flat, InnError};

/// A seeded permutation of `dim` features of a flat `[N, dim]` batch.
#[derive(Debug)]
pub struct Shuffle {
    forward: Tensor,
    backward: Tensor,
    order: Vec<i64>,
}

impl Shuffle {
    /// The permutation that `seed` draws (Fisher-Yates with its own generator).
    pub fn new(dim: i64, seed: u64, device: Device) -> Shuffle {
        let mut order: Vec<i64> = (0..dim).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut inverse = vec![0i64; dim as usize];
        for (to, &from) in order.iter().enumerate() {
            inverse[from as usize] = to as i64;
        }
        Shuffle {
            forward: Tensor::from_slice(&order).to_device(device),
            backward: Tensor::from_slice(&inverse).to_device(device),
            order,
        }
    }

    /// Output feature `i` is input feature `order()[i]`.
    pub fn order(&self) -> &[i64] {
        &self.order
    }

    /// The permuted batch; log|det J| is 0.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, InnError> {
        check_flat(x, self.order.len() as i64, "a shuffle's input")?;
        Ok(x.index_select(1, &self.forward))
    }

    pub fn inverse(&self, y: &Tensor) -> Result<Tensor, InnError> {
        check_flat(y, self.order.len() as i64, "a shuffle's input")?;
        Ok(y.index_select(1, &self.backward))
    }
}
