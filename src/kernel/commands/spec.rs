//! What a command accepts, its positional arguments and typed flags, and what a line gave it
//! (an [`Invocation`]). Usage text, parsing, completion and `:help` all come from this one
//! description.

use super::Action;
use super::ReplView;
use std::collections::BTreeMap;

/// One end of the numbers a flag takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    Unbounded,
    /// The number itself is allowed.
    Closed(f64),
    /// Numbers up to, not including, this one.
    Open(f64),
}

/// The integers a flag takes: `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ints {
    pub min: i64,
    pub max: i64,
}

/// The finite numbers a flag takes, between two ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Numbers {
    pub low: End,
    pub high: End,
}

/// Any integer.
pub const INT: FlagKind = FlagKind::Int(Ints { min: i64::MIN, max: i64::MAX });
/// A count of things or of steps: 1 or more.
pub const COUNT: FlagKind = FlagKind::Int(Ints { min: 1, max: i64::MAX });
/// A seed or an index: 0 or more.
pub const INDEX: FlagKind = FlagKind::Int(Ints { min: 0, max: i64::MAX });
/// Any finite number.
pub const NUMBER: FlagKind = FlagKind::Float(Numbers { low: End::Unbounded, high: End::Unbounded });
/// A rate, a temperature: above 0.
pub const POSITIVE: FlagKind = FlagKind::Float(Numbers { low: End::Open(0.0), high: End::Unbounded });
/// A weight of a loss term, a decay: 0 or more.
pub const NON_NEGATIVE: FlagKind = FlagKind::Float(Numbers { low: End::Closed(0.0), high: End::Unbounded });

/// Integers `min..=max`.
pub const fn ints(min: i64, max: i64) -> FlagKind {
    FlagKind::Int(Ints { min, max })
}

/// Numbers between `low` and `high`.
pub const fn numbers(low: End, high: End) -> FlagKind {
    FlagKind::Float(Numbers { low, high })
}

impl Ints {
    pub fn contains(&self, v: i64) -> bool {
        (self.min..=self.max).contains(&v)
    }

    fn describe(&self) -> String {
        match (self.min, self.max) {
            (i64::MIN, i64::MAX) => "an integer".into(),
            (1, i64::MAX) => "a positive integer".into(),
            (0, i64::MAX) => "an integer of 0 or more".into(),
            (min, i64::MAX) => format!("an integer of at least {min}"),
            (min, max) => format!("an integer from {min} to {max}"),
        }
    }
}

impl Numbers {
    pub fn contains(&self, v: f64) -> bool {
        let above = match self.low {
            End::Unbounded => true,
            End::Closed(l) => v >= l,
            End::Open(l) => v > l,
        };
        let below = match self.high {
            End::Unbounded => true,
            End::Closed(h) => v <= h,
            End::Open(h) => v < h,
        };
        v.is_finite() && above && below
    }

    fn describe(&self) -> String {
        match (self.low, self.high) {
            (End::Unbounded, End::Unbounded) => "a number".into(),
            (End::Open(l), End::Unbounded) if l == 0.0 => "a positive number".into(),
            (End::Closed(l), End::Unbounded) => format!("a number of {l} or more"),
            (End::Open(l), End::Unbounded) => format!("a number above {l}"),
            (End::Unbounded, End::Closed(h)) => format!("a number of {h} or less"),
            (End::Unbounded, End::Open(h)) => format!("a number below {h}"),
            (low, high) => {
                let (open, l) = match low {
                    End::Closed(l) => ('[', l),
                    End::Open(l) => ('(', l),
                    End::Unbounded => unreachable!("handled above"),
                };
                let (close, h) = match high {
                    End::Closed(h) => (']', h),
                    End::Open(h) => (')', h),
                    End::Unbounded => unreachable!("handled above"),
                };
                format!("a number in {open}{l}, {h}{close}")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlagKind {
    /// An integer within its bounds.
    Int(Ints),
    /// A finite number within its bounds.
    Float(Numbers),
    Text,
    Switch,
    /// Comma-separated: `--groups part,material`.
    List,
    /// One of a fixed set.
    Choice(&'static [&'static str]),
    /// Comma-separated items of a fixed set: `--groups part,material`.
    ChoiceList(&'static [&'static str]),
    /// Comma-separated stage names of the model named by the command's first argument;
    /// completed from the live model.
    Stages,
    /// A variable holding data a model trains on (see [`super::session::TRAINING_DATA`]).
    Data,
}

impl FlagKind {
    pub fn describe(&self) -> String {
        match self {
            FlagKind::Int(ints) => ints.describe(),
            FlagKind::Float(numbers) => numbers.describe(),
            FlagKind::Text => "a value".into(),
            FlagKind::Switch => "nothing".into(),
            FlagKind::List => "a comma-separated list".into(),
            FlagKind::Choice(c) => format!("one of {}", c.join(", ")),
            FlagKind::ChoiceList(c) => format!("a comma-separated list of {}", c.join(", ")),
            FlagKind::Stages => "a comma-separated list of the model's stages".into(),
            FlagKind::Data => "a variable holding a data set".into(),
        }
    }

    /// The bounds of a number flag, for its help line: `; a positive integer`.
    fn bounds(&self) -> String {
        match self {
            FlagKind::Int(Ints { min: i64::MIN, max: i64::MAX }) => String::new(),
            FlagKind::Float(Numbers { low: End::Unbounded, high: End::Unbounded }) => String::new(),
            FlagKind::Int(_) | FlagKind::Float(_) => format!("; {}", self.describe()),
            _ => String::new(),
        }
    }

    fn placeholder(&self) -> String {
        match self {
            FlagKind::Int(_) => "N".into(),
            FlagKind::Float(_) => "X".into(),
            FlagKind::Text => "VALUE".into(),
            FlagKind::Switch => String::new(),
            FlagKind::List => "A,B,..".into(),
            FlagKind::Choice(c) => c.join("|"),
            FlagKind::ChoiceList(c) => format!("{},..", c.join("|")),
            FlagKind::Stages => "STAGE,..".into(),
            FlagKind::Data => "DATA".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlagSpec {
    pub name: &'static str,
    pub kind: FlagKind,
    pub help: &'static str,
}

/// `a` then `b`, at compile time: commands that share a block of flags list it once.
/// `C` must be `A + B` (checked when the constant is evaluated).
pub const fn concat<const A: usize, const B: usize, const C: usize>(
    a: [FlagSpec; A],
    b: [FlagSpec; B],
) -> [FlagSpec; C] {
    assert!(A + B == C, "concat: the result must hold exactly both lists");
    let mut out = [FlagSpec { name: "", kind: FlagKind::Switch, help: "" }; C];
    let mut i = 0;
    while i < C {
        out[i] = if i < A { a[i] } else { b[i - A] };
        i += 1;
    }
    out
}

/// What a positional argument names, which decides how it is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A literal value (a number, `on`/`off`, ...): not completed from state.
    Value,
    /// A glassbox command name.
    Command,
    /// A variable of the session holding a tapped model.
    Model,
    /// A variable of the session holding a concept data set.
    Dataset,
    /// A name of the model zoo (checkpoints included).
    Zoo,
    /// One of a fixed set of names.
    Choice(&'static [&'static str]),
}

#[derive(Debug, PartialEq)]
pub struct ArgSpec {
    pub name: &'static str,
    pub kind: ArgKind,
    pub required: bool,
    pub help: &'static str,
}

pub type Runner = fn(&Invocation, &ReplView) -> Result<Action, UsageError>;

pub struct CommandSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub args: &'static [ArgSpec],
    pub flags: &'static [FlagSpec],
    pub run: Runner,
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommandSpec(:{})", self.name)
    }
}

impl PartialEq for CommandSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl CommandSpec {
    /// `:name ARG [OPT] [--flag N] [--switch]`
    pub fn usage(&self) -> String {
        let mut parts = vec![format!(":{}", self.name)];
        for a in self.args {
            parts.push(if a.required { a.name.to_string() } else { format!("[{}]", a.name) });
        }
        for f in self.flags {
            let p = f.kind.placeholder();
            parts.push(if p.is_empty() { format!("[--{}]", f.name) } else { format!("[--{} {p}]", f.name) });
        }
        parts.join(" ")
    }

    /// The full help: usage, summary, and one line per argument and flag.
    pub fn help(&self) -> String {
        let mut out = format!("{}\n\n{}\n", self.usage(), self.summary);
        for a in self.args.iter().filter(|a| !a.help.is_empty()) {
            out.push_str(&format!("\n  {:<18} {}", a.name, a.help));
        }
        for f in self.flags {
            out.push_str(&format!("\n  --{:<16} {}{}", f.name, f.help, f.kind.bounds()));
        }
        out
    }
}

/// A wrong command line: what was wrong and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A flag's value after checking.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
    Switch,
    List(Vec<String>),
}

/// A command line that matches its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub spec: &'static CommandSpec,
    pub args: Vec<String>,
    pub flags: BTreeMap<&'static str, Value>,
}

impl Invocation {
    pub fn int(&self, flag: &str) -> Option<i64> {
        match self.flags.get(flag)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn float(&self, flag: &str) -> Option<f64> {
        match self.flags.get(flag)? {
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    pub fn text(&self, flag: &str) -> Option<&str> {
        match self.flags.get(flag)? {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn switch(&self, flag: &str) -> bool {
        matches!(self.flags.get(flag), Some(Value::Switch))
    }
}
