//! Every architecture against PyTorch itself: `scripts/fixtures/vision.py` ran torchvision's
//! model with forward hooks on every named submodule, on weights and an input from a
//! formula computed here too, and kept what each hook saw.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::models::fixture::{self, relative_error, uniform};

fn fixture(name: &str) -> PathBuf {
    fixture::path("vision", name)
}

/// The fixture script's `weight_values`.
fn weight_values(name: &str, shape: &[i64]) -> Tensor {
    let n = shape.iter().product::<i64>() as usize;
    let fan_in = shape.iter().skip(1).product::<i64>() as f64;
    let values: Vec<f32> = uniform(name, n)
        .map(|u| {
            let v = if name.ends_with("running_var") {
                0.5 + u
            } else if name.ends_with("running_mean") || name.ends_with("bias") {
                0.2 * (2.0 * u - 1.0)
            } else if shape.len() == 1 {
                0.5 + 0.5 * u
            } else {
                (2.0 * u - 1.0) * (6.0 / fan_in).sqrt()
            };
            v as f32
        })
        .collect();
    Tensor::from_slice(&values).view(shape)
}

fn set_fixture_weights(net: &VisionNet) {
    tch::no_grad(|| {
        for (name, mut var) in net.var_store().variables() {
            var.copy_(&weight_values(&name, &var.size()));
        }
    });
}

fn input() -> Tensor {
    fixture::input([2, 3, 64, 64])
}

fn read_json(name: &str) -> Value {
    fixture::json("vision", name)
}

/// Runs `net` on the fixture input and checks that it has exactly PyTorch's taps, each
/// equal to what PyTorch's hook saw, and PyTorch's logits.
fn check_against_pytorch(net: &VisionNet, expected: &Value) {
    let arch = net.arch().name();
    let want = expected["taps"].as_object().unwrap();
    let ours: Vec<String> =
        net.stages().into_iter().filter(|s| matches!(s.stage, Stage::Module(_))).map(|s| s.stage.to_string()).collect();
    let mut theirs: Vec<&String> = want.keys().collect();
    theirs.sort();
    let mut sorted = ours.iter().collect::<Vec<_>>();
    sorted.sort();
    assert_eq!(sorted, theirs, "{arch}: glassbox's taps are torchvision's module names");
    for shared in expected["called_more_than_once"].as_array().unwrap() {
        assert!(!ours.contains(&shared.as_str().unwrap().to_owned()), "{arch}: {shared} is called twice");
    }
    let stages: Vec<Stage> = net.stages().into_iter().map(|s| s.stage).collect();
    let (logits, taps) = tch::no_grad(|| net.forward_taps(&input(), &stages, false)).unwrap();
    let mut worst = (relative_error(&logits, &expected["logits"], "logits"), "logits".to_owned());
    for (name, e) in want {
        let err = relative_error(&taps[&Stage::Module(name.clone())], e, name);
        if err > worst.0 {
            worst = (err, name.clone());
        }
    }
    assert!(taps[&Stage::Head].equal(&logits));
    println!("{arch}: {} taps, worst relative error {:.2e} at {}", want.len(), worst.0, worst.1);
    assert!(worst.0 < 1e-4, "{arch}: relative error {:.2e} at {}", worst.0, worst.1);
}

#[test]
fn every_architecture_equals_pytorch_tap_by_tap() {
    let _serial = crate::models::serial();
    for arch in Arch::ALL {
        let net = VisionNet::new(arch, 1000, Device::Cpu).unwrap();
        set_fixture_weights(&net);
        check_against_pytorch(&net, &read_json(&format!("{}.json", arch.name())));
    }
}

#[test]
fn a_torch_save_state_dict_loads_by_its_hub_name_and_by_its_variables() {
    let _serial = crate::models::serial();
    let expected = read_json("squeezenet1_1-fixture.json");
    let net = VisionNet::load(fixture("squeezenet1_1-fixture.pth"), None, Device::Cpu).unwrap();
    assert_eq!((net.arch(), net.num_classes()), (Arch::SqueezeNet1_1, 10));
    check_against_pytorch(&net, &expected);

    let dir = std::env::temp_dir().join(format!("glassbox-vision-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let renamed = dir.join("my-finetuned.pt");
    std::fs::copy(fixture("squeezenet1_1-fixture.pth"), &renamed).unwrap();
    let net = VisionNet::load(&renamed, None, Device::Cpu).unwrap();
    assert_eq!(net.arch(), Arch::SqueezeNet1_1);

    let exported = dir.join("squeeze.safetensors");
    net.save_weights(&exported).unwrap();
    let again = VisionNet::load(&exported, None, Device::Cpu).unwrap();
    check_against_pytorch(&again, &expected);
}

#[test]
fn a_file_for_another_architecture_is_refused_with_the_variables_at_fault() {
    let _serial = crate::models::serial();
    let err = VisionNet::load(fixture("squeezenet1_1-fixture.pth"), Some(Arch::SqueezeNet1_0), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("squeezenet1_1-fixture.pth")
            && err.contains("`features.0.weight` is [64, 3, 3, 3] in the file but [96, 3, 7, 7] in the model"),
        "{err}"
    );
    let err = VisionNet::load(fixture("squeezenet1_1-fixture.pth"), Some(Arch::ResNet18), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`conv1.weight`") && err.contains("are missing") && err.contains("`features.0.bias`"),
        "{err}"
    );
}

#[test]
fn architectures_come_from_hub_file_names_and_names_are_checked() {
    for (file, arch) in [
        ("resnet50-0676ba61.pth", Some(Arch::ResNet50)),
        ("resnet18-f37072fd.pth", Some(Arch::ResNet18)),
        ("vgg16_bn-6c64b313.pth", Some(Arch::Vgg16Bn)),
        ("alexnet-owt-7be5be79.pth", Some(Arch::AlexNet)),
        ("squeezenet1_0-b66bff10.pth", Some(Arch::SqueezeNet1_0)),
        ("weights.pth", None),
    ] {
        assert_eq!(Arch::from_file_name(Path::new(file)), arch, "{file}");
    }
    let err = "resnet-50".parse::<Arch>().unwrap_err().to_string();
    assert!(err.contains("unknown architecture `resnet-50`") && err.contains("resnet50, resnet101"), "{err}");
    for (i, arch) in Arch::ALL.into_iter().enumerate() {
        assert_eq!((arch as usize, arch.name().parse::<Arch>().unwrap()), (i, arch));
    }
}

#[test]
fn taps_are_read_by_torchvision_names_and_unknown_ones_are_listed() {
    let _serial = crate::models::serial();
    let net = VisionNet::new(Arch::ResNet18, 10, Device::Cpu).unwrap();
    assert_eq!(net.stage("layer3.1").unwrap(), Stage::Module("layer3.1".into()));
    assert_eq!(net.stage_channels(&net.stage("layer4.1.conv2").unwrap()).unwrap(), 512);
    let err = net.stage("layer3.2").unwrap_err().to_string();
    assert!(err.contains("`layer3.2`") && err.contains("layer3.1 (256)"), "{err}");
    let err = net.stage("layer1.0.relu").unwrap_err().to_string();
    assert!(err.contains("unknown stage"), "{err}");
    let x = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (_, taps) = net.forward_taps(&x, &[net.stage("layer2").unwrap(), Stage::Head], false).unwrap();
    assert_eq!(taps[&Stage::Module("layer2".into())].size(), [1, 128, 4, 4]);
    assert_eq!(taps[&Stage::Head].size(), [1, 10]);
    let err = net.forward_taps(&Tensor::rand([1, 1, 32, 32], (Kind::Float, Device::Cpu)), &[], false).unwrap_err();
    assert!(err.to_string().contains("[N, 3, H, W]"), "{err}");
}
