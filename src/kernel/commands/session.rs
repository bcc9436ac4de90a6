//! What a command looks up in the session: the variables that hold a value of the library
//! types an argument takes. The types are the library's own, named by
//! [`std::any::type_name`], so a renamed or moved type cannot leave a stale name behind.

use super::spec::{Invocation, UsageError};
use super::ReplView;
use crate::bottleneck::SbNet;
use crate::data::{Broden, Cityscapes, ColorMnist, ConceptScenes};
use crate::models::{Examples, LeNet, ScriptModel, TappedNet, VisionNet};
use crate::runtime::type_base_name as base_name;
use std::any::type_name;

/// A library type, by the function that names it.
pub type TypeName = fn() -> &'static str;

/// The library types an argument takes, and what a value of them is called in messages.
pub struct Kind {
    pub what: &'static str,
    pub types: &'static [TypeName],
}

/// Models whose stages `:layers`, the alignment commands and stage completion understand.
pub static MODEL: Kind = Kind {
    what: "tapped model",
    types: &[
        type_name::<TappedNet>,
        type_name::<LeNet>,
        type_name::<SbNet>,
        type_name::<VisionNet>,
        type_name::<ScriptModel>,
    ],
};

/// Data sets with pixel-level concept annotations (the library's `ConceptDataset`s).
pub static CONCEPT_DATA: Kind = Kind {
    what: "concept data set",
    types: &[type_name::<ConceptScenes>, type_name::<Broden>, type_name::<Cityscapes>],
};

/// What `:train` and `:eval` take as data (the library's `TaskData`).
pub static TRAINING_DATA: Kind = Kind {
    what: "data set",
    types: &[
        type_name::<ConceptScenes>,
        type_name::<Broden>,
        type_name::<Cityscapes>,
        type_name::<ColorMnist>,
        type_name::<Examples>,
    ],
};

impl Kind {
    /// The types' own names, in the order given.
    pub fn names(&self) -> Vec<&'static str> {
        self.types.iter().map(|name| base_name(name())).collect()
    }

    /// The type among ours that evcxr's type name `ty` is, by its own name.
    pub fn which(&self, ty: &str) -> Option<&'static str> {
        self.names().into_iter().find(|name| *name == base_name(ty))
    }

    pub fn holds(&self, ty: &str) -> bool {
        self.which(ty).is_some()
    }

    /// The session's variables of this kind, in the session's order.
    pub fn variables(&self, view: &ReplView) -> Vec<String> {
        view.variables.iter().filter(|(_, ty)| self.holds(ty)).map(|(n, _)| n.clone()).collect()
    }

    /// `name` if it names a variable of this kind; the error lists the variables that would do.
    pub fn variable<'a>(&self, name: &'a str, view: &ReplView) -> Result<&'a str, UsageError> {
        let what = self.what;
        let fitting = self.variables(view);
        let have = if fitting.is_empty() { "none yet".to_string() } else { fitting.join(", ") };
        match view.variables.iter().find(|(n, _)| n == name) {
            Some((_, ty)) if self.holds(ty) => Ok(name),
            Some((_, ty)) => Err(UsageError(format!(
                "`{name}` is a {ty}, not a {what} ({}); the {what}s in this session: {have}",
                self.names().join(", ")
            ))),
            None => Err(UsageError(format!("no variable `{name}`; the {what}s in this session: {have}"))),
        }
    }

    /// The variable `--in` names, or else the session's only one of this kind; `make` is the
    /// command that makes one.
    pub fn chosen<'a>(&self, inv: &'a Invocation, view: &'a ReplView, make: &str) -> Result<&'a str, UsageError> {
        if let Some(name) = inv.text("in") {
            return self.variable(name, view);
        }
        let what = self.what;
        match view.variables.iter().filter(|(_, ty)| self.holds(ty)).collect::<Vec<_>>()[..] {
            [(name, _)] => Ok(name),
            [] => Err(UsageError(format!(":{} needs a {what}; make one with {make}", inv.spec.name))),
            ref several => {
                let names: Vec<&str> = several.iter().map(|(n, _)| n.as_str()).collect();
                Err(UsageError(format!("several {what}s ({}); choose one with --in", names.join(", "))))
            }
        }
    }

    /// The variable `--data` names, required and of this kind.
    pub fn data_flag<'a>(&self, inv: &'a Invocation, view: &ReplView) -> Result<&'a str, UsageError> {
        let Some(data) = inv.text("data") else {
            let have = self.variables(view);
            let have = if have.is_empty() { "none yet (make one with :data)".to_string() } else { have.join(", ") };
            return Err(UsageError(format!(
                ":{} needs --data DATA; the {}s in this session: {have}",
                inv.spec.name, self.what
            )));
        };
        self.variable(data, view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inn::LayerInn;

    #[test]
    fn names_come_from_the_library_types() {
        assert_eq!(MODEL.names(), ["TappedNet", "LeNet", "SbNet", "VisionNet", "ScriptModel"]);
        assert_eq!(base_name(type_name::<LayerInn<LeNet>>()), "LayerInn");
    }

    #[test]
    fn generic_types_match_by_their_base_name() {
        static LAYER_INN: Kind = Kind { what: ":cinn result", types: &[type_name::<LayerInn<LeNet>>] };
        assert!(LAYER_INN.holds("glassbox::inn::interpret::LayerInn<glassbox::models::lenet::LeNet>"));
        assert!(LAYER_INN.holds("LayerInn<LeNet>"));
        assert!(!MODEL.holds("glassbox::inn::interpret::LayerInn<glassbox::models::lenet::LeNet>"));
        assert_eq!(MODEL.which("glassbox::models::lenet::LeNet"), Some("LeNet"));
    }
}
