//! What a command accepts: its positional arguments and typed flags. Usage text, parsing,
//! completion and `:help` all come from this one description.

use super::parse::{Invocation, UsageError};
use super::Action;
use super::ReplView;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlagKind {
    Int,
    Float,
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
    /// A variable holding data a model trains on (see [`super::TRAINING_DATA_TYPES`]).
    Data,
}

impl FlagKind {
    pub fn describe(&self) -> String {
        match self {
            FlagKind::Int => "an integer".into(),
            FlagKind::Float => "a number".into(),
            FlagKind::Text => "a value".into(),
            FlagKind::Switch => "nothing".into(),
            FlagKind::List => "a comma-separated list".into(),
            FlagKind::Choice(c) => format!("one of {}", c.join(", ")),
            FlagKind::ChoiceList(c) => format!("a comma-separated list of {}", c.join(", ")),
            FlagKind::Stages => "a comma-separated list of the model's stages".into(),
            FlagKind::Data => "a variable holding a data set".into(),
        }
    }

    fn placeholder(&self) -> String {
        match self {
            FlagKind::Int => "N".into(),
            FlagKind::Float => "X".into(),
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
            out.push_str(&format!("\n  --{:<16} {}", f.name, f.help));
        }
        out
    }
}
