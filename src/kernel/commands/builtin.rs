//! The kernel's own commands: `:help`, `:device`, `:vars`, `:time`, `:seed`.

use super::spec::{ArgKind, ArgSpec, CommandSpec, Invocation, UsageError};
use super::{Action, ReplView, EVCXR_COMMANDS, REGISTRY};

pub static HELP: CommandSpec = CommandSpec {
    name: "help",
    summary: "Lists the commands, or shows how to use one (also `?COMMAND`).",
    args: &[ArgSpec {
        name: "COMMAND",
        kind: ArgKind::Command,
        required: false,
        help: "a command name, without the colon",
    }],
    flags: &[],
    run: help,
};

pub static DEVICE: CommandSpec = CommandSpec {
    name: "device",
    summary: "Shows the device models and tensors use (`device` in every cell), and what libtorch sees.",
    args: &[],
    flags: &[],
    run: |_, _| Ok(Action::Rust("glassbox::device::report(device)".into())),
};

pub static VARS: CommandSpec = CommandSpec {
    name: "vars",
    summary: "Lists the variables of the session with their types; tensors with shape, dtype, device and memory.",
    args: &[],
    flags: &[],
    run: vars,
};

pub static TIME: CommandSpec = CommandSpec {
    name: "time",
    summary: "Reports how long each cell takes (compiling and running) after it runs.",
    args: &[ArgSpec { name: "on|off", kind: ArgKind::Value, required: false, help: "without it, toggles" }],
    flags: &[],
    run: time,
};

pub static SEED: CommandSpec = CommandSpec {
    name: "seed",
    summary: "Seeds every random thing: libtorch's generators and glassbox's data and training.",
    args: &[ArgSpec { name: "N", kind: ArgKind::Value, required: true, help: "a non-negative integer" }],
    flags: &[],
    run: seed,
};

fn help(inv: &Invocation, _: &ReplView) -> Result<Action, UsageError> {
    if let Some(name) = inv.args.first() {
        return Ok(Action::Show(super::lookup(name.trim_start_matches(':'))?.help()));
    }
    let mut out = String::from("glassbox commands (`:help COMMAND` or `?COMMAND` for one):\n");
    for c in REGISTRY {
        out.push_str(&format!("\n  :{:<10} {}", c.name, c.summary));
    }
    out.push_str(&format!(
        "\n\nevcxr's own commands also work: {}.",
        EVCXR_COMMANDS.iter().map(|c| format!(":{c}")).collect::<Vec<_>>().join(" ")
    ));
    Ok(Action::Show(out))
}

fn vars(_: &Invocation, _: &ReplView) -> Result<Action, UsageError> {
    Ok(Action::ShowVariables)
}

fn time(inv: &Invocation, _: &ReplView) -> Result<Action, UsageError> {
    Ok(Action::SetTiming(match inv.args.first().map(String::as_str) {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(other) => return Err(UsageError(format!(":time takes `on` or `off`, got `{other}`"))),
    }))
}

fn seed(inv: &Invocation, _: &ReplView) -> Result<Action, UsageError> {
    let raw = &inv.args[0];
    let n: u64 = raw.parse().map_err(|_| UsageError(format!(":seed expects a non-negative integer, got `{raw}`")))?;
    Ok(Action::Defer(format!("glassbox::seed::set({n});")))
}

#[cfg(test)]
mod tests {
    use super::super::run;
    use super::*;

    #[test]
    fn vars_compiles_nothing() {
        assert_eq!(run(":vars", &ReplView::default()).unwrap(), Action::ShowVariables);
    }

    #[test]
    fn seed_and_time_check_their_arguments() {
        let view = ReplView::default();
        assert_eq!(run(":seed 7", &view).unwrap(), Action::Defer("glassbox::seed::set(7);".into()));
        assert!(run(":seed -1", &view).unwrap_err().0.contains("non-negative integer"));
        assert!(run(":seed", &view).unwrap_err().0.contains("takes 1 argument"));
        assert_eq!(run(":time on", &view).unwrap(), Action::SetTiming(Some(true)));
        assert_eq!(run(":time", &view).unwrap(), Action::SetTiming(None));
        assert!(run(":time maybe", &view).is_err());
    }
}
