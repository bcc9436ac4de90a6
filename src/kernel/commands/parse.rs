//! `:name positional --flag value --flag=value --switch`, checked against a [`CommandSpec`]
//! into an [`Invocation`].

use super::spec::{CommandSpec, FlagKind, Invocation, UsageError, Value};
use std::collections::BTreeMap;

/// Splits a command line into words; double or single quotes keep spaces inside a word.
pub fn words(line: &str) -> Result<Vec<String>, UsageError> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(UsageError(format!("unclosed {q} quote in `{line}`")));
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// Checks the words after the command name against its spec.
pub fn parse(spec: &'static CommandSpec, rest: &[String]) -> Result<Invocation, UsageError> {
    let mut args = Vec::new();
    let mut flags = BTreeMap::new();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        let Some(flag) = word.strip_prefix("--") else {
            args.push(word.clone());
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let Some(f) = spec.flags.iter().find(|f| f.name == name) else {
            return Err(unknown_flag(spec, name));
        };
        let value = match f.kind {
            FlagKind::Switch => match inline {
                None => Value::Switch,
                Some(_) => return Err(UsageError(format!("--{name} is a switch and takes no value"))),
            },
            kind => {
                let raw = match inline {
                    Some(v) => v,
                    None => words
                        .next()
                        .filter(|w| !w.starts_with("--"))
                        .cloned()
                        .ok_or_else(|| UsageError(format!("--{name} needs {}", kind.describe())))?,
                };
                convert(name, kind, &raw)?
            }
        };
        flags.insert(f.name, value);
    }
    let (min, max) = (spec.args.iter().filter(|a| a.required).count(), spec.args.len());
    if args.len() < min || args.len() > max {
        let wanted = if min == max { format!("{min}") } else { format!("{min} to {max}") };
        return Err(UsageError(format!(
            ":{} takes {wanted} argument(s), got {}\nusage: {}",
            spec.name,
            args.len(),
            spec.usage()
        )));
    }
    Ok(Invocation { spec, args, flags })
}

fn convert(name: &str, kind: FlagKind, raw: &str) -> Result<Value, UsageError> {
    let wrong = || UsageError(format!("--{name} expects {}, got `{raw}`", kind.describe()));
    Ok(match kind {
        FlagKind::Int(ints) => Value::Int(raw.parse().ok().filter(|v| ints.contains(*v)).ok_or_else(wrong)?),
        FlagKind::Float(numbers) => Value::Float(raw.parse().ok().filter(|v| numbers.contains(*v)).ok_or_else(wrong)?),
        FlagKind::Text | FlagKind::Data => Value::Text(raw.to_owned()),
        FlagKind::List | FlagKind::Stages => {
            Value::List(raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        }
        FlagKind::Choice(choices) => Value::Text(choose(name, choices, raw)?.to_owned()),
        FlagKind::ChoiceList(choices) => Value::List(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| choose(name, choices, item).map(String::from))
                .collect::<Result<_, _>>()?,
        ),
        FlagKind::Switch => Value::Switch,
    })
}

/// `raw` if it is one of `choices`, else an error naming them and the closest.
fn choose<'a>(name: &str, choices: &[&str], raw: &'a str) -> Result<&'a str, UsageError> {
    if choices.contains(&raw) {
        return Ok(raw);
    }
    Err(UsageError(format!(
        "--{name} must be one of {}, got `{raw}`{}",
        choices.join(", "),
        suggest(raw, choices.iter().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )))
}

fn unknown_flag(spec: &CommandSpec, name: &str) -> UsageError {
    let allowed: Vec<String> = spec.flags.iter().map(|f| format!("--{}", f.name)).collect();
    let hint =
        suggest(name, spec.flags.iter().map(|f| f.name)).map(|s| format!(" Did you mean --{s}?")).unwrap_or_default();
    let allowed = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
    UsageError(format!(":{} has no flag --{name}.{hint} Allowed: {allowed}.", spec.name))
}

pub use crate::suggest::closest as suggest;

#[cfg(test)]
mod tests {
    use super::super::spec::{ints, numbers, ArgKind, ArgSpec, End, FlagSpec, COUNT, POSITIVE};
    use super::*;

    static SPEC: CommandSpec = CommandSpec {
        name: "demo",
        summary: "a demo",
        args: &[ArgSpec { name: "MODEL", kind: ArgKind::Model, required: true, help: "" }],
        flags: &[
            FlagSpec { name: "epochs", kind: COUNT, help: "" },
            FlagSpec { name: "lr", kind: POSITIVE, help: "" },
            FlagSpec { name: "momentum", kind: numbers(End::Closed(0.0), End::Open(1.0)), help: "" },
            FlagSpec { name: "bins", kind: ints(2, 64), help: "" },
            FlagSpec { name: "groups", kind: FlagKind::List, help: "" },
            FlagSpec { name: "reg", kind: FlagKind::Choice(&["anneal", "entropy"]), help: "" },
            FlagSpec { name: "exact", kind: FlagKind::Switch, help: "" },
        ],
        run: |_, _| unreachable!(),
    };

    fn parse_line(line: &str) -> Result<Invocation, UsageError> {
        parse(&SPEC, &words(line)?)
    }

    #[test]
    fn flags_in_both_spellings_and_typed() {
        let inv = parse_line("net --epochs 3 --lr=0.01 --groups part,material --exact --reg anneal").unwrap();
        assert_eq!(inv.args, ["net"]);
        assert_eq!(inv.int("epochs"), Some(3));
        assert_eq!(inv.flags["lr"], Value::Float(0.01));
        assert_eq!(inv.flags["groups"], Value::List(vec!["part".into(), "material".into()]));
        assert!(inv.switch("exact"));
    }

    #[test]
    fn errors_say_what_is_wrong_and_what_is_allowed() {
        let e = parse_line("net --epoch 3").unwrap_err().0;
        assert!(e.contains("no flag --epoch") && e.contains("Did you mean --epochs?"), "{e}");
        let e = parse_line("net --epochs three").unwrap_err().0;
        assert!(e.contains("--epochs expects a positive integer, got `three`"), "{e}");
        let e = parse_line("net --reg entropie").unwrap_err().0;
        assert!(e.contains("one of anneal, entropy") && e.contains("did you mean `entropy`"), "{e}");
        let e = parse_line("--epochs 3").unwrap_err().0;
        assert!(e.contains("takes 1 argument(s), got 0") && e.contains("usage: :demo MODEL"), "{e}");
        let e = parse_line("net --lr").unwrap_err().0;
        assert!(e.contains("--lr needs a positive number"), "{e}");
    }

    #[test]
    fn numbers_outside_a_flags_bounds_are_refused_with_the_bounds() {
        for (line, says) in [
            ("net --epochs 0", "--epochs expects a positive integer, got `0`"),
            ("net --lr 0", "--lr expects a positive number, got `0`"),
            ("net --lr NaN", "--lr expects a positive number, got `NaN`"),
            ("net --lr inf", "--lr expects a positive number, got `inf`"),
            ("net --momentum 1", "--momentum expects a number in [0, 1), got `1`"),
            ("net --bins 65", "--bins expects an integer from 2 to 64, got `65`"),
        ] {
            assert_eq!(parse_line(line).unwrap_err().0, says);
        }
        let inv = parse_line("net --epochs 1 --lr 1e-9 --momentum 0 --bins 64").unwrap();
        assert_eq!((inv.int("epochs"), inv.int("bins")), (Some(1), Some(64)));
    }

    #[test]
    fn quotes_keep_spaces() {
        assert_eq!(words(r#"arith "grass - green" 'x y' z"#).unwrap(), ["arith", "grass - green", "x y", "z"]);
        assert!(words("a \"b").is_err());
    }
}
