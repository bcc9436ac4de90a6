//! The code every command emits, compiled by rustc against the library this test is built
//! with, in a session that holds one variable of each type a command takes: a change of the
//! library that breaks a command fails here, at `cargo test`, not in a notebook.

use super::{run, Action, ReplView, REGISTRY};
use crate::kernel::final_expression::show_final_expression;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The session: each variable with its type as the REPL reports it. Every type a command
/// accepts appears at least once, so every branch of the emission has a variable to use.
const SESSION: &[(&str, &str)] = &[
    ("device", "glassbox::tch::Device"),
    ("zoo", "glassbox::zoo::Zoo"),
    ("net", "glassbox::models::TappedNet"),
    ("lenet", "glassbox::models::LeNet"),
    ("resnet", "glassbox::models::VisionNet"),
    ("script", "glassbox::models::ScriptModel"),
    ("scenes", "glassbox::data::ConceptScenes"),
    ("held", "glassbox::data::ConceptScenes"),
    ("broden", "glassbox::data::Broden"),
    ("digits", "glassbox::data::ColorMnist"),
    ("examples", "glassbox::models::Examples"),
    ("sb", "glassbox::bottleneck::SbNet"),
    ("a", "glassbox::metrics::Inspectability"),
    ("b", "glassbox::metrics::Inspectability"),
    ("e", "glassbox::metrics::Net2Vec"),
    ("v", "glassbox::metrics::SemanticVectors"),
    ("ae", "glassbox::inn::Autoencoder"),
    ("lenet_conv1_cinn", "glassbox::inn::LayerInn<glassbox::models::LeNet>"),
    ("lenet_head_cinn", "glassbox::inn::LayerInn<glassbox::models::LeNet>"),
    ("semantic", "glassbox::inn::SemanticInn"),
];

/// Commands that run in the kernel and emit no Rust.
const KERNEL_ONLY: &[&str] = &["help", "device", "vars", "time", "seed"];

/// One or more lines per command that emits Rust, covering the branches of its emission.
fn lines() -> Vec<String> {
    let fixture = |dir: &str, name: &str| format!("{}/tests/fixtures/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut lines: Vec<String> = [
        ":data scenes --n 40 --seed 3 --size 32 --as s2",
        ":data colormnist --split test --n 10 --as d2",
        ":data broden --path broden --size 112 --n 5 --as b2",
        ":data cityscapes --path c --split val --as c2",
        ":show scenes --n 4 --category part",
        ":model scenes-resnet --as m2",
        ":model colormnist-lenet@0 --as early",
        ":layers net --size 64x48 --only stage1,head",
        ":layers resnet",
        ":train net --data scenes --epochs 3 --lr 0.05 --optim adam --seed 4",
        ":train resnet --data digits --epochs 1 --momentum 0.5",
        ":train lenet --data examples",
        ":eval net --data scenes",
        ":eval resnet --data digits",
        ":ssb net --after stage2 --groups material,colour --data scenes --phase1-epochs 3 --seed 1",
        ":ssb net --after stage2 --data scenes --output softmax",
        ":usb net --after stage1 --width 5 --data scenes --t-end 0.05 --tau 100 --epochs 2",
        ":usb resnet --after layer4.1 --groups 2 --width 5 --data digits --epochs 2",
        ":bottleneck net --after stage2 --width 8 --data scenes --test held --epochs 2 --seed 3 --as p",
        ":bottleneck resnet --after layer3 --width 4 --data digits",
        ":sb-report sb",
        ":sweep-usb net --after stage2 --n 1 --k 2,4 --data scenes --epochs 1",
        ":sweep-usb resnet --after layer3 --k 2,4 --data digits",
        ":auic net --layer stage2 --data scenes --categories part,material --exact --bins 64 --tolerance 1e-4",
        ":auic resnet --layer layer3 --data broden --feature-res --as r2",
        ":auic --acts acts.npy --masks masks.npz --as f2",
        ":dissect net --layer sb --data scenes --as d --bins 256 --feature-res",
        ":inspect-curve a,b",
        ":top-channels net --from a --data scenes --n 5",
        ":top-channels net --from a --data scenes --channel 3",
        ":net2vec net --layer stage1 --data scenes --val held --paper --as p",
        ":net2vec net --layer stage1 --data scenes --val held --epochs 2 --lr 0.1 --categories object --task cls",
        ":nearest grass --n 3",
        ":arith \"grass - green + blue\"",
        ":embed-distance e e",
        ":sevec net --layer stage3 --data scenes --categories object,material",
        ":sevec net --layer stage3 --data scenes --top 0.2 --as top_sevec",
        ":diversity --net net --data scenes",
        ":relevance object material",
        ":relevance wheel car",
        ":saliency net scenes[3] --class car,house --method gxi --semantic",
        ":saliency net scenes[0] --class car",
        ":pointing-game net --data scenes --seed 2 --as g",
        ":autoencoder colormnist-ae --as ae2",
        ":cinn lenet --layer conv2 --data digits --steps 50 --seed 3",
        ":cinn net --layer stage1 --data digits --ae ae --as tapped_cinn",
        ":samples lenet_head_cinn digits --n 4 --count 3",
        ":samples lenet_head_cinn digits[10..14]",
        ":invariance lenet --layers conv1,head --data digits --steps 20 --n 3 --count 2",
        ":fgsm lenet_head_cinn,lenet_conv1_cinn --data digits --eps 0.05 --count 4",
        ":semantic-inn ae --factors digit,fg --sizes 4,3 --pairs 100 --steps 10 --as s3",
        ":semantic-inn ae --factors bg --as s4",
        ":swap semantic --data digits --count 4",
        ":factor-probe semantic --data digits",
        ":sensitivity colormnist-lenet --layer conv2 --semantic semantic --data digits --checkpoints 0,640",
        ":sensitivity colormnist-lenet --layer head --semantic semantic --data digits",
    ]
    .map(String::from)
    .to_vec();
    lines.push(format!(":model load {} --as hub", fixture("vision", "squeezenet1_1-fixture.pth")));
    lines.push(format!(":model load {} --arch squeezenet1_1 --as sq", fixture("vision", "squeezenet1_1-fixture.pth")));
    lines
}

/// A crate with one function per line: the session's variables are its parameters, and its
/// body is the line's code as the REPL compiles it (the final expression shown).
fn crate_source(lines: &[String], view: &ReplView) -> (String, Vec<(usize, String)>) {
    let parameters: Vec<String> = SESSION.iter().map(|(n, t)| format!("mut {n}: {t}")).collect();
    let mut source = String::from("#![allow(warnings)]\nuse glassbox::prelude::*;\n");
    let mut starts = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = match run(line, view) {
            Ok(Action::Rust(code)) => code,
            other => panic!("{line} should emit Rust, got {other:?}"),
        };
        let code = show_final_expression(&code).map_or(code, |(shown, _)| shown);
        starts.push((source.lines().count() + 1, line.clone()));
        source += &format!("fn line_{i}({}) {{\n{code}\n;}}\n", parameters.join(", "));
    }
    (source, starts)
}

/// The glassbox rlib of this build and its dependencies' folder, as cargo reports them.
fn library() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().expect("the test binary");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/PROFILE/deps/TEST");
    let profile = profile_dir.file_name().and_then(|p| p.to_str()).expect("a profile folder");
    let target = profile_dir.parent().expect("the target folder");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile_flag = if profile == "debug" { "dev" } else { profile };
    let output = Command::new(cargo)
        .args(["build", "--lib", "--offline", "--message-format=json", "--profile", profile_flag, "--target-dir"])
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo build --lib failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let rlib = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "glassbox")
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "rlib"))
        .expect("cargo names the glassbox rlib");
    (rlib, profile_dir.join("deps"))
}

#[test]
fn every_commands_code_compiles_against_the_library() {
    // Its cargo and rustc run under the test process, where an interrupter test's cancel
    // would kill them.
    let _tree = crate::kernel::processes::tree_lock();
    let lines = lines();
    let covered: Vec<&str> = lines.iter().map(|l| l[1..].split_whitespace().next().unwrap_or_default()).collect();
    for spec in REGISTRY {
        assert!(
            covered.contains(&spec.name) || KERNEL_ONLY.contains(&spec.name),
            ":{} has no line here: give it one, or list it as kernel-only",
            spec.name
        );
    }
    let view =
        ReplView { variables: SESSION.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(), timing: false };
    let (source, starts) = crate_source(&lines, &view);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("emitted.rs");
    std::fs::write(&file, &source).expect("the crate is written");
    let (rlib, deps) = library();
    let output = Command::new("rustc")
        .args(["--edition", "2021", "--crate-type", "lib", "--crate-name", "emitted", "--emit=metadata"])
        .args(["--error-format=short", "-o"])
        .arg(dir.path().join("libemitted.rmeta"))
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .arg("--extern")
        .arg(format!("glassbox={}", rlib.display()))
        .arg(&file)
        .output()
        .expect("rustc runs");
    if !output.status.success() {
        let errors = String::from_utf8_lossy(&output.stderr);
        let mut failing: Vec<&str> = errors
            .lines()
            .filter_map(|l| l.split(':').nth(1)?.parse::<usize>().ok())
            .filter_map(|at| starts.iter().rev().find(|(start, _)| *start <= at).map(|(_, line)| line.as_str()))
            .collect();
        failing.dedup();
        panic!("the code of these commands does not compile:\n{}\n\nrustc:\n{errors}", failing.join("\n"));
    }
}
