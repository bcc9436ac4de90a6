//! Commands for concept embeddings (Net2Vec, Fong & Vedaldi 2018): `:net2vec`, `:nearest`,
//! `:arith`, `:embed-distance`. They compile to calls into `glassbox::metrics::net2vec`.

use super::models::{config_fields, train_config, Field, FieldKind};
use super::session::{Kind, CONCEPT_DATA, MODEL};
use super::spec::{ArgKind, ArgSpec, CommandSpec, FlagKind, FlagSpec, Invocation, UsageError, COUNT, INDEX, POSITIVE};
use super::{Action, ReplView};

/// Types a Net2Vec result has.
static EMBEDDING: Kind = Kind { what: "Net2Vec result", types: &[std::any::type_name::<crate::metrics::Net2Vec>] };

const IN: FlagSpec =
    FlagSpec { name: "in", kind: FlagKind::Text, help: "the :net2vec result to search (default: the only one)" };
const N: FlagSpec = FlagSpec { name: "n", kind: COUNT, help: "how many concepts to list (default 5)" };

pub static NET2VEC: CommandSpec = CommandSpec {
    name: "net2vec",
    summary: "Learns a concept embedding of a layer (Net2Vec sec. 3): per-filter top-0.5% thresholds, the best \
              single filter per concept (chosen on --data, scored on --val) and per-concept filter weights \
              learned as one batched problem, for segmentation (set IoU, eq. 1-4) or classification (eq. 5); \
              shows the comparison per category (fig. 2) and binds the result.",
    args: &[ArgSpec { name: "NET", kind: ArgKind::Model, required: true, help: "a variable holding a tapped model" }],
    flags: &[
        FlagSpec { name: "layer", kind: FlagKind::Stages, help: "the stage whose filters to embed (required)" },
        FlagSpec { name: "data", kind: FlagKind::Data, help: "the concept data set to learn on (required)" },
        FlagSpec { name: "val", kind: FlagKind::Data, help: "a held-out concept data set to score on (required)" },
        FlagSpec {
            name: "task",
            kind: FlagKind::Choice(&["seg", "cls"]),
            help: "segmentation or classification (default seg)",
        },
        FlagSpec {
            name: "categories",
            kind: FlagKind::ChoiceList(&["object", "part", "material", "colour"]),
            help: "concept categories (default: all the data set has)",
        },
        FlagSpec { name: "epochs", kind: COUNT, help: "passes over the probe images (default 15)" },
        FlagSpec { name: "lr", kind: POSITIVE, help: "SGD learning rate (default: tuned for small probe sets)" },
        FlagSpec { name: "seed", kind: INDEX, help: "seeds example order and sampling" },
        FlagSpec { name: "paper", kind: FlagKind::Switch, help: "the paper's training: 30 epochs, lr 1e-4" },
        FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind (default NET_LAYER_net2vec)" },
    ],
    run: net2vec,
};

pub static NEAREST: CommandSpec = CommandSpec {
    name: "nearest",
    summary: "Lists the concepts whose Net2Vec embeddings are nearest by cosine to a concept's (Net2Vec table 2).",
    args: &[ArgSpec { name: "CONCEPT", kind: ArgKind::Value, required: true, help: "a concept, e.g. grass" }],
    flags: &[IN, N],
    run: nearest,
};

pub static ARITH: CommandSpec = CommandSpec {
    name: "arith",
    summary: "Adds and subtracts concept embeddings and lists the concepts nearest to the result (Net2Vec \
              table 3), e.g. :arith \"grass - green + blue\".",
    args: &[ArgSpec {
        name: "EXPRESSION",
        kind: ArgKind::Value,
        required: true,
        help: "concepts joined by + and -, quoted",
    }],
    flags: &[IN, N],
    run: arith,
};

pub static EMBED_DISTANCE: CommandSpec = CommandSpec {
    name: "embed-distance",
    summary: "The distance between two concept embedding spaces, e.g. two layers or two models (Net2Vec sec. \
              5.3): per shared concept and in total.",
    args: &[
        ArgSpec { name: "A", kind: ArgKind::Value, required: true, help: "a :net2vec result" },
        ArgSpec { name: "B", kind: ArgKind::Value, required: true, help: "another :net2vec result" },
    ],
    flags: &[],
    run: embed_distance,
};

const TRAINING_FIELDS: [Field; 3] = [
    Field { flag: "epochs", field: "epochs", kind: FieldKind::Int },
    Field { flag: "lr", field: "lr", kind: FieldKind::Float },
    Field { flag: "seed", field: "seed", kind: FieldKind::Seed },
];

fn net2vec(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let net = MODEL.variable(&inv.args[0], view)?;
    let layer = super::one_stage(inv, "layer")?;
    let data = CONCEPT_DATA.data_flag(inv, view)?;
    let Some(val) = inv.text("val") else {
        return Err(UsageError(
            ":net2vec needs --val DATA, a held-out concept data set: the best single filter is chosen on --data \
             and scored on --val (Net2Vec sec. 3.1.1)"
                .into(),
        ));
    };
    let val = CONCEPT_DATA.variable(val, view)?;
    if val == data {
        return Err(UsageError(
            "--val must be another data set than --data: scores on the training images flatter".into(),
        ));
    }
    let task = match inv.text("task") {
        Some("cls") => "glassbox::models::Task::Classification",
        _ => "glassbox::models::Task::Segmentation",
    };
    let base = if inv.switch("paper") {
        if inv.flags.contains_key("lr") || inv.flags.contains_key("epochs") {
            return Err(UsageError("--paper fixes the training; leave out --lr and --epochs with it".into()));
        }
        format!("glassbox::metrics::Net2VecConfig::paper({task})")
    } else {
        format!("glassbox::metrics::Net2VecConfig::small_data({task})")
    };
    let mut set = String::new();
    let fields = config_fields(inv, &TRAINING_FIELDS);
    if !fields.is_empty() {
        set += &format!("training: {}, ", train_config(&fields, &format!("{base}.training")));
    }
    if let Some(names) = super::categories(inv) {
        set += &format!("categories: Some(vec![{}]), ", names.join(", "));
    }
    let config = if set.is_empty() { base } else { format!("glassbox::metrics::Net2VecConfig {{ {set}..{base} }}") };
    let default = super::derived_name(&[net, &layer, "net2vec"]);
    let var = super::identifier(inv.text("as").unwrap_or(&default))?;
    Ok(Action::Rust(format!(
        "let {var}: glassbox::metrics::Net2Vec = \
         glassbox::runtime::or_raise(glassbox::metrics::net2vec(&{net}, {layer:?}, &{data}, &{val}, &{config}));\n\
         glassbox::display::Render::render(&{var})"
    )))
}

/// The embedding `--in` names, or the session's only one.
fn embedding<'a>(inv: &'a Invocation, view: &'a ReplView) -> Result<&'a str, UsageError> {
    EMBEDDING.chosen(inv, view, ":net2vec")
}

fn count(inv: &Invocation) -> i64 {
    inv.int("n").unwrap_or(5)
}

fn nearest(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let (var, n) = (embedding(inv, view)?, count(inv));
    let concept = &inv.args[0];
    Ok(Action::Rust(format!("glassbox::runtime::or_raise({var}.nearest({concept:?}, {n}))")))
}

fn arith(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let (var, n) = (embedding(inv, view)?, count(inv));
    let expression = &inv.args[0];
    Ok(Action::Rust(format!("glassbox::runtime::or_raise({var}.arith({expression:?}, {n}))")))
}

fn embed_distance(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let a = EMBEDDING.variable(&inv.args[0], view)?;
    let b = EMBEDDING.variable(&inv.args[1], view)?;
    Ok(Action::Rust(format!("glassbox::runtime::or_raise({a}.distance(&{b}))")))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{code, error as err, session};
    use super::super::ReplView;

    fn view() -> ReplView {
        session(&[
            ("net", "TappedNet"),
            ("scenes", "ConceptScenes"),
            ("held", "ConceptScenes"),
            ("e", "glassbox::metrics::Net2Vec"),
        ])
    }

    #[test]
    fn net2vec_commands_compile_to_the_library() {
        let v = view();
        let c = code(
            ":net2vec net --layer stage3 --data scenes --val held --task cls --categories object --epochs 3 --seed 1",
            &v,
        );
        for part in [
            "let net_stage3_net2vec: glassbox::metrics::Net2Vec",
            "Net2VecConfig::small_data(glassbox::models::Task::Classification)",
            "training: glassbox::models::TrainConfig { epochs: 3, seed: Some(1), \
             ..glassbox::metrics::Net2VecConfig::small_data(glassbox::models::Task::Classification).training }",
            "categories: Some(vec![glassbox::data::Category::Object])",
            "net2vec(&net, \"stage3\", &scenes, &held, &glassbox::metrics::Net2VecConfig {",
        ] {
            assert!(c.contains(part), "{part}\n{c}");
        }
        assert!(code(":net2vec net --layer stage1 --data scenes --val held --paper --as p", &v)
            .contains("&held, &glassbox::metrics::Net2VecConfig::paper(glassbox::models::Task::Segmentation)));"));
        assert_eq!(code(":nearest grass", &v), "glassbox::runtime::or_raise(e.nearest(\"grass\", 5))");
        assert_eq!(
            code(":arith \"grass - green + blue\" --in e --n 3", &v),
            "glassbox::runtime::or_raise(e.arith(\"grass - green + blue\", 3))"
        );
        assert!(code(":embed-distance e e", &v).contains("e.distance(&e)"));
    }

    #[test]
    fn net2vec_commands_refuse_bad_input() {
        let v = view();
        assert!(err(":net2vec net --layer stage3 --data scenes", &v).contains("needs --val"));
        assert!(err(":net2vec net --layer stage3 --data scenes --val scenes", &v).contains("another data set"));
        assert!(err(":net2vec net --layer stage3 --data scenes --val held --paper --lr 1", &v).contains("--paper"));
        assert!(
            err(":net2vec net --layer stage3 --data scenes --val held --task seg,cls", &v).contains("one of seg, cls")
        );
        assert!(err(":nearest grass --n 0", &v).contains("a positive integer"));
        assert!(err(":nearest grass --in net", &v).contains("Net2Vec result"));
        let none = session(&[]);
        assert!(err(":nearest grass", &none).contains("make one with :net2vec"));
        let two =
            ReplView { variables: vec![("a".into(), "Net2Vec".into()), ("b".into(), "Net2Vec".into())], timing: false };
        assert!(err(":arith \"a - b\"", &two).contains("choose one with --in"));
    }
}
