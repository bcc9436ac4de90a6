//! TorchScript exports that PyTorch made (`scripts/fixtures/script.py`), tapped here and
//! compared with what PyTorch computed.

use super::*;
use crate::models::fixture::{self, relative_error};

fn export(name: &str) -> std::path::PathBuf {
    fixture::path("script", name)
}

#[test]
fn a_dict_export_is_tapped_by_its_keys_and_equals_pytorch() {
    let expected = fixture::json("script", "expected.json");
    let model = ScriptModel::load(export("taps.pt"), Device::Cpu).unwrap();
    let names: Vec<String> = model.stages().iter().map(|s| format!("{} ({})", s.stage, s.channels)).collect();
    assert_eq!(names, ["conv1 (4)", "conv2 (8)", "fc1 (16)", "logits (10)", "head (10)"]);
    assert_eq!((model.in_channels(), model.num_classes()), (3, 10));
    let stages: Vec<Stage> = model.stages().into_iter().map(|s| s.stage).collect();
    let x = fixture::input([2, 3, 32, 32]);
    let (logits, taps) = tch::no_grad(|| model.forward_taps(&x, &stages, false)).unwrap();
    for (name, e) in expected["outputs"].as_object().unwrap() {
        let err = relative_error(&taps[&Stage::Module(name.clone())], e, name);
        assert!(err < 1e-4, "{name}: relative error {err:.2e}");
    }
    assert!(logits.equal(&taps[&Stage::Head]));
    assert_eq!(model.output_shapes((32, 32)).unwrap()[1], (Stage::Module("conv2".into()), vec![1, 8, 10, 10]));
}

#[test]
fn gradients_reach_the_input_through_an_export() {
    let model = ScriptModel::load(export("taps.pt"), Device::Cpu).unwrap();
    let x = fixture::input([1, 3, 32, 32]).set_requires_grad(true);
    let (logits, _) = model.forward_taps(&x, &[], false).unwrap();
    logits.sum(Kind::Float).backward();
    assert!(x.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn a_plain_export_is_tapped_at_its_output_and_says_how_to_export_taps() {
    let expected = fixture::json("script", "expected.json");
    let model = ScriptModel::load(export("plain.pt"), Device::Cpu).unwrap();
    assert_eq!(model.stages().len(), 1);
    let logits = tch::no_grad(|| model.forward(&fixture::input([2, 3, 32, 32]))).unwrap();
    assert!(relative_error(&logits, &expected["outputs"]["logits"], "logits") < 1e-4);
    let err = model.stage("conv2").unwrap_err().to_string();
    assert!(err.contains("returns one tensor") && err.contains("create_feature_extractor"), "{err}");
    let err = model.forward_taps(&fixture::input([1, 3, 32, 32]), &[Stage::Module("conv2".into())], false);
    assert!(err.unwrap_err().to_string().contains("`head`"));
}

#[test]
fn a_tuple_export_needs_names_for_its_outputs() {
    let err = ScriptModel::load(export("tuple.pt"), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("tuple of 2 outputs") && err.contains("name them"), "{err}");
    let options = ScriptOptions { tuple_names: Some(vec!["conv2".into(), "logits".into()]), ..Default::default() };
    let model = ScriptModel::load_with(export("tuple.pt"), &options, Device::Cpu).unwrap();
    let expected = fixture::json("script", "expected.json");
    let (_, taps) =
        tch::no_grad(|| model.forward_taps(&fixture::input([2, 3, 32, 32]), &[model.stage("conv2").unwrap()], false))
            .unwrap();
    assert!(relative_error(&taps[&Stage::Module("conv2".into())], &expected["outputs"]["conv2"], "conv2") < 1e-4);
    let options = ScriptOptions { tuple_names: Some(vec!["a".into()]), ..Default::default() };
    let err = ScriptModel::load_with(export("tuple.pt"), &options, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("1 names given for a tuple of 2"), "{err}");
}

#[test]
fn missing_and_garbage_files_are_refused_by_name() {
    let err = ScriptModel::load("no-such-model.pt", Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("no-such-model.pt") && err.contains("no such file"), "{err}");
    let garbage = std::env::temp_dir().join(format!("glassbox-garbage-{}.pt", std::process::id()));
    std::fs::write(&garbage, b"definitely not a zip archive").unwrap();
    let err = ScriptModel::load(&garbage, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("glassbox-garbage") && err.contains("not a TorchScript module"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = ScriptModel::load(fixture::path("vision", "squeezenet1_1-fixture.pth"), Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("not a TorchScript module"), "{err}");
}

#[test]
fn exports_are_told_from_weight_files() {
    assert!(is_torchscript(&export("taps.pt")).unwrap());
    assert!(!is_torchscript(&fixture::path("vision", "squeezenet1_1-fixture.pth")).unwrap());
    assert!(!is_torchscript(&fixture::path("pth", "legacy.pt")).unwrap());
    let err = is_torchscript(std::path::Path::new("absent.pt")).unwrap_err().to_string();
    assert!(err.contains("absent.pt") && err.contains("cannot open"), "{err}");
}
