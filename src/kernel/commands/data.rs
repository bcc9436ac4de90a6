//! Commands about data sets: `:data`, `:show`.

use super::session::CONCEPT_DATA;
use super::spec::{ArgKind, ArgSpec, CommandSpec, FlagKind, FlagSpec, Invocation, UsageError, Value, COUNT, INDEX};
use super::{Action, ReplView};

/// The data sets `:data` makes, with the flags each takes.
const SOURCES: &[(&str, &[&str])] = &[
    ("scenes", &["n", "seed", "size", "objects", "as"]),
    ("colormnist", &["n", "seed", "size", "split", "as"]),
    ("broden", &["path", "n", "size", "split", "as"]),
    ("cityscapes", &["path", "n", "size", "split", "as"]),
];

pub static DATA: CommandSpec = CommandSpec {
    name: "data",
    summary: "Makes a data set and binds it to a variable (named after it, or --as): procedural concept \
              scenes, ColorMNIST from the digits stored at set-up, or Broden / Cityscapes read from --path.",
    args: &[ArgSpec {
        name: "NAME",
        kind: ArgKind::Choice(&["scenes", "colormnist", "broden", "cityscapes"]),
        required: true,
        help: "scenes, colormnist, broden or cityscapes",
    }],
    flags: &[
        FlagSpec { name: "n", kind: COUNT, help: "how many images (scenes 500, colormnist 1000; real sets: all)" },
        FlagSpec { name: "seed", kind: INDEX, help: "generator seed (default: the :seed)" },
        FlagSpec {
            name: "size",
            kind: FlagKind::Text,
            help: "image size `S` or `HxW` (scenes 64, colormnist 32, broden 224, cityscapes 256x512)",
        },
        FlagSpec {
            name: "objects",
            kind: FlagKind::Text,
            help: "scenes: objects per scene, `N` or `A-B` drawn uniformly (default 1-4)",
        },
        FlagSpec {
            name: "split",
            kind: FlagKind::Text,
            help: "colormnist: train|test; broden: train|val; cityscapes: train|val|test",
        },
        FlagSpec {
            name: "path",
            kind: FlagKind::Text,
            help: "the data set's root folder on disk (broden, cityscapes)",
        },
        FlagSpec { name: "as", kind: FlagKind::Text, help: "the variable to bind (default: NAME)" },
    ],
    run: data,
};

fn data(inv: &Invocation, _: &ReplView) -> Result<Action, UsageError> {
    let name = inv.args[0].as_str();
    let Some((_, allowed)) = SOURCES.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = SOURCES.iter().map(|(n, _)| *n).collect();
        let hint = super::parse::suggest(name, names.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(UsageError(format!("no data set `{name}`{hint}; :data makes {}", names.join(", "))));
    };
    if let Some(flag) = inv.flags.keys().find(|f| !allowed.contains(f)) {
        return Err(UsageError(format!("--{flag} does not apply to {name}; it takes --{}", allowed.join(", --"))));
    }
    let var = super::identifier(inv.text("as").unwrap_or(name))?;
    let n = inv.int("n");
    let seed = inv.int("seed").map_or_else(|| "glassbox::seed::current()".into(), |s| s.to_string());
    let size = inv.text("size").map(super::models::parse_size).transpose()?;
    let square = |default: usize| match size {
        Some((h, w)) if h != w => {
            Err(UsageError(format!("{name} images are square; --size takes one number, got {h}x{w}")))
        }
        Some((h, _)) => Ok(h as usize),
        None => Ok(default),
    };
    let split = |allowed: &[&str]| -> Result<Option<String>, UsageError> {
        match inv.text("split") {
            Some(s) if !allowed.contains(&s) => {
                Err(UsageError(format!("--split for {name} is one of {}, got `{s}`", allowed.join(", "))))
            }
            s => Ok(s.map(str::to_owned)),
        }
    };
    let path = || {
        inv.text("path")
            .map(|p| format!("{p:?}"))
            .ok_or_else(|| UsageError(format!("{name} is read from disk: give its root folder with --path DIR")))
    };
    let max_images = n.map_or("None".into(), |n| format!("Some({n})"));
    let objects = inv.text("objects").map(objects_per_scene).transpose()?;
    let (ty, make) = match name {
        "scenes" => (
            "ConceptScenes",
            format!(
                "glassbox::data::ConceptScenes::generate({}, &glassbox::data::SceneConfig {{ size: {}, seed: {seed}, {}..Default::default() }})",
                n.unwrap_or(500),
                square(64)?,
                objects.map_or(String::new(), |r| format!("objects: {}..={}, ", r.start(), r.end()))
            ),
        ),
        "colormnist" => {
            let split = if split(&["train", "test"])?.as_deref() == Some("test") { "Test" } else { "Train" };
            (
                "ColorMnist",
                format!(
                    "glassbox::cmd::colormnist({}, &glassbox::data::ColorMnistConfig {{ size: {}, split: glassbox::data::Split::{split}, seed: {seed} }})",
                    n.unwrap_or(1000),
                    square(32)?
                ),
            )
        }
        "broden" => {
            let (h, w) = size.unwrap_or((224, 224));
            let split = split(&["train", "val"])?.map_or("None".into(), |s| format!("Some({s:?}.into())"));
            (
                "Broden",
                format!(
                    "glassbox::data::Broden::load({}, &glassbox::data::BrodenConfig {{ split: {split}, max_images: {max_images}, size: ({h}, {w}) }})",
                    path()?
                ),
            )
        }
        _ => {
            let (h, w) = size.unwrap_or((256, 512));
            let split = split(&["train", "val", "test"])?.unwrap_or_else(|| "train".into());
            (
                "Cityscapes",
                format!(
                    "glassbox::data::Cityscapes::load({}, &glassbox::data::CityscapesConfig {{ split: {split:?}.into(), max_images: {max_images}, size: ({h}, {w}) }})",
                    path()?
                ),
            )
        }
    };
    Ok(Action::Rust(format!(
        "let {var}: glassbox::data::{ty} = glassbox::runtime::or_raise({make});\n\
         glassbox::display::Render::render(&{var})"
    )))
}

/// `--objects N` or `--objects A-B`, checked as the scene generator checks it.
fn objects_per_scene(text: &str) -> Result<std::ops::RangeInclusive<usize>, UsageError> {
    let bad = || UsageError(format!("--objects takes a count `N` or a range `A-B` of objects per scene, got `{text}`"));
    let count = |t: &str| t.trim().parse::<usize>().map_err(|_| bad());
    let range = match text.split_once('-') {
        Some((a, b)) => count(a)?..=count(b)?,
        None => count(text)?..=count(text)?,
    };
    let config = crate::data::SceneConfig { objects: range.clone(), ..Default::default() };
    config.validate().map_err(|e| UsageError(format!("--objects: {e}")))?;
    Ok(range)
}

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
        FlagSpec { name: "n", kind: COUNT, help: "how many images (default 8)" },
        FlagSpec {
            name: "category",
            kind: FlagKind::Choice(&["object", "part", "material", "colour"]),
            help: "whose label maps to draw (default object)",
        },
        FlagSpec { name: "columns", kind: COUNT, help: "images per row (default 8)" },
    ],
    run: show,
};

fn show(inv: &Invocation, view: &ReplView) -> Result<Action, UsageError> {
    let data = CONCEPT_DATA.variable(&inv.args[0], view)?;
    let (n, columns) = (inv.int("n").unwrap_or(8), inv.int("columns").unwrap_or(8));
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
    fn data_makes_each_source_with_its_own_flags() {
        let view = ReplView::default();
        let Action::Rust(code) = run(":data scenes --n 40 --seed 3 --size 32", &view).unwrap() else { panic!() };
        assert!(code.starts_with("let scenes: glassbox::data::ConceptScenes = "), "{code}");
        assert!(code.contains("generate(40, ") && code.contains("size: 32, seed: 3"), "{code}");
        let Action::Rust(code) = run(":data scenes --objects 1 --as one", &view).unwrap() else { panic!() };
        assert!(code.contains("objects: 1..=1, ..Default::default()"), "{code}");
        let Action::Rust(code) = run(":data scenes --objects 2-3", &view).unwrap() else { panic!() };
        assert!(code.contains("objects: 2..=3, "), "{code}");
        assert!(run(":data scenes --objects 3-2", &view).unwrap_err().0.contains("--objects: invalid"));
        assert!(run(":data scenes --objects 1000", &view).unwrap_err().0.contains("at most 16 objects"));
        assert!(run(":data scenes --objects many", &view).unwrap_err().0.contains("a count `N` or a range `A-B`"));
        assert!(run(":data colormnist --objects 1", &view).unwrap_err().0.contains("does not apply"));
        let Action::Rust(code) = run(":data colormnist --split test --as digits", &view).unwrap() else { panic!() };
        assert!(code.starts_with("let digits: glassbox::data::ColorMnist") && code.contains("Split::Test"), "{code}");
        let Action::Rust(code) = run(":data broden --path /d/broden --size 112 --n 5", &view).unwrap() else {
            panic!()
        };
        assert!(
            code.contains(r#"Broden::load("/d/broden""#)
                && code.contains("size: (112, 112)")
                && code.contains("Some(5)"),
            "{code}"
        );
        let Action::Rust(code) = run(":data cityscapes --path c --split val", &view).unwrap() else { panic!() };
        assert!(code.contains(r#"split: "val".into()"#) && code.contains("size: (256, 512)"), "{code}");
        assert!(run(":data broden", &view).unwrap_err().0.contains("--path DIR"));
        assert!(run(":data scenes --path x", &view).unwrap_err().0.contains("--path does not apply to scenes"));
        assert!(run(":data colormnist --split val", &view).unwrap_err().0.contains("train, test"));
        assert!(run(":data scenes --size 32x48", &view).unwrap_err().0.contains("square"));
        assert!(run(":data scenes --n 0", &view).unwrap_err().0.contains("positive"));
        assert!(run(":data scene", &view).unwrap_err().0.contains("did you mean `scenes`"));
        let line = ":data co";
        let (_, _, m) = super::super::complete(line, line.len(), &view, &mut super::super::NoLiveValues).unwrap();
        assert_eq!(m, ["colormnist"]);
    }

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
