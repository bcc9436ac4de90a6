//! Tab completion of a command line: command names, flags, choice values, and the session's
//! variables of the kinds an argument takes (stages from the live model).

use super::spec::{self, CommandSpec};
use super::{find, session, ReplView, EVCXR_COMMANDS, REGISTRY};

/// What completion may ask of the live session beyond its variable list.
pub trait LiveValues {
    /// The stage names of the model held by variable `model` (empty if it holds none).
    fn stages(&mut self, model: &str) -> Vec<String>;
}

/// No live session (tests, or a REPL that did not start).
pub struct NoLiveValues;

impl LiveValues for NoLiveValues {
    fn stages(&mut self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// Completions for a command line at `cursor` (a byte offset into `line`): the replaced
/// range within the line and the candidates. `None` when the line is not a command.
pub fn complete(
    line: &str,
    cursor: usize,
    view: &ReplView,
    live: &mut dyn LiveValues,
) -> Option<(usize, usize, Vec<String>)> {
    let before = &line[..cursor];
    if !before.trim_start().starts_with(':') {
        return None;
    }
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word = &before[start..];
    let words: Vec<&str> = before.split_whitespace().collect();
    let completing_name = words.len() <= 1 && !before.ends_with(char::is_whitespace);
    let mut matches: Vec<String> = if completing_name {
        let prefix = word.trim_start_matches(':');
        REGISTRY
            .iter()
            .map(|c| c.name)
            .chain(EVCXR_COMMANDS.iter().copied())
            .filter(|n| n.starts_with(prefix))
            .map(|n| format!(":{n}"))
            .collect()
    } else {
        let spec = find(words[0].trim_start_matches(':'))?;
        complete_argument(spec, &words, word, view, live)
    };
    matches.sort();
    matches.dedup();
    Some((start, cursor, matches))
}

fn complete_argument(
    spec: &CommandSpec,
    words: &[&str],
    word: &str,
    view: &ReplView,
    live: &mut dyn LiveValues,
) -> Vec<String> {
    if let Some(prefix) = word.strip_prefix("--") {
        return spec.flags.iter().filter(|f| f.name.starts_with(prefix)).map(|f| format!("--{}", f.name)).collect();
    }
    // The value of the flag just before the cursor, when it takes one.
    let previous = if word.is_empty() { words.last() } else { words.iter().rev().nth(1) };
    if let Some(flag) = previous.and_then(|p| p.strip_prefix("--")) {
        if let Some(f) = spec.flags.iter().find(|f| f.name == flag) {
            return match f.kind {
                spec::FlagKind::Choice(choices) => {
                    choices.iter().filter(|c| c.starts_with(word)).map(|c| c.to_string()).collect()
                }
                spec::FlagKind::Stages => {
                    let model = words.get(1).filter(|w| !w.starts_with("--"));
                    complete_list(word, model.map(|m| live.stages(m)).unwrap_or_default())
                }
                spec::FlagKind::ChoiceList(choices) => {
                    complete_list(word, choices.iter().map(|c| c.to_string()).collect())
                }
                spec::FlagKind::Data => {
                    session::TRAINING_DATA.variables(view).into_iter().filter(|v| v.starts_with(word)).collect()
                }
                _ => Vec::new(),
            };
        }
    }
    if word.starts_with('-') {
        return Vec::new();
    }
    // The positional argument at the cursor, by position among the non-flag words.
    let position = words[1..].iter().filter(|w| !w.starts_with("--")).count() - usize::from(!word.is_empty());
    let mut out: Vec<String> = match spec.args.get(position).map(|a| a.kind) {
        Some(spec::ArgKind::Command) => REGISTRY.iter().map(|c| c.name.to_string()).collect(),
        Some(spec::ArgKind::Model) => session::MODEL.variables(view),
        Some(spec::ArgKind::Dataset) => session::CONCEPT_DATA.variables(view),
        Some(spec::ArgKind::Zoo) => crate::zoo::names(),
        Some(spec::ArgKind::Choice(names)) => names.iter().map(|n| n.to_string()).collect(),
        Some(spec::ArgKind::Value) | None => Vec::new(),
    };
    out.retain(|n| n.starts_with(word));
    if word.is_empty() {
        out.extend(spec.flags.iter().map(|f| format!("--{}", f.name)));
    }
    out
}

/// Completes the last item of a comma-separated `word` from `items`, keeping the ones
/// before it.
fn complete_list(word: &str, items: Vec<String>) -> Vec<String> {
    let (done, last) = word.rsplit_once(',').unwrap_or(("", word));
    let head = if done.is_empty() { String::new() } else { format!("{done},") };
    items.into_iter().filter(|s| s.starts_with(last)).map(|s| format!("{head}{s}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ReplView {
        ReplView { variables: vec![("net".into(), "Net".into()), ("x".into(), "Tensor".into())], timing: false }
    }

    #[test]
    fn completes_names_flags_and_values() {
        let live = &mut NoLiveValues;
        let (start, end, m) = complete(":see", 4, &view(), live).unwrap();
        assert_eq!((start, end), (0, 4));
        assert_eq!(m, [":seed"]);
        let (_, _, m) = complete(":time o", 7, &view(), live).unwrap();
        assert!(m.is_empty());
        let (_, _, m) = complete(":help s", 7, &view(), live).unwrap();
        assert_eq!(
            m,
            [
                "saliency",
                "samples",
                "sb-report",
                "seed",
                "semantic-inn",
                "sensitivity",
                "sevec",
                "show",
                "ssb",
                "swap",
                "sweep-usb"
            ]
        );
        assert!(complete("let x = 1;", 3, &view(), live).is_none());
    }
}
