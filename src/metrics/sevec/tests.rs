use super::*;
use crate::data::{ConceptScenes, SceneConfig};
use crate::metrics::pointing::{pointing_game, PointingConfig};
use crate::metrics::saliency::compare_saliency;

/// Eq. 3 and the diversity straight from their definitions.
fn by_definition(a: &Tensor, members: &[usize]) -> (Tensor, f64) {
    let rows: Vec<Tensor> = members
        .iter()
        .map(|i| a.get(*i as i64).to_kind(Kind::Double))
        .filter(|r| r.sum(Kind::Double).double_value(&[]) > 0.0)
        .collect();
    let unit = |t: &Tensor| t / t.norm();
    let sum = rows.iter().map(unit).fold(Tensor::zeros([a.size()[1]], tch::kind::DOUBLE_CPU), |s, r| s + r);
    let v = unit(&sum);
    let mean_cos = rows.iter().map(|r| unit(r).dot(&v).double_value(&[])).sum::<f64>() / rows.len() as f64;
    (v, 1.0 - mean_cos)
}

#[test]
fn sevecs_equal_the_closed_form_on_a_toy_set() {
    let a = Tensor::from_slice(&[
        1f32, 1., 0., 0., 1., //
        1., 0., 0., 0., 1., //
        0., 1., 1., 0., 0., //
        0., 0., 0., 0., 0., // no active unit: no direction, skipped
        1., 1., 1., 1., 0., //
        0., 0., 1., 1., 0., //
    ])
    .view([6, 5]);
    let members = Tensor::from_slice(&[1f32, 0., 1., 0., 0., 1., 1., 1., 1., 1., 0., 1.]).view([6, 2]);
    let mut acc = Accumulator::new(2, 5, Device::Cpu);
    acc.add(&a.narrow(0, 0, 4), &members.narrow(0, 0, 4)); // streamed in two batches
    acc.add(&a.narrow(0, 4, 2), &members.narrow(0, 4, 2));
    let (vectors, rates, images, diversity) = acc.finish();
    for (concept, rows) in [(0usize, vec![0, 1, 3, 4]), (1, vec![2, 3, 4, 5])] {
        let (v, d) = by_definition(&a, &rows);
        let got = vectors.get(concept as i64).to_kind(Kind::Double);
        assert!(got.allclose(&v, 1e-6, 1e-6, false), "{concept}: {got} vs {v}");
        assert!((diversity[concept] - d).abs() < 1e-9, "{concept}: {} vs {d}", diversity[concept]);
        assert_eq!(images[concept], 3);
        // Eq. 3's objective is at its maximum: no other unit vector does better.
        let objective = |u: &Tensor| {
            rows.iter()
                .map(|r| a.get(*r as i64).to_kind(Kind::Double))
                .map(|r| {
                    let n = r.norm().double_value(&[]);
                    if n > 0.0 {
                        (r / n).dot(u).double_value(&[])
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        };
        tch::manual_seed(concept as i64);
        for _ in 0..50 {
            let u = Tensor::randn([5], tch::kind::DOUBLE_CPU);
            let u = (&v + u * 0.3) / 1.0;
            let u = &u / u.norm();
            assert!(objective(&u) <= objective(&v) + 1e-12);
        }
    }
    // Rates: concept 0's images 0, 1, 4 (image 3 has no active unit).
    let want = Tensor::from_slice(&[3f32, 2., 1., 1., 2.]) / 3.0;
    assert!(rates.get(0).allclose(&want, 1e-6, 1e-6, false), "{}", rates.get(0));
}

#[test]
fn the_diversity_of_identical_vectors_is_zero() {
    let a = Tensor::from_slice(&[1f32, 0., 1., 1.]).view([1, 4]).repeat([5, 1]);
    let mut acc = Accumulator::new(1, 4, Device::Cpu);
    acc.add(&a, &Tensor::ones([5, 1], tch::kind::FLOAT_CPU));
    let (vectors, rates, images, diversity) = acc.finish();
    assert!(diversity[0].abs() < 1e-12, "{}", diversity[0]);
    assert!(vectors.get(0).allclose(&(a.get(0) / 3f64.sqrt()), 1e-6, 1e-6, false));
    assert!(rates.get(0).equal(&a.get(0)));
    assert_eq!(images, [5]);
}

fn scenes(n: usize, objects: std::ops::RangeInclusive<usize>, seed: u64) -> ConceptScenes {
    ConceptScenes::generate(n, &SceneConfig { objects, seed, ..Default::default() }).unwrap()
}

/// The zoo segmentation net's last stage, SeVecs from single-object scenes (one class per
/// image, as in ImageNet): retrieval, relevance, perturbation, diversity, saliency and the
/// pointing game on two-object scenes.
#[test]
#[ignore]
fn on_the_zoo_net() {
    let _serial = crate::models::serial();
    let started = std::time::Instant::now();
    let net: TappedNet = crate::zoo::load("scenes-resnet", Device::Cpu).unwrap();
    let train = scenes(300, 1..=1, 31);
    let sevecs = semantic_vectors(&net, "stage3", &train, &SevecConfig::default()).unwrap();
    println!("{}", sevecs.render().data()["text/plain"].as_str().unwrap());
    println!("sevecs: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(sevecs.shape, [64, 16, 16]);
    let things = ["car", "house", "person", "tree", "boat", "lamp"];
    // Within-class similarity (1 - D_c) against the SeVecs of the other classes.
    for a in things {
        let own = 1.0 - sevecs.diversity[sevecs.find(a).unwrap()];
        let others: Vec<f64> = things.iter().filter(|b| **b != a).map(|b| sevecs.relevance(a, b).unwrap()).collect();
        println!(
            "{a}: mean cos(a_i, v) {own:.3}; cos to other classes {:?}",
            others.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>()
        );
    }
    let holdout = scenes(160, 1..=1, 32);
    for concept in things {
        let r = sevecs.retrieve(&net, &holdout, concept, 8).unwrap();
        println!("retrieve {concept}: precision {:.2} (base rate {:.2})", r.precision, r.base_rate);
    }
    let rel = sevecs.relevance_by_category(Category::Object, Category::Part).unwrap();
    let (wheel_car, wheel_sky) =
        (rel.get("object:car", "part:wheel").unwrap(), rel.get("object:sky", "part:wheel").unwrap());
    println!(
        "wheel-car {wheel_car:.3}, wheel-sky {wheel_sky:.3}, wheel-tree {:.3}",
        rel.get("object:tree", "part:wheel").unwrap()
    );
    let p = perturbation_test(&net, &sevecs, &holdout.slice(0..60), 0).unwrap();
    println!("{}", p.render().data()["text/plain"].as_str().unwrap());
    let acc = class_accuracy(&net, &holdout, 32).unwrap();
    let study = diversity_vs_accuracy(&sevecs, &acc).unwrap();
    println!("{}", study.render().data()["text/plain"].as_str().unwrap());
    println!("analyses: {:.1}s", started.elapsed().as_secs_f64());
    let pairs = scenes(80, 2..=2, 33);
    let game = pointing_game(&net, &sevecs, &pairs, &PointingConfig::default()).unwrap();
    println!("{}", game.render().data()["text/plain"].as_str().unwrap());
    println!("pointing: {:.1}s", started.elapsed().as_secs_f64());
    let figure = compare_saliency(&net, &sevecs, &pairs.images.get(0), &["car", "house"]).unwrap();
    assert!(figure.render().data().contains_key("image/png"));
    panic!("measure");
}
