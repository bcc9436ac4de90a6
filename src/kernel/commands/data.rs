//! Commands about data sets: `:show`.

use super::parse::{Invocation, UsageError, Value};
use super::spec::{ArgKind, ArgSpec, CommandSpec, FlagKind, FlagSpec};
use super::{Action, ReplView};

pub static SHOW: CommandSpec = CommandSpec {
    name: "show",
    summary: "Shows the first images of a data set and, under them, their label maps of one concept category.",
    args: &[ArgSpec {
        name: "DATA",
        kind: ArgKind::Dataset,
        required: true,
        help: "a variable holding a concept data set",
    }],
    flags: &[
        FlagSpec { name: "n", kind: FlagKind::Int, help: "how many images (default 8)" },
        FlagSpec {
            name: "category",
            kind: FlagKind::Choice(&["object", "part", "material", "colour"]),
            help: "whose label maps to draw (default object)",
        },
        FlagSpec { name: "columns", kind: FlagKind::Int, help: "images per row (default 8)" },
    ],
    run: show,
};

fn show(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let data = super::typed_variable(&inv.args[0], view, super::DATASET_TYPES, "concept data set")?;
    let positive = |flag: &str, default: i64| match inv.int(flag).unwrap_or(default) {
        v if v > 0 => Ok(v),
        v => Err(UsageError(format!("--{flag} must be a positive integer, got {v}"))),
    };
    let (n, columns) = (positive("n", 8)?, positive("columns", 8)?);
    let category = match inv.flags.get("category") {
        Some(Value::Text(c)) => format!("Some({c:?})"),
        _ => "None".into(),
    };
    Ok(Action::Rust(format!("glassbox::viz::sample::show_sample(&{data}, {n}, {category}, {columns});")))
}

#[cfg(test)]
mod tests {
    use super::super::run;
    use super::*;

    #[test]
    fn show_checks_its_variable_and_flags() {
        let view = ReplView { variables: vec![("scenes".into(), "ConceptScenes".into())], timing: false };
        let Action::Rust(code) = run(":show scenes --n 4 --category part", &view).unwrap() else { panic!() };
        assert_eq!(code, r#"glassbox::viz::sample::show_sample(&scenes, 4, Some("part"), 8);"#);
        assert!(run(":show scenes --n 0", &view).unwrap_err().0.contains("positive"));
        assert!(run(":show scenes --category parts", &view).unwrap_err().0.contains("did you mean `part`"));
        assert!(run(":show nothing", &view).unwrap_err().0.contains("the concept data sets in this session: scenes"));
    }
}
