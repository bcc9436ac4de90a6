//! Commands about models: `:model`, `:layers`, `:train`, `:eval`.

use super::session;
use super::spec::{
    numbers, ArgKind, ArgSpec, CommandSpec, End, FlagKind, FlagSpec, Invocation, UsageError, Value, COUNT, INDEX,
    NON_NEGATIVE, POSITIVE,
};
use super::{Action, ReplView};

pub static MODEL: CommandSpec = CommandSpec {
    name: "model",
    summary: "Loads a zoo model into a variable: trained the first time (a minute or so on the CPU), \
              from the disk cache after that. `:model load PATH` opens your own model instead: a state dict \
              of a torchvision architecture (`.pth`/`.pt` from `torch.save(model.state_dict(), f)`, a \
              torchvision hub file, `.safetensors`), tapped by torchvision's module names, or a TorchScript \
              export, tapped by the keys of the dict its forward returns. Without NAME, lists the zoo and \
              what each model scores.",
    args: &[
        ArgSpec {
            name: "NAME",
            kind: ArgKind::Zoo,
            required: false,
            help: "a zoo model; `NAME@STEP` for a training checkpoint; or `load`",
        },
        ArgSpec { name: "PATH", kind: ArgKind::Value, required: false, help: "with `load`: the file to open" },
    ],
    flags: &[
        FlagSpec {
            name: "as",
            kind: FlagKind::Text,
            help: "the variable to bind (default: NAME with `_` for `-` and `@`; for `load`, the architecture or \
                   the file's name)",
        },
        FlagSpec {
            name: "arch",
            kind: FlagKind::Choice(&crate::models::Arch::NAMES),
            help: "with `load`: the torchvision architecture of a state dict (default: from a hub file's name, \
                   else from its variables)",
        },
        FlagSpec {
            name: "taps",
            kind: FlagKind::List,
            help: "with `load`: names for the outputs of a TorchScript export whose forward returns a tuple",
        },
    ],
    run: model,
};

fn model(inv: &Invocation, _: &ReplView) -> Result<Action, UsageError> {
    let Some(name) = inv.args.first() else {
        return Ok(Action::Rust("glassbox::zoo::Zoo::new(glassbox::device())".into()));
    };
    if name == "load" {
        return load(inv);
    }
    if let Some(flag) = ["arch", "taps"].into_iter().find(|f| inv.flags.contains_key(*f)) {
        return Err(UsageError(format!("--{flag} is for `:model load PATH`; zoo models know their architecture")));
    }
    if inv.args.len() > 1 {
        return Err(UsageError(format!("a zoo model takes no PATH; to open a file, `:model load {}`", inv.args[1])));
    }
    let ty = crate::zoo::type_of(name).map_err(|e| UsageError(e.to_string()))?;
    let default = name.replace(['-', '@'], "_");
    let var = super::identifier(inv.text("as").unwrap_or(&default))?;
    Ok(Action::Rust(format!(
        "let {var}: glassbox::models::{ty} = glassbox::runtime::or_raise(glassbox::zoo::load({name:?}, glassbox::device()));\n\
         glassbox::runtime::or_raise(glassbox::zoo::card({name:?}, glassbox::device()))"
    )))
}

/// `:model load PATH`: a TorchScript export, or a state dict of a torchvision architecture,
/// told apart by what the file holds.
fn load(inv: &Invocation) -> Result<Action, UsageError> {
    let Some(path) = inv.args.get(1) else {
        return Err(UsageError(
            ":model load needs PATH: a state dict of a torchvision architecture (.pth, .pt, .safetensors) or a \
             TorchScript export"
                .into(),
        ));
    };
    let file = std::path::Path::new(path);
    let script = crate::models::script::is_torchscript(file).map_err(|e| UsageError(e.to_string()))?;
    let default = default_name(file);
    let var = super::identifier(inv.text("as").unwrap_or(&default))?;
    let (ty, call) = if script {
        if inv.flags.contains_key("arch") {
            return Err(UsageError(format!(
                "`{path}` is a TorchScript export, which carries its own architecture; --arch is for state dicts"
            )));
        }
        let names = match inv.flags.get("taps") {
            Some(Value::List(names)) => {
                format!("Some(vec![{}])", names.iter().map(|n| format!("{n:?}.into()")).collect::<Vec<_>>().join(", "))
            }
            _ => "None".into(),
        };
        (
            "ScriptModel",
            format!(
                "glassbox::models::ScriptModel::load_with({path:?}, &glassbox::models::ScriptOptions {{ tuple_names: {names}, \
                 ..Default::default() }}, glassbox::device())"
            ),
        )
    } else {
        if inv.flags.contains_key("taps") {
            return Err(UsageError(format!(
                "`{path}` is a state dict, whose taps are its architecture's module names; --taps is for TorchScript \
                 exports that return a tuple"
            )));
        }
        let arch = match inv.text("arch") {
            Some(a) => format!("Some({a:?}.parse().expect(\"a checked architecture\"))"),
            None => "None".into(),
        };
        ("VisionNet", format!("glassbox::models::VisionNet::load({path:?}, {arch}, glassbox::device())"))
    };
    Ok(Action::Rust(format!(
        "let {var}: glassbox::models::{ty} = glassbox::runtime::or_raise({call});\n\
         glassbox::display::Render::render(&{var})"
    )))
}

/// The variable `:model load` binds by default: the architecture a hub file is for, else
/// the file's name made an identifier (`my-net.pt` becomes `my_net`).
fn default_name(file: &std::path::Path) -> String {
    if let Some(arch) = crate::models::Arch::from_file_name(file) {
        return arch.name().to_owned();
    }
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        format!("model_{name}")
    } else {
        name
    }
}

/// The flag of `:train`, `:eval` and the bottleneck commands that names the data.
pub(super) const DATA_FLAG: FlagSpec =
    FlagSpec { name: "data", kind: FlagKind::Data, help: "a variable holding the data (required)" };

pub static TRAIN: CommandSpec = CommandSpec {
    name: "train",
    summary: "Trains a model on a data set under a live loss curve: SGD with momentum (or Adam), weight decay \
              and the poly learning rate (SB paper sec. 3.1). Interrupting stops at the next step and keeps \
              the weights.",
    args: &[ArgSpec { name: "MODEL", kind: ArgKind::Model, required: true, help: "a variable holding a tapped model" }],
    flags: &[
        DATA_FLAG,
        FlagSpec { name: "epochs", kind: COUNT, help: "passes over the data (default 10)" },
        FlagSpec { name: "lr", kind: POSITIVE, help: "base learning rate (default 0.01)" },
        FlagSpec { name: "batch", kind: COUNT, help: "examples per step (default 16)" },
        FlagSpec { name: "optim", kind: FlagKind::Choice(&["sgd", "adam"]), help: "optimizer (default sgd)" },
        FlagSpec {
            name: "momentum",
            kind: numbers(End::Closed(0.0), End::Open(1.0)),
            help: "SGD momentum (default 0.9)",
        },
        FlagSpec { name: "wd", kind: NON_NEGATIVE, help: "weight decay (default 5e-4)" },
        FlagSpec {
            name: "power",
            kind: NON_NEGATIVE,
            help: "poly learning-rate power; 0 keeps it constant (default 0.9)",
        },
        FlagSpec { name: "seed", kind: INDEX, help: "seeds the order of examples (default: the :seed)" },
    ],
    run: train,
};

pub static EVAL: CommandSpec = CommandSpec {
    name: "eval",
    summary: "Scores a model on a data set: accuracy, or mIoU and pixel accuracy for segmentation, with the \
              majority-class baseline.",
    args: &[ArgSpec { name: "MODEL", kind: ArgKind::Model, required: true, help: "a variable holding a tapped model" }],
    flags: &[DATA_FLAG],
    run: eval,
};

/// The model and data variables of `:train` and `:eval`, checked against the session.
fn model_and_data<'a>(inv: &'a Invocation, view: &ReplView) -> Result<(&'a str, &'a str), UsageError> {
    let model = session::MODEL.variable(&inv.args[0], view)?;
    Ok((model, session::TRAINING_DATA.data_flag(inv, view)?))
}

fn train(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let (model, data) = model_and_data(inv, view)?;
    let mut fields = config_fields(inv, &TRAIN_FIELDS);
    fields.push(format!("label: \"{model} on {data}\".into()"));
    let momentum = inv.float("momentum").unwrap_or(0.9);
    match inv.text("optim") {
        Some("adam") if inv.flags.contains_key("momentum") => {
            return Err(UsageError("--momentum is for --optim sgd; Adam has its own moments".into()))
        }
        Some("adam") => fields.push("optimizer: glassbox::models::Optim::Adam".into()),
        _ => fields.push(format!("optimizer: glassbox::models::Optim::Sgd {{ momentum: {momentum:?} }}")),
    }
    Ok(Action::Rust(format!(
        "glassbox::runtime::or_raise(glassbox::models::fit(&{model}, &{data}, &{}))",
        train_config(&fields, "Default::default()")
    )))
}

/// A `TrainConfig` field set from a flag, and what values it takes.
pub(super) struct Field {
    pub flag: &'static str,
    pub field: &'static str,
    pub kind: FieldKind,
}

#[derive(Clone, Copy)]
pub(super) enum FieldKind {
    /// An integer (epochs, batch size); its flag's kind bounds it.
    Int,
    /// A number (learning rate, weight decay); its flag's kind bounds it.
    Float,
    /// An integer, as `Some(seed)`.
    Seed,
}

const TRAIN_FIELDS: [Field; 6] = [
    Field { flag: "epochs", field: "epochs", kind: FieldKind::Int },
    Field { flag: "batch", field: "batch_size", kind: FieldKind::Int },
    Field { flag: "lr", field: "lr", kind: FieldKind::Float },
    Field { flag: "wd", field: "weight_decay", kind: FieldKind::Float },
    Field { flag: "power", field: "poly_power", kind: FieldKind::Float },
    Field { flag: "seed", field: "seed", kind: FieldKind::Seed },
];

/// The `TrainConfig` fields that the flags present set.
pub(super) fn config_fields(inv: &Invocation, fields: &[Field]) -> Vec<String> {
    fields
        .iter()
        .filter_map(|f| match f.kind {
            FieldKind::Int => inv.int(f.flag).map(|v| format!("{}: {v}", f.field)),
            FieldKind::Seed => inv.int(f.flag).map(|v| format!("{}: Some({v})", f.field)),
            FieldKind::Float => inv.float(f.flag).map(|v| format!("{}: {v:?}", f.field)),
        })
        .collect()
}

/// `glassbox::models::TrainConfig { FIELDS, ..base }`.
pub(super) fn train_config(fields: &[String], base: &str) -> String {
    let set = fields.iter().map(|f| format!("{f}, ")).collect::<String>();
    format!("glassbox::models::TrainConfig {{ {set}..{base} }}")
}

fn eval(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let (model, data) = model_and_data(inv, view)?;
    Ok(Action::Rust(format!("glassbox::runtime::or_raise(glassbox::models::score(&{model}, &{data}))")))
}

pub static LAYERS: CommandSpec = CommandSpec {
    name: "layers",
    summary: "Lists a model's stages with their channels and output shapes for one input.",
    args: &[ArgSpec { name: "MODEL", kind: ArgKind::Model, required: true, help: "a variable holding a tapped model" }],
    flags: &[
        FlagSpec {
            name: "size",
            kind: FlagKind::Text,
            help: "input size, `H` or `HxW` (default: the model's own, 224 for torchvision architectures, else 32)",
        },
        FlagSpec { name: "only", kind: FlagKind::Stages, help: "show only these stages" },
    ],
    run: layers,
};

fn layers(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let model = session::MODEL.variable(&inv.args[0], view)?;
    let size = match inv.flags.get("size") {
        Some(Value::Text(t)) => {
            let (h, w) = parse_size(t)?;
            format!("Some(({h}, {w}))")
        }
        _ => "None".into(),
    };
    let only = match inv.flags.get("only") {
        Some(Value::List(stages)) => stages.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "),
        _ => String::new(),
    };
    Ok(Action::Rust(format!("glassbox::models::report::show_layers(&{model}, {size}, &[{only}])")))
}

pub(super) fn parse_size(text: &str) -> Result<(i64, i64), UsageError> {
    let bad = || UsageError(format!("--size expects `H` or `HxW` with positive integers, got `{text}`"));
    let mut parts = text.split('x').map(|p| p.trim().parse::<i64>().map_err(|_| bad()));
    let h = parts.next().ok_or_else(bad)??;
    let w = parts.next().transpose()?.unwrap_or(h);
    if parts.next().is_some() || h < 1 || w < 1 {
        return Err(bad());
    }
    Ok((h, w))
}

#[cfg(test)]
mod tests {
    use super::super::{complete, run, LiveValues};
    use super::*;

    fn view() -> ReplView {
        ReplView { variables: vec![("net".into(), "TappedNet".into()), ("n".into(), "i64".into())], timing: false }
    }

    struct Stages;
    impl LiveValues for Stages {
        fn stages(&mut self, model: &str) -> Vec<String> {
            assert_eq!(model, "net");
            ["stem", "stage1", "stage2", "head"].map(String::from).to_vec()
        }
    }

    #[test]
    fn layers_calls_the_library_with_typed_arguments() {
        let Action::Rust(code) = run(":layers net --size 64x48 --only stage1,head", &view()).unwrap() else { panic!() };
        assert_eq!(code, r#"glassbox::models::report::show_layers(&net, Some((64, 48)), &["stage1", "head"])"#);
        assert!(run(":layers n", &view()).unwrap_err().0.contains("not a tapped model"));
        assert!(run(":layers nett", &view()).unwrap_err().0.contains("the tapped models in this session: net"));
        assert!(run(":layers net --size 0", &view()).unwrap_err().0.contains("--size expects"));
    }

    #[test]
    fn model_binds_a_typed_variable_and_checks_the_name() {
        let Action::Rust(code) = run(":model scenes-resnet", &view()).unwrap() else { panic!() };
        assert!(code.starts_with("let scenes_resnet: glassbox::models::TappedNet = "), "{code}");
        assert!(code.contains(r#"glassbox::zoo::load("scenes-resnet""#), "{code}");
        let Action::Rust(code) = run(":model colormnist-lenet@0 --as early", &view()).unwrap() else { panic!() };
        assert!(code.starts_with("let early: glassbox::models::LeNet = "), "{code}");
        let e = run(":model scenes-resnett", &view()).unwrap_err().0;
        assert!(e.contains("did you mean `scenes-resnet`"), "{e}");
        assert!(run(":model scenes-resnet --as 3d", &view()).unwrap_err().0.contains("cannot name a variable"));
        assert!(run(":model scenes-resnet --as fn", &view()).unwrap_err().0.contains("cannot name a variable"));
        let Action::Rust(code) = run(":model", &view()).unwrap() else { panic!() };
        assert!(code.contains("Zoo::new"), "{code}");
    }

    #[test]
    fn model_load_opens_a_state_dict_or_an_export_by_what_the_file_holds() {
        let fixture = |dir: &str, name: &str| format!("{}/tests/fixtures/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
        let state_dict = fixture("vision", "squeezenet1_1-fixture.pth");
        let Action::Rust(code) = run(&format!(":model load {state_dict}"), &view()).unwrap() else { panic!() };
        assert!(code.starts_with("let squeezenet1_1: glassbox::models::VisionNet = "), "{code}");
        assert!(code.contains(&format!("VisionNet::load({state_dict:?}, None, glassbox::device())")), "{code}");
        let Action::Rust(code) =
            run(&format!(":model load {state_dict} --arch squeezenet1_0 --as sq"), &view()).unwrap()
        else {
            panic!()
        };
        assert!(code.starts_with("let sq: ") && code.contains(r#"Some("squeezenet1_0".parse()"#), "{code}");
        let export = fixture("script", "tuple.pt");
        let Action::Rust(code) = run(&format!(":model load {export} --taps conv2,logits"), &view()).unwrap() else {
            panic!()
        };
        assert!(code.starts_with("let tuple: glassbox::models::ScriptModel = "), "{code}");
        assert!(code.contains(r#"tuple_names: Some(vec!["conv2".into(), "logits".into()])"#), "{code}");
        let err = |line: String| run(&line, &view()).unwrap_err().0;
        assert!(err(":model load".into()).contains("needs PATH"));
        assert!(err(":model load absent.pth".into()).contains("absent.pth"));
        assert!(err(format!(":model load {export} --arch resnet18")).contains("TorchScript"));
        assert!(err(format!(":model load {state_dict} --taps a")).contains("state dict"));
        assert!(err(format!(":model load {state_dict} --arch resnet5")).contains("resnet50"));
        assert!(err(":model scenes-resnet --arch resnet18".into()).contains("--arch is for `:model load PATH`"));
        assert_eq!(default_name(std::path::Path::new("my-net.v2.pt")), "my_net_v2");
        assert_eq!(default_name(std::path::Path::new("3d.pt")), "model_3d");
        assert_eq!(default_name(std::path::Path::new("vgg16_bn-6c64b313.pth")), "vgg16_bn");
        let line = ":model load x.pth --arch vgg16";
        let (_, _, m) = complete(line, line.len(), &view(), &mut Stages).unwrap();
        assert_eq!(m, ["vgg16", "vgg16_bn"]);
    }

    #[test]
    fn train_and_eval_build_a_config_from_flags() {
        let mut view = view();
        view.variables.push(("scenes".into(), "glassbox::data::ConceptScenes".into()));
        let Action::Rust(code) =
            run(":train net --data scenes --epochs 3 --lr 0.05 --optim adam --seed 4", &view).unwrap()
        else {
            panic!()
        };
        for part in
            ["fit(&net, &scenes", "epochs: 3", "lr: 0.05", "Optim::Adam", "seed: Some(4)", "..Default::default()"]
        {
            assert!(code.contains(part), "{part} in {code}");
        }
        let Action::Rust(code) = run(":eval net --data scenes", &view).unwrap() else { panic!() };
        assert!(code.contains("score(&net, &scenes)"), "{code}");
        let e = run(":train net", &view).unwrap_err().0;
        assert!(e.contains("needs --data") && e.contains("scenes"), "{e}");
        assert!(run(":train net --data n", &view).unwrap_err().0.contains("not a data set"));
        assert!(run(":train net --data scenes --lr 0", &view).unwrap_err().0.contains("positive"));
        assert!(run(":train net --data scenes --lr inf", &view).unwrap_err().0.contains("expects a positive number"));
        assert!(run(":train net --data scenes --momentum 1", &view).unwrap_err().0.contains("[0, 1)"));
        assert!(run(":train net --data scenes --optim adam --momentum 0.5", &view).unwrap_err().0.contains("Adam"));
        assert!(run(":train net --data scenes --epochs 0", &view).unwrap_err().0.contains("a positive integer"));
        let line = ":eval net --data sc";
        let (_, _, m) = complete(line, line.len(), &view, &mut Stages).unwrap();
        assert_eq!(m, ["scenes"]);
        let line = ":model colormnist-lenet@";
        let (_, _, m) = complete(line, line.len(), &view, &mut Stages).unwrap();
        assert_eq!(m.len(), 11);
    }

    #[test]
    fn stage_values_complete_from_the_live_model() {
        let line = ":layers net --only st";
        let (_, _, m) = complete(line, line.len(), &view(), &mut Stages).unwrap();
        assert_eq!(m, ["stage1", "stage2", "stem"]);
        let line = ":layers net --only stem,st";
        let (_, _, m) = complete(line, line.len(), &view(), &mut Stages).unwrap();
        assert_eq!(m, ["stem,stage1", "stem,stage2", "stem,stem"]);
        let line = ":layers ";
        let (_, _, m) = complete(line, line.len(), &view(), &mut Stages).unwrap();
        assert_eq!(m, ["--only", "--size", "net"]);
    }
}
