//! Tests that assert a learned score. Seeded training lands elsewhere on another CPU or
//! thread count (libtorch picks kernels by instruction set and threads, so float sums and
//! then the trajectory differ), so each such bound is set from the spread of its quantity
//! over seeds and thread counts, measured by `scripts/spread.py`. That script reruns these
//! tests with `GLASSBOX_TEST_SEED` (an offset added to every seed a learning test draws)
//! and `OMP_NUM_THREADS`, and reads the lines [`at_least`] and [`at_most`] print. With
//! `GLASSBOX_TEST_MEASURE=1` the bounds are only printed, so that one run measures every
//! quantity of a test even where an early one falls outside its bound.

/// `base` shifted by `GLASSBOX_TEST_SEED` (0 when unset): the seed of one learning test's
/// data, initialisation and training order.
pub fn seed(base: u64) -> u64 {
    base + offset()
}

/// [`seed`] for the places that take libtorch's signed seed.
pub fn torch_seed(base: u64) -> i64 {
    seed(base) as i64
}

fn offset() -> u64 {
    match std::env::var("GLASSBOX_TEST_SEED") {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("GLASSBOX_TEST_SEED={text:?} is not a seed offset")),
        Err(_) => 0,
    }
}

/// Asserts `value >= bound` for the learned quantity `name`, after printing both.
#[track_caller]
pub fn at_least(name: &str, value: f64, bound: f64) {
    record(name, value, ">=", bound);
    assert!(measuring() || value >= bound, "{name}: {value:.4}, expected at least {bound}");
}

/// Asserts `value <= bound` for the learned quantity `name`, after printing both.
#[track_caller]
pub fn at_most(name: &str, value: f64, bound: f64) {
    record(name, value, "<=", bound);
    assert!(measuring() || value <= bound, "{name}: {value:.4}, expected at most {bound}");
}

fn measuring() -> bool {
    std::env::var_os("GLASSBOX_TEST_MEASURE").is_some_and(|v| v == "1")
}

fn record(name: &str, value: f64, relation: &str, bound: f64) {
    println!(
        "learned: {name} = {value:.6} {relation} {bound} (seed offset {}, {} threads)",
        offset(),
        tch::get_num_threads()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_at_their_edges_and_fail_past_them() {
        at_least("edge", 0.5, 0.5);
        at_most("edge", 0.5, 0.5);
        assert!(std::panic::catch_unwind(|| at_least("below", 0.49, 0.5)).is_err());
        assert!(std::panic::catch_unwind(|| at_most("above", 0.51, 0.5)).is_err());
    }
}
