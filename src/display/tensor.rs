//! Tensors shown as PyTorch prints them: `repr(tensor)` with PyTorch's default print options
//! (`torch/_tensor_str.py`: precision 4, summarised beyond 1000 elements to 3 edge items per
//! dimension, 80 columns). Tested against PyTorch's own output in
//! `tests/fixtures/tensor_repr.json` (written by `scripts/fixtures/tensor_repr.py`).
//!
//! PyTorch names the gradient function of a non-leaf tensor (`grad_fn=<AddBackward0>`);
//! libtorch's C API does not expose that name, so such a tensor says `requires_grad=True`.

use super::{escape, Output, Render};
use tch::{Device, Kind, Tensor};

const PRECISION: usize = 4;
/// Tensors with more elements than this are summarised.
const THRESHOLD: usize = 1000;
/// Items kept at each end of a summarised dimension.
const EDGE_ITEMS: usize = 3;
const LINE_WIDTH: usize = 80;
/// `tensor(`: where every line of the values is indented to.
const PREFIX: &str = "tensor(";

/// One element, as PyTorch's formatter sees it (half precision is printed as float).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    Float(f64),
    Int(i64),
    Bool(bool),
}

/// The values to print: the whole tensor, or its summary (the edge items of every dimension
/// longer than twice [`EDGE_ITEMS`], with `elided` saying which dimensions were cut).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub shape: Vec<usize>,
    pub elided: Vec<bool>,
    /// Row-major.
    pub values: Vec<Scalar>,
}

/// PyTorch's `_Formatter`: one width and one notation for every element of a tensor.
#[derive(Debug, Clone, PartialEq)]
struct Formatter {
    floating: bool,
    int_mode: bool,
    sci_mode: bool,
    width: usize,
}

impl Formatter {
    fn new(values: &[Scalar], floating: bool) -> Formatter {
        let mut f = Formatter { floating, int_mode: true, sci_mode: false, width: 1 };
        if !floating {
            f.width = values.iter().map(|&v| plain(v).len()).max().unwrap_or(0).max(1);
            return f;
        }
        let finite: Vec<f64> = values.iter().map(|&v| as_f64(v)).filter(|v| v.is_finite() && *v != 0.0).collect();
        if finite.is_empty() {
            return f;
        }
        let max = finite.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let min = finite.iter().fold(f64::INFINITY, |m, v| m.min(v.abs()));
        f.int_mode = finite.iter().all(|v| *v == v.ceil());
        let wide = max / min > 1000.0 || max > 1.0e8;
        f.sci_mode = if f.int_mode { wide } else { wide || min < 1.0e-4 };
        f.width = finite
            .iter()
            .map(|&v| match (f.sci_mode, f.int_mode) {
                (true, _) => scientific(v).len(),
                (false, true) => format!("{v:.0}").len() + 1,
                (false, false) => fixed(v).len(),
            })
            .max()
            .unwrap_or(1)
            .max(1);
        f
    }

    fn format(&self, value: Scalar) -> String {
        let text = match value {
            Scalar::Float(v) if self.floating => {
                if self.sci_mode {
                    format!("{:>w$}", scientific(v), w = self.width)
                } else if self.int_mode {
                    if v.is_finite() {
                        format!("{v:.0}.")
                    } else {
                        non_finite(v)
                    }
                } else {
                    fixed(v)
                }
            }
            other => plain(other),
        };
        format!("{text:>w$}", w = self.width)
    }
}

fn as_f64(v: Scalar) -> f64 {
    match v {
        Scalar::Float(f) => f,
        Scalar::Int(i) => i as f64,
        Scalar::Bool(b) => b as u8 as f64,
    }
}

/// Python's `str()` of an element.
fn plain(v: Scalar) -> String {
    match v {
        Scalar::Float(f) if f.is_finite() => format!("{f}"),
        Scalar::Float(f) => non_finite(f),
        Scalar::Int(i) => i.to_string(),
        Scalar::Bool(true) => "True".into(),
        Scalar::Bool(false) => "False".into(),
    }
}

fn non_finite(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// Python's `f"{v:.4f}"`.
fn fixed(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.PRECISION$}")
    } else {
        non_finite(v)
    }
}

/// Python's `f"{v:.4e}"`: the exponent has a sign and at least two digits.
fn scientific(v: f64) -> String {
    if !v.is_finite() {
        return non_finite(v);
    }
    let text = format!("{v:.PRECISION$e}");
    let (mantissa, exponent) = text.split_once('e').expect("`e` formatting writes an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// The bracketed values, as `_tensor_str_with_formatter` lays them out.
fn nested(s: &Summary, f: &Formatter, dim: usize, offset: usize, indent: usize) -> String {
    let ndim = s.shape.len();
    if ndim == 0 {
        return f.format(s.values[0]);
    }
    let n = s.shape[dim];
    let stride: usize = s.shape[dim + 1..].iter().product();
    if dim + 1 == ndim {
        let per_line = (LINE_WIDTH.saturating_sub(indent) / (f.width + 2)).max(1);
        let mut items: Vec<String> = (0..n).map(|i| f.format(s.values[offset + i])).collect();
        if s.elided[dim] {
            items.insert(EDGE_ITEMS, " ...".into());
        }
        let lines: Vec<String> = items.chunks(per_line).map(|line| line.join(", ")).collect();
        return format!("[{}]", lines.join(&format!(",\n{}", " ".repeat(indent + 1))));
    }
    let mut slices: Vec<String> = (0..n).map(|i| nested(s, f, dim + 1, offset + i * stride, indent + 1)).collect();
    if s.elided[dim] {
        slices.insert(EDGE_ITEMS, "...".into());
    }
    let separator = format!(",{}{}", "\n".repeat(ndim - dim - 1), " ".repeat(indent + 1));
    format!("[{}]", slices.join(&separator))
}

/// PyTorch's `_add_suffixes`: each suffix goes on the last line, or on a new one when it
/// would pass the line width.
fn add_suffixes(body: String, suffixes: &[String]) -> String {
    let indent = PREFIX.len();
    let last_newline = body.rfind('\n').map_or(-1, |i| i as isize);
    let mut last_line = (body.len() as isize - last_newline + 1) as usize;
    let mut out = body;
    for suffix in suffixes {
        if last_line + suffix.len() + 2 > LINE_WIDTH {
            out.push_str(&format!(",\n{}{suffix}", " ".repeat(indent)));
            last_line = indent + suffix.len();
        } else {
            out.push_str(&format!(", {suffix}"));
            last_line += suffix.len() + 2;
        }
    }
    out.push(')');
    out
}

/// What a tensor is, apart from its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub shape: Vec<usize>,
    /// PyTorch's name without `torch.`: `float32`, `int64`, `bool`.
    pub dtype: &'static str,
    /// PyTorch's name: `cpu`, `cuda:0`.
    pub device: String,
    pub requires_grad: bool,
}

impl Header {
    fn floating(&self) -> bool {
        matches!(self.dtype, "float16" | "bfloat16" | "float32" | "float64")
    }
}

/// `repr(tensor)` of a tensor described by `header` whose (summarised) values are `summary`.
pub fn repr_of(header: &Header, summary: &Summary) -> String {
    let mut suffixes = Vec::new();
    if header.device != "cpu" {
        suffixes.push(format!("device='{}'", header.device));
    }
    let empty = header.shape.contains(&0);
    let body = if empty {
        if header.shape.len() != 1 {
            let dims: Vec<String> = header.shape.iter().map(usize::to_string).collect();
            suffixes.push(format!("size=({})", dims.join(", ")));
        }
        if header.dtype != "float32" {
            suffixes.push(format!("dtype=torch.{}", header.dtype));
        }
        "[]".to_string()
    } else {
        if !matches!(header.dtype, "float32" | "int64" | "bool") {
            suffixes.push(format!("dtype=torch.{}", header.dtype));
        }
        let formatter = Formatter::new(&summary.values, header.floating());
        nested(summary, &formatter, 0, 0, PREFIX.len())
    };
    if header.requires_grad {
        suffixes.push("requires_grad=True".into());
    }
    add_suffixes(format!("{PREFIX}{body}"), &suffixes)
}

fn dtype_name(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Uint8 => "uint8",
        Kind::Int8 => "int8",
        Kind::Int16 => "int16",
        Kind::Int => "int32",
        Kind::Int64 => "int64",
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::Bool => "bool",
        _ => return None,
    })
}

fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps:0".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

/// The header of `t`, or `None` for an element type PyTorch's formatter is not reproduced
/// for (complex, quantised).
pub fn header(t: &Tensor) -> Option<Header> {
    let dtype = dtype_name(t.f_kind().ok()?)?;
    Some(Header {
        shape: t.size().iter().map(|&d| d as usize).collect(),
        dtype,
        device: device_name(t.device()),
        requires_grad: t.requires_grad(),
    })
}

/// The values PyTorch would print of `t`: only the summary is copied off the device, so a
/// large tensor costs no more than a small one.
fn summary(t: &Tensor, header: &Header) -> Summary {
    let summarise = header.shape.iter().product::<usize>() > THRESHOLD;
    let mut small = t.detach();
    let mut elided = Vec::with_capacity(header.shape.len());
    for (dim, &n) in header.shape.iter().enumerate() {
        let cut = summarise && n > 2 * EDGE_ITEMS;
        if cut {
            let d = dim as i64;
            let edge = EDGE_ITEMS as i64;
            small = Tensor::cat(&[small.narrow(d, 0, edge), small.narrow(d, n as i64 - edge, edge)], d);
        }
        elided.push(cut);
    }
    let flat = small.to_device(Device::Cpu).reshape([-1]);
    let values = if header.floating() {
        Vec::<f64>::try_from(flat.to_kind(Kind::Double)).unwrap_or_default().into_iter().map(Scalar::Float).collect()
    } else if header.dtype == "bool" {
        Vec::<i64>::try_from(flat.to_kind(Kind::Int64))
            .unwrap_or_default()
            .into_iter()
            .map(|v| Scalar::Bool(v != 0))
            .collect()
    } else {
        Vec::<i64>::try_from(flat.to_kind(Kind::Int64)).unwrap_or_default().into_iter().map(Scalar::Int).collect()
    };
    Summary { shape: small.size().iter().map(|&d| d as usize).collect(), elided, values }
}

/// `repr(t)` as PyTorch prints it; tch's own description for element types PyTorch's
/// formatter is not reproduced for, and for a tensor with no storage.
pub fn repr(t: &Tensor) -> String {
    if !t.defined() {
        return "tensor(undefined)".into();
    }
    match header(t) {
        Some(h) => repr_of(&h, &summary(t, &h)),
        None => format!("{t:?}"),
    }
}

impl Render for Tensor {
    /// PyTorch's `repr` as text; in HTML the same, under a line with the shape, element type
    /// and device, which PyTorch leaves out when they are the defaults.
    fn render(&self) -> Output {
        let text = repr(self);
        let caption = match header(self) {
            Some(h) => format!(
                "Tensor · shape {:?} · {} · {}{}",
                h.shape,
                h.dtype,
                h.device,
                if h.requires_grad { " · requires grad" } else { "" }
            ),
            None => "Tensor".into(),
        };
        let html = format!(
            "<div><div style=\"font-size:smaller;opacity:0.7\">{}</div><pre>{}</pre></div>",
            escape(&caption),
            escape(&text)
        );
        Output::text(text).and(Output::html(html))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn kind_of(dtype: &str) -> Kind {
        match dtype {
            "uint8" => Kind::Uint8,
            "int8" => Kind::Int8,
            "int16" => Kind::Int16,
            "int32" => Kind::Int,
            "int64" => Kind::Int64,
            "float16" => Kind::Half,
            "bfloat16" => Kind::BFloat16,
            "float32" => Kind::Float,
            "float64" => Kind::Double,
            "bool" => Kind::Bool,
            other => panic!("unknown dtype {other}"),
        }
    }

    fn number(v: &Value) -> f64 {
        match v {
            Value::String(s) if s == "nan" => f64::NAN,
            Value::String(s) if s == "inf" => f64::INFINITY,
            Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
            Value::Bool(b) => *b as u8 as f64,
            other => other.as_f64().unwrap_or_else(|| panic!("a number, got {other}")),
        }
    }

    /// Every case PyTorch printed, rebuilt as a libtorch tensor of the same element type.
    #[test]
    fn prints_as_pytorch_does() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tensor_repr.json");
        let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut failures = Vec::new();
        for case in &cases {
            let kind = kind_of(case["dtype"].as_str().unwrap());
            let shape: Vec<i64> = case["shape"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
            let values: Vec<f64> = case["values"].as_array().unwrap().iter().map(number).collect();
            let integral = matches!(kind, Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8);
            let t = if integral {
                let ints: Vec<i64> = values.iter().map(|&v| v as i64).collect();
                Tensor::from_slice(&ints).to_kind(kind).reshape(&shape)
            } else {
                Tensor::from_slice(&values).to_kind(kind).reshape(&shape)
            };
            let t = if case["requires_grad"].as_bool().unwrap_or(false) { t.set_requires_grad(true) } else { t };
            let expected = case["repr"].as_str().unwrap();
            let got = repr(&t);
            if got != expected {
                failures.push(format!("{}:\nPyTorch:\n{expected}\nglassbox:\n{got}", case["name"]));
            }
        }
        assert!(cases.len() >= 30, "{} cases", cases.len());
        assert!(failures.is_empty(), "{} of {} differ:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    }

    #[test]
    fn scientific_notation_is_pythons() {
        assert_eq!(scientific(1e-5), "1.0000e-05");
        assert_eq!(scientific(123456.0), "1.2346e+05");
        assert_eq!(scientific(-2.5e100), "-2.5000e+100");
    }

    #[test]
    fn the_html_form_names_shape_type_and_device() {
        let out = Tensor::ones([2, 3], (Kind::Int, Device::Cpu)).render();
        let html = out.data()["text/html"].as_str().unwrap();
        assert!(html.contains("shape [2, 3] · int32 · cpu"), "{html}");
        assert_eq!(out.data()["text/plain"], "tensor([[1, 1, 1],\n        [1, 1, 1]], dtype=torch.int32)");
    }
}
