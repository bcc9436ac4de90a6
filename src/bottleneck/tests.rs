use super::*;
use crate::data::{ConceptScenes, SceneConfig, Vocabulary};
use crate::learned;
use crate::metrics::{inspect, InspectConfig};
use crate::models::{ResNetConfig, TrainConfig};
use tch::Device;

fn scenes(n: usize, seed: u64) -> ConceptScenes {
    ConceptScenes::generate(n, &SceneConfig { seed, ..Default::default() }).unwrap()
}

fn small_net() -> TappedNet {
    tch::manual_seed(0);
    let config = ResNetConfig {
        stem_width: 4,
        widths: vec![4, 8],
        depths: vec![1, 1],
        strides: vec![1, 2],
        ..ResNetConfig::small(Task::Segmentation, 11)
    };
    TappedNet::new(config, Device::Cpu).unwrap()
}

fn outputs(net: &impl Tapped, xs: &Tensor) -> Tensor {
    tch::no_grad(|| net.forward_t(xs, false))
}

/// With `f_SB` and `f_r` set to embed and project back (an identity through the
/// bottleneck), the bottlenecked net computes what the original does: the wiring of eq. 4
/// is exact. The original is untouched by insertion either way.
#[test]
fn an_identity_bottleneck_keeps_the_outputs() {
    let _serial = crate::models::serial();
    let net = small_net();
    let xs = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let before = outputs(&net, &xs);
    let materials = Ssb::new(&[Category::Material], Vocabulary::scenes()).unwrap();
    let k = materials.group_sizes()[0];
    assert!(k >= 4, "the material group must be at least as wide as stage1");
    let sb = net.insert_after_with("stage1", materials.clone(), Restore::Project).unwrap();
    let eye = Tensor::eye(k, (Kind::Float, Device::Cpu));
    tch::no_grad(|| {
        let mut vars = sb.var_store().variables();
        let mut var = |name: &str| vars.get_mut(name).unwrap().shallow_clone();
        var("ssb.0.weight").copy_(&eye.narrow(1, 0, 4).view([k, 4, 1, 1]));
        let _ = var("ssb.0.bias").zero_();
        var("ssb_r.weight").copy_(&eye.narrow(0, 0, 4).view([4, k, 1, 1]));
        let _ = var("ssb_r.bias").zero_();
    });
    assert!(outputs(&sb, &xs).allclose(&before, 1e-5, 1e-5, false));
    assert!(outputs(&net, &xs).equal(&before));
    let names: Vec<String> = sb.stages().iter().map(|s| s.stage.to_string()).collect();
    assert_eq!(names, ["stem", "stage1", "ssb", "ssb_r", "stage2", "head"]);
    // Eq. 9: the next stage is rebuilt for N_SB channels; the stage before keeps its weights.
    let adapted = net.insert_after("stage1", materials).unwrap();
    assert_eq!(adapted.net().input_channels(&Stage::Block(2)).unwrap(), k);
    let (a, b) = (adapted.var_store().variables(), net.var_store().variables());
    assert!(a["stage1.0.conv1.weight"].equal(&b["stage1.0.conv1.weight"]));
    assert_eq!(outputs(&adapted, &xs).size(), before.size());
}

#[test]
fn bad_bottlenecks_say_what_is_allowed() {
    let _serial = crate::models::serial();
    let net = small_net();
    let usb = Usb::new(1, 4).unwrap();
    let e = net.insert_after("stage7", usb.clone()).unwrap_err().to_string();
    assert!(e.contains("unknown stage `stage7`") && e.contains("stage1"), "{e}");
    let e = net.insert_after("head", usb.clone()).unwrap_err().to_string();
    assert!(e.contains("insert after one of: stem, stage1, stage2"), "{e}");
    let only_objects = Vocabulary::new([(Category::Object, vec!["sky".to_owned(), "car".to_owned()])]).unwrap();
    let e = Ssb::new(&[Category::Part], &only_objects).unwrap_err().to_string();
    assert!(e.contains("no `part` concepts") && e.contains("object"), "{e}");
    assert!(Ssb::new(&[], Vocabulary::scenes()).is_err());
    assert!(Usb::new(3, 1).unwrap_err().to_string().contains("at least 2 channels"));
    // Data that lacks the group's annotations.
    let mut batch = scenes(6, 1).into_batch();
    batch.concepts.remove(&Category::Material);
    let e = check_annotations(&net, &batch, &[Category::Material]).unwrap_err().to_string();
    assert!(e.contains("no `material` annotations") && e.contains("part"), "{e}");
    let sb = net.insert_after("stage1", usb).unwrap();
    assert!(report_of(&sb).unwrap_err().to_string().contains("not been trained"));
}

/// SB paper table 4 in small: after a middle stage of the zoo segmentation net, a USB with
/// temperature annealing keeps the task score with a quarter of the channels and loses
/// nothing under arg-max, while the same USB with the entropy loss loses much more.
#[test]
fn annealed_usbs_are_one_hot_and_entropy_ones_are_not() {
    let _serial = crate::models::serial();
    let net: TappedNet = crate::zoo::load("scenes-resnet", Device::Cpu).unwrap();
    let (train, test) = (scenes(480, learned::seed(7)), scenes(200, learned::seed(8)));
    let config = TrainConfig { epochs: 5, seed: Some(learned::seed(0)), ..usb::default_training() };
    let run = |reg| {
        tch::manual_seed(learned::torch_seed(0));
        let sb = usb(&net, "stage2", Usb::new(1, 8).unwrap().with(reg), &train, Some(&test), &config).unwrap();
        println!("{}", sb.report().unwrap());
        sb.report.unwrap()
    };
    let miou = |r: &SbReport, mode| r.score(mode).unwrap().miou.unwrap();
    let (anneal, entropy) = (run(Regularizer::ANNEAL), run(Regularizer::ENTROPY));
    let original = anneal.original.miou.unwrap();
    assert_eq!((anneal.stage_channels, anneal.channels), (32, 8));
    learned::at_most("usb: annealed, mIoU lost under argmax", original - miou(&anneal, Inference::Argmax), 0.1);
    learned::at_most(
        "usb: annealed, |softmax - argmax| mIoU",
        (miou(&anneal, Inference::Softmax) - miou(&anneal, Inference::Argmax)).abs(),
        0.02,
    );
    learned::at_least(
        "usb: entropy, softmax - argmax mIoU",
        miou(&entropy, Inference::Softmax) - miou(&entropy, Inference::Argmax),
        0.05,
    );
    learned::at_least(
        "usb: argmax mIoU, annealed - entropy",
        miou(&anneal, Inference::Argmax) - miou(&entropy, Inference::Argmax),
        0.05,
    );
    assert!(anneal.active.unwrap() >= 2 && anneal.active.unwrap() <= 8);
}

/// SB paper table 7 in small: the alignment of a USB's one-hot channels is stable over
/// thresholds (eq. 27), far more than that of the layer it replaces or of a plain bottleneck
/// of the same width trained the same way, which tells the softmax's effect apart from that
/// of fewer channels.
#[test]
fn a_usbs_alignment_is_stable_and_a_plain_bottlenecks_is_not() {
    let _serial = crate::models::serial();
    let net: TappedNet = crate::zoo::load("scenes-resnet", Device::Cpu).unwrap();
    let (train, test) = (scenes(480, learned::seed(7)), scenes(200, learned::seed(8)));
    let config = TrainConfig { epochs: 5, seed: Some(learned::seed(0)), ..usb::default_training() };
    tch::manual_seed(learned::torch_seed(0));
    let usb_net = usb(&net, "stage2", Usb::new(1, 8).unwrap(), &train, Some(&test), &config).unwrap();
    tch::manual_seed(learned::torch_seed(0));
    let plain_net = plain(&net, "stage2", Plain::new(8).unwrap(), &train, Some(&test), &config).unwrap();
    let report = report_of(&plain_net).unwrap();
    println!("{report}");
    assert_eq!((report.channels, report.active), (8, None));
    assert_eq!(report.scores.iter().map(|(m, _)| *m).collect::<Vec<_>>(), [Inference::Linear]);
    // It learns the task through 8 channels: far above the majority class's share.
    learned::at_least("plain bottleneck: mIoU", report.score(Inference::Linear).unwrap().miou.unwrap(), 0.25);

    let config = InspectConfig {
        categories: Some(vec![Category::Object, Category::Part, Category::Material, Category::Colour]),
        ..Default::default()
    };
    let original = inspect(&net, "stage2", &test, &config).unwrap().stability;
    let one_hot = inspect(&usb_net, "sb", &test, &config).unwrap().stability;
    let linear = inspect(&plain_net, "sb", &test, &config).unwrap().stability;
    println!("table 7: S original {original:.3}, plain bottleneck {linear:.3}, USB {one_hot:.3}");
    learned::at_least("S: USB - original", one_hot - original, 0.2);
    learned::at_least("S: USB - plain bottleneck", one_hot - linear, 0.2);
}

/// SB paper sec. 3.1: an SSB after a middle stage recovers most of the task score, its
/// channels predict their concepts well above chance, and a softmax at inference ruins it;
/// an SSB trained with a softmax on its outputs recovers less of the task than one without
/// (table 2).
#[test]
fn an_ssb_recovers_the_task_and_its_channels_name_concepts() {
    let _serial = crate::models::serial();
    let net: TappedNet = crate::zoo::load("scenes-resnet", Device::Cpu).unwrap();
    let (train, test) = (scenes(480, learned::seed(7)), scenes(200, learned::seed(8)));
    let defaults = SsbTraining::default();
    let training = SsbTraining {
        phase1: TrainConfig { epochs: 5, seed: Some(learned::seed(0)), ..defaults.phase1 },
        phase2: TrainConfig { epochs: 5, seed: Some(learned::seed(0)), ..defaults.phase2 },
        output: SsbOutput::Linear,
    };
    tch::manual_seed(learned::torch_seed(0));
    let sb = ssb(&net, "stage2", &[Category::Material, Category::Colour], &train, Some(&test), &training).unwrap();
    let report = report_of(&sb).unwrap();
    println!("{report}");
    let original = report.original.miou.unwrap();
    let linear = report.score(Inference::Linear).unwrap().miou.unwrap();
    learned::at_most("ssb: mIoU lost", original - linear, 0.08);
    learned::at_least(
        "ssb: linear - softmax mIoU",
        linear - report.score(Inference::Softmax).unwrap().miou.unwrap(),
        0.1,
    );
    let worst = report.concepts.iter().map(|c| c.accuracy - c.majority).fold(f64::INFINITY, f64::min);
    learned::at_least("ssb: worst group, accuracy - majority", worst, 0.2);
    assert_eq!(sb.inference(), Inference::Linear, "the report restores the inference mode");

    tch::manual_seed(learned::torch_seed(0));
    let softmax_training = SsbTraining { output: SsbOutput::Softmax, ..training };
    let groups = [Category::Material, Category::Colour];
    let with_softmax = ssb(&net, "stage2", &groups, &train, Some(&test), &softmax_training).unwrap();
    assert_eq!(with_softmax.inference(), Inference::Softmax, "it is used as it was trained");
    let trained_with_softmax = report_of(&with_softmax).unwrap().score(Inference::Softmax).unwrap().miou.unwrap();
    println!("table 2: mIoU trained without softmax {linear:.3}, with softmax {trained_with_softmax:.3}");
    // Over seed offsets 0-3 the softmax cost 0.6-1.6 points (the paper's: 31.7): the relation
    // holds every time, weakly.
    learned::at_least("ssb: mIoU trained without - with softmax", linear - trained_with_softmax, 0.0);
}

mod torchvision {
    use super::*;
    use crate::models::{Arch, Editable, VisionNet};

    fn resnet18() -> VisionNet {
        VisionNet::new(Arch::ResNet18, 5, Device::Cpu).unwrap()
    }

    /// 32x32 images of 5 classes, each class a background colour under noise.
    fn colours(n: i64, seed: u64) -> Examples {
        let cpu = (Kind::Float, Device::Cpu);
        tch::manual_seed(seed as i64);
        let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(5);
        let palette =
            Tensor::from_slice(&[0.9f32, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.5, 0.5, 0.5])
                .view([5, 3, 1, 1]);
        let noise = Tensor::randn([n, 3, 32, 32], cpu) * 0.2;
        let images = (palette.index_select(0, &labels) + noise).clamp(0.0, 1.0);
        Examples::classification(images, labels).unwrap()
    }

    /// SB paper sec. 3.2 on torchvision's ResNet-18: a USB after a block of `layer3`, trained
    /// with `layer4` (adapted to its channels, eq. 9) and `fc` on the image labels (eq. 21),
    /// learns the classes while everything before it stays as it was.
    #[test]
    fn a_usb_after_a_resnet_block_learns_the_classes() {
        let _serial = crate::models::serial();
        tch::manual_seed(learned::torch_seed(0));
        let net = resnet18();
        let (train, test) = (colours(160, learned::seed(1)), colours(60, learned::seed(2)));
        let u = Usb::new(2, 4).unwrap();
        tch::manual_seed(learned::torch_seed(3));
        let sb = net.insert_after("layer3.1", u.clone()).unwrap();
        let frozen_before = sb.var_store().variables()["layer3.1.conv2.weight"].copy();
        let before = evaluate(&sb, &test, 64).unwrap();
        // Adam rather than the paper's SGD: annealing scales the USB's gradients by 1/T
        // (eq. 20), which one SGD rate cannot follow over thirty steps.
        let config = TrainConfig {
            epochs: 3,
            lr: 1e-3,
            optimizer: crate::models::Optim::Adam,
            seed: Some(learned::seed(0)),
            ..usb::default_training()
        };
        let trained = usb::fit(&sb, &u, &train, &config).unwrap();
        let after = evaluate(&sb, &test, 64).unwrap();
        println!("{before} -> {after}; {trained}");
        learned::at_least("usb resnet18: test loss drop", before.loss - after.loss, 0.3);
        learned::at_least("usb resnet18: argmax accuracy - majority", after.accuracy - after.majority, 0.2);
        assert!(sb.var_store().variables()["layer3.1.conv2.weight"].equal(&frozen_before), "eq. 21 trains only θ");
        assert!(sb.var_store().trainable_variables().iter().all(|v| v.requires_grad()), "the guard thaws");
        let names: Vec<String> = sb.stages().iter().map(|s| s.stage.to_string()).collect();
        let at = names.iter().position(|s| s == "layer3.1").unwrap();
        assert_eq!(names[at + 1..at + 3], ["usb", "layer3"]);
        assert_eq!(sb.net().input_channels(&Stage::Module("layer4.0".into())).unwrap(), 8);
        assert!(net.stages().iter().all(|s| !matches!(s.stage, Stage::Inserted(_))), "the original is untouched");
    }

    /// The library's `usb` on a classifier: labelled images, held-out last fifth, the
    /// table row.
    #[test]
    fn usb_reports_on_a_classifier() {
        let _serial = crate::models::serial();
        tch::manual_seed(0);
        let net = resnet18();
        let data = colours(40, 5);
        let config = TrainConfig { epochs: 1, seed: Some(0), ..usb::default_training() };
        let sb = usb(&net, "layer4", Usb::new(1, 4).unwrap(), &data, None, &config).unwrap();
        let report = report_of(&sb).unwrap();
        assert_eq!((report.after.as_str(), report.stage_channels, report.channels), ("layer4", 512, 4));
        assert_eq!(report.test_images, 8);
        assert!(report.original.miou.is_none() && report.score(Inference::Argmax).is_some());
        assert!(report.active.unwrap() >= 1 && report.active.unwrap() <= 4);
        assert_eq!(sb.var_store().variables()["fc.weight"].size(), [5, 4]);
    }

    /// θ of eq. 21 on a torchvision net: each convolution and batch norm by its own name,
    /// so the layer that holds the bottleneck does not unfreeze its earlier blocks.
    #[test]
    fn only_what_follows_the_bottleneck_trains() {
        let _serial = crate::models::serial();
        let sb = resnet18().insert_after("layer4.0", Usb::new(1, 4).unwrap()).unwrap();
        let grad = |name: &str| sb.var_store().variables()[name].requires_grad();
        {
            let _frozen = sb.net().train_only(after_stage(sb.net(), sb.after()));
            assert!(!grad("layer4.0.conv1.weight") && !grad("layer3.1.bn2.weight") && !grad("conv1.weight"));
            assert!(grad("usb.0.weight") && grad("layer4.1.conv1.weight") && grad("layer4.1.downsample.0.weight"));
            assert!(grad("fc.weight") && grad("fc.bias"));
        }
        assert!(grad("layer4.0.conv1.weight") && grad("conv1.weight"));
    }

    #[test]
    fn bad_torchvision_bottlenecks_say_what_is_allowed() {
        let _serial = crate::models::serial();
        let net = resnet18();
        let u = || Usb::new(1, 4).unwrap();
        let e = net.insert_after("layer9.0", u()).unwrap_err().to_string();
        assert!(e.contains("unknown stage `layer9.0`") && e.contains("layer4.0, layer4.1, layer4"), "{e}");
        let e = net.insert_after("layer4.1.conv1", u()).unwrap_err().to_string();
        assert!(
            e.contains("`layer4.1.conv1` does not") && e.contains("insert after one of: layer1.0, layer1.1, layer1,"),
            "{e}"
        );
        let squeezenet = VisionNet::new(Arch::SqueezeNet1_1, 5, Device::Cpu).unwrap();
        let e = squeezenet.insert_after("features.3", u()).unwrap_err().to_string();
        assert!(e.contains("no stage a bottleneck can follow") && e.contains("ResNet"), "{e}");
        // SSBs learn from pixel-level concepts through a segmentation task.
        let e = ssb(&net, "layer4.1", &[Category::Material], &scenes(6, 1), None, &SsbTraining::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("classifies images") && e.contains(":usb"), "{e}");
        // Concept data has no image labels for a classifier's task.
        let config = TrainConfig { epochs: 1, ..usb::default_training() };
        let e = usb(&net, "layer4.1", u(), &scenes(6, 1), None, &config).unwrap_err().to_string();
        assert!(e.contains("this model classifies images"), "{e}");
    }
}
