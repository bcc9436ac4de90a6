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

/// Runs `work`, which may reseed or draw from libtorch's global generator (training a zoo
/// model on first use does both), and leaves that generator in a state that depends only on
/// its state before, not on what `work` did: one number is drawn first and the generator is
/// reseeded with it afterwards. So a seeded cell that loads a cached model and one that
/// trains it first go on with the same random stream.
pub fn preserving<T>(work: impl FnOnce() -> T) -> T {
    let next = tch::Tensor::randint(i64::MAX, [1], tch::kind::INT64_CPU).int64_value(&[0]);
    let out = work();
    tch::manual_seed(next);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_tensors() {
        let _serial = crate::models::serial();
        set(42);
        let a = tch::Tensor::randn([5], tch::kind::FLOAT_CPU);
        set(42);
        let b = tch::Tensor::randn([5], tch::kind::FLOAT_CPU);
        assert!(a.equal(&b));
        assert_eq!(current(), 42);
    }

    #[test]
    fn work_in_between_leaves_the_same_stream() {
        let _serial = crate::models::serial();
        let after = |work: &dyn Fn()| {
            tch::manual_seed(7);
            preserving(work);
            tch::Tensor::randn([5], tch::kind::FLOAT_CPU)
        };
        let idle = after(&|| {});
        let busy = after(&|| {
            tch::manual_seed(123);
            let _ = tch::Tensor::randn([1000], tch::kind::FLOAT_CPU);
        });
        assert!(idle.equal(&busy));
        // The stream still follows the seed before.
        tch::manual_seed(8);
        preserving(|| {});
        assert!(!tch::Tensor::randn([5], tch::kind::FLOAT_CPU).equal(&idle));
    }
}
