//! Commands for inspectability metrics (SB paper sec. 4): `:auic`, `:dissect`,
//! `:inspect-curve`, `:top-channels`. They compile to calls into `glassbox::metrics`.

use super::session::{Kind, CONCEPT_DATA, MODEL};
use super::spec::{
    concat, ints, numbers, ArgKind, ArgSpec, CommandSpec, End, FlagKind, FlagSpec, Invocation, UsageError, COUNT, INDEX,
};
use super::{Action, ReplView};
use crate::metrics::histogram::MAX_BINS;

const NET: ArgSpec =
    ArgSpec { name: "NET", kind: ArgKind::Model, required: true, help: "a variable holding a tapped model" };
const LAYER: FlagSpec =
    FlagSpec { name: "layer", kind: FlagKind::Stages, help: "the stage to align (required); `sb` for a bottleneck" };
const DATA: FlagSpec =
    FlagSpec { name: "data", kind: FlagKind::Data, help: "a concept data set with pixel annotations (required)" };

/// `:auic`'s alternative to a model: activations and masks computed elsewhere, in files.
const ACTS: FlagSpec = FlagSpec {
    name: "acts",
    kind: FlagKind::Text,
    help: "a file of activations [N, K, H, W] (.npy, .npz, .safetensors), instead of NET --layer; needs --masks",
};
const MASKS: FlagSpec = FlagSpec {
    name: "masks",
    kind: FlagKind::Text,
    help: "a file of [N, H, W] concept masks named `category:concept` (.npz, .safetensors), with --acts",
};

/// How the alignment pass runs, shared by `:auic` and `:dissect`.
const OPTION_FLAGS: [FlagSpec; 5] = [
    FlagSpec {
        name: "categories",
        kind: FlagKind::ChoiceList(&["object", "part", "material", "colour"]),
        help: "concept categories to align with (default: all the data set has)",
    },
    FlagSpec {
        name: "exact",
        kind: FlagKind::Switch,
        help: "every distinct activation a threshold (keeps all values)",
    },
    FlagSpec { name: "bins", kind: ints(2, MAX_BINS), help: "histogram bins per channel (default 1024)" },
    FlagSpec {
        name: "tolerance",
        kind: numbers(End::Closed(0.0), End::Closed(0.5)),
        help: "how far binned scores may be from exact ones; finer passes certify it (default 5e-4)",
    },
    FlagSpec {
        name: "feature-res",
        kind: FlagKind::Switch,
        help: "compare at the layer's resolution, not the annotations'",
    },
];

/// The flags of the alignment pass of a model, `:dissect`'s.
const PASS_FLAGS: [FlagSpec; 8] = concat(
    concat::<2, 5, 7>([LAYER, DATA], OPTION_FLAGS),
    [FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind (default NET_LAYER_auic)" }],
);

/// `:auic`'s: a model's pass, or files'.
const AUIC_FLAGS: [FlagSpec; 10] = concat(
    concat::<4, 5, 9>([LAYER, DATA, ACTS, MASKS], OPTION_FLAGS),
    [FlagSpec {
        name: "as",
        kind: FlagKind::Text,
        help: "the variable to bind (default NET_LAYER_auic, or with --acts the file's name then _auic)",
    }],
);

pub static AUIC: CommandSpec = CommandSpec {
    name: "auic",
    summary: "Aligns every channel of a layer with the data set's concepts in one pass (SB paper eq. 22-24) and \
              shows AUiC (eq. 25), stability S (eq. 27), the best channels (concept, mIoU, θ*, Ψ) and the \
              inspectability curve; binds the result. Instead of NET --layer --data, --acts and --masks align \
              activations and concept masks computed elsewhere, read from files.",
    args: &[ArgSpec {
        name: "NET",
        kind: ArgKind::Model,
        required: false,
        help: "a variable holding a tapped model (with --layer and --data; or give --acts and --masks)",
    }],
    flags: &AUIC_FLAGS,
    run: auic,
};

pub static DISSECT: CommandSpec = CommandSpec {
    name: "dissect",
    summary: "The NetDissect baseline on a layer: top-0.5% quantile thresholds, IoU per concept, detectors at \
              IoU > 0.04, beside the mIoU assignment (SB paper table 6); binds the result.",
    args: &[NET],
    flags: &PASS_FLAGS,
    run: dissect,
};

pub static INSPECT_CURVE: CommandSpec = CommandSpec {
    name: "inspect-curve",
    summary: "Plots the inspectability curves of alignment results together, with their AUiC and stability as \
              bars (SB paper figs. 6 and 10).",
    args: &[ArgSpec {
        name: "RESULTS",
        kind: ArgKind::Value,
        required: true,
        help: "comma-separated variables bound by :auic",
    }],
    flags: &[],
    run: inspect_curve,
};

pub static TOP_CHANNELS: CommandSpec = CommandSpec {
    name: "top-channels",
    summary: "Colours images by the best-aligned channels of an :auic result, each where it exceeds its θ* \
              (SB paper figs. 11-12); with --channel, one channel's activation and mask (fig. 13).",
    args: &[NET],
    flags: &[
        FlagSpec { name: "from", kind: FlagKind::Text, help: "the :auic result for NET (required)" },
        DATA,
        FlagSpec { name: "n", kind: COUNT, help: "how many channels (default 20)" },
        FlagSpec { name: "images", kind: COUNT, help: "how many images (default 6)" },
        FlagSpec { name: "channel", kind: INDEX, help: "show this channel alone" },
    ],
    run: top_channels,
};

/// The `glassbox::metrics::inspect(..)` call of `:auic` and `:dissect`, and the default name.
fn pass(inv: &Invocation, view: &ReplView) -> Result<(String, String), UsageError> {
    let net = MODEL.variable(&inv.args[0], view)?;
    let layer = super::one_stage(inv, "layer")?;
    let data = CONCEPT_DATA.data_flag(inv, view)?;
    let config = inspect_config(inv)?;
    let call =
        format!("glassbox::runtime::or_raise(glassbox::metrics::inspect(&{net}, {layer:?}, &{data}, &{config}))");
    Ok((call, super::derived_name(&[net, &layer, "auic"])))
}

/// `:auic --acts FILE --masks FILE`: the `glassbox::metrics::align(..)` call of activations
/// and masks read from files, and the default name.
fn files(inv: &Invocation, acts: &str, masks: &str) -> Result<(String, String), UsageError> {
    let config = inspect_config(inv)?;
    let read_acts = format!("glassbox::runtime::or_raise(glassbox::metrics::files::read_activations({acts:?}))");
    let read_masks = format!("glassbox::runtime::or_raise(glassbox::metrics::Masks::read({masks:?}))");
    let call = format!("glassbox::runtime::or_raise(glassbox::metrics::align(&{read_acts}, &{read_masks}, &{config}))");
    let stem = std::path::Path::new(acts).file_stem().and_then(|s| s.to_str()).unwrap_or("acts");
    let name = super::derived_name(&[stem, "auic"]);
    let name = if name.starts_with(|c: char| c.is_ascii_digit()) { format!("acts_{name}") } else { name };
    Ok((call, name))
}

/// `glassbox::metrics::InspectConfig { .. }` as the option flags set it.
fn inspect_config(inv: &Invocation) -> Result<String, UsageError> {
    let mut fields = Vec::new();
    if let Some(names) = super::categories(inv) {
        fields.push(format!("categories: Some(vec![{}])", names.join(", ")));
    }
    if inv.switch("exact") {
        fields.push("exact: true".into());
    }
    if let Some(b) = inv.int("bins") {
        fields.push(format!("bins: {b}"));
    }
    if let Some(t) = inv.float("tolerance") {
        fields.push(format!("tolerance: {t:?}"));
    }
    if inv.switch("feature-res") {
        fields.push("resolution: glassbox::metrics::Resolution::Feature".into());
    }
    let set: String = fields.iter().map(|f| format!("{f}, ")).collect();
    Ok(format!("glassbox::metrics::InspectConfig {{ {set}..Default::default() }}"))
}

fn bind(inv: &Invocation, call: String, default: String, show: &str) -> Result<Action, UsageError> {
    let var = super::identifier(inv.text("as").unwrap_or(&default))?;
    Ok(Action::Rust(format!("let {var}: glassbox::metrics::Inspectability = {call};\n{}", show.replace("VAR", var))))
}

/// `:auic` aligns a model's layer on a data set, or activations with masks from files; the
/// two ways take different flags, and a mix of them is refused rather than half-ignored.
fn auic(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    const BOTH: &str = "either `:auic NET --layer STAGE --data DATA` or `:auic --acts FILE --masks FILE`";
    let net = inv.args.first();
    let (acts, masks) = (inv.text("acts"), inv.text("masks"));
    let (call, default) = match (net, acts, masks) {
        (None, None, None) if inv.flags.contains_key("layer") || inv.flags.contains_key("data") => {
            return Err(UsageError(format!(
                ":auic needs NET, the tapped model whose --layer it aligns on --data; or, without --layer and \
                 --data, --acts FILE --masks FILE. Give {BOTH}"
            )))
        }
        (None, None, None) => {
            return Err(UsageError(format!(":auic needs something to align: {BOTH}\nusage: {}", AUIC.usage())))
        }
        (Some(net), Some(_), _) | (Some(net), _, Some(_)) => {
            let given = if acts.is_some() { "--acts" } else { "--masks" };
            return Err(UsageError(format!(
                "{given} replaces the model: with NET `{net}`, :auic aligns its --layer on --data; without NET, \
                 --acts and --masks give activations and masks from files. Give {BOTH}"
            )));
        }
        (Some(_), None, None) => pass(inv, view)?,
        (None, Some(acts), Some(masks)) => {
            if let Some(flag) = ["layer", "data"].into_iter().find(|f| inv.flags.contains_key(*f)) {
                return Err(UsageError(format!(
                    "--{flag} is for a model (`:auic NET --layer STAGE --data DATA`); with --acts and --masks the \
                     files are the layer and the data"
                )));
            }
            files(inv, acts, masks)?
        }
        (None, Some(_), None) => {
            return Err(UsageError(
                ":auic --acts needs --masks FILE too: the concept masks (.npz, .safetensors) of the same images".into(),
            ))
        }
        (None, None, Some(_)) => {
            return Err(UsageError(
                ":auic --masks needs --acts FILE too: the activations (.npy, .npz, .safetensors) of the same images"
                    .into(),
            ))
        }
    };
    bind(inv, call, default, "glassbox::display::Render::render(&VAR)")
}

fn dissect(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let (call, default) = pass(inv, view)?;
    bind(inv, call, default, "VAR.dissection()")
}

/// Types an alignment result has.
static RESULT: Kind =
    Kind { what: "alignment result", types: &[std::any::type_name::<crate::metrics::Inspectability>] };

fn inspect_curve(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let names: Vec<&str> = inv.args[0].split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let checked: Vec<String> =
        names.iter().map(|n| RESULT.variable(n, view).map(|n| format!("({n:?}, &{n})"))).collect::<Result<_, _>>()?;
    Ok(Action::Rust(format!("glassbox::metrics::compare(&[{}])", checked.join(", "))))
}

fn top_channels(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let net = MODEL.variable(&inv.args[0], view)?;
    let Some(from) = inv.text("from") else {
        return Err(UsageError(":top-channels needs --from RESULT, an :auic result for the net".into()));
    };
    let from = RESULT.variable(from, view)?;
    let data = CONCEPT_DATA.data_flag(inv, view)?;
    let (n, images) = (inv.int("n").unwrap_or(20), inv.int("images").unwrap_or(6));
    let call = match inv.int("channel") {
        Some(c) => format!("glassbox::metrics::channel_overlay(&{net}, &{from}, &{data}, {c}, {images})"),
        None => format!("glassbox::metrics::top_channels(&{net}, &{from}, &{data}, {n}, {images})"),
    };
    Ok(Action::Rust(format!("glassbox::runtime::or_raise({call})")))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, session};

    const SESSION: &[(&str, &str)] = &[
        ("net", "TappedNet"),
        ("scenes", "ConceptScenes"),
        ("a", "glassbox::metrics::Inspectability"),
        ("b", "Inspectability"),
    ];

    fn code(line: &str) -> String {
        testing::code(line, &session(SESSION))
    }

    #[test]
    fn metric_commands_compile_to_the_library() {
        let c = code(":auic net --layer stage2 --data scenes --categories part,material --exact");
        for part in [
            "let net_stage2_auic: glassbox::metrics::Inspectability",
            "inspect(&net, \"stage2\", &scenes",
            "Category::Part, glassbox::data::Category::Material",
            "exact: true",
            "Render::render(&net_stage2_auic)",
        ] {
            assert!(c.contains(part), "{part}\n{c}");
        }
        let c = code(":dissect net --layer sb --data scenes --as d --bins 256 --feature-res");
        assert!(
            c.contains("let d:")
                && c.contains("bins: 256")
                && c.contains("Resolution::Feature")
                && c.ends_with("d.dissection()"),
            "{c}"
        );
        assert_eq!(code(":inspect-curve a,b"), r#"glassbox::metrics::compare(&[("a", &a), ("b", &b)])"#);
        assert!(
            code(":top-channels net --from a --data scenes --n 5").contains("top_channels(&net, &a, &scenes, 5, 6)")
        );
        assert!(code(":top-channels net --from a --data scenes --channel 3")
            .contains("channel_overlay(&net, &a, &scenes, 3, 6)"));
    }

    #[test]
    fn auic_aligns_activations_and_masks_from_files() {
        let c = code(":auic --acts acts.npy --masks masks.safetensors");
        let expected = "let acts_auic: glassbox::metrics::Inspectability = glassbox::runtime::or_raise(\
                        glassbox::metrics::align(&glassbox::runtime::or_raise(glassbox::metrics::files::read_activations(\
                        \"acts.npy\")), &glassbox::runtime::or_raise(glassbox::metrics::Masks::read(\
                        \"masks.safetensors\")), &glassbox::metrics::InspectConfig { ..Default::default() }));\nglassbox::display::Render::render(&acts_auic)";
        assert_eq!(c, expected);
        let c = code(
            r#":auic --acts "my runs/layer-3.v2.npz" --masks m.npz --categories part --exact --bins 64 --feature-res"#,
        );
        for part in [
            "let layer_3_v2_auic: glassbox::metrics::Inspectability",
            r#"read_activations("my runs/layer-3.v2.npz")"#,
            r#"Masks::read("m.npz")"#,
            "categories: Some(vec![glassbox::data::Category::Part]), exact: true, bins: 64, \
             resolution: glassbox::metrics::Resolution::Feature, ..Default::default()",
            "Render::render(&layer_3_v2_auic)",
        ] {
            assert!(c.contains(part), "{part}\n{c}");
        }
        assert!(code(":auic --acts out/3.npy --masks m.npz").starts_with("let acts_3_auic: "));
        assert!(code(":auic --masks m.npz --acts a.npy --as r").starts_with("let r: "));
    }

    #[test]
    fn auic_takes_a_model_or_files_never_a_mix() {
        let err = |line: &str| testing::error(line, &session(SESSION));
        let e = err(":auic");
        assert!(e.contains("needs something to align") && e.contains("--acts FILE --masks FILE"), "{e}");
        let e = err(":auic --layer stage2 --data scenes");
        assert!(e.contains("needs NET") && e.contains(":auic NET --layer STAGE --data DATA"), "{e}");
        let e = err(":auic net --layer stage2 --data scenes --acts a.npy --masks m.npz");
        assert!(e.contains("--acts replaces the model") && e.contains("`net`"), "{e}");
        assert!(err(":auic net --masks m.npz").contains("--masks replaces the model"));
        assert!(err(":auic --acts a.npy").contains("--acts needs --masks FILE"));
        assert!(err(":auic --masks m.npz").contains("--masks needs --acts FILE"));
        assert!(err(":auic --acts a.npy --masks m.npz --layer stage2").contains("--layer is for a model"));
        assert!(err(":auic --acts a.npy --masks m.npz --data scenes").contains("--data is for a model"));
        assert!(err(":auic --acts a.npy --masks m.npz --bins 1").contains("from 2 to 65536"));
        assert!(err(":auic --acts a.npy --masks m.npz --as 3d").contains("cannot name a variable"));
        assert!(err(":auic --acts --masks m.npz").contains("--acts needs a value"));
        assert!(err(":auic net other --layer stage2 --data scenes").contains("takes 0 to 1 argument(s)"));
        // The other pass commands still need their model.
        assert!(err(":dissect --layer stage2 --data scenes").contains("takes 1 argument(s), got 0"));
    }

    #[test]
    fn metric_commands_refuse_bad_input() {
        let err = |line: &str| testing::error(line, &session(SESSION));
        assert!(err(":auic net --data scenes").contains("needs --layer"));
        assert!(err(":auic net --layer stage2").contains("needs --data"));
        assert!(err(":auic net --layer stage2 --data scenes --bins 1").contains("from 2 to 65536"));
        assert!(err(":auic net --layer stage2 --data scenes --tolerance 2").contains("a number in [0, 0.5]"));
        assert!(code(":auic net --layer stage2 --data scenes --tolerance 1e-4").contains("tolerance: 0.0001"));
        assert!(err(":auic net --layer stage2 --data scenes --categories colors").contains("did you mean `colour`"));
        assert!(
            err(":inspect-curve a,net").contains("not a alignment result")
                || err(":inspect-curve a,net").contains("alignment result")
        );
        assert!(err(":top-channels net --data scenes").contains("needs --from"));
        assert!(err(":top-channels net --from a --data scenes --n 0").contains("a positive integer"));
    }
}
