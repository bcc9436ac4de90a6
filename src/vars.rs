//! `:vars`: the session's variables as a table, tensors with shape, dtype, device and memory.

use crate::display::Output;
use serde::{Deserialize, Serialize};
use std::any::Any;
use tch::Tensor;

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub name: String,
    pub ty: String,
    pub tensor: Option<TensorInfo>,
}

/// What a tensor variable holds, as the REPL child reports it to the kernel (src/vars_socket.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub shape: Vec<i64>,
    pub kind: String,
    pub device: String,
    pub bytes: usize,
}

impl Var {
    pub fn new(name: &str, ty: &str) -> Self {
        Var { name: name.to_owned(), ty: ty.to_owned(), tensor: None }
    }

    /// Adds what a tensor variable holds.
    pub fn holding(mut self, tensor: Option<TensorInfo>) -> Self {
        self.tensor = tensor;
        self
    }
}

impl TensorInfo {
    pub fn of(t: &Tensor) -> Self {
        let kind = t.f_kind().map(|k| format!("{k:?}")).unwrap_or_else(|_| "undefined".into());
        let bytes = t.numel() * t.f_kind().map(|k| k.elt_size_in_bytes()).unwrap_or(0);
        TensorInfo { shape: t.size(), kind, device: format!("{:?}", t.device()), bytes }
    }
}

/// What `:vars` shows beyond a variable's type: the tensor a value is, if it is one.
pub fn describe(value: &dyn Any) -> Option<TensorInfo> {
    value.downcast_ref::<Tensor>().map(TensorInfo::of)
}

/// The table as HTML, with a plain-text form for terminals.
pub fn table(vars: &[Var]) -> Output {
    if vars.is_empty() {
        return Output::text("no variables yet");
    }
    let row = |v: &Var| match &v.tensor {
        Some(t) => [
            v.name.clone(),
            v.ty.clone(),
            format!("{:?}", t.shape),
            t.kind.clone(),
            t.device.clone(),
            human_bytes(t.bytes),
        ],
        None => [v.name.clone(), v.ty.clone(), String::new(), String::new(), String::new(), String::new()],
    };
    let header = ["name", "type", "shape", "dtype", "device", "memory"];
    let rows: Vec<[String; 6]> = vars.iter().map(row).collect();
    let cell = |tag: &str, s: &str| format!("<{tag} style=\"text-align:left\">{}</{tag}>", s.replace('<', "&lt;"));
    let html = format!(
        "<table><tr>{}</tr>{}</table>",
        header.iter().map(|h| cell("th", h)).collect::<String>(),
        rows.iter()
            .map(|r| format!("<tr>{}</tr>", r.iter().map(|c| cell("td", c)).collect::<String>()))
            .collect::<String>()
    );
    let widths: Vec<usize> =
        (0..6).map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let line = |cols: Vec<&str>| {
        cols.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let mut text = vec![line(header.to_vec())];
    text.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    Output::html(html).and(Output::text(text.join("\n")))
}

fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_get_shape_dtype_device_and_memory() {
        let t = Tensor::zeros([2, 3], tch::kind::FLOAT_CPU);
        let out = table(&[Var::new("x", "Tensor").holding(describe(&t)), Var::new("n", "i64").holding(describe(&3i64))]);
        let text = out.data()["text/plain"].as_str().unwrap();
        assert!(text.contains("x     Tensor  [2, 3]  Float  Cpu     24 B"), "{text}");
        assert!(text.lines().nth(2).unwrap().starts_with("n     i64"), "{text}");
        assert!(out.data()["text/html"].as_str().unwrap().contains("<td style=\"text-align:left\">[2, 3]</td>"));
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
