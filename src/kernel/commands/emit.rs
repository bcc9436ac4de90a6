//! What the command modules share when they write a command's library call: the stage and
//! categories they name, and the variable a command binds.

use super::spec::{self, Invocation, UsageError};

/// The one stage `--FLAG` names; required.
pub fn one_stage(inv: &Invocation, flag: &str) -> Result<String, UsageError> {
    match inv.flags.get(flag) {
        Some(spec::Value::List(stages)) if stages.len() == 1 => Ok(stages[0].clone()),
        Some(_) => Err(UsageError(format!("--{flag} takes one stage"))),
        None => Err(UsageError(format!(":{} needs --{flag} STAGE (Tab lists the model's stages)", inv.spec.name))),
    }
}

/// The categories `--categories` lists, as Rust paths of `glassbox::data::Category`.
pub fn categories(inv: &Invocation) -> Option<Vec<String>> {
    match inv.flags.get("categories") {
        Some(spec::Value::List(c)) => {
            Some(c.iter().map(|c| format!("glassbox::data::Category::{}", capitalised(c))).collect())
        }
        _ => None,
    }
}

/// The variable a command binds by default: `parts` joined by `_`, with the dots of a
/// module name (`layer3.1`) made `_` too.
pub fn derived_name(parts: &[&str]) -> String {
    parts.join("_").chars().map(|c| if c.is_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// Checks a name the user gives a new variable (`--as`): a Rust identifier, not a keyword.
pub fn identifier(name: &str) -> Result<&str, UsageError> {
    match syn::parse_str::<syn::Ident>(name) {
        Ok(_) if name != "_" => Ok(name),
        _ => Err(UsageError(format!(
            "`{name}` cannot name a variable: use letters, digits and `_`, not starting with a digit, and no Rust keyword"
        ))),
    }
}

/// `word` with its first letter upper-case: a category's name as its `Category` variant.
pub fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|f| f.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}
