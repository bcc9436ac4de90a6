use super::*;
use crate::data::{ConceptScenes, SceneConfig, Vocabulary};
use crate::learned;
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

/// SB paper sec. 3.1: an SSB after a middle stage recovers most of the task score, its
/// channels predict their concepts well above chance, and a softmax at inference ruins it
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
}
