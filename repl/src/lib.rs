//! glassbox, re-exported whole: modules, types and `#[macro_export]` macros alike, so that a
//! cell's `glassbox::prelude::*` and `glassbox::show_result!` resolve here.

pub use glassbox::*;
