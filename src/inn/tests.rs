//! Tests of the INN blocks, the autoencoder and the conditional INN.

use tch::{nn, Device, Kind, Tensor};

use super::*;
use crate::models::serial;

#[test]
fn gaussian_noise_depends_only_on_its_seed() {
    let a = gaussian(&[1000], 3, Device::Cpu);
    assert!(a.equal(&gaussian(&[1000], 3, Device::Cpu)));
    assert!(!a.equal(&gaussian(&[1000], 4, Device::Cpu)));
    let (mean, std) = (a.mean(Kind::Float).double_value(&[]), a.std(true).double_value(&[]));
    assert!(mean.abs() < 0.1 && (std - 1.0).abs() < 0.1, "mean {mean}, std {std}");
}

/// Adds noise to every trainable variable, so that zero-initialised couplings are not the
/// identity and a test of invertibility means something.
fn perturb(vs: &nn::VarStore, scale: f64, seed: u64) {
    tch::no_grad(|| {
        for (i, mut var) in vs.trainable_variables().into_iter().enumerate() {
            let noise = gaussian(&var.size(), seed + i as u64, var.device()).to_kind(var.kind());
            let _ = var.g_add_(&(noise * scale));
        }
    });
}

#[test]
fn actnorm_initialises_to_zero_mean_unit_variance_on_the_first_batch() {
    let vs = nn::VarStore::new(Device::Cpu);
    let flat = ActNorm::new(&(vs.root() / "flat"), 3);
    let spatial = ActNorm::new(&(vs.root() / "spatial"), 2);
    let scale = Tensor::from_slice(&[1.0f32, 5.0, 0.1]).view([1, 3]);
    let shift = Tensor::from_slice(&[3.0f32, -7.0, 20.0]).view([1, 3]);
    let x = gaussian(&[64, 3], 1, Device::Cpu) * &scale + &shift;
    assert!(!flat.is_initialized());
    let (y, logdet) = flat.forward(&x).unwrap();
    assert!(flat.is_initialized());
    let (mean, std) = (y.mean_dim(0, false, Kind::Float), y.std_dim(0, false, false));
    assert!(mean.abs().max().double_value(&[]) < 1e-4, "{mean}");
    assert!((&std - 1.0).abs().max().double_value(&[]) < 1e-4, "{std}");
    // log|det| = Σ log(1/std) per example, and the inverse is exact.
    let expected = -x.std_dim(0, false, false).log().sum(Kind::Float).double_value(&[]);
    assert!((logdet.double_value(&[0]) - expected).abs() < 1e-3 && logdet.size() == [64]);
    assert!((flat.inverse(&y).unwrap() - &x).abs().max().double_value(&[]) < 1e-4);
    // A second batch is normalised with the first batch's statistics, not its own.
    let (y2, _) = flat.forward(&(&x * 2.0)).unwrap();
    assert!(y2.std_dim(0, false, false).double_value(&[1]) > 1.9);
    // Spatial: statistics over batch and positions; a constant channel stays finite.
    let x = Tensor::cat(
        &[gaussian(&[8, 1, 4, 4], 2, Device::Cpu) * 3.0 + 1.0, Tensor::ones([8, 1, 4, 4], tch::kind::FLOAT_CPU)],
        1,
    );
    let (y, logdet) = spatial.forward(&x).unwrap();
    assert!(bool::try_from(y.isfinite().all()).unwrap() && bool::try_from(logdet.isfinite().all()).unwrap());
    let first = y.narrow(1, 0, 1);
    assert!(first.mean(Kind::Float).double_value(&[]).abs() < 1e-5);
    assert!((first.std(false).double_value(&[]) - 1.0).abs() < 1e-4);
    let err = spatial.forward(&Tensor::zeros([2, 3], tch::kind::FLOAT_CPU)).unwrap_err().to_string();
    assert!(err.contains("ActNorm over 2 channels takes [N, 2] or [N, 2, H, W]; got [2, 3]"), "{err}");
}

#[test]
fn shuffles_are_seeded_permutations() {
    let a = Shuffle::new(10, 7, Device::Cpu);
    assert_eq!(a.order(), Shuffle::new(10, 7, Device::Cpu).order());
    assert_ne!(a.order(), Shuffle::new(10, 8, Device::Cpu).order());
    let mut sorted = a.order().to_vec();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<i64>>());
    let x = gaussian(&[3, 10], 0, Device::Cpu);
    assert!(a.inverse(&a.forward(&x).unwrap()).unwrap().equal(&x));
}

/// A small conditional flow in double precision with every weight perturbed.
fn small_flow(dim: i64, cond_dim: i64) -> (nn::VarStore, Flow) {
    let _serial = serial();
    tch::manual_seed(5);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let config = FlowConfig { dim, cond_dim, blocks: 3, hidden: 16, depth: 1, seed: 3 };
    let flow = Flow::new(&vs.root(), config).unwrap();
    vs.double();
    // Initialise the ActNorms on a batch, then move every weight away from its start.
    let x = gaussian(&[32, dim], 11, Device::Cpu).to_kind(Kind::Double) * 2.0 + 1.0;
    let c = gaussian(&[32, cond_dim], 12, Device::Cpu).to_kind(Kind::Double);
    let _ = flow.forward(&x, Some(&c)).unwrap();
    perturb(&vs, 0.3, 100);
    (vs, flow)
}

#[test]
fn a_flow_is_exactly_invertible() {
    let (_vs, flow) = small_flow(7, 3);
    let x = gaussian(&[16, 7], 21, Device::Cpu).to_kind(Kind::Double);
    let c = gaussian(&[16, 3], 22, Device::Cpu).to_kind(Kind::Double);
    let (y, _) = flow.forward(&x, Some(&c)).unwrap();
    assert!((&y - &x).abs().max().double_value(&[]) > 0.1, "the flow should not be the identity");
    let back = flow.inverse(&y, Some(&c)).unwrap();
    assert!((back - &x).abs().max().double_value(&[]) < 1e-10);
    // Another condition gives another output.
    let (other, _) = flow.forward(&x, Some(&(&c + 1.0))).unwrap();
    assert!((other - &y).abs().max().double_value(&[]) > 1e-3);
    let err = flow.forward(&x, None).unwrap_err().to_string();
    assert!(err.contains("conditional: give a [N, 3] condition"), "{err}");
}

#[test]
fn log_det_equals_the_brute_force_jacobian_determinant() {
    let dim = 6;
    let (_vs, flow) = small_flow(dim, 3);
    for example in 0..3 {
        let x = gaussian(&[1, dim], 30 + example, Device::Cpu).to_kind(Kind::Double).set_requires_grad(true);
        let c = gaussian(&[1, 3], 40 + example, Device::Cpu).to_kind(Kind::Double);
        let (y, logdet) = flow.forward(&x, Some(&c)).unwrap();
        let rows: Vec<Tensor> = (0..dim)
            .map(|i| Tensor::run_backward(&[y.get(0).get(i)], &[&x], true, false).remove(0).view([dim]))
            .collect();
        let jacobian = Tensor::stack(&rows, 0);
        let brute = jacobian.det().abs().log().double_value(&[]);
        let ours = logdet.double_value(&[0]);
        eprintln!("log|det J|: brute force {brute:.10}, flow {ours:.10}");
        assert!((brute - ours).abs() < 1e-8, "{brute} vs {ours}");
    }
}
