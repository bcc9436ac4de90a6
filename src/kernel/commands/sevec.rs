//! Commands for semantic vectors (SeVec paper, Gu & Tresp): `:sevec`, `:diversity`,
//! `:relevance`, `:saliency`, `:pointing-game`. They compile to calls into
//! `glassbox::metrics::{sevec, saliency, pointing}`.

use super::session::{Kind, CONCEPT_DATA, MODEL};
use super::spec::{ArgKind, ArgSpec, CommandSpec, FlagKind, FlagSpec, Invocation, UsageError, Value, INDEX, POSITIVE};
use super::{Action, ReplView};
use crate::metrics::{Binarize, Units};
use std::any::type_name;

/// Types a SeVec result has.
static SEVEC_RESULTS: Kind =
    Kind { what: "SeVec result", types: &[std::any::type_name::<crate::metrics::SemanticVectors>] };

/// What the pointing game draws on: scenes with bounding boxes.
static SCENES: Kind = Kind { what: "ConceptScenes", types: &[std::any::type_name::<crate::data::ConceptScenes>] };
const CATEGORIES: &[&str] = &["object", "part", "material", "colour"];

const IN: FlagSpec =
    FlagSpec { name: "in", kind: FlagKind::Text, help: "the :sevec result to use (default: the only one)" };
const NET: ArgSpec =
    ArgSpec { name: "NET", kind: ArgKind::Model, required: true, help: "a variable holding a TappedNet" };

pub static SEVEC: CommandSpec = CommandSpec {
    name: "sevec",
    summary: "Semantic vectors of a layer (SeVec paper eq. 3): the binarised features of every image, summed \
              per concept and normalised, with each unit's activation rate and each concept's diversity; \
              shows them with a 2-D embedding (fig. 3) and binds the result.",
    args: &[NET],
    flags: &[
        FlagSpec { name: "layer", kind: FlagKind::Stages, help: "the stage (required)" },
        FlagSpec { name: "data", kind: FlagKind::Data, help: "concept scenes with image labels (required)" },
        FlagSpec {
            name: "categories",
            kind: FlagKind::ChoiceList(CATEGORIES),
            help: "concept categories (default: all the data set has)",
        },
        FlagSpec {
            name: "top",
            kind: POSITIVE,
            help: "binarise each unit against its own top-Q quantile over the data, 0 < Q < 1 (default: the \
                   paper's φ > 0)",
        },
        FlagSpec {
            name: "channels",
            kind: FlagKind::Switch,
            help: "one unit per channel, its mean over the map (default: every channel at every position, as the \
                   paper's flattened features)",
        },
        FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind (default NET_LAYER_sevec)" },
    ],
    run: sevec,
};

pub static DIVERSITY: CommandSpec = CommandSpec {
    name: "diversity",
    summary: "Each class's diversity D_c = 1 − mean cos(a_i, v_c) against the net's per-class accuracy, with \
              Pearson and Spearman correlations and their p-values (SeVec paper table 2).",
    args: &[],
    flags: &[
        FlagSpec {
            name: "net",
            kind: FlagKind::Text,
            help: "the net whose per-class accuracy to use: a segmentation net, or a classifier scored on the \
                   images that show one object (required)",
        },
        FlagSpec { name: "data", kind: FlagKind::Data, help: "concept scenes to score on (required)" },
        IN,
    ],
    run: diversity,
};

pub static RELEVANCE: CommandSpec = CommandSpec {
    name: "relevance",
    summary: "Concept relevance cos(v_a, v_b) between two concepts' SeVecs, or a table of it between two \
              categories, e.g. :relevance object material (SeVec paper fig. 5).",
    args: &[
        ArgSpec { name: "A", kind: ArgKind::Value, required: true, help: "a concept or a category" },
        ArgSpec { name: "B", kind: ArgKind::Value, required: true, help: "a concept or a category" },
    ],
    flags: &[IN],
    run: relevance,
};

pub static SALIENCY: CommandSpec = CommandSpec {
    name: "saliency",
    summary: "Saliency maps of one image for one or more classes by Guided Backprop and Gradient×Input; with \
              --semantic, beside each its SeVec-guided version, whose backward pass stops at the units of \
              the SeVec layer irrelevant to the class (SeVec paper sec. 5, fig. 6).",
    args: &[
        NET,
        ArgSpec { name: "IMAGE", kind: ArgKind::Value, required: true, help: "an image of concept scenes: SCENES[N]" },
    ],
    flags: &[
        FlagSpec { name: "class", kind: FlagKind::List, help: "object classes to explain (required)" },
        FlagSpec { name: "method", kind: FlagKind::Choice(&["gbp", "gxi"]), help: "one method (default both)" },
        FlagSpec { name: "semantic", kind: FlagKind::Switch, help: "add the SeVec-guided maps" },
        IN,
    ],
    run: saliency,
};

pub static POINTING_GAME: CommandSpec = CommandSpec {
    name: "pointing-game",
    summary: "The generalized pointing game (SeVec paper sec. 5.2): keep the top m% of a saliency map's \
              energy, a hit when it lies in the target object's box; accuracy against m for Guided Backprop \
              and Gradient×Input, plain and SeVec-guided, beside random and centre baselines (fig. 7).",
    args: &[NET],
    flags: &[
        FlagSpec {
            name: "data",
            kind: FlagKind::Data,
            help: "concept scenes whose objects are the targets (required)",
        },
        FlagSpec { name: "seed", kind: INDEX, help: "seeds the random baseline (default 0)" },
        IN,
        FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind (default NET_pointing)" },
    ],
    run: pointing_game,
};

fn sevecs<'a>(inv: &'a Invocation, view: &'a ReplView) -> Result<&'a str, UsageError> {
    SEVEC_RESULTS.chosen(inv, view, ":sevec")
}

fn or_raise(call: String) -> String {
    format!("glassbox::runtime::or_raise({call})")
}

fn sevec(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let net = MODEL.variable(&inv.args[0], view)?;
    let layer = super::one_stage(inv, "layer")?;
    let data = CONCEPT_DATA.data_flag(inv, view)?;
    let categories = super::categories(inv).map_or("None".into(), |c| format!("Some(vec![{}])", c.join(", ")));
    let default = super::derived_name(&[net, &layer, "sevec"]);
    let var = super::identifier(inv.text("as").unwrap_or(&default))?;
    let binarize = match inv.float("top") {
        Some(q) => {
            Binarize::TopQuantile(q).validate().map_err(|e| UsageError(e.to_string()))?;
            format!("{}::TopQuantile({q:?})", type_name::<Binarize>())
        }
        None => format!("{}::Positive", type_name::<Binarize>()),
    };
    let units = if inv.switch("channels") { Units::Channels } else { Units::Positions };
    let units = format!("{}::{units:?}", type_name::<Units>());
    let call = or_raise(format!(
        "glassbox::metrics::semantic_vectors(&{net}, {layer:?}, &{data}, &glassbox::metrics::SevecConfig {{ \
         categories: {categories}, units: {units}, binarize: {binarize}, ..Default::default() }})"
    ));
    Ok(Action::Rust(format!(
        "let {var}: glassbox::metrics::SemanticVectors = {call};\nglassbox::display::Render::render(&{var})"
    )))
}

fn diversity(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let Some(net) = inv.text("net") else {
        return Err(UsageError(
            ":diversity needs --net NET, the segmentation net or classifier whose per-class accuracy to use".into(),
        ));
    };
    let net = MODEL.variable(net, view)?;
    let data = CONCEPT_DATA.data_flag(inv, view)?;
    let s = sevecs(inv, view)?;
    Ok(Action::Rust(or_raise(format!(
        "glassbox::metrics::class_accuracy(&{net}, &{data}, 32).and_then(|a| \
         glassbox::metrics::diversity_vs_accuracy(&{s}, &a))"
    ))))
}

fn relevance(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let s = sevecs(inv, view)?;
    let (a, b) = (&inv.args[0], &inv.args[1]);
    let category = |w: &str| CATEGORIES.contains(&w).then(|| super::emit::capitalised(w));
    match (category(a), category(b)) {
        (Some(a), Some(b)) => Ok(Action::Rust(or_raise(format!(
            "{s}.relevance_by_category(glassbox::data::Category::{a}, glassbox::data::Category::{b})"
        )))),
        (None, None) => Ok(Action::Rust(or_raise(format!("glassbox::cmd::relevance(&{s}, {a:?}, {b:?})")))),
        _ => {
            Err(UsageError(format!("give two concepts or two categories ({}), not one of each", CATEGORIES.join(", "))))
        }
    }
}

/// `SCENES[N]` as the data set variable and the index.
fn image<'a>(text: &'a str, view: &ReplView) -> Result<(&'a str, usize), UsageError> {
    let bad = || UsageError(format!("IMAGE is an image of concept scenes, as SCENES[N]; got `{text}`"));
    let (data, rest) = text.split_once('[').ok_or_else(bad)?;
    let index: usize = rest.strip_suffix(']').and_then(|n| n.trim().parse().ok()).ok_or_else(bad)?;
    Ok((SCENES.variable(data.trim(), view)?, index))
}

fn saliency(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let net = MODEL.variable(&inv.args[0], view)?;
    let (data, index) = image(&inv.args[1], view)?;
    let classes = match inv.flags.get("class") {
        Some(Value::List(c)) if !c.is_empty() => c.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", "),
        _ => return Err(UsageError(":saliency needs --class C,.. (object classes, e.g. car,house)".into())),
    };
    let methods = match inv.text("method") {
        Some("gbp") => "glassbox::metrics::Method::GuidedBackprop",
        Some("gxi") => "glassbox::metrics::Method::GradientInput",
        _ => "glassbox::metrics::Method::GuidedBackprop, glassbox::metrics::Method::GradientInput",
    };
    let s = sevecs(inv, view)?;
    let semantic = inv.switch("semantic");
    Ok(Action::Rust(or_raise(format!(
        "glassbox::cmd::saliency(&{net}, &{s}, &{data}, {index}, &[{classes}], &[{methods}], {semantic})"
    ))))
}

fn pointing_game(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let net = MODEL.variable(&inv.args[0], view)?;
    let data = SCENES.data_flag(inv, view)?;
    let seed = inv.int("seed").unwrap_or(0);
    let s = sevecs(inv, view)?;
    let default = format!("{net}_pointing");
    let var = super::identifier(inv.text("as").unwrap_or(&default))?;
    let call = or_raise(format!(
        "glassbox::metrics::pointing_game(&{net}, &{s}, &{data}, &glassbox::metrics::PointingConfig {{ seed: {seed}, \
         ..Default::default() }})"
    ));
    Ok(Action::Rust(format!(
        "let {var}: glassbox::metrics::PointingGame = {call};\nglassbox::display::Render::render(&{var})"
    )))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, session};

    const SESSION: &[(&str, &str)] =
        &[("net", "TappedNet"), ("scenes", "ConceptScenes"), ("v", "glassbox::metrics::SemanticVectors")];

    fn code(line: &str) -> String {
        testing::code(line, &session(SESSION))
    }

    #[test]
    fn sevec_commands_compile_to_the_library() {
        let c = code(":sevec net --layer stage3 --data scenes --categories object,material");
        assert!(c.starts_with("let net_stage3_sevec: glassbox::metrics::SemanticVectors"), "{c}");
        assert!(c.contains("semantic_vectors(&net, \"stage3\", &scenes") && c.contains("Category::Material"), "{c}");
        assert!(c.contains("binarize: glassbox::metrics::sevec::Binarize::Positive"), "{c}");
        assert!(c.contains("units: glassbox::metrics::sevec::Units::Positions"), "{c}");
        let c = code(":sevec net --layer stage3 --data scenes --top 0.2 --channels");
        assert!(c.contains("binarize: glassbox::metrics::sevec::Binarize::TopQuantile(0.2)"), "{c}");
        assert!(c.contains("units: glassbox::metrics::sevec::Units::Channels"), "{c}");
        assert!(code(":diversity --net net --data scenes").contains("diversity_vs_accuracy(&v, &a)"));
        assert!(code(":relevance object material")
            .contains("v.relevance_by_category(glassbox::data::Category::Object, glassbox::data::Category::Material)"));
        assert!(code(":relevance wheel car").contains("glassbox::cmd::relevance(&v, \"wheel\", \"car\")"));
        let c = code(":saliency net scenes[3] --class car,house --method gxi --semantic");
        assert!(
            c.contains("glassbox::cmd::saliency(&net, &v, &scenes, 3, &[\"car\", \"house\"], &[glassbox::metrics::Method::GradientInput], true)"),
            "{c}"
        );
        let c = code(":pointing-game net --data scenes --seed 2 --as g");
        assert!(
            c.starts_with("let g: glassbox::metrics::PointingGame") && c.contains("PointingConfig { seed: 2,"),
            "{c}"
        );
    }

    #[test]
    fn sevec_commands_refuse_bad_input() {
        let err = |line: &str| testing::error(line, &session(SESSION));
        assert!(err(":sevec net --data scenes").contains("needs --layer"));
        assert!(err(":sevec net --layer stage3 --data scenes --top 1.5").contains("between 0 and 1"));
        assert!(err(":diversity --data scenes").contains("needs --net"));
        assert!(err(":relevance object car").contains("two concepts or two categories"));
        assert!(err(":saliency net scenes --class car").contains("SCENES[N]"));
        assert!(err(":saliency net scenes[-1] --class car").contains("SCENES[N]"));
        assert!(err(":saliency net scenes[0]").contains("needs --class"));
        assert!(err(":saliency net scenes[0] --class car --method lrp").contains("one of gbp, gxi"));
        assert!(err(":pointing-game net --data scenes --seed -1").contains("0 or more"));
        let none = session(&[("net", "TappedNet")]);
        assert!(testing::error(":relevance wheel car", &none).contains("make one with :sevec"));
    }
}
