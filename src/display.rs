//! Rich output while a cell runs: any number of displays (PNG, SVG, HTML, JSON, text), each
//! sent to the notebook at once, updatable in place by its [`Handle`], and `clear_output`.
//!
//! Inside the kernel these become `display_data`, `update_display_data` and `clear_output`
//! messages, in order with the cell's printed output. Outside the kernel (a plain program, a
//! test) the text/plain form is printed instead.

pub mod result;
pub mod tensor;

use crate::runtime::{self, Event};
use base64::Engine;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;

/// One display: the same content in one or more MIME types; front ends show the richest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    data: Map<String, Value>,
    metadata: Map<String, Value>,
}

impl Output {
    /// Plain text; every display should have it, for terminals and logs.
    pub fn text(text: impl Into<String>) -> Self {
        Self::default().with("text/plain", Value::String(text.into()))
    }

    pub fn html(html: impl Into<String>) -> Self {
        Self::default().with("text/html", Value::String(html.into()))
    }

    pub fn markdown(md: impl Into<String>) -> Self {
        Self::default().with("text/markdown", Value::String(md.into()))
    }

    pub fn svg(svg: impl Into<String>) -> Self {
        Self::default().with("image/svg+xml", Value::String(svg.into()))
    }

    /// PNG file bytes (base64-encoded on the wire, as the protocol wants).
    pub fn png(bytes: &[u8]) -> Self {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        Self::default().with("image/png", Value::String(encoded))
    }

    /// Several PNG figures in one display, each under its caption (HTML), with `text` as the
    /// plain form; for results that are a grid and a plot at once.
    pub fn figures(figures: &[(String, Vec<u8>)], text: impl Into<String>) -> Self {
        let engine = base64::engine::general_purpose::STANDARD;
        let html: String = figures
            .iter()
            .map(|(caption, png)| {
                let caption = caption.replace('&', "&amp;").replace('<', "&lt;");
                format!(
                    "<figure><img src=\"data:image/png;base64,{}\"/><figcaption>{caption}</figcaption></figure>",
                    engine.encode(png)
                )
            })
            .collect();
        Self::html(html).and(Self::text(text))
    }

    pub fn json(value: Value) -> Self {
        Self::default().with("application/json", value)
    }

    /// Adds (or replaces) one MIME type.
    pub fn with(mut self, mime: &str, value: Value) -> Self {
        self.data.insert(mime.to_owned(), value);
        self
    }

    /// Adds every MIME type of `other`: `Output::png(..).and(Output::text("a plot"))`.
    pub fn and(mut self, other: Output) -> Self {
        self.data.extend(other.data);
        self.metadata.extend(other.metadata);
        self
    }

    /// Display metadata, e.g. `{"image/png": {"width": 320}}`.
    pub fn with_metadata(mut self, key: &str, value: Value) -> Self {
        self.metadata.insert(key.to_owned(), value);
        self
    }

    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    fn plain(&self) -> String {
        match self.data.get("text/plain") {
            Some(Value::String(s)) => s.clone(),
            _ => format!("<display: {}>", self.data.keys().cloned().collect::<Vec<_>>().join(", ")),
        }
    }
}

/// Anything that can be shown as a display (plots, image grids, tables, progress).
/// Text made safe to place inside HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub trait Render {
    fn render(&self) -> Output;
}

impl Render for Output {
    fn render(&self) -> Output {
        self.clone()
    }
}

/// Makes anything that renders a cell's rich result: evcxr shows a cell's last value by
/// calling `.evcxr_display()` on it when such a method exists (the prelude brings this trait
/// into scope), and every MIME type of the rendering becomes part of the `execute_result`.
pub trait EvcxrDisplay {
    fn evcxr_display(&self);
}

impl<T: Render> EvcxrDisplay for T {
    fn evcxr_display(&self) {
        for (mime, value) in self.render().data {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            println!("EVCXR_BEGIN_CONTENT {mime}\n{text}\nEVCXR_END_CONTENT");
        }
    }
}

/// A display that has been shown and can be replaced in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle {
    id: String,
}

impl Handle {
    /// The `display_id` the notebook knows this display by.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Replaces the content of this display wherever it is shown.
    pub fn update(&self, item: &impl Render) {
        emit(item.render(), Some(self.id.clone()), true);
    }
}

/// Shows `item` now, while the cell is still running, and returns a handle to update it.
pub fn show(item: &impl Render) -> Handle {
    let handle = Handle { id: new_display_id() };
    emit(item.render(), Some(handle.id.clone()), false);
    handle
}

/// Clears the cell's output; with `wait`, only when the next output arrives (no flicker).
pub fn clear(wait: bool) {
    if runtime::in_kernel() {
        Event::Clear { wait }.emit();
    }
}

fn emit(output: Output, display_id: Option<String>, update: bool) {
    if runtime::in_kernel() {
        Event::Display { data: output.data, metadata: output.metadata, display_id, update }.emit();
    } else {
        println!("{}", output.plain());
    }
}

/// Unique within the process (the counter is process-wide, not per cell) and across REPL
/// restarts (the process id changes).
fn new_display_id() -> String {
    let n = runtime::shared().displays.fetch_add(1, Ordering::Relaxed);
    format!("glassbox-{}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_base64_on_the_wire() {
        let out = Output::png(&[0x89, b'P', b'N', b'G']).and(Output::text("a picture"));
        assert_eq!(out.data()["image/png"], "iVBORw==");
        assert_eq!(out.data()["text/plain"], "a picture");
    }

    #[test]
    fn handles_are_unique() {
        let (a, b) = (show(&Output::text("a")), show(&Output::text("b")));
        assert_ne!(a.id(), b.id());
        a.update(&Output::text("a2"));
    }

    #[test]
    fn plain_text_falls_back_to_the_mime_list() {
        assert_eq!(Output::svg("<svg/>").plain(), "<display: image/svg+xml>");
    }
}
