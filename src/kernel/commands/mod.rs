//! The `:command` language. A cell line that starts with `:` and names a glassbox command is
//! parsed here (against its [`spec::CommandSpec`]) and becomes an [`Action`]; most actions
//! are Rust code that calls the library in the REPL, so a command works on the same
//! variables as the cell's Rust lines. `:` lines that are evcxr's own commands (`:dep`,
//! `:opt`, ...) pass through to evcxr. Method commands of later issues join [`REGISTRY`].

mod bottleneck;
mod builtin;
mod completion;
mod data;
mod emit;
#[cfg(test)]
mod emitted;
mod inn;
mod metrics;
mod models;
mod net2vec;
pub mod parse;
mod session;
mod sevec;
pub mod spec;

pub use completion::{complete, LiveValues, NoLiveValues};
pub use emit::{categories, derived_name, identifier, one_stage};
use spec::CommandSpec;
pub use spec::{Invocation, UsageError};

/// Every glassbox command.
pub static REGISTRY: &[&CommandSpec] = &[
    &builtin::HELP,
    &builtin::DEVICE,
    &builtin::VARS,
    &builtin::TIME,
    &builtin::SEED,
    &data::DATA,
    &data::SHOW,
    &models::MODEL,
    &models::LAYERS,
    &models::TRAIN,
    &models::EVAL,
    &bottleneck::SSB,
    &bottleneck::USB,
    &bottleneck::PLAIN,
    &bottleneck::SB_REPORT,
    &bottleneck::SWEEP_USB,
    &metrics::AUIC,
    &metrics::DISSECT,
    &metrics::INSPECT_CURVE,
    &metrics::TOP_CHANNELS,
    &net2vec::NET2VEC,
    &net2vec::NEAREST,
    &net2vec::ARITH,
    &net2vec::EMBED_DISTANCE,
    &sevec::SEVEC,
    &sevec::DIVERSITY,
    &sevec::RELEVANCE,
    &sevec::SALIENCY,
    &sevec::POINTING_GAME,
    &inn::AUTOENCODER,
    &inn::CINN,
    &inn::SAMPLES,
    &inn::INVARIANCE,
    &inn::FGSM,
    &inn::SEMANTIC_INN,
    &inn::SWAP,
    &inn::FACTOR_PROBE,
    &inn::SENSITIVITY,
];

/// evcxr's own commands, passed through untouched (glassbox's `:help` and `:vars` replace
/// evcxr's versions).
pub const EVCXR_COMMANDS: &[&str] = &[
    "internal_debug",
    "load_config",
    "version",
    "type",
    "t",
    "preserve_vars_on_panic",
    "clear",
    "restart",
    "dep",
    "show_deps",
    "last_compile_dir",
    "opt",
    "fmt",
    "types",
    "efmt",
    "toolchain",
    "offline",
    "allow_static_linking",
    "timing",
    "time_passes",
    "sccache",
    "cache",
    "clear_cache",
    "linker",
    "codegen_backend",
    "explain",
    "build_env",
    "env",
    "last_error_json",
    "doc",
];

/// What the REPL knows that commands may use: its variables and settings.
#[derive(Debug, Default, Clone)]
pub struct ReplView {
    /// (name, type) of every variable, as evcxr reports them.
    pub variables: Vec<(String, String)>,
    pub timing: bool,
}

/// What a command does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Rust code to run in the REPL; its value (if any) is the command's result.
    Rust(String),
    /// Text shown as the command's output.
    Show(String),
    /// Text for the pager (`?CMD`).
    Page(String),
    /// Rust statements that only set state in the REPL child: they run just before the next
    /// code that compiles, on its first line, so the command itself answers at once and no
    /// compilation is spent on it. Nothing in the child can observe the difference: only
    /// compiled code runs there.
    Defer(String),
    /// The variables table (`:vars`): the REPL's variables and types, and what each tensor
    /// holds, asked from the child between cells (src/vars_socket.rs) rather than compiled.
    ShowVariables,
    /// Turn per-cell timing on, off, or toggle it (`None`).
    SetTiming(Option<bool>),
}

/// One piece of a cell, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Rust lines (and evcxr commands); `first_line` is their first line in the cell.
    Rust { code: String, first_line: usize },
    /// A glassbox command line.
    Command { line: String, line_no: usize },
}

pub fn find(name: &str) -> Option<&'static CommandSpec> {
    REGISTRY.iter().copied().find(|c| c.name == name)
}

fn command_name(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix(':').or_else(|| line.trim_start().strip_prefix('?'))?;
    let word = rest.split_whitespace().next()?;
    Some(word.strip_suffix('?').unwrap_or(word))
        .filter(|n| n.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-'))
}

/// The command a line asks the usage of: `?name`, or `:name?` as IPython's `name?`.
fn help_request(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    if let Some(name) = trimmed.strip_prefix('?') {
        return Some(name.trim());
    }
    trimmed.strip_prefix(':')?.strip_suffix('?').filter(|name| !name.contains(char::is_whitespace))
}

/// Whether a line is for glassbox (a glassbox command, `?name`, or an unknown `:name` that
/// deserves an error) rather than Rust or evcxr.
fn is_glassbox_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    match command_name(line) {
        Some(name) if trimmed.starts_with('?') => find(name).is_some(),
        Some(name) => !EVCXR_COMMANDS.contains(&name),
        None => false,
    }
}

/// Whether the cell asks to end the session, as `exit` and `quit` do in Python consoles:
/// the cell is one of `exit`, `quit`, `exit()`, `quit()`, `:quit`, and no variable of that
/// name hides it. (evcxr's `:quit` would end the kernel process instead.)
pub fn asks_to_exit(code: &str, view: &ReplView) -> bool {
    let word = code.trim().trim_end_matches(';').trim_end();
    let word = word.strip_suffix("()").unwrap_or(word);
    match word {
        ":quit" => true,
        "exit" | "quit" => !view.variables.iter().any(|(name, _)| name == word),
        _ => false,
    }
}

/// Splits a cell into Rust and command segments, keeping line numbers.
pub fn split_cell(code: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut rust: Vec<&str> = Vec::new();
    let mut first = 1;
    for (i, line) in code.lines().enumerate() {
        if is_glassbox_line(line) {
            if rust.iter().any(|l| !l.trim().is_empty()) {
                segments.push(Segment::Rust { code: rust.join("\n"), first_line: first });
            }
            rust.clear();
            segments.push(Segment::Command { line: line.trim().to_owned(), line_no: i + 1 });
            first = i + 2;
        } else {
            rust.push(line);
        }
    }
    if rust.iter().any(|l| !l.trim().is_empty()) {
        segments.push(Segment::Rust { code: rust.join("\n"), first_line: first });
    }
    segments
}

/// Parses and runs one command line into its action.
pub fn run(line: &str, view: &ReplView) -> Result<Action, UsageError> {
    let trimmed = line.trim();
    if let Some(name) = help_request(trimmed) {
        return Ok(Action::Page(lookup(name)?.help()));
    }
    let words = parse::words(trimmed.trim_start_matches(':'))?;
    let (name, rest) = words.split_first().ok_or_else(|| UsageError("an empty command; try :help".into()))?;
    let spec = lookup(name)?;
    let invocation = parse::parse(spec, rest)?;
    (spec.run)(&invocation, view)
}

fn lookup(name: &str) -> Result<&'static CommandSpec, UsageError> {
    find(name).ok_or_else(|| {
        let names = REGISTRY.iter().map(|c| c.name).chain(EVCXR_COMMANDS.iter().copied());
        let hint = parse::suggest(name, names).map(|s| format!(" Did you mean :{s}?")).unwrap_or_default();
        UsageError(format!("unknown command :{name}.{hint} See :help for the list."))
    })
}

/// Usage of the command under the cursor, for `inspect_request`.
pub fn inspect(line: &str) -> Option<String> {
    let name = command_name(line)?;
    find(name).map(|spec| spec.help())
}

/// For the command modules' tests: a session holding some variables, and what a line
/// compiles to there or the usage error it gives.
#[cfg(test)]
mod testing {
    use super::{run, Action, ReplView};

    pub fn session(variables: &[(&str, &str)]) -> ReplView {
        ReplView { variables: variables.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(), timing: false }
    }

    pub fn code(line: &str, view: &ReplView) -> String {
        match run(line, view) {
            Ok(Action::Rust(code)) => code,
            other => panic!("{line}: {other:?}"),
        }
    }

    pub fn error(line: &str, view: &ReplView) -> String {
        run(line, view).unwrap_err().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// docs/kernel.md's command table, as each command's flags: the usages in a row's first
    /// column (`:name ARGS [--flag V]`), merged per command; `true` where a usage elides flags
    /// with `[...]`.
    fn documented_commands() -> BTreeMap<String, (BTreeSet<String>, bool)> {
        let docs = include_str!("../../../docs/kernel.md");
        let mut found: BTreeMap<String, (BTreeSet<String>, bool)> = BTreeMap::new();
        for row in docs.lines().filter(|l| l.starts_with("| `")) {
            let first = row.trim_start_matches('|').split(" | ").next().unwrap_or_default();
            for usage in first.split('`').skip(1).step_by(2).filter(|u| u.starts_with(':')) {
                let name = usage[1..].split_whitespace().next().unwrap_or_default().to_string();
                let entry = found.entry(name).or_default();
                entry.1 |= usage.contains("[...]");
                for word in usage.split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == '=') {
                    if let Some(flag) = word.strip_prefix("--") {
                        entry.0.insert(flag.to_string());
                    }
                }
            }
        }
        found
    }

    #[test]
    fn the_command_table_in_the_docs_matches_the_specs() {
        let documented = documented_commands();
        let registered: BTreeSet<&str> = REGISTRY.iter().map(|c| c.name).collect();
        let in_docs: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
        assert_eq!(in_docs, registered, "docs/kernel.md's command table against REGISTRY");
        for spec in REGISTRY {
            let (flags, elided) = &documented[spec.name];
            let real: BTreeSet<String> = spec.flags.iter().map(|f| f.name.to_string()).collect();
            let unknown: Vec<&String> = flags.difference(&real).collect();
            assert!(unknown.is_empty(), ":{} documents flags it does not take: {unknown:?}", spec.name);
            let missing: Vec<&String> = real.difference(flags).collect();
            assert!(*elided || missing.is_empty(), ":{} leaves out {missing:?} without `[...]`", spec.name);
        }
    }

    fn view() -> ReplView {
        ReplView { variables: vec![("net".into(), "Net".into()), ("x".into(), "Tensor".into())], timing: false }
    }

    #[test]
    fn exit_and_quit_end_the_session_unless_a_variable_has_the_name() {
        for cell in ["exit", "quit", " exit() ", "quit;", ":quit"] {
            assert!(asks_to_exit(cell, &view()), "{cell}");
        }
        for cell in ["exit(1)", "std::process::exit", "let exit = 1;", "exit\n1"] {
            assert!(!asks_to_exit(cell, &view()), "{cell}");
        }
        let shadowed = ReplView { variables: vec![("exit".into(), "i32".into())], timing: false };
        assert!(!asks_to_exit("exit", &shadowed));
        assert!(is_glassbox_line(":quit"), "evcxr's :quit would end the kernel process");
    }

    #[test]
    fn cells_split_into_rust_and_commands_in_order() {
        let cell = "let a = 1;\n:seed 3\n:dep rand = \"0.8\"\nlet b = a + 1;\nb";
        assert_eq!(
            split_cell(cell),
            vec![
                Segment::Rust { code: "let a = 1;".into(), first_line: 1 },
                Segment::Command { line: ":seed 3".into(), line_no: 2 },
                Segment::Rust { code: ":dep rand = \"0.8\"\nlet b = a + 1;\nb".into(), first_line: 3 },
            ]
        );
        assert_eq!(split_cell("?seed"), vec![Segment::Command { line: "?seed".into(), line_no: 1 }]);
        // A question mark that is Rust (the try operator on its own line) is not a command.
        assert!(matches!(split_cell("f()\n?")[0], Segment::Rust { .. }));
    }

    #[test]
    fn unknown_commands_suggest_the_closest() {
        let e = run(":sed 4", &view()).unwrap_err().0;
        assert!(e.contains("unknown command :sed") && e.contains("Did you mean :seed?"), "{e}");
    }

    #[test]
    fn help_lists_commands_and_shows_usage() {
        let Action::Show(all) = run(":help", &view()).unwrap() else { panic!() };
        for c in REGISTRY {
            assert!(all.contains(&format!(":{}", c.name)), "{all}");
        }
        let Action::Show(one) = run(":help seed", &view()).unwrap() else { panic!() };
        assert!(one.starts_with(":seed N"), "{one}");
        let Action::Page(page) = run("?seed", &view()).unwrap() else { panic!() };
        assert_eq!(page, one);
        let Action::Page(page) = run(":seed?", &view()).unwrap() else { panic!() };
        assert_eq!(page, one);
        assert!(matches!(&split_cell(":ssb?")[..], [Segment::Command { line, .. }] if line == ":ssb?"));
        assert!(run(":sed?", &view()).unwrap_err().0.contains("Did you mean :seed?"));
        let Action::Show(train) = run(":help train", &view()).unwrap() else { panic!() };
        assert!(train.contains("--epochs") && train.contains("(default 10); a positive integer"), "{train}");
        assert!(train.contains("(default 0.9); a number in [0, 1)"), "{train}");
    }

    #[test]
    fn inspect_shows_the_usage_of_the_command_under_the_cursor() {
        assert!(inspect(":vars").unwrap().starts_with(":vars"));
        assert!(inspect("let x").is_none());
    }
}
