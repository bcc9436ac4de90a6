//! Commands about models: `:layers`.

use super::parse::{Invocation, UsageError, Value};
use super::spec::{ArgKind, ArgSpec, CommandSpec, FlagKind, FlagSpec};
use super::{Action, ReplView};

pub static LAYERS: CommandSpec = CommandSpec {
    name: "layers",
    summary: "Lists a model's stages with their channels and output shapes for one input.",
    args: &[ArgSpec { name: "MODEL", kind: ArgKind::Model, required: true, help: "a variable holding a tapped model" }],
    flags: &[
        FlagSpec { name: "size", kind: FlagKind::Text, help: "input size, `H` or `HxW` (default 32)" },
        FlagSpec { name: "only", kind: FlagKind::Stages, help: "show only these stages" },
    ],
    run: layers,
};

fn layers(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let model = super::typed_variable(&inv.args[0], view, super::MODEL_TYPES, "tapped model")?;
    let (h, w) = match inv.flags.get("size") {
        Some(Value::Text(t)) => parse_size(t)?,
        _ => (32, 32),
    };
    let only = match inv.flags.get("only") {
        Some(Value::List(stages)) => stages.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "),
        _ => String::new(),
    };
    Ok(Action::Rust(format!("glassbox::models::report::show_layers(&{model}, ({h}, {w}), &[{only}])")))
}

fn parse_size(text: &str) -> Result<(i64, i64), UsageError> {
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
        assert_eq!(code, r#"glassbox::models::report::show_layers(&net, (64, 48), &["stage1", "head"])"#);
        assert!(run(":layers n", &view()).unwrap_err().0.contains("not a tapped model"));
        assert!(run(":layers nett", &view()).unwrap_err().0.contains("the tapped models in this session: net"));
        assert!(run(":layers net --size 0", &view()).unwrap_err().0.contains("--size expects"));
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
