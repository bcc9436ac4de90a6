use super::auic::{auic, miou_curves, score_channel};
use super::histogram::{Binned, Concepts, Counts, Exact, Labels};
use super::*;
use tch::Device;

/// Counts of `acts` `[K, P]` against `labels` `[L, P]`, one category per row, exact or binned
/// (first pass only).
fn counts(acts: &Tensor, labels: &Tensor, sizes: &[usize], exact: bool, channel: usize) -> Counts {
    let labels = Labels { rows: labels.shallow_clone(), categories: (0..labels.size()[0] as usize).collect() };
    if exact {
        let mut e = Exact::new(Concepts::new(sizes));
        e.add(acts, &labels).unwrap();
        e.counts(channel).unwrap()
    } else {
        let mut b = Binned::new(1024, Concepts::new(sizes));
        b.add(acts, &labels).unwrap();
        b.tables()[channel].counts()
    }
}

/// Eq. 22 by definition at one threshold, with NetDissect's annotation semantics: among the
/// pixels a category labels (its `rows`, the first labelling every labelled pixel), the marked
/// pixels against the concept's.
fn brute_miou(acts: &[f64], rows: &[Vec<i64>], concept: i64, theta: f64) -> f64 {
    let (mut tp, mut fp, mut fn_, mut tn) = (0.0, 0.0, 0.0, 0.0);
    for (p, &a) in acts.iter().enumerate() {
        if rows[0][p] < 0 {
            continue;
        }
        match (a > theta, rows.iter().any(|r| r[p] == concept)) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            (false, false) => tn += 1.0,
        }
    }
    let pos = if tp + fp + fn_ > 0.0 { tp / (tp + fp + fn_) } else { 0.0 };
    let neg = if tn + fp + fn_ > 0.0 { tn / (tn + fp + fn_) } else { 0.0 };
    (pos + neg) / 2.0
}

#[test]
fn one_pass_matches_a_brute_force_reference_at_every_threshold() {
    let _serial = crate::models::serial();
    tch::manual_seed(5);
    let p = 400;
    let acts = (Tensor::randn([2, p], (Kind::Double, Device::Cpu)) * 10.0).round() / 10.0; // with ties
    let labels = Tensor::randint(3, [1, p], (Kind::Int64, Device::Cpu));
    let a = Vec::<f64>::try_from(acts.get(1)).unwrap();
    let l = Vec::<i64>::try_from(labels.get(0)).unwrap();
    let c = counts(&acts, &labels, &[3], true, 1);
    let curves = miou_curves(&c);
    let mut best = vec![f64::MIN; 3];
    for concept in 0..3 {
        for (j, theta) in std::iter::once(f64::NEG_INFINITY).chain(c.upper.iter().copied()).enumerate() {
            let want = brute_miou(&a, std::slice::from_ref(&l), concept, theta);
            let got = curves[concept as usize][j];
            assert!((want - got).abs() < 1e-9, "concept {concept} θ {theta}: {want} vs {got}");
            best[concept as usize] = best[concept as usize].max(want);
        }
    }
    let score = score_channel(1, &c);
    let top = best.iter().cloned().fold(f64::MIN, f64::max);
    assert!((score.miou - top).abs() < 1e-9);
    assert!(
        (brute_miou(&a, std::slice::from_ref(&l), score.concept as i64, score.threshold) - score.miou).abs() < 1e-9
    );
}

#[test]
fn a_channel_equal_to_a_mask_scores_one_and_a_constant_one_zero() {
    let labels = Tensor::from_slice(&[0i64, 0, 1, 1, 1, 0, 0, 1]).view([1, 8]);
    let mask = labels.eq(1).to_kind(Kind::Double).view([8]);
    let constant = Tensor::full([8], 3.0, (Kind::Double, Device::Cpu));
    let acts = Tensor::stack(&[mask * 5.0, constant], 0);
    for exact in [true, false] {
        let s = score_channel(0, &counts(&acts, &labels, &[2], exact, 0));
        assert_eq!((s.concept, s.miou, s.psi), (1, 1.0, 1.0), "exact {exact}");
        let flat = score_channel(1, &counts(&acts, &labels, &[2], exact, 1));
        assert!(flat.miou <= 0.5, "exact {exact}: {flat:?}");
        assert_eq!(auic(&[flat.miou]), 0.0);
    }
    assert_eq!(auic(&[1.0, 1.0]), 1.0);
    assert_eq!(auic(&[1.0, 0.3]), 0.5);
}

#[test]
fn monotone_rescaling_leaves_the_alignment_unchanged() {
    let _serial = crate::models::serial();
    tch::manual_seed(9);
    let acts = Tensor::randn([1, 500], (Kind::Double, Device::Cpu));
    let labels = acts.gt(0.8).to_kind(Kind::Int64); // concept 1 where high
    let noisy = (&acts + Tensor::randn([1, 500], (Kind::Double, Device::Cpu)) * 0.5).view([1, 500]);
    let rescaled = (noisy.exp() * 7.0) + 3.0;
    let a = score_channel(0, &counts(&noisy, &labels, &[2], true, 0));
    let b = score_channel(0, &counts(&rescaled, &labels, &[2], true, 0));
    assert!((a.miou - b.miou).abs() < 1e-12 && a.miou > 0.6, "{a:?} {b:?}");
}

/// Criterion iii: a detector of a rare concept is as identifiable as one of a common
/// concept under mIoU, while plain IoU at NetDissect's quantile threshold marks the rare
/// one far better than the common one (its 0.5% of pixels cannot cover a large concept).
#[test]
fn rare_concepts_are_not_penalised_by_area() {
    let _serial = crate::models::serial();
    tch::manual_seed(2);
    let p = 20_000;
    let noise = Tensor::rand([p], (Kind::Double, Device::Cpu)) * 0.2;
    let rare = Tensor::zeros([p], (Kind::Int64, Device::Cpu)).index_fill(
        0,
        &Tensor::arange(40, (Kind::Int64, Device::Cpu)),
        1,
    );
    let common = Tensor::zeros([p], (Kind::Int64, Device::Cpu)).index_fill(
        0,
        &Tensor::arange_start(10_000, 20_000, (Kind::Int64, Device::Cpu)),
        1,
    );
    let acts = Tensor::stack(&[&noise + rare.to_kind(Kind::Double), &noise + common.to_kind(Kind::Double)], 0);
    // Concept 0 is rare (1 elsewhere), concept 2 common (3 elsewhere), in two categories.
    let labels = Tensor::stack(&[1 - rare, 3 - common], 0);
    let r = score_channel(0, &counts(&acts, &labels, &[2, 2], true, 0));
    let c = score_channel(1, &counts(&acts, &labels, &[2, 2], true, 1));
    assert_eq!((r.concept, c.concept), (0, 2));
    assert!(r.miou > 0.99 && c.miou > 0.99, "{r:?} {c:?}");
    assert!(c.dissect_iou < 0.05 && r.dissect_iou > 0.3, "{r:?} {c:?}");
}

/// A small segmentation ResNet (seeded) and `n` concept scenes of 32×32.
fn small_net_and_scenes(seed: i64, n: usize) -> (crate::models::TappedNet, crate::data::ConceptScenes) {
    tch::manual_seed(seed);
    let config = crate::models::ResNetConfig {
        widths: vec![8, 16],
        depths: vec![1, 1],
        strides: vec![1, 2],
        stem_width: 8,
        ..crate::models::ResNetConfig::small(crate::models::Task::Segmentation, 11)
    };
    let net = crate::models::TappedNet::new(config, Device::Cpu).unwrap();
    let scenes = crate::data::ConceptScenes::generate(n, &crate::data::SceneConfig { size: 32, ..Default::default() });
    (net, scenes.unwrap())
}

#[test]
fn binned_agrees_with_exact_on_a_real_layer_and_streams() {
    let _serial = crate::models::serial();
    let (net, scenes) = small_net_and_scenes(0, 24);
    let run = |exact, batch_size| {
        inspect(&net, "stage2", &scenes, &InspectConfig { exact, batch_size, ..Default::default() }).unwrap()
    };
    let (exact, binned, streamed) = (run(true, 24), run(false, 24), run(false, 5));
    assert!((exact.auic - binned.auic).abs() < 1e-3, "{} vs {}", exact.auic, binned.auic);
    assert_eq!(binned, streamed);
    assert_eq!(exact.channels.len(), 16);
    assert!(exact.concepts.iter().any(|c| c == "material:brick" || c.starts_with("object:")));
    let shown = exact.render();
    assert!(shown.data().contains_key("image/png") && shown.data()["text/plain"].as_str().unwrap().contains("AUiC"));
    let e = inspect(&net, "stage2", &scenes, &InspectConfig { categories: Some(vec![]), ..Default::default() });
    assert!(e.unwrap_err().to_string().contains("no concepts"));
    let e = inspect(&net, "stage7", &scenes, &InspectConfig::default()).unwrap_err().to_string();
    assert!(e.contains("stage2"), "{e}");
}

/// Synthetic annotations of `n` images of `size²`: four objects (the last a background)
/// labelling every pixel of the first `n − 1` images and none of the last, and two parts
/// labelling a rectangle of each image, overlapping on some pixels. Returns the masks and the
/// `[P]` object and part maps, for building channels that follow them.
fn synthetic_masks(n: i64, size: i64, seed: i64) -> Masks {
    tch::manual_seed(seed);
    let (h, w) = (size, size);
    let opts = (Kind::Int64, Device::Cpu);
    let objects = Tensor::full([n, h, w], 3, opts);
    let parts = Tensor::full([n, h, w], -1, opts);
    let extra = Tensor::full([n, 1, h, w], -1, opts);
    for i in 0..n {
        for c in 0..3 {
            let r = Vec::<i64>::try_from(Tensor::randint(size / 2, [4], opts)).unwrap();
            let _ = objects.get(i).narrow(0, r[0], r[2] + 2).narrow(1, r[1], r[3] + 2).fill_(c);
        }
        let r = Vec::<i64>::try_from(Tensor::randint(size / 2, [2], opts)).unwrap();
        let _ = parts.get(i).narrow(0, r[0], size / 2).narrow(1, r[1], size / 2).fill_(0);
        let _ = parts.get(i).narrow(0, r[0], size / 4).narrow(1, r[1], size / 2).fill_(1);
        let _ = extra.get(i).get(0).narrow(0, r[0], size / 8).narrow(1, r[1], size / 2).fill_(0);
    }
    let _ = objects.get(n - 1).fill_(-1);
    let vocabulary = crate::data::Vocabulary::new([
        (Category::Object, vec!["a", "b", "c", "background"]),
        (Category::Part, vec!["p", "q"]),
    ])
    .unwrap();
    Masks {
        vocabulary,
        maps: [(Category::Object, objects), (Category::Part, parts)].into(),
        overlaps: [(Category::Part, extra)].into(),
    }
}

/// The masks' label rows as the pass sees them (objects 0..4, parts 4..6).
fn label_rows(masks: &Masks) -> Labels {
    let shift = |t: &Tensor, by: i64| (t + by).masked_fill(&t.lt(0), -1).view([1, -1]);
    let rows = Tensor::cat(
        &[
            shift(&masks.maps[&Category::Object], 0),
            shift(&masks.maps[&Category::Part], 4),
            shift(&masks.overlaps[&Category::Part].select(1, 0), 4),
        ],
        0,
    );
    Labels { rows, categories: vec![0, 1, 1] }
}

/// The label rows of one category.
fn category_rows(labels: &Labels, category: usize) -> Vec<Vec<i64>> {
    let rows = labels.categories.iter().enumerate().filter(|(_, g)| **g == category);
    rows.map(|(r, _)| Vec::<i64>::try_from(labels.rows.get(r as i64)).unwrap()).collect()
}

/// Unlabelled pixels are neither positives nor negatives, an image counts for a category only
/// where it annotates it, and a pixel may carry several concepts of one category: exact counts
/// on hand-made masks, on every path.
#[test]
fn annotation_semantics_give_netdissects_counts() {
    let _serial = crate::models::serial();
    // Two categories over 8 pixels: objects {0, 1} label pixels 0..6 (6 and 7 unlabelled);
    // parts {2, 3} label pixels 0..4, pixel 1 carrying both parts.
    let rows =
        Tensor::from_slice(&[0i64, 0, 1, 1, 0, 1, -1, -1, 2, 2, 3, 3, -1, -1, -1, -1, -1, 3, -1, -1, -1, -1, -1, -1])
            .view([3, 8]);
    let labels = Labels { rows, categories: vec![0, 1, 1] };
    let acts = Tensor::from_slice(&[0f32, 1., 2., 3., 4., 5., 6., 7.]).view([1, 8]);
    let concepts = Concepts::new(&[2, 2]);
    let mut exact = Exact::new(concepts.clone());
    exact.add(&acts, &labels).unwrap();
    let mut binned = Binned::new(1024, concepts.clone());
    binned.add(&acts, &labels).unwrap();
    let mut tensors = Binned::new(1024, concepts);
    let labels_on_device = Labels { rows: labels.rows.shallow_clone(), categories: labels.categories.clone() };
    tensors.add(&acts, &labels_on_device).unwrap();
    for counts in [exact.counts(0).unwrap(), binned.tables()[0].counts()] {
        assert_eq!(counts.total, vec![1; 8]);
        assert_eq!(counts.labelled[0], vec![1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(counts.labelled[1], vec![1, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(counts.joint[0], vec![1, 1, 0, 0, 1, 0, 0, 0]);
        assert_eq!(counts.joint[2], vec![1, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(counts.joint[3], vec![0, 1, 1, 1, 0, 0, 0, 0]);
        let curves = miou_curves(&counts);
        // θ between 0 and 1 marks pixels 1..8; of the parts' pixels 0..4, part 3 (1, 2, 3) is
        // marked exactly: IoU 1 and its complement {0} IoU 1.
        assert_eq!(curves[3][1], 1.0);
        // Object 1 (pixels 2, 3, 5) at θ between 4 and 5 marks 5 (and 6, 7, unlabelled):
        // IoU of positives 1/3, of negatives {0, 1, 4} against {0..4} 3/5.
        assert!((curves[1][5] - (1.0 / 3.0 + 3.0 / 5.0) / 2.0).abs() < 1e-12, "{}", curves[1][5]);
        let s = score_channel(0, &counts);
        assert_eq!((s.concept, s.miou), (3, 1.0));
    }
}

/// Criterion ii (SB paper sec. 4): the metric must not depend on the activation distribution.
/// Channels drawn with heavy tails, a single outlier, ReLU zeros, constants, two far modes,
/// ties, and tiny and huge scales score in the default (binned) mode within 1e-3 of exact mode:
/// every channel's mIoU*, its θ* (the exact mIoU at the binned θ*), Ψ, and AUiC and S.
#[test]
fn binned_scores_are_exact_on_any_distribution() {
    let _serial = crate::models::serial();
    let kinds = 10;
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for seed in 0..3 {
        let masks = synthetic_masks(5, 40, seed);
        let labels = label_rows(&masks);
        let objects = masks.maps[&Category::Object].view([-1]);
        let parts = masks.maps[&Category::Part].view([-1]);
        let p = objects.size()[0];
        let opts = (Kind::Float, Device::Cpu);
        let mut channels = Vec::new();
        for k in 0..2 * kinds {
            let follows = if k % 3 == 0 { parts.eq(k % 2) } else { objects.eq(k % 3) }.to_kind(Kind::Float);
            let z = Tensor::randn([p], opts);
            let strength = 0.5 + (k as f64) * 0.2;
            let channel = match k % kinds {
                0 => (&z * (1.0 + (k % 3) as f64) + &follows * strength * 2.0).exp(),
                1 => {
                    let c = &follows + &z * 0.2;
                    c.index_fill(0, &Tensor::from_slice(&[p / 2]), if k < kinds { 1e6 } else { 3e30 })
                }
                2 => (&z - 1.5 + &follows * strength * 2.0).relu(),
                3 => Tensor::full([p], 3.25, opts),
                4 => &follows * 1000.0 + &z + objects.eq(3).to_kind(Kind::Float) * 500.0,
                5 => (&follows + &z * 0.5) * 1e-30,
                6 => (&follows + &z * 0.5) * 1e30,
                7 => ((&follows + &z * 0.7) * 4.0).round() / 4.0 - 7.0,
                8 => &z * 1e-3 - 5.0 + &follows * 1e-3 * strength,
                _ => z.shallow_clone(),
            };
            channels.push(channel);
        }
        let k = channels.len() as i64;
        let acts = Tensor::stack(&channels, 0); // [K, P]
        let (n, h, w) = (5, 40, 40);
        let as_maps = acts.view([k, n, h, w]).transpose(0, 1).contiguous();
        let exact = align(&as_maps, &masks, &InspectConfig { exact: true, ..Default::default() }).unwrap();
        let binned = align(&as_maps, &masks, &InspectConfig { batch_size: 2, ..Default::default() }).unwrap();
        assert!(binned.passes > 1, "some channels need finer passes");
        let mut reference = Exact::new(Concepts::new(&[4, 2]));
        reference.add(&acts, &labels).unwrap();
        for (e, b) in exact.channels.iter().zip(&binned.channels) {
            let ch = b.channel;
            let values = Vec::<f64>::try_from(acts.get(ch as i64).to_kind(Kind::Double)).unwrap();
            let rows = category_rows(&labels, usize::from(b.concept >= 4));
            let at_theta = brute_miou(&values, &rows, b.concept as i64, b.threshold);
            let counts = reference.counts(ch).unwrap();
            let psi = auic::psi(&counts, b.concept).unwrap().0;
            let errors = ((e.miou - b.miou).abs(), (at_theta - e.miou).abs(), (psi - b.psi).abs());
            assert!(
                errors.0 <= 1e-3 && errors.1 <= 1e-3 && errors.2 <= 1e-3,
                "seed {seed} channel {ch} (kind {}): {errors:?}\nexact {e:?}\nbinned {b:?}",
                ch % kinds as usize
            );
            worst = (worst.0.max(errors.0), worst.1.max(errors.1), worst.2.max(errors.2));
        }
        assert!((exact.auic - binned.auic).abs() <= 1e-3, "{} vs {}", exact.auic, binned.auic);
        assert!((exact.stability - binned.stability).abs() <= 1e-3, "{} vs {}", exact.stability, binned.stability);
        // A grid over the values' range would put all but the outlier into one bin.
        let outlier = &binned.channels[1];
        assert!(outlier.miou > 0.9, "{outlier:?}");
    }
    println!("worst |ΔmIoU*|, |ΔmIoU(θ*)|, |ΔΨ|: {worst:?}");
}

/// Activations computed elsewhere align exactly as the model's own: the same numbers give the
/// same result.
#[test]
fn raw_activations_align_like_the_model() {
    let _serial = crate::models::serial();
    let (net, scenes) = small_net_and_scenes(1, 12);
    let config = InspectConfig { batch_size: 5, ..Default::default() };
    let from_model = inspect(&net, "stage2", &scenes, &config).unwrap();
    let batch = scenes.batch(0..12).unwrap();
    let stage = net.stage("stage2").unwrap();
    let (_, mut taps) = tch::no_grad(|| net.forward_taps(&batch.images, std::slice::from_ref(&stage), false)).unwrap();
    let acts = taps.remove(&stage).unwrap();
    let masks = Masks { vocabulary: scenes.vocabulary().clone(), maps: batch.concepts, overlaps: batch.overlaps };
    let raw = align(&acts, &masks, &config).unwrap();
    assert_eq!(raw.channels, from_model.channels);
    assert_eq!((raw.auic, raw.stability, raw.passes), (from_model.auic, from_model.stability, from_model.passes));
    let e = align(&acts.narrow(0, 0, 3), &masks, &config).unwrap_err().to_string();
    assert!(e.contains("[12, channels, height, width]"), "{e}");
    let bad = acts.index_fill(1, &Tensor::from_slice(&[3i64]), f64::NAN);
    let e = align(&bad, &masks, &config).unwrap_err().to_string();
    assert!(e.contains("channel 3 has NaN"), "{e}");
}

/// A channel that detects a concept perfectly keeps mIoU 1 (AUiC 1) in the default mode when
/// one activation lies a million times above the rest: a grid over the min-max range would
/// put every other value into its lowest bin.
#[test]
fn an_outlier_leaves_a_perfect_detector_perfect() {
    let _serial = crate::models::serial();
    let masks = synthetic_masks(3, 32, 7);
    let objects = masks.maps[&Category::Object].view([-1]);
    let detector = objects.eq(1).to_kind(Kind::Float) + 0.5;
    let outlier = objects.eq(1).to_kind(Kind::Float).argmax(0, false).int64_value(&[]);
    let detector = detector.index_fill(0, &Tensor::from_slice(&[outlier]), 1e6);
    let acts = detector.view([1, 3, 32, 32]).transpose(0, 1).contiguous();
    let result =
        align(&acts, &masks, &InspectConfig { categories: Some(vec![Category::Object]), ..Default::default() })
            .unwrap();
    let best = &result.channels[0];
    assert_eq!(
        (masks.vocabulary.qualified_name(crate::data::Concept { category: Category::Object, index: 1 }), best.miou),
        (result.concepts[best.concept].clone(), 1.0)
    );
    assert_eq!((result.auic, result.passes), (1.0, 1), "{result:?}");
}
