//! Commands for semantic bottlenecks (SB paper sec. 3): `:ssb`, `:usb`, `:bottleneck` (table
//! 7's plain baseline), `:sb-report`, `:sweep-usb`. They compile to calls into
//! `glassbox::bottleneck`.

use super::models::{config_fields, train_config, Field, FieldKind, DATA_FLAG};
use super::session::{Kind, CONCEPT_DATA};
use super::spec::{
    concat, ArgKind, ArgSpec, CommandSpec, FlagKind, FlagSpec, Invocation, UsageError, Value, COUNT, INDEX, INT,
    NON_NEGATIVE, POSITIVE,
};
use super::{Action, ReplView};
use crate::bottleneck::{Plain, Regularizer, SbNet, SsbOutput, Usb};
use crate::data::ColorMnist;
use crate::models::{Examples, TappedNet, VisionNet};
use std::any::type_name;

/// The categories an SSB group can be.
const CATEGORIES: &[&str] = &["object", "part", "material", "colour"];

const MODEL_ARG: ArgSpec = ArgSpec {
    name: "MODEL",
    kind: ArgKind::Model,
    required: true,
    help: "a variable holding a TappedNet or a torchvision ResNet (VisionNet)",
};
const AFTER: FlagSpec = FlagSpec {
    name: "after",
    kind: FlagKind::Stages,
    help: "the stage the bottleneck follows (required): a TappedNet's stage, a ResNet's block (layer4.1) or layer",
};
const TEST: FlagSpec = FlagSpec {
    name: "test",
    kind: FlagKind::Data,
    help: "data to report on (default: the last fifth of --data, held out of training)",
};
const SEED: FlagSpec = FlagSpec { name: "seed", kind: INDEX, help: "seeds initialisation and example order" };
const AS: FlagSpec = FlagSpec {
    name: "as",
    kind: FlagKind::Text,
    help: "the variable to bind (default MODEL_ssb, MODEL_usb, MODEL_plain)",
};
const EPOCHS: FlagSpec = FlagSpec { name: "epochs", kind: COUNT, help: "epochs (default 10)" };
const LR: FlagSpec = FlagSpec { name: "lr", kind: POSITIVE, help: "learning rate (default 0.01)" };
const BATCH: FlagSpec = FlagSpec { name: "batch", kind: COUNT, help: "images per step (default 16)" };

/// What `:usb` and `:sweep-usb` both take: the data, the regulariser (eq. 19-20) and the
/// training policy.
const USB_TRAINING: [FlagSpec; 11] = [
    DATA_FLAG,
    TEST,
    FlagSpec {
        name: "reg",
        kind: FlagKind::Choice(&["anneal", "entropy"]),
        help: "temperature annealing (eq. 20, default) or entropy loss (eq. 19)",
    },
    FlagSpec { name: "t0", kind: POSITIVE, help: "annealing: first temperature (default 1)" },
    FlagSpec { name: "t-end", kind: POSITIVE, help: "annealing: last temperature T_τ (default 0.01)" },
    FlagSpec { name: "gamma", kind: POSITIVE, help: "annealing: decay power γ (default 10)" },
    FlagSpec { name: "tau", kind: COUNT, help: "annealing: steps to reach T_τ (default: all)" },
    FlagSpec { name: "lambda", kind: NON_NEGATIVE, help: "entropy loss weight λ (default 0.1)" },
    FlagSpec { name: "epochs", kind: COUNT, help: "epochs per USB (default 10)" },
    LR,
    SEED,
];

const USB_FLAGS: [FlagSpec; 16] = concat(
    concat::<3, 11, 14>(
        [
            AFTER,
            FlagSpec { name: "groups", kind: COUNT, help: "N, parallel groups (default 1)" },
            FlagSpec { name: "width", kind: INT, help: "K, channels per group, at least 2 (required)" },
        ],
        USB_TRAINING,
    ),
    [BATCH, AS],
);

const SWEEP_FLAGS: [FlagSpec; 14] = concat(
    [
        AFTER,
        FlagSpec { name: "n", kind: FlagKind::List, help: "group counts N (default 1,2)" },
        FlagSpec { name: "k", kind: FlagKind::List, help: "group widths K (default 2,5,10,20)" },
    ],
    USB_TRAINING,
);

pub static SSB: CommandSpec = CommandSpec {
    name: "ssb",
    summary: "Inserts a supervised semantic bottleneck after a stage (one 1x1 conv per concept group, SB paper \
              eq. 9-13) and trains it in two phases: the SSB on the concept maps (eq. 14), then the later stages \
              on the task (eq. 15). Shows the table row: task score before and after, per-group concept accuracy.",
    args: &[MODEL_ARG],
    flags: &[
        AFTER,
        FlagSpec {
            name: "groups",
            kind: FlagKind::ChoiceList(CATEGORIES),
            help: "concept categories, one group each (default part,material as in the paper)",
        },
        DATA_FLAG,
        TEST,
        FlagSpec { name: "phase1-epochs", kind: COUNT, help: "phase 1 epochs (default 5)" },
        FlagSpec { name: "phase1-lr", kind: POSITIVE, help: "phase 1 learning rate (default 0.01)" },
        FlagSpec { name: "phase2-epochs", kind: COUNT, help: "phase 2 epochs (default 60)" },
        FlagSpec { name: "phase2-lr", kind: POSITIVE, help: "phase 2 learning rate (default 0.002)" },
        BATCH,
        FlagSpec {
            name: "output",
            kind: FlagKind::Choice(SsbOutput::NAMES),
            help: "what the next stage receives: linear outputs (default, eq. 9) or a softmax per group, in \
                   training and at inference (the SSB of table 2 that loses the task)",
        },
        SEED,
        AS,
    ],
    run: ssb,
};

pub static USB: CommandSpec = CommandSpec {
    name: "usb",
    summary: "Inserts an unsupervised semantic bottleneck after a stage (N groups of K channels with a softmax \
              each, SB paper eq. 16-18) and trains it with the later stages on the task (eq. 21), annealing the \
              temperature (eq. 20) or adding the entropy loss (eq. 19). Shows softmax vs argmax scores and the \
              active channels.",
    args: &[MODEL_ARG],
    flags: &USB_FLAGS,
    run: usb,
};

pub static PLAIN: CommandSpec = CommandSpec {
    name: "bottleneck",
    summary: "Inserts a plain bottleneck after a stage (one 1x1 conv to K linear channels, neither supervised nor \
              one-hot) and trains it with the later stages on the task, as :usb does without the softmax: the \
              \"Bottleneck\" baseline of SB paper table 7. Shows the task score before and after.",
    args: &[MODEL_ARG],
    flags: &[
        AFTER,
        FlagSpec { name: "width", kind: INT, help: "K, the bottleneck's channels, at least 1 (required)" },
        DATA_FLAG,
        TEST,
        EPOCHS,
        LR,
        BATCH,
        SEED,
        AS,
    ],
    run: plain,
};

pub static SB_REPORT: CommandSpec = CommandSpec {
    name: "sb-report",
    summary: "Shows the table row of a trained bottlenecked net (SB paper tables 3-5).",
    args: &[ArgSpec { name: "NET", kind: ArgKind::Model, required: true, help: "a variable holding an SbNet" }],
    flags: &[],
    run: sb_report,
};

pub static SWEEP_USB: CommandSpec = CommandSpec {
    name: "sweep-usb",
    summary: "Trains one USB per N×K after a stage and plots the argmax score against N·K (SB paper fig. 5).",
    args: &[MODEL_ARG],
    flags: &SWEEP_FLAGS,
    run: sweep_usb,
};

/// The nets a bottleneck goes into.
static NET: Kind = Kind { what: "TappedNet or VisionNet", types: &[type_name::<TappedNet>, type_name::<VisionNet>] };

static VISION: Kind = Kind { what: "torchvision classifier", types: &[type_name::<VisionNet>] };

static SB_NET: Kind = Kind { what: "bottlenecked net", types: &[type_name::<SbNet>] };

/// What a torchvision classifier trains on (the library's classification `TaskData`).
static CLASSIFICATION_DATA: Kind =
    Kind { what: "classification data set", types: &[type_name::<ColorMnist>, type_name::<Examples>] };

/// The model, the stage after it, and the data and test variables of a bottleneck command.
struct Common<'a> {
    model: &'a str,
    /// The bottlenecked net's type, as Rust.
    sb_type: &'static str,
    after: String,
    data: &'a str,
    /// `Some(&TEST)` or `None`, as Rust.
    test: String,
}

/// Whether `model` holds a VisionNet.
fn is_vision(view: &ReplView, model: &str) -> bool {
    view.variables.iter().any(|(n, ty)| n == model && VISION.holds(ty))
}

/// A TappedNet trains on concept data sets here (their segmentation task), a VisionNet on
/// classification data.
fn common<'a>(inv: &'a Invocation, view: &ReplView) -> Result<Common<'a>, UsageError> {
    let model = NET.variable(&inv.args[0], view)?;
    let (sb_type, data_types) = if is_vision(view, model) {
        ("glassbox::bottleneck::SbNet<glassbox::models::VisionNet>", &CLASSIFICATION_DATA)
    } else {
        ("glassbox::bottleneck::SbNet", &CONCEPT_DATA)
    };
    let after = super::one_stage(inv, "after")?;
    let data = data_types.data_flag(inv, view)?;
    let test = match inv.text("test") {
        Some(test) => {
            let test = data_types.variable(test, view)?;
            let type_of = |v: &str| view.variables.iter().find(|(n, _)| n == v).map(|(_, t)| t.rsplit("::").next());
            if type_of(test) != type_of(data) {
                return Err(UsageError(format!("--test must be the same kind of data set as --data ({data})")));
            }
            format!("Some(&{test})")
        }
        None => "None".into(),
    };
    Ok(Common { model, sb_type, after, data, test })
}

fn bind(inv: &Invocation, c: &Common, suffix: &str, call: String) -> Result<Action, UsageError> {
    let default = format!("{}_{suffix}", c.model);
    let var = super::identifier(inv.text("as").unwrap_or(&default))?;
    Ok(Action::Rust(format!(
        "let {var}: {} = glassbox::runtime::or_raise({call});\n\
         glassbox::display::Render::render(&{var})",
        c.sb_type
    )))
}

fn ssb(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    if is_vision(view, &inv.args[0]) {
        return Err(UsageError(format!(
            "`{}` is a torchvision classifier, and an SSB is trained on pixel-level concept annotations through \
             a segmentation task (SB paper sec. 3.1); train an unsupervised bottleneck on its classes with :usb",
            inv.args[0]
        )));
    }
    let c = common(inv, view)?;
    let groups = match inv.flags.get("groups") {
        Some(Value::List(g)) => g.clone(),
        _ => vec!["part".into(), "material".into()],
    };
    let groups: Vec<String> =
        groups.iter().map(|g| format!("glassbox::data::Category::{}", super::emit::capitalised(g))).collect();
    let phase = |n: u8| -> Result<String, UsageError> {
        let fields = [
            Field {
                flag: if n == 1 { "phase1-epochs" } else { "phase2-epochs" },
                field: "epochs",
                kind: FieldKind::Int,
            },
            Field { flag: if n == 1 { "phase1-lr" } else { "phase2-lr" }, field: "lr", kind: FieldKind::Float },
            Field { flag: "batch", field: "batch_size", kind: FieldKind::Int },
            Field { flag: "seed", field: "seed", kind: FieldKind::Seed },
        ];
        Ok(train_config(
            &config_fields(inv, &fields),
            &format!("glassbox::bottleneck::SsbTraining::default().phase{n}"),
        ))
    };
    let output = inv.text("output").map_or(SsbOutput::Linear, |o| SsbOutput::named(o).expect("the spec checked"));
    let training = format!(
        "glassbox::bottleneck::SsbTraining {{ phase1: {}, phase2: {}, output: {}::{output:?} }}",
        phase(1)?,
        phase(2)?,
        type_name::<SsbOutput>()
    );
    let call = format!(
        "glassbox::cmd::ssb(&{}, {:?}, &[{}], &{}, {}, &{training}, {:?})",
        c.model,
        c.after,
        groups.join(", "),
        c.data,
        c.test,
        inv.int("seed"),
    );
    bind(inv, &c, "ssb", call)
}

/// The `Regularizer` the `--reg` flags describe, checked by the library, as Rust.
fn regularizer(inv: &Invocation) -> Result<String, UsageError> {
    let anneal_flags = ["t0", "t-end", "gamma", "tau"];
    let regularizer = if inv.text("reg") == Some("entropy") {
        if let Some(f) = anneal_flags.iter().find(|f| inv.flags.contains_key(*f)) {
            return Err(UsageError(format!("--{f} sets the annealing; with --reg entropy, set --lambda")));
        }
        Regularizer::Entropy { lambda: inv.float("lambda").unwrap_or(0.1) }
    } else {
        if inv.flags.contains_key("lambda") {
            return Err(UsageError("--lambda weighs the entropy loss; add --reg entropy".into()));
        }
        let Regularizer::Anneal { t0, t_end, gamma, .. } = Regularizer::ANNEAL else { unreachable!("annealing") };
        Regularizer::Anneal {
            t0: inv.float("t0").unwrap_or(t0),
            t_end: inv.float("t-end").unwrap_or(t_end),
            gamma: inv.float("gamma").unwrap_or(gamma),
            tau: inv.int("tau").map(|t| t as usize),
        }
    };
    regularizer.validate().map_err(|e| UsageError(e.to_string()))?;
    Ok(match regularizer {
        Regularizer::Entropy { lambda } => format!("glassbox::bottleneck::Regularizer::Entropy {{ lambda: {lambda:?} }}"),
        Regularizer::Anneal { t0, t_end, gamma, tau } => format!(
            "glassbox::bottleneck::Regularizer::Anneal {{ t0: {t0:?}, t_end: {t_end:?}, gamma: {gamma:?}, tau: {tau:?} }}"
        ),
    })
}

/// The training policy of the bottlenecks trained with the later stages (eq. 21).
const JOINT_FIELDS: [Field; 4] = [
    Field { flag: "epochs", field: "epochs", kind: FieldKind::Int },
    Field { flag: "lr", field: "lr", kind: FieldKind::Float },
    Field { flag: "batch", field: "batch_size", kind: FieldKind::Int },
    Field { flag: "seed", field: "seed", kind: FieldKind::Seed },
];

fn usb(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let c = common(inv, view)?;
    let n = inv.int("groups").unwrap_or(1);
    let Some(k) = inv.int("width") else {
        return Err(UsageError(":usb needs --width K, the channels per group (the paper uses 10 to 50)".into()));
    };
    Usb::new(n as usize, k).map_err(|e| UsageError(e.to_string()))?;
    let config = train_config(&config_fields(inv, &JOINT_FIELDS), "glassbox::bottleneck::usb::default_training()");
    let call = format!(
        "glassbox::cmd::usb(&{}, {:?}, {n}, {k}, {}, &{}, {}, &{config}, {:?})",
        c.model,
        c.after,
        regularizer(inv)?,
        c.data,
        c.test,
        inv.int("seed"),
    );
    bind(inv, &c, "usb", call)
}

fn plain(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let c = common(inv, view)?;
    let Some(k) = inv.int("width") else {
        return Err(UsageError(":bottleneck needs --width K, its channels".into()));
    };
    Plain::new(k).map_err(|e| UsageError(e.to_string()))?;
    let config = train_config(&config_fields(inv, &JOINT_FIELDS), "glassbox::bottleneck::plain::default_training()");
    let call = format!(
        "glassbox::cmd::plain(&{}, {:?}, {k}, &{}, {}, &{config}, {:?})",
        c.model,
        c.after,
        c.data,
        c.test,
        inv.int("seed"),
    );
    bind(inv, &c, "plain", call)
}

fn sb_report(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let net = SB_NET.variable(&inv.args[0], view)?;
    Ok(Action::Rust(format!("glassbox::runtime::or_raise(glassbox::bottleneck::report_of(&{net}))")))
}

/// A `--n`/`--k` list of positive integers.
fn sizes(inv: &Invocation, flag: &str, default: &[i64], least: i64) -> Result<Vec<i64>, UsageError> {
    let Some(Value::List(items)) = inv.flags.get(flag) else { return Ok(default.to_vec()) };
    items
        .iter()
        .map(|s| match s.parse::<i64>() {
            Ok(v) if v >= least => Ok(v),
            _ => Err(UsageError(format!("--{flag} takes integers of at least {least}, got `{s}`"))),
        })
        .collect()
}

fn sweep_usb(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let c = common(inv, view)?;
    let ns = sizes(inv, "n", &[1, 2], 1)?;
    let ks = sizes(inv, "k", &[2, 5, 10, 20], 2)?;
    let list = |v: &[i64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
    let config = train_config(&config_fields(inv, &JOINT_FIELDS), "glassbox::bottleneck::usb::default_training()");
    Ok(Action::Rust(format!(
        "glassbox::runtime::or_raise(glassbox::bottleneck::sweep_usb(&{}, {:?}, &[{}], &[{}], {}, &{}, {}, &{config}))",
        c.model,
        c.after,
        list(&ns),
        list(&ks),
        regularizer(inv)?,
        c.data,
        c.test,
    )))
}

#[cfg(test)]
mod tests {
    use super::super::{complete, LiveValues};
    use super::*;

    fn view() -> ReplView {
        super::super::testing::session(&[
            ("net", "glassbox::models::TappedNet"),
            ("scenes", "ConceptScenes"),
            ("held", "ConceptScenes"),
            ("digits", "ColorMnist"),
            ("sb", "glassbox::bottleneck::SbNet"),
        ])
    }

    struct Stages;
    impl LiveValues for Stages {
        fn stages(&mut self, _: &str) -> Vec<String> {
            ["stem", "stage1", "stage2", "head"].map(String::from).to_vec()
        }
    }

    fn code(line: &str) -> String {
        super::super::testing::code(line, &view())
    }

    fn error(line: &str) -> String {
        super::super::testing::error(line, &view())
    }

    #[test]
    fn ssb_and_usb_compile_to_the_library_with_their_flags() {
        let c = code(":ssb net --after stage2 --groups material,colour --data scenes --phase1-epochs 3 --seed 1");
        for part in [
            "let net_ssb: glassbox::bottleneck::SbNet",
            "glassbox::cmd::ssb(&net, \"stage2\", &[glassbox::data::Category::Material, glassbox::data::Category::Colour], &scenes, None",
            "..glassbox::bottleneck::SsbTraining::default().phase2 }, output: glassbox::bottleneck::ssb::SsbOutput::Linear }, Some(1))",
            "phase1: glassbox::models::TrainConfig { epochs: 3, seed: Some(1), ..glassbox::bottleneck::SsbTraining::default().phase1 }",
        ] {
            assert!(c.contains(part), "{part}\n{c}");
        }
        let c = code(
            ":usb net --after stage2 --groups 2 --width 10 --data scenes --test held --reg entropy --lambda 0.2 --as u",
        );
        for part in [
            "let u: glassbox::bottleneck::SbNet",
            "glassbox::cmd::usb(&net, \"stage2\", 2, 10, glassbox::bottleneck::Regularizer::Entropy { lambda: 0.2 }",
            "&scenes, Some(&held)",
        ] {
            assert!(c.contains(part), "{part}\n{c}");
        }
        let c = code(":usb net --after stage1 --width 5 --data scenes --t-end 0.05 --tau 100 --epochs 2");
        assert!(
            c.contains("Anneal { t0: 1.0, t_end: 0.05, gamma: 10.0, tau: Some(100) }") && c.contains("epochs: 2"),
            "{c}"
        );
        let c = code(":bottleneck net --after stage2 --width 8 --data scenes --test held --epochs 3 --seed 2");
        for part in [
            "let net_plain: glassbox::bottleneck::SbNet = ",
            "glassbox::cmd::plain(&net, \"stage2\", 8, &scenes, Some(&held), \
             &glassbox::models::TrainConfig { epochs: 3, seed: Some(2), ..glassbox::bottleneck::plain::default_training() }, Some(2))",
        ] {
            assert!(c.contains(part), "{part}\n{c}");
        }
        assert!(code(":sb-report sb").contains("report_of(&sb)"));
        let c = code(":sweep-usb net --after stage2 --n 1 --k 2,4 --data scenes --epochs 1");
        assert!(
            c.contains("sweep_usb(&net, \"stage2\", &[1], &[2, 4], glassbox::bottleneck::Regularizer::Anneal"),
            "{c}"
        );
    }

    #[test]
    fn bottleneck_commands_refuse_bad_input_with_what_is_allowed() {
        assert!(error(":usb net --after stage2 --width 1 --data scenes").contains("at least 2"));
        assert!(error(":usb net --after stage2 --data scenes").contains("needs --width"));
        assert!(error(":usb net --width 4 --data scenes").contains("needs --after"));
        assert!(error(":usb net --after stage1,stage2 --width 4 --data scenes").contains("one stage"));
        assert!(error(":usb net --after stage2 --width 4 --data digits")
            .contains("not a concept data set (ConceptScenes, Broden, Cityscapes)"));
        assert!(error(":usb net --after stage2 --width 4 --data scenes --reg entropy --t0 2").contains("--lambda"));
        assert!(error(":usb net --after stage2 --width 4 --data scenes --lambda 2").contains("--reg entropy"));
        assert!(error(":usb net --after stage2 --width 4 --data scenes --t-end 3").contains("0 < t_end <= t0"));
        assert!(code(":ssb net --after stage2 --data scenes --output softmax")
            .contains("output: glassbox::bottleneck::ssb::SsbOutput::Softmax }"));
        assert!(error(":ssb net --after stage2 --data scenes --output relu").contains("linear, softmax"));
        assert!(error(":ssb net --after stage2 --groups parts --data scenes").contains("did you mean `part`"));
        assert!(error(":ssb scenes --after stage2 --data scenes").contains("not a TappedNet"));
        assert!(error(":ssb net --after stage2 --data scenes --test digits")
            .contains("not a concept data set (ConceptScenes, Broden, Cityscapes)"));
        assert!(error(":sb-report net").contains("SbNet"));
        assert!(error(":bottleneck net --after stage2 --data scenes").contains("needs --width"));
        assert!(error(":bottleneck net --after stage2 --width 0 --data scenes").contains("at least 1 channel"));
        assert!(error(":bottleneck net --after stage2 --width 4 --data scenes --reg entropy").contains("--reg"));
        assert!(error(":sweep-usb net --after stage2 --k 1,2 --data scenes").contains("at least 2"));
    }

    #[test]
    fn usb_on_a_torchvision_resnet_names_its_types_and_classification_data() {
        let view = super::super::testing::session(&[
            ("resnet", "glassbox::models::VisionNet"),
            ("digits", "ColorMnist"),
            ("scenes", "ConceptScenes"),
        ]);
        let code = |line: &str| super::super::testing::code(line, &view);
        let error = |line: &str| super::super::testing::error(line, &view);
        let c = code(":usb resnet --after layer4.1 --groups 2 --width 5 --data digits --epochs 2");
        for part in [
            "let resnet_usb: glassbox::bottleneck::SbNet<glassbox::models::VisionNet> = ",
            "glassbox::cmd::usb(&resnet, \"layer4.1\", 2, 5, glassbox::bottleneck::Regularizer::Anneal",
            "&digits, None, &glassbox::models::TrainConfig { epochs: 2, ..glassbox::bottleneck::usb::default_training() }, None)",
        ] {
            assert!(c.contains(part), "{part}\n{c}");
        }
        let c = code(":sweep-usb resnet --after layer3 --k 2,4 --data digits");
        assert!(c.contains("sweep_usb(&resnet, \"layer3\", &[1, 2], &[2, 4]"), "{c}");
        let e = error(":usb resnet --after layer4.1 --width 5 --data scenes");
        assert!(e.contains("ColorMnist, Examples"), "{e}");
        let e = error(":ssb resnet --after layer4.1 --data scenes");
        assert!(e.contains("torchvision classifier") && e.contains(":usb"), "{e}");
    }

    #[test]
    fn stages_and_groups_complete() {
        let line = ":usb net --after st";
        let (_, _, m) = complete(line, line.len(), &view(), &mut Stages).unwrap();
        assert_eq!(m, ["stage1", "stage2", "stem"]);
        let line = ":ssb net --groups part,ma";
        let (_, _, m) = complete(line, line.len(), &view(), &mut Stages).unwrap();
        assert_eq!(m, ["part,material"]);
        let line = ":ssb net --test h";
        let (_, _, m) = complete(line, line.len(), &view(), &mut Stages).unwrap();
        assert_eq!(m, ["held"]);
    }
}
