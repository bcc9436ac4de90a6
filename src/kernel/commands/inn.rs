//! Commands for invertible interpretation (invariances paper, Rombach, Esser & Ommer):
//! `:autoencoder`, `:cinn`, `:samples`, `:invariance`, `:fgsm`, `:semantic-inn`, `:swap`,
//! `:factor-probe`, `:sensitivity`. They compile to calls into `glassbox::inn`.

use super::session::Kind;
use super::spec::{
    self, ints, numbers, ArgKind, ArgSpec, CommandSpec, End, FlagKind, FlagSpec, Invocation, UsageError, Value, INDEX,
};
use super::{Action, ReplView};

use crate::inn::{Autoencoder, LayerInn, SemanticInn, Sensitivity};
use crate::models::{LeNet, ScriptModel, TappedNet, VisionNet};
use std::any::type_name;

static AUTOENCODERS: Kind = Kind { what: "autoencoder", types: &[type_name::<Autoencoder>] };
static CINN_RESULTS: Kind = Kind { what: ":cinn result", types: &[type_name::<LayerInn<LeNet>>] };
static SEMANTIC_INNS: Kind = Kind { what: ":semantic-inn result", types: &[type_name::<SemanticInn>] };
/// The models an INN can keep a frozen copy of (`glassbox::inn::Frozen`).
static FROZEN: Kind = Kind {
    what: "tapped model",
    types: &[type_name::<LeNet>, type_name::<TappedNet>, type_name::<VisionNet>, type_name::<ScriptModel>],
};
static IMAGES: Kind = Kind { what: "ColorMNIST data set", types: &[type_name::<crate::data::ColorMnist>] };
const FACTORS: &[&str] = &["digit", "fg", "bg"];

const AE: FlagSpec =
    FlagSpec { name: "ae", kind: FlagKind::Text, help: "the autoencoder (default: the only one; see :autoencoder)" };
const DATA: FlagSpec = FlagSpec { name: "data", kind: FlagKind::Data, help: "ColorMNIST images (required)" };
const STEPS: FlagSpec = FlagSpec { name: "steps", kind: spec::COUNT, help: "training steps of each t (default 1000)" };
const SEED: FlagSpec = FlagSpec { name: "seed", kind: INDEX, help: "seeds weights, order and noise (default 0)" };
const COUNT: FlagSpec = FlagSpec { name: "count", kind: spec::COUNT, help: "how many images to show (default 6)" };
/// One sample shows nothing varying.
const N: FlagSpec = FlagSpec { name: "n", kind: ints(2, i64::MAX), help: "samples per image (default 6)" };
const AS: FlagSpec = FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind" };
const MODEL: ArgSpec = ArgSpec {
    name: "MODEL",
    kind: ArgKind::Model,
    required: true,
    help: "a variable holding the LeNet or TappedNet to interpret",
};
const SEMANTIC: ArgSpec =
    ArgSpec { name: "SEMANTIC", kind: ArgKind::Value, required: true, help: "a :semantic-inn result" };

pub static AUTOENCODER: CommandSpec = CommandSpec {
    name: "autoencoder",
    summary: "Loads an autoencoder E/D whose code z̄ holds everything about an image (invariances paper sec. \
              3.1), training it on first use and caching it like the zoo models; shows its card.",
    args: &[ArgSpec { name: "NAME", kind: ArgKind::Choice(&["colormnist-ae"]), required: true, help: "colormnist-ae" }],
    flags: &[FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind (default ae)" }],
    run: autoencoder,
};

pub static CINN: CommandSpec = CommandSpec {
    name: "cinn",
    summary: "Trains the conditional INN t of one layer (invariances paper eq. 1-5): v = t(z̄|z) for z̄ = E(x) \
              and the layer's representation z = Φ(x), by maximum likelihood with E and Φ frozen, on --data \
              but its last eighth, which measures the held-out NLL; binds it (default MODEL_LAYER_cinn).",
    args: &[MODEL],
    flags: &[
        FlagSpec {
            name: "layer",
            kind: FlagKind::Stages,
            help: "the stage whose representation conditions t (required)",
        },
        DATA,
        AE,
        STEPS,
        SEED,
        AS,
    ],
    run: cinn,
};

pub static SAMPLES: CommandSpec = CommandSpec {
    name: "samples",
    summary: "Decoded samples D(t⁻¹(v|Φ(x))), v ~ N(0, I), for images x (invariances paper eq. 2, fig. 3): \
              what the layer keeps stays fixed along a row, what it discards varies.",
    args: &[
        ArgSpec { name: "CINN", kind: ArgKind::Value, required: true, help: "a :cinn result" },
        ArgSpec {
            name: "IMAGES",
            kind: ArgKind::Value,
            required: true,
            help: "ColorMNIST images: DATA (its first --count) or DATA[a..b]",
        },
    ],
    flags: &[N, COUNT, SEED],
    run: samples,
};

pub static INVARIANCE: CommandSpec = CommandSpec {
    name: "invariance",
    summary: "Trains a t for each of several layers (binding each as MODEL_LAYER_cinn) and shows samples of \
              the same held-out images through every layer with the share of z̄'s variance each leaves open \
              and how often the model keeps its class on the samples (invariances paper fig. 3).",
    args: &[MODEL],
    flags: &[
        FlagSpec { name: "layers", kind: FlagKind::Stages, help: "the stages to interpret (required)" },
        DATA,
        AE,
        STEPS,
        N,
        COUNT,
        SEED,
    ],
    run: invariance,
};

pub static FGSM: CommandSpec = CommandSpec {
    name: "fgsm",
    summary: "Attacks images with one FGSM step and decodes each layer's attacked representation with the \
              original image's invariances v, D(t⁻¹(v|Φ(x*))): what the attack changed in that layer \
              (invariances paper sec. 4.3, fig. 5).",
    args: &[ArgSpec { name: "CINNS", kind: ArgKind::Value, required: true, help: "t's of one model: a,b,.." }],
    flags: &[
        DATA,
        FlagSpec {
            name: "eps",
            kind: numbers(End::Open(0.0), End::Closed(1.0)),
            help: "the attack's step; images are in [0, 1] (default 0.1)",
        },
        FlagSpec { name: "count", kind: spec::COUNT, help: "how many images to attack (default 8)" },
    ],
    run: fgsm,
};

pub static SEMANTIC_INN: CommandSpec = CommandSpec {
    name: "semantic-inn",
    summary: "Trains the semantic INN e (invariances paper eq. 6, after Esser et al. 2020): z̄ to a residual \
              and one factor per concept, learned from ColorMNIST pairs that share the concept, the shared \
              factor correlated by ρ = 0.975; sizes given or estimated from the pairs. Binds it.",
    args: &[ArgSpec { name: "AE", kind: ArgKind::Value, required: true, help: "the autoencoder" }],
    flags: &[
        FlagSpec { name: "factors", kind: FlagKind::ChoiceList(FACTORS), help: "the concepts (required)" },
        FlagSpec { name: "pairs", kind: spec::COUNT, help: "pairs per factor (default 12000)" },
        FlagSpec { name: "steps", kind: spec::COUNT, help: "training steps (default 1700)" },
        FlagSpec { name: "sizes", kind: FlagKind::List, help: "dimensions per factor (default: estimated)" },
        SEED,
        FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind (default semantic)" },
    ],
    run: semantic_inn,
};

pub static SWAP: CommandSpec = CommandSpec {
    name: "swap",
    summary: "Swaps each factor of e between images and donors and decodes (invariances paper eq. 7, fig. 7): \
              rows are the images, the donors, then one row per swapped factor.",
    args: &[SEMANTIC],
    flags: &[DATA, AE, COUNT],
    run: swap,
};

pub static FACTOR_PROBE: CommandSpec = CommandSpec {
    name: "factor-probe",
    summary: "How well a linear probe reads the digit class from each factor of e, beside all of z̄ and the \
              majority class: which factor holds the digit.",
    args: &[SEMANTIC],
    flags: &[DATA, AE],
    run: factor_probe,
};

pub static SENSITIVITY: CommandSpec = CommandSpec {
    name: "sensitivity",
    summary: "For checkpoints of a zoo classifier, a t on one layer and the semantic INN e: the share of each \
              factor's variation the layer captures, beside the checkpoint's accuracy (invariances paper \
              sec. 4.2, fig. 4); binds the result (default sensitivity).",
    args: &[ArgSpec { name: "ZOO", kind: ArgKind::Zoo, required: true, help: "a zoo model with checkpoints" }],
    flags: &[
        FlagSpec { name: "layer", kind: FlagKind::Text, help: "the stage (required)" },
        FlagSpec { name: "semantic", kind: FlagKind::Text, help: "the :semantic-inn result (required)" },
        DATA,
        AE,
        FlagSpec { name: "checkpoints", kind: FlagKind::List, help: "training steps (default: every checkpoint)" },
        FlagSpec { name: "steps", kind: spec::COUNT, help: "training steps of each t (default 500)" },
        FlagSpec { name: "samples", kind: ints(2, i64::MAX), help: "samples v per image (default 8)" },
        SEED,
        FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind (default sensitivity)" },
    ],
    run: sensitivity,
};

fn or_raise(call: String) -> String {
    format!("glassbox::runtime::or_raise({call})")
}

fn bind(var: &str, ty: &str, call: String) -> Action {
    Action::Rust(format!("let {var}: {ty} = {};\nglassbox::display::Render::render(&{var})", or_raise(call)))
}

fn seed(inv: &Invocation) -> i64 {
    inv.int("seed").unwrap_or(0)
}

fn ae<'a>(inv: &'a Invocation, view: &'a ReplView) -> Result<&'a str, UsageError> {
    if let Some(name) = inv.text("ae") {
        return AUTOENCODERS.variable(name, view);
    }
    AUTOENCODERS
        .chosen(inv, view, ":autoencoder colormnist-ae")
        .map_err(|e| UsageError(e.0.replace("choose one with --in", "choose one with --ae")))
}

/// The Rust path of the model variable's type, for `LayerInn<M>`.
fn model_type(model: &str, view: &ReplView) -> Result<String, UsageError> {
    let ty = view.variables.iter().find(|(n, _)| n == model).map(|(_, t)| t.as_str()).unwrap_or_default();
    frozen_path(model, ty)
}

/// The Rust path of `ty`, the type of `model`, when an INN can keep a frozen copy of it.
fn frozen_path(model: &str, ty: &str) -> Result<String, UsageError> {
    match FROZEN.which(ty) {
        Some(name) => Ok(format!("glassbox::models::{name}")),
        None => Err(UsageError(format!("`{model}` is a {ty}; an INN interprets a {}", FROZEN.names().join(", ")))),
    }
}

fn images<'a>(inv: &'a Invocation, view: &'a ReplView) -> Result<&'a str, UsageError> {
    IMAGES.data_flag(inv, view)
}

fn stages(inv: &Invocation, flag: &str) -> Result<Vec<String>, UsageError> {
    match inv.flags.get(flag) {
        Some(Value::List(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(UsageError(format!(":{} needs --{flag} STAGE,.. (Tab lists the model's stages)", inv.spec.name))),
    }
}

fn autoencoder(inv: &Invocation, _: &ReplView) -> Result<Action, UsageError> {
    let name = &inv.args[0];
    let names: Vec<&str> = crate::inn::autoencoder::NAMES.iter().map(|(n, _, _)| *n).collect();
    if !names.contains(&name.as_str()) {
        return Err(UsageError(format!("no autoencoder `{name}`; there are: {}", names.join(", "))));
    }
    let var = super::identifier(inv.text("as").unwrap_or("ae"))?;
    Ok(Action::Rust(format!(
        "let ({var}, {var}_card): (glassbox::inn::Autoencoder, glassbox::inn::autoencoder::Card) = {};\n\
         glassbox::display::Render::render(&{var}_card)",
        or_raise(format!("glassbox::inn::autoencoder::load({name:?}, glassbox::device())"))
    )))
}

fn cinn(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let model = FROZEN.variable(&inv.args[0], view)?;
    let ty = model_type(model, view)?;
    let layer = super::one_stage(inv, "layer")?;
    let data = images(inv, view)?;
    let ae = ae(inv, view)?;
    let (steps, seed) = (inv.int("steps").unwrap_or(1000), seed(inv));
    let default = super::derived_name(&[model, &layer, "cinn"]);
    let var = super::identifier(inv.text("as").unwrap_or(&default))?;
    Ok(bind(
        var,
        &format!("glassbox::inn::LayerInn<{ty}>"),
        format!("glassbox::cmd::cinn(&{model}, &{ae}, {layer:?}, &{data}, {steps}, {seed})"),
    ))
}

/// `DATA` or `DATA[a..b]` as Rust for the image tensor.
fn image_slice(text: &str, view: &ReplView, count: i64) -> Result<String, UsageError> {
    let bad = || UsageError(format!("IMAGES is a ColorMNIST variable, as DATA or DATA[a..b]; got `{text}`"));
    let Some((data, rest)) = text.split_once('[') else {
        let data = IMAGES.variable(text, view)?;
        return Ok(format!("glassbox::inn::interpret::first(&{data}.images, {count})"));
    };
    let data = IMAGES.variable(data.trim(), view)?;
    let range = rest.strip_suffix(']').ok_or_else(bad)?;
    let (a, b) = range.split_once("..").ok_or_else(bad)?;
    let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if b <= a {
        return Err(UsageError(format!("the range {a}..{b} is empty; give a..b with 0 <= a < b")));
    }
    Ok(format!("glassbox::runtime::or_raise({data}.images_in({a}..{b}))"))
}

fn samples(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let cinn = CINN_RESULTS.variable(&inv.args[0], view)?;
    let (n, count, seed) = (inv.int("n").unwrap_or(6), inv.int("count").unwrap_or(6), seed(inv));
    let x = image_slice(&inv.args[1], view, count)?;
    Ok(Action::Rust(format!(
        "glassbox::display::Render::render(&{})",
        or_raise(format!("{cinn}.samples(&{x}, {n}, {seed})"))
    )))
}

fn invariance(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let model = FROZEN.variable(&inv.args[0], view)?;
    let ty = model_type(model, view)?;
    let layers = stages(inv, "layers")?;
    let data = images(inv, view)?;
    let ae = ae(inv, view)?;
    let (steps, seed) = (inv.int("steps").unwrap_or(1000), seed(inv));
    let (n, count) = (inv.int("n").unwrap_or(6), inv.int("count").unwrap_or(6));
    let mut code = String::new();
    let mut vars = Vec::new();
    for layer in &layers {
        let var = super::identifier(&super::derived_name(&[model, layer, "cinn"]))?.to_owned();
        code.push_str(&format!(
            "let {var}: glassbox::inn::LayerInn<{ty}> = {};\n",
            or_raise(format!("glassbox::cmd::cinn(&{model}, &{ae}, {layer:?}, &{data}, {steps}, {seed})"))
        ));
        vars.push(format!("&{var}"));
    }
    code.push_str(&format!(
        "glassbox::display::Render::render(&{})",
        or_raise(format!("glassbox::cmd::invariance(&[{}], &{data}, {count}, {n}, {seed})", vars.join(", ")))
    ));
    Ok(Action::Rust(code))
}

fn fgsm(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let names: Vec<&str> = inv.args[0].split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if names.is_empty() {
        return Err(UsageError(":fgsm needs t's: CINN,CINN,.. (see :cinn or :invariance)".into()));
    }
    let cinns =
        names.iter().map(|n| CINN_RESULTS.variable(n, view).map(|v| format!("&{v}"))).collect::<Result<Vec<_>, _>>()?;
    let data = images(inv, view)?;
    let eps = inv.float("eps").unwrap_or(0.1);
    let count = inv.int("count").unwrap_or(8);
    Ok(Action::Rust(format!(
        "glassbox::display::Render::render(&{})",
        or_raise(format!("glassbox::cmd::fgsm(&[{}], &{data}, {count}, {eps:?})", cinns.join(", ")))
    )))
}

fn semantic_inn(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let ae = AUTOENCODERS.variable(&inv.args[0], view)?;
    let factors = match inv.flags.get("factors") {
        Some(Value::List(f)) if !f.is_empty() => f.clone(),
        _ => return Err(UsageError(format!(":semantic-inn needs --factors, some of {}", FACTORS.join(", ")))),
    };
    if let Some(twice) = factors.iter().enumerate().find(|(i, f)| factors[..*i].contains(f)).map(|(_, f)| f) {
        return Err(UsageError(format!("--factors names `{twice}` twice")));
    }
    let sizes = match inv.flags.get("sizes") {
        None => "None".to_owned(),
        Some(Value::List(s)) => {
            let parsed: Vec<i64> = s
                .iter()
                .map(|v| v.parse().ok().filter(|v: &i64| *v >= 1))
                .collect::<Option<_>>()
                .ok_or_else(|| UsageError(format!("--sizes takes positive integers; got {}", s.join(","))))?;
            if parsed.len() != factors.len() {
                return Err(UsageError(format!(
                    "--sizes gives {} sizes for {} factors ({})",
                    parsed.len(),
                    factors.len(),
                    factors.join(", ")
                )));
            }
            format!("Some(vec!{parsed:?})")
        }
        Some(_) => return Err(UsageError("--sizes takes a list, e.g. 4,3,3".into())),
    };
    let (pairs, steps, seed) = (inv.int("pairs").unwrap_or(12000), inv.int("steps").unwrap_or(1700), seed(inv));
    let var = super::identifier(inv.text("as").unwrap_or("semantic"))?;
    let call = or_raise(format!(
        "glassbox::inn::semantic::train_colormnist(&{ae}, &{factors:?}, {pairs}, {steps}, {sizes}, {seed})"
    ));
    Ok(Action::Rust(format!(
        "let ({var}, {var}_report): (glassbox::inn::SemanticInn, glassbox::inn::SemanticReport) = {call};\n\
         glassbox::display::Render::render(&{var}_report)"
    )))
}

fn swap(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let e = SEMANTIC_INNS.variable(&inv.args[0], view)?;
    let data = images(inv, view)?;
    let ae = ae(inv, view)?;
    let count = inv.int("count").unwrap_or(6);
    Ok(Action::Rust(format!(
        "glassbox::display::Render::render(&{})",
        or_raise(format!("glassbox::cmd::swap(&{e}, &{ae}, &{data}, {count})"))
    )))
}

fn factor_probe(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let e = SEMANTIC_INNS.variable(&inv.args[0], view)?;
    let data = images(inv, view)?;
    let ae = ae(inv, view)?;
    Ok(Action::Rust(format!(
        "glassbox::display::Render::render(&{})",
        or_raise(format!("glassbox::cmd::factor_probe(&{e}, &{ae}, &{data})"))
    )))
}

fn sensitivity(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let name = &inv.args[0];
    let ty = frozen_path(name, crate::zoo::type_of(name).map_err(|e| UsageError(e.to_string()))?)?;
    if name.contains('@') {
        return Err(UsageError(format!("give the zoo entry without a step (`{name}`); --checkpoints picks the steps")));
    }
    let Some(layer) = inv.text("layer") else {
        return Err(UsageError(":sensitivity needs --layer STAGE".into()));
    };
    let Some(e) = inv.text("semantic") else {
        return Err(UsageError(":sensitivity needs --semantic SEMANTIC, a :semantic-inn result".into()));
    };
    let e = SEMANTIC_INNS.variable(e, view)?;
    let data = images(inv, view)?;
    let ae = ae(inv, view)?;
    let checkpoints = match inv.flags.get("checkpoints") {
        None => "None".to_owned(),
        Some(Value::List(c)) => {
            let steps: Vec<usize> = c
                .iter()
                .map(|s| s.parse().ok())
                .collect::<Option<_>>()
                .ok_or_else(|| UsageError(format!("--checkpoints takes training steps; got {}", c.join(","))))?;
            format!("Some(&{steps:?}[..])")
        }
        Some(_) => return Err(UsageError("--checkpoints takes a list of steps, e.g. 0,640,1280".into())),
    };
    let (steps, samples, seed) = (inv.int("steps").unwrap_or(500), inv.int("samples").unwrap_or(8), seed(inv));
    let var = super::identifier(inv.text("as").unwrap_or("sensitivity"))?;
    Ok(bind(
        var,
        type_name::<Sensitivity>(),
        format!(
            "glassbox::cmd::sensitivity::<{ty}>({name:?}, {layer:?}, {checkpoints}, &{e}, &{ae}, &{data}, {steps}, \
             {samples}, {seed})"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{code, error, session};

    fn view() -> crate::kernel::commands::ReplView {
        session(&[
            ("net", "glassbox::models::lenet::LeNet"),
            ("ae", "glassbox::inn::autoencoder::Autoencoder"),
            ("digits", "glassbox::data::colormnist::ColorMnist"),
            ("net_head_cinn", "glassbox::inn::interpret::LayerInn<glassbox::models::lenet::LeNet>"),
            ("net_conv1_cinn", "glassbox::inn::interpret::LayerInn<glassbox::models::lenet::LeNet>"),
            ("semantic", "glassbox::inn::semantic::SemanticInn"),
            ("scenes", "glassbox::data::scenes::ConceptScenes"),
        ])
    }

    #[test]
    fn autoencoder_binds_the_cached_model_and_its_card() {
        let c = code(":autoencoder colormnist-ae", &view());
        assert!(c.starts_with("let (ae, ae_card)") && c.contains("autoencoder::load(\"colormnist-ae\""), "{c}");
        assert!(error(":autoencoder other-ae", &view()).contains("colormnist-ae"));
    }

    #[test]
    fn cinn_trains_one_layer_of_the_models_type() {
        let c = code(":cinn net --layer conv2 --data digits --steps 50 --seed 3", &view());
        assert!(c.starts_with("let net_conv2_cinn: glassbox::inn::LayerInn<glassbox::models::LeNet>"), "{c}");
        assert!(c.contains("glassbox::cmd::cinn(&net, &ae, \"conv2\", &digits, 50, 3)"), "{c}");
        assert!(error(":cinn net --data digits", &view()).contains("needs --layer"));
        assert!(error(":cinn net --layer conv2 --data digits --steps 0", &view())
            .contains("--steps expects a positive integer, got `0`"));
        assert!(
            error(":cinn net --layer conv2 --data scenes", &view()).contains("not a ColorMNIST data set (ColorMnist)")
        );
        assert!(error(":cinn digits --layer conv2 --data digits", &view()).contains("tapped model"));
        let none = session(&[("net", "LeNet"), ("digits", "ColorMnist")]);
        assert!(error(":cinn net --layer conv2 --data digits", &none).contains(":autoencoder colormnist-ae"));
    }

    #[test]
    fn samples_take_a_data_set_or_a_range() {
        let c = code(":samples net_head_cinn digits --n 4 --count 3", &view());
        assert!(c.contains("net_head_cinn.samples(&glassbox::inn::interpret::first(&digits.images, 3), 4, 0)"), "{c}");
        let c = code(":samples net_head_cinn digits[10..14]", &view());
        assert!(c.contains("glassbox::runtime::or_raise(digits.images_in(10..14))"), "{c}");
        assert!(error(":samples net_head_cinn digits[5..2]", &view()).contains("empty"));
        assert!(error(":samples net_head_cinn digits[a]", &view()).contains("DATA[a..b]"));
        assert!(error(":samples net digits", &view()).contains(":cinn result"));
        assert!(error(":samples net_head_cinn digits --n 1", &view()).contains("an integer of at least 2"));
    }

    #[test]
    fn invariance_binds_a_t_per_layer_and_measures_them_together() {
        let c = code(":invariance net --layers conv1,head --data digits --steps 20 --n 3 --count 2", &view());
        assert!(c.contains("let net_conv1_cinn: glassbox::inn::LayerInn<glassbox::models::LeNet>"), "{c}");
        assert!(c.contains("let net_head_cinn:"), "{c}");
        assert!(c.contains("glassbox::cmd::invariance(&[&net_conv1_cinn, &net_head_cinn], &digits, 2, 3, 0)"), "{c}");
        assert!(error(":invariance net --data digits", &view()).contains("needs --layers"));
    }

    #[test]
    fn fgsm_attacks_with_every_named_t() {
        let c = code(":fgsm net_conv1_cinn,net_head_cinn --data digits --eps 0.05 --count 4", &view());
        assert!(c.contains("glassbox::cmd::fgsm(&[&net_conv1_cinn, &net_head_cinn], &digits, 4, 0.05)"), "{c}");
        assert!(error(":fgsm net_head_cinn --data digits --eps 2", &view()).contains("(0, 1]"));
        assert!(error(":fgsm net_head_cinn --data digits --eps 0", &view()).contains("(0, 1]"));
        assert!(error(":fgsm net_head_cinn,semantic --data digits", &view()).contains(":cinn result"));
    }

    #[test]
    fn semantic_inn_checks_factors_and_sizes() {
        let c = code(":semantic-inn ae --factors digit,fg --sizes 4,3 --pairs 100 --steps 10", &view());
        assert!(c.starts_with("let (semantic, semantic_report)"), "{c}");
        assert!(c.contains("train_colormnist(&ae, &[\"digit\", \"fg\"], 100, 10, Some(vec![4, 3]), 0)"), "{c}");
        assert!(code(":semantic-inn ae --factors bg", &view()).contains("1700, None, 0)"));
        assert!(error(":semantic-inn ae", &view()).contains("needs --factors"));
        assert!(error(":semantic-inn ae --factors colour", &view()).contains("digit, fg, bg"));
        assert!(error(":semantic-inn ae --factors fg,fg", &view()).contains("twice"));
        assert!(error(":semantic-inn ae --factors fg,bg --sizes 3", &view()).contains("1 sizes for 2 factors"));
        assert!(error(":semantic-inn ae --factors fg --sizes x", &view()).contains("positive integers"));
        assert!(error(":semantic-inn net --factors fg", &view()).contains("autoencoder"));
    }

    #[test]
    fn swap_and_probe_use_the_semantic_inn_and_the_autoencoder() {
        let c = code(":swap semantic --data digits --count 4", &view());
        assert!(c.contains("glassbox::cmd::swap(&semantic, &ae, &digits, 4)"), "{c}");
        let c = code(":factor-probe semantic --data digits", &view());
        assert!(c.contains("glassbox::cmd::factor_probe(&semantic, &ae, &digits)"), "{c}");
        assert!(error(":swap ae --data digits", &view()).contains(":semantic-inn result"));
    }

    #[test]
    fn sensitivity_loads_the_checkpoints_of_a_zoo_model() {
        let line = ":sensitivity colormnist-lenet --layer conv2 --semantic semantic --data digits --checkpoints 0,640";
        let c = code(line, &view());
        assert!(
            c.contains("glassbox::cmd::sensitivity::<glassbox::models::LeNet>(\"colormnist-lenet\", \"conv2\", Some(&[0, 640][..])"),
            "{c}"
        );
        assert!(c.starts_with("let sensitivity: glassbox::inn::sensitivity::Sensitivity = "), "{c}");
        assert!(code(&format!("{line} --as early"), &view()).starts_with("let early: "));
        assert!(
            error(":sensitivity nothing --layer conv2 --semantic semantic --data digits", &view()).contains("nothing")
        );
        assert!(error(":sensitivity colormnist-lenet@128 --layer conv2 --semantic semantic --data digits", &view())
            .contains("without a step"));
        assert!(error(":sensitivity colormnist-lenet --semantic semantic --data digits", &view()).contains("--layer"));
        assert!(error(":sensitivity colormnist-lenet --layer conv2 --data digits", &view()).contains("--semantic"));
        let bad = ":sensitivity colormnist-lenet --layer conv2 --semantic semantic --data digits --checkpoints a";
        assert!(error(bad, &view()).contains("training steps"));
    }
}
