//! One seed for every random thing: libtorch's generators and glassbox's own (data
//! generation, sampling, initialisation), so a notebook reruns identically.

use std::sync::atomic::Ordering;

/// The seed used when none was set.
pub const DEFAULT_SEED: u64 = 0;

/// Seeds libtorch (CPU and CUDA) and sets the default seed of glassbox's generators.
pub fn set(seed: u64) {
    // Process-wide, so that the cells after `:seed` see it (each cell has its own statics).
    crate::runtime::shared().seed.store(seed, Ordering::SeqCst);
    tch::manual_seed(seed as i64);
}

/// The seed set last (or [`DEFAULT_SEED`]); glassbox functions that take an optional seed
/// fall back to it.
pub fn current() -> u64 {
    crate::runtime::shared().seed.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_tensors() {
        set(42);
        let a = tch::Tensor::randn([5], tch::kind::FLOAT_CPU);
        set(42);
        let b = tch::Tensor::randn([5], tch::kind::FLOAT_CPU);
        assert!(a.equal(&b));
        assert_eq!(current(), 42);
    }
}
