use std::collections::BTreeMap;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::analysis::deciles;
use super::probe::{quantile_thresholds, ProbeConcept, ProbeSplit};
use super::single::{individual_ious, set_counts, upsample_masks};
use super::*;
use crate::data::{ConceptScenes, SceneConfig};
use crate::display::Render;
use crate::learned;
use crate::models::TappedNet;

fn mask(rows: &[&str]) -> Tensor {
    let bits: Vec<bool> = rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect();
    Tensor::from_slice(&bits).view([rows.len() as i64, -1])
}

/// Eq. 1 by hand: image 1 overlaps 2 of a union of 6 pixels, image 2 1 of 4, and image 3,
/// which lacks the concept, does not count though its mask marks 5 pixels: 3/10.
#[test]
fn set_iou_of_hand_made_masks_follows_eq_1() {
    let masks = Tensor::stack(
        &[
            mask(&["##..", "##..", "....", "...."]),
            mask(&["....", "....", "..##", "...."]),
            mask(&["####", "#...", "....", "...."]),
        ],
        0,
    );
    let labels = Tensor::stack(
        &[
            mask(&[".##.", ".##.", "....", "...."]),
            mask(&["....", "....", "...#", "..##"]),
            mask(&["....", "....", "....", "...."]),
        ],
        0,
    );
    assert!((set_iou(&masks, &labels) - 0.3).abs() < 1e-12, "{}", set_iou(&masks, &labels));
    let ious = individual_ious(&masks.unsqueeze(1), &labels.unsqueeze(1)).view([-1]);
    let ious = Vec::<f64>::try_from(ious).unwrap();
    assert_eq!(ious, vec![2.0 / 6.0, 1.0 / 4.0, 0.0]);
    // Two mask channels against two concepts at once, the second concept in every image:
    // the counts of each pair.
    let both = Tensor::stack(&[&masks, &labels], 1);
    let (i, u) = set_counts(&both, &Tensor::stack(&[&labels, &labels.logical_not()], 1));
    assert_eq!(Vec::<f64>::try_from(i.view([-1])).unwrap(), vec![3.0, 8.0, 7.0, 0.0]);
    assert_eq!(Vec::<f64>::try_from(u.view([-1])).unwrap(), vec![10.0, 44.0, 7.0, 48.0]);
    assert_eq!(set_iou(&masks, &labels.zeros_like()), 0.0);
}

/// Sec. 3.1.1, modification 1: threshold at the layer's resolution, then upsample; one
/// fired cell of a 2×2 map covers its own quarter of a 4×4 annotation.
#[test]
fn masks_are_thresholded_then_upsampled() {
    let fired = Tensor::from_slice(&[true, false, false, false]).view([1, 1, 2, 2]);
    let up = upsample_masks(&fired, (4, 4)).view([4, 4]);
    assert!(up.equal(&mask(&["##..", "##..", "....", "...."])), "{up}");
}

/// The matrix form of bilinear upsampling that training uses is libtorch's upsampling.
#[test]
fn interpolation_matrices_upsample_like_libtorch() {
    let _serial = crate::models::serial();
    tch::manual_seed(2);
    let z = Tensor::randn([2, 3, 5, 7], (Kind::Float, Device::Cpu));
    let want = z.upsample_bilinear2d([16, 12], false, None, None);
    let (rows, columns) = (multi::interpolation(5, 16, Device::Cpu), multi::interpolation(7, 12, Device::Cpu));
    let got = rows.matmul(&z).matmul(&columns.transpose(0, 1));
    assert!(got.allclose(&want, 1e-5, 1e-5, false), "{}", (got - want).abs().max());
}

#[test]
fn thresholds_leave_the_top_half_percent_above() {
    let _serial = crate::models::serial();
    tch::manual_seed(1);
    let a = Tensor::randn([10, 3, 20, 20], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([6, 3, 20, 20], (Kind::Float, Device::Cpu)) + 1.0;
    let t = quantile_thresholds(&[&a, &b], TAU);
    for (k, t) in t.iter().enumerate() {
        let above = a.select(1, k as i64).gt(*t).sum(Kind::Int64).int64_value(&[])
            + b.select(1, k as i64).gt(*t).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(above, 32, "channel {k}: 0.5% of 6400 positions");
    }
}

/// A small split by hand: `n` images of 8×8 labels and a 4×4 layer of `k` filters that fire
/// where the label is, with noise.
fn toy_split(n: i64, k: i64) -> (ProbeSplit, Vec<ProbeConcept>) {
    tch::manual_seed(3);
    let maps = Tensor::randint_low(-1, 3, [n, 4, 4], (Kind::Int64, Device::Cpu))
        .repeat_interleave_self_int(2, Some(1), None)
        .repeat_interleave_self_int(2, Some(2), None);
    let small = maps.view([n, 1, 4, 2, 4, 2]).select(3, 0).select(4, 0).view([n, 1, 4, 4]);
    let values = Tensor::arange(k, (Kind::Int64, Device::Cpu)).remainder(3).view([1, k, 1, 1]);
    let noise = Tensor::rand([n, k, 4, 4], (Kind::Float, Device::Cpu)).lt(0.2);
    let fired = small.eq_tensor(&values).logical_xor(&noise);
    let means = Tensor::rand([n, k], (Kind::Float, Device::Cpu));
    let concepts =
        (0..3).map(|i| ProbeConcept { category: Category::Object, label: i, name: format!("object:c{i}") }).collect();
    (ProbeSplit { fired, means, maps: BTreeMap::from([(Category::Object, maps)]) }, concepts)
}

/// Sec. 3.1.2 with one K×C matrix equals one training per concept on the same batches:
/// same weights, column by column.
#[test]
fn batched_segmentation_training_equals_per_concept_training() {
    let _serial = crate::models::serial();
    let (split, concepts) = toy_split(24, 6);
    let config = TrainConfig { epochs: 4, batch_size: 8, lr: 5.0, seed: Some(5), ..paper_training() };
    let batched = multi::train(&split, &concepts, (8, 8), None, true, PixelLoss::Mean, &config).unwrap();
    assert_eq!(batched.weights.size(), [6, 3]);
    assert!(batched.weights.abs().max().double_value(&[]) > 0.1, "it learned something");
    for (c, concept) in concepts.iter().enumerate() {
        let alone =
            multi::train(&split, std::slice::from_ref(concept), (8, 8), None, true, PixelLoss::Mean, &config).unwrap();
        let column = batched.weights.narrow(1, c as i64, 1);
        assert!(alone.weights.allclose(&column, 1e-4, 1e-5, false), "concept {c}: {alone:?} vs {column}");
        assert!((alone.bias.double_value(&[0]) - batched.bias.double_value(&[c as i64])).abs() < 1e-5);
    }
    // A mask keeps each concept to its filters.
    let mask = classify::top_filters(&batched.weights, 2);
    assert_eq!(mask.sum(Kind::Int64).int64_value(&[]), 6);
    let masked = multi::train(&split, &concepts, (8, 8), Some(&mask), true, PixelLoss::Mean, &config).unwrap();
    assert!(masked.weights.masked_select(&mask.logical_not()).abs().max().double_value(&[]) == 0.0);
}

/// The authors' loss sums eq. 4 over an image's pixels, so their lr is meant for a gradient
/// H·W times a mean's: with SGD from zero weights, the sum at lr / (H·W) trains exactly as the
/// mean at lr. `--paper` takes the sum, the small-data settings the mean.
#[test]
fn the_papers_pixel_sum_is_the_pixel_mean_at_h_w_times_the_rate() {
    let _serial = crate::models::serial();
    let (split, concepts) = toy_split(24, 6);
    let config = TrainConfig { epochs: 3, batch_size: 8, lr: 5.0, seed: Some(5), ..paper_training() };
    let mean = multi::train(&split, &concepts, (8, 8), None, true, PixelLoss::Mean, &config).unwrap();
    let per_pixel = TrainConfig { lr: 5.0 / 64.0, ..config.clone() };
    let sum = multi::train(&split, &concepts, (8, 8), None, true, PixelLoss::Sum, &per_pixel).unwrap();
    assert!(mean.weights.abs().max().double_value(&[]) > 0.1, "it learned something");
    assert!(sum.weights.allclose(&mean.weights, 1e-4, 1e-5, false), "{} vs {}", sum.weights, mean.weights);
    let same_rate = multi::train(&split, &concepts, (8, 8), None, true, PixelLoss::Sum, &config).unwrap();
    assert!(!same_rate.weights.allclose(&mean.weights, 1e-2, 1e-2, false), "the sum's gradient is 64 times larger");
    assert_eq!(Net2VecConfig::paper(Task::Segmentation).pixels, PixelLoss::Sum);
    assert_eq!(Net2VecConfig::small_data(Task::Segmentation).pixels, PixelLoss::Mean);
}

#[test]
fn deciles_pick_one_example_per_tenth_of_the_non_zero_scores() {
    let values: Vec<f64> = (0..25).map(|i| if i % 5 == 0 { 0.0 } else { i as f64 }).collect();
    let picked = deciles(&values);
    assert_eq!(picked.len(), 10);
    assert!(picked.windows(2).all(|w| w[0].1 < w[1].1) && picked.iter().all(|p| p.1 > 0.0));
    assert_eq!(deciles(&[0.0, 0.5]), vec![(1, 0.5)]);
    assert!(deciles(&[0.0]).is_empty());
}

/// Four filters: colour axes (green, blue) and two "ground" and "plant" axes.
fn toy_embedding() -> ConceptEmbedding {
    let names =
        ["colour:green", "colour:blue", "object:grass", "object:sky", "object:tree", "object:wall", "part:wall"];
    let vectors = vec![
        vec![1.0, 0.0, 0.0, 0.0],
        vec![0.0, 2.0, 0.0, 0.0],
        vec![1.0, 0.0, 1.0, 0.0],
        vec![0.0, 1.0, 1.0, 0.0],
        vec![0.0, 0.0, 1.0, 1.0],
        vec![0.0, 0.0, 0.0, 1.0],
        vec![0.0, 0.0, -1.0, 1.0],
    ];
    ConceptEmbedding::new(names.map(String::from).to_vec(), vectors).unwrap()
}

/// Tables 2 and 3 and `D_ij` on an embedding with known answers.
#[test]
fn nearest_arithmetic_and_distance_on_a_hand_made_embedding() {
    let e = toy_embedding();
    let near = e.nearest("grass", 3).unwrap();
    assert_eq!(near.query, "object:grass");
    assert_eq!(near.neighbours[0].0, "colour:green");
    assert!((near.neighbours[0].1 - 0.5f64.sqrt()).abs() < 1e-12);
    // grass − green + blue = (1/√2 − 1, 1, 1/√2, 0): sky first, at cos (1 + 1/√2)/√2/|v|.
    let sum = e.arith("grass - green + blue", 2).unwrap();
    let v = [0.5f64.sqrt() - 1.0, 1.0, 0.5f64.sqrt(), 0.0];
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert_eq!(sum.neighbours[0].0, "object:sky");
    assert!((sum.neighbours[0].1 - (1.0 + 0.5f64.sqrt()) / 2f64.sqrt() / norm).abs() < 1e-12);
    assert!(sum.neighbours.iter().all(|(n, _)| !["object:grass", "colour:green", "colour:blue"].contains(&n.as_str())));
    let leading = e.arith("-green + grass", 1).unwrap();
    assert_eq!(e.parse("-green + grass").unwrap(), vec![(-1.0, 0), (1.0, 2)]);
    assert_eq!(leading.neighbours.len(), 1);
    assert!(sum.render().data()["text/plain"].as_str().unwrap().contains("object:sky"));
    // D_ij: the same cosines in another space (rotated, one more filter) are at distance 0;
    // moving one concept changes exactly its pairs.
    let a = ConceptEmbedding::new(
        vec!["x".into(), "y".into(), "z".into()],
        vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]],
    )
    .unwrap();
    let rotated = ConceptEmbedding::new(
        vec!["z".into(), "y".into(), "x".into(), "only-here".into()],
        vec![vec![0.0, 0.0, 2.0], vec![-1.0, 0.0, 1.0], vec![1.0, 0.0, 1.0], vec![1.0, 1.0, 1.0]],
    )
    .unwrap();
    let d = a.distance(&rotated).unwrap();
    assert_eq!(d.concepts, ["x", "y", "z"]);
    assert!(d.total.abs() < 1e-12, "{d:?}");
    let moved = ConceptEmbedding::new(
        vec!["x".into(), "y".into(), "z".into()],
        vec![vec![1.0, 0.0], vec![1.0, 1.0], vec![1.0, 1.0]],
    )
    .unwrap();
    let d = a.distance(&moved).unwrap();
    // cos(x, y): 0 → 1/√2, cos(y, z): 1/√2 → 1; each pair counts twice in the matrix.
    let (dx, dz) = (0.5, (1.0 - 0.5f64.sqrt()).powi(2));
    assert!((d.per_concept[0] - dx).abs() < 1e-12 && (d.per_concept[2] - dz).abs() < 1e-12, "{d:?}");
    assert!((d.total - 2.0 * (dx + dz)).abs() < 1e-12);
    assert_eq!(d.by_category(), vec![("concept".to_owned(), d.total / 3.0)]);
    let map = distance_heatmap(&[("a", &a), ("rotated", &rotated), ("moved", &moved)]).unwrap();
    assert!(map.render().data().contains_key("image/png"));
}

#[test]
fn embedding_errors_say_what_is_allowed() {
    let e = toy_embedding();
    let err = e.nearest("gras", 3).unwrap_err().to_string();
    assert!(
        err.contains("unknown concept `gras`") && err.contains("did you mean `grass`") && err.contains("colour:blue"),
        "{err}"
    );
    let err = e.nearest("wall", 3).unwrap_err().to_string();
    assert!(err.contains("ambiguous") && err.contains("object:wall, part:wall"), "{err}");
    assert_eq!(e.nearest("part:wall", 1).unwrap().query, "part:wall");
    for (bad, why) in [
        ("grass -", "`-` has no concept after it"),
        ("grass + + blue", "`+` has no concept after it"),
        ("", "it is empty"),
        ("grass * blue", "unknown concept `grass * blue`"),
    ] {
        let err = e.arith(bad, 3).unwrap_err().to_string();
        assert!(err.contains(why) && err.contains("e.g. `grass - green + blue`"), "{bad}: {err}");
    }
    let other = ConceptEmbedding::new(vec!["object:sky".into(), "x".into()], vec![vec![1.0], vec![2.0]]).unwrap();
    let err = e.distance(&other).unwrap_err().to_string();
    assert!(err.contains("share 1 concept") && err.contains("the second has: object:sky, x"), "{err}");
    assert!(ConceptEmbedding::new(vec!["a".into()], vec![vec![1.0], vec![2.0]]).is_err());
    assert!(ConceptEmbedding::new(vec!["a".into(), "a".into()], vec![vec![1.0], vec![2.0]]).is_err());
}

#[test]
fn hyphenated_names_are_one_concept() {
    let e = ConceptEmbedding::new(
        vec!["t-shirt".into(), "t".into(), "shirt".into(), "red".into()],
        vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0], vec![1.0, -1.0]],
    )
    .unwrap();
    assert_eq!(e.parse("t-shirt - red").unwrap(), vec![(1.0, 0), (-1.0, 3)]);
    assert_eq!(e.parse("t - shirt").unwrap(), vec![(1.0, 1), (-1.0, 2)]);
}

fn scenes(n: usize, seed: u64) -> ConceptScenes {
    ConceptScenes::generate(n, &SceneConfig { seed, ..Default::default() }).unwrap()
}

/// Net2Vec's main findings in small, on the zoo's scene segmentation net: learned weights
/// segment concepts better than the best single filter on average (fig. 2, top), and
/// classify them well above chance on a balanced val set (fig. 2, bottom); the analyses run
/// on the result.
#[test]
fn scenes_resnet_weights_beat_single_filters() {
    let _serial = crate::models::serial();
    let started = Instant::now();
    let net: TappedNet = crate::zoo::load("scenes-resnet", Device::Cpu).unwrap();
    let (train, val) = (scenes(200, learned::seed(21)), scenes(100, learned::seed(22)));
    let categories = Some(vec![Category::Object, Category::Colour]);
    let probe = probe(&net, "stage3", &train, &val, categories.as_deref(), 50).unwrap();
    println!(
        "probe: {:.1}s, {} concepts, skipped {:?}",
        started.elapsed().as_secs_f64(),
        probe.concepts.len(),
        probe.skipped
    );
    let seg_config = Net2VecConfig {
        training: TrainConfig {
            epochs: 10,
            seed: Some(learned::seed(0)),
            ..Net2VecConfig::small_data(Task::Segmentation).training
        },
        ..Net2VecConfig::small_data(Task::Segmentation)
    };
    let seg = segmentation(&probe, &seg_config).unwrap();
    println!("{}", seg.render().data()["text/plain"].as_str().unwrap());
    println!("segmentation: {:.1}s; {}", started.elapsed().as_secs_f64(), seg.training);
    let cls_config = Net2VecConfig {
        subsets: Some(vec![1, 2, 5, 20]),
        training: TrainConfig {
            epochs: 10,
            seed: Some(learned::seed(0)),
            ..Net2VecConfig::small_data(Task::Classification).training
        },
        ..Net2VecConfig::small_data(Task::Classification)
    };
    let cls = classification(&probe, &cls_config).unwrap();
    println!("{}", cls.render().data()["text/plain"].as_str().unwrap());
    println!("classification: {:.1}s; {}", started.elapsed().as_secs_f64(), cls.training);
    for c in seg.by_category() {
        println!("{c:?}");
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let single: Vec<f64> = seg.single.iter().map(|s| s.score).collect();
    learned::at_least(
        "net2vec seg: mean set IoU, weights - best single filter",
        mean(&seg.multi) - mean(&single),
        0.02,
    );
    // Chance is 0.5 on balanced sets.
    learned::at_least("net2vec cls: mean balanced accuracy of the weights", mean(&cls.multi), 0.6);
    assert_eq!(cls.subsets.iter().map(|s| s.filters).collect::<Vec<_>>(), [1, 2, 5, 20, 64]);
    // Analyses.
    let usage = seg.filter_usage();
    assert_eq!(usage.counts.iter().sum::<usize>(), seg.multi.len());
    assert!(usage.render().data().contains_key("image/png"));
    let shares = seg.filter_contributions("sky").unwrap();
    assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(seg.single_share().iter().all(|s| (0.0..1.0).contains(s)), "{:?}", seg.single_share());
    let correlation = seg.weight_correlation().unwrap();
    println!("{}", correlation.render().data()["text/plain"].as_str().unwrap());
    // Fig. 5: filters are shared, one filter is the best of several concepts; sec. 5.2: a
    // filter's weight follows its own set IoU for most concepts (the paper: about 80%).
    let shared = usage.counts.iter().copied().max().unwrap_or(0) as f64;
    learned::at_least("net2vec fig. 5: concepts of the most shared filter", shared, 2.0);
    learned::at_least("net2vec sec. 5.2: concepts whose weights follow the IoU", correlation.significant(0.01), 0.5);
    // Fig. 3: a subset of the filters does about as well as all of them, one filter worse.
    let subset = |f: usize| mean(&cls.subsets.iter().find(|s| s.filters == f).unwrap().scores);
    learned::at_least("net2vec fig. 3: top-20 filters - all 64", subset(20) - mean(&cls.multi), -0.03);
    learned::at_least("net2vec fig. 3: all 64 filters - the top one", mean(&cls.multi) - subset(1), 0.0);
    assert!(cls.weight_correlation().is_err());
    assert!(cls.subset_plot().unwrap().render().data().contains_key("image/png"));
    let grid = decile_examples(&net, &seg, &val, "sky").unwrap();
    assert!(grid.data().contains_key("image/png"));
    let near = seg.nearest("sky", 3).unwrap();
    println!("{}", near.render().data()["text/plain"].as_str().unwrap());
    let d = seg.distance(&cls).unwrap();
    println!("{}; total {:.1}s", d.render().data()["text/plain"].as_str().unwrap(), started.elapsed().as_secs_f64());
}
