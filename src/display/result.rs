//! A cell's result: the value of its final expression, shown as the cell's `execute_result`.
//!
//! The kernel ends a cell whose last statement is an expression `E` with
//! `glassbox::show_result!(E);`. Which form is shown is chosen when the cell compiles, by the
//! value's type (autoref specialisation: the first of these that applies wins):
//! 1. [`Render`]: glassbox's rich displays, tensors as PyTorch prints them;
//! 2. `()`: nothing, so a loop or a block that ends a cell shows no `()`;
//! 3. [`Debug`]: its `{:?}` text, as evcxr shows values;
//! 4. anything else: its type name.
//!
//! Because every value has a form, the cell compiles once; evcxr's own display of a final
//! expression first tries a method that integers lack and then compiles the cell again.

use super::Render;
use std::fmt::Debug;

/// The value being shown, borrowed; the dispatch traits are implemented for references to
/// it, one level of reference per rank.
pub struct Shown<'a, T: ?Sized>(pub &'a T);

/// Writes one MIME form of the result where evcxr collects a cell's result.
fn emit(mime: &str, text: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{text}\nEVCXR_END_CONTENT");
}

pub trait ViaRender {
    fn show_result(&self);
}

impl<T: Render + ?Sized> ViaRender for &&&Shown<'_, T> {
    fn show_result(&self) {
        for (mime, value) in self.0.render().data() {
            match value {
                serde_json::Value::String(s) => emit(mime, s),
                other => emit(mime, &other.to_string()),
            }
        }
    }
}

pub trait ViaUnit {
    fn show_result(&self);
}

impl ViaUnit for &&Shown<'_, ()> {
    fn show_result(&self) {}
}

pub trait ViaDebug {
    fn show_result(&self);
}

impl<T: Debug + ?Sized> ViaDebug for &Shown<'_, T> {
    fn show_result(&self) {
        emit("text/plain", &format!("{:?}", self.0));
    }
}

pub trait ViaTypeName {
    fn show_result(&self);
}

impl<T: ?Sized> ViaTypeName for Shown<'_, T> {
    fn show_result(&self) {
        emit("text/plain", &format!("<a value of type {}>", std::any::type_name::<T>()));
    }
}

/// Shows `$value` as the cell's result; see the [module](crate::display::result).
#[macro_export]
macro_rules! show_result {
    ($value:expr) => {{
        #[allow(unused_imports)]
        use $crate::display::result::{ViaDebug as _, ViaRender as _, ViaTypeName as _, ViaUnit as _};
        (&&&&$crate::display::result::Shown(&$value)).show_result()
    }};
}

#[cfg(test)]
mod tests {
    use crate::display::{Output, Render};

    struct Rich;
    impl Render for Rich {
        fn render(&self) -> Output {
            Output::text("rich")
        }
    }
    struct Opaque;

    /// The dispatch compiles for every kind of value, integer literals included (evcxr's
    /// method lookup fails on them), and borrows rather than moves.
    #[test]
    fn every_value_has_a_form() {
        let x = 40 + 2;
        crate::show_result!(x);
        crate::show_result!(1.5);
        crate::show_result!(Rich);
        crate::show_result!(Opaque);
        crate::show_result!(());
        crate::show_result!(tch::Tensor::from_slice(&[1.0f32]));
        let s = String::from("kept");
        crate::show_result!(s);
        assert_eq!(s, "kept");
    }
}
