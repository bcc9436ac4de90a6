use super::auic::{auic, miou_curves, score_channel};
use super::histogram::{Binned, Counts, Exact};
use super::*;
use tch::Device;

/// Counts of `acts` `[K, P]` against `labels` `[L, P]`, exact or binned.
fn counts(acts: &Tensor, labels: &Tensor, concepts: i64, exact: bool, channel: usize) -> Counts {
    if exact {
        let mut e = Exact::new(concepts);
        e.add(acts, labels);
        e.counts(channel).unwrap()
    } else {
        let mut b = Binned::new(1024, concepts);
        b.add(acts, labels);
        b.counts(channel).unwrap()
    }
}

/// Eq. 22 straight from the definition at one threshold.
fn brute_miou(acts: &[f64], labels: &[i64], concept: i64, theta: f64) -> f64 {
    let (mut tp, mut fp, mut fn_, mut tn) = (0.0, 0.0, 0.0, 0.0);
    for (a, l) in acts.iter().zip(labels) {
        match (*a > theta, *l == concept) {
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
    let labels = Tensor::randint(4, [1, p], (Kind::Int64, Device::Cpu)) - 1;
    let a = Vec::<f64>::try_from(acts.get(1)).unwrap();
    let l = Vec::<i64>::try_from(labels.get(0)).unwrap();
    let c = counts(&acts, &labels, 3, true, 1);
    let curves = miou_curves(&c);
    let mut best = vec![f64::MIN; 3];
    for concept in 0..3 {
        for (j, theta) in std::iter::once(f64::NEG_INFINITY).chain(c.thresholds.iter().copied()).enumerate() {
            let want = brute_miou(&a, &l, concept, theta);
            let got = curves[concept as usize][j];
            assert!((want - got).abs() < 1e-9, "concept {concept} θ {theta}: {want} vs {got}");
            best[concept as usize] = best[concept as usize].max(want);
        }
    }
    let score = score_channel(1, &c);
    let top = best.iter().cloned().fold(f64::MIN, f64::max);
    assert!((score.miou - top).abs() < 1e-9);
    assert!((brute_miou(&a, &l, score.concept as i64, score.threshold) - score.miou).abs() < 1e-9);
}

#[test]
fn a_channel_equal_to_a_mask_scores_one_and_a_constant_one_zero() {
    let labels = Tensor::from_slice(&[0i64, 0, 1, 1, 1, -1, -1, 1]).view([1, 8]);
    let mask = labels.eq(1).to_kind(Kind::Double).view([8]);
    let constant = Tensor::full([8], 3.0, (Kind::Double, Device::Cpu));
    let acts = Tensor::stack(&[mask * 5.0, constant], 0);
    for exact in [true, false] {
        let s = score_channel(0, &counts(&acts, &labels, 2, exact, 0));
        assert_eq!((s.concept, s.miou, s.psi), (1, 1.0, 1.0), "exact {exact}");
        let flat = score_channel(1, &counts(&acts, &labels, 2, exact, 1));
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
    let labels = acts.gt(0.8).to_kind(Kind::Int64) - 1; // concept 0 where high
    let noisy = (&acts + Tensor::randn([1, 500], (Kind::Double, Device::Cpu)) * 0.5).view([1, 500]);
    let rescaled = (noisy.exp() * 7.0) + 3.0;
    let a = score_channel(0, &counts(&noisy, &labels, 1, true, 0));
    let b = score_channel(0, &counts(&rescaled, &labels, 1, true, 0));
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
    let labels = Tensor::stack(&[rare - 1, common * 2 - 1], 0); // concept 0 = rare, concept 1 = common
    let r = score_channel(0, &counts(&acts, &labels, 2, true, 0));
    let c = score_channel(1, &counts(&acts, &labels, 2, true, 1));
    assert_eq!((r.concept, c.concept), (0, 1));
    assert!(r.miou > 0.99 && c.miou > 0.99, "{r:?} {c:?}");
    assert!(c.dissect_iou < 0.05 && r.dissect_iou > 0.3, "{r:?} {c:?}");
}

#[test]
fn binned_agrees_with_exact_on_a_real_layer_and_streams() {
    let _serial = crate::models::serial();
    tch::manual_seed(0);
    let net = crate::models::TappedNet::new(
        crate::models::ResNetConfig {
            widths: vec![8, 16],
            depths: vec![1, 1],
            strides: vec![1, 2],
            stem_width: 8,
            ..crate::models::ResNetConfig::small(crate::models::Task::Segmentation, 11)
        },
        Device::Cpu,
    )
    .unwrap();
    let scenes =
        crate::data::ConceptScenes::generate(24, &crate::data::SceneConfig { size: 32, ..Default::default() }).unwrap();
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
