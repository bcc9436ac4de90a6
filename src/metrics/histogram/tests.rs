use super::*;

fn two_categories(rows: Tensor) -> Labels {
    let categories = (0..rows.size()[0] as usize).collect();
    Labels { rows, categories }
}

/// Concepts 0..3 of category 0 (labelling every pixel) and 3..5 of category 1 (half).
fn random_labels(p: i64) -> Labels {
    let object = Tensor::randint(3, [1, p], (Kind::Int64, Device::Cpu));
    let part = Tensor::randint(4, [1, p], (Kind::Int64, Device::Cpu)) + 3;
    let part = part.masked_fill(&part.ge(5), -1);
    two_categories(Tensor::cat(&[object, part], 0))
}

fn concepts() -> Concepts {
    Concepts::new(&[3, 2])
}

#[test]
fn keys_order_like_the_values() {
    let values = [
        f32::NEG_INFINITY,
        -f32::MAX,
        -1e20,
        -1.5,
        -f32::MIN_POSITIVE,
        -1e-45,
        0.0,
        1e-45,
        f32::MIN_POSITIVE,
        1.0,
        1.0000001,
        3e38,
        f32::INFINITY,
    ];
    for pair in values.windows(2) {
        assert!(key(pair[0]) < key(pair[1]), "{pair:?}");
    }
    assert_eq!(key(-0.0), key(0.0));
    for v in values {
        assert_eq!(value(key(v)), v);
    }
    assert_eq!(key(f32::INFINITY), KEY_POS_INF);
    assert_eq!(key(f32::NEG_INFINITY), KEY_NEG_INF);
    for nan in [f32::NAN, -f32::NAN, f32::from_bits(0x7f80_0001), f32::from_bits(0xff80_0001)] {
        assert!(key(nan) > KEY_POS_INF || key(nan) < KEY_NEG_INF, "{:x}", nan.to_bits());
    }
}

#[test]
fn streaming_equals_one_batch_bin_for_bin() {
    let _serial = crate::models::serial();
    tch::manual_seed(3);
    let acts =
        Tensor::randn([3, 600], (Kind::Float, Device::Cpu)) * Tensor::from_slice(&[1f32, 100., 0.01]).view([3, 1]);
    let labels = random_labels(600);
    let mut whole = Binned::new(64, concepts());
    whole.add(&acts, &labels).unwrap();
    let mut parts = Binned::new(64, concepts());
    for (start, len) in [(0, 10), (10, 290), (300, 300)] {
        let part = two_categories(labels.rows.narrow(1, start, len));
        parts.add(&acts.narrow(1, start, len), &part).unwrap();
    }
    assert_eq!(whole, parts);
    let counts = whole.tables()[0].counts();
    assert_eq!(counts.total.iter().sum::<u64>(), 600);
    assert_eq!(counts.labelled[0].iter().sum::<u64>(), 600);
    let parts_labelled = Vec::<bool>::try_from(labels.rows.get(1).ge(0)).unwrap().iter().filter(|b| **b).count();
    assert_eq!(counts.labelled[1].iter().sum::<u64>(), parts_labelled as u64);
}

/// Shards of a data set (any split of its batches, counted apart, in any order) merge into
/// the counts of one pass, and so do the finer passes that split doubtful bins.
#[test]
fn shards_merge_into_the_counts_of_one_pass() {
    let _serial = crate::models::serial();
    tch::manual_seed(8);
    let acts = Tensor::randn([4, 3000], (Kind::Float, Device::Cpu)).exp()
        * Tensor::from_slice(&[1f32, 1e4, 1e-4, 3.0]).view([4, 1]);
    let acts = acts.index_fill(1, &Tensor::from_slice(&[5i64]), 1e6);
    let labels = random_labels(3000);
    let batches: Vec<(i64, i64)> = (0..6).map(|i| (i * 500, 500)).collect();
    let batch = |(s, l): (i64, i64)| (acts.narrow(1, s, l), two_categories(labels.rows.narrow(1, s, l)));
    let mut one = Binned::new(128, concepts());
    for b in &batches {
        let (a, l) = batch(*b);
        one.add(&a, &l).unwrap();
    }
    let mut shards = [Binned::new(128, concepts()), Binned::new(128, concepts()), Binned::new(128, concepts())];
    for (i, b) in batches.iter().enumerate() {
        let (a, l) = batch(*b);
        shards[[2, 0, 2, 1, 0, 2][i]].add(&a, &l).unwrap();
    }
    let mut merged = Binned::new(128, concepts());
    for shard in shards.iter().rev() {
        merged.merge(shard);
    }
    assert_eq!(merged.tables(), one.tables());

    let tables = one.tables();
    let every_other: Vec<Vec<(usize, f64)>> =
        tables.iter().map(|t| (0..t.len()).step_by(2).map(|j| (j, f64::INFINITY)).collect()).collect();
    let plan = Plan::new(&tables, &every_other, &concepts());
    assert!(!plan.is_empty());
    let mut whole = plan.counter();
    let mut parts = [plan.counter(), plan.counter()];
    for (i, b) in batches.iter().enumerate() {
        let (a, l) = batch(*b);
        whole.add(&plan, &concepts(), &a, &l);
        parts[i % 2].add(&plan, &concepts(), &a, &l);
    }
    let [mut first, second] = parts;
    first.merge(&second);
    assert_eq!(first, whole);
    let mut finer = tables.clone();
    whole.apply(&plan, &mut finer);
    for (coarse, fine) in tables.iter().zip(&finer) {
        assert!(fine.len() > coarse.len());
        let (c, f) = (coarse.counts(), fine.counts());
        assert_eq!(c.total.iter().sum::<u64>(), f.total.iter().sum::<u64>());
        for (a, b) in c.joint.iter().zip(&f.joint) {
            assert_eq!(a.iter().sum::<u64>(), b.iter().sum::<u64>());
        }
        assert!(f.lower.windows(2).all(|w| w[0] < w[1]) && f.lower.iter().zip(&f.upper).all(|(l, u)| l <= u));
    }
}

/// The device path (keys and `bincount`) counts what the CPU loop counts; on a machine without
/// a GPU it runs on the CPU through the same tensor code.
#[test]
fn the_tensor_path_counts_like_the_loop() {
    let _serial = crate::models::serial();
    tch::manual_seed(4);
    let acts = Tensor::randn([5, 1000], (Kind::Float, Device::Cpu)) * 3.0;
    let labels = random_labels(1000);
    let mut looped = Binned::new(128, concepts());
    looped.add(&acts, &labels).unwrap();
    let mut tensors = Binned::new(128, concepts());
    tensors.channels = vec![Channel::EMPTY; 5];
    tensors.add_on_device(&acts, &labels).unwrap();
    assert_eq!(looped.tables(), tensors.tables());
    // A category with two label rows: the totals are counted, not derived.
    let overlapping = Labels {
        rows: Tensor::cat(&[labels.rows.shallow_clone(), labels.rows.get(1).view([1, -1]).flip([1])], 0),
        categories: vec![0, 1, 1],
    };
    let mut looped = Binned::new(128, concepts());
    looped.add(&acts, &overlapping).unwrap();
    let mut tensors = Binned::new(128, concepts());
    tensors.channels = vec![Channel::EMPTY; 5];
    tensors.add_on_device(&acts, &overlapping).unwrap();
    assert_eq!(looped.tables(), tensors.tables());
    assert_eq!(looped.tables()[0].counts().total.iter().sum::<u64>(), 1000);
}

/// NaN and ±inf are refused the same way by the CPU loop, the tensor (GPU) path and exact
/// mode, naming the channel.
#[test]
fn non_finite_activations_are_refused_on_every_path() {
    let _serial = crate::models::serial();
    let labels = random_labels(64);
    for (bad, what) in [(f32::NAN, "NaN"), (-f32::NAN, "NaN"), (f32::INFINITY, "+inf"), (f32::NEG_INFINITY, "-inf")] {
        let acts = Tensor::randn([3, 64], (Kind::Float, Device::Cpu));
        let _ = acts.get(2).get(17).fill_(bad as f64);
        let want = NonFinite { channel: 2, what };
        assert_eq!(Binned::new(64, concepts()).add(&acts, &labels), Err(want.clone()), "{bad}");
        let mut tensors = Binned::new(64, concepts());
        tensors.channels = vec![Channel::EMPTY; 3];
        assert_eq!(tensors.add_on_device(&acts, &labels), Err(want.clone()), "{bad}");
        assert_eq!(Exact::new(concepts()).add(&acts, &labels), Err(want), "{bad}");
    }
}
