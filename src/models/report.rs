//! What `:layers` shows, what a loaded model shows, and what the kernel completes stage
//! names from.

use super::{ModelError, ScriptModel, Stage, Tapped, VisionNet};
use crate::display::{Output, Render};

/// `what: K classes, P parameters, T taps: a, b, c` as text and HTML.
fn card(what: &str, model: &impl Tapped, parameters: i64, shown: &[String]) -> Output {
    let taps = model.stages().len() - 1;
    let head = format!("{what}: {} classes, {} parameters", model.num_classes(), thousands(parameters));
    let line = if taps == 0 {
        format!("{head}, tapped at its output only (`head`); export a dict of layers to tap inside it")
    } else {
        format!("{head}, {taps} taps: {}; `:layers` lists them with their shapes", shown.join(", "))
    };
    Output::html(format!("<p>{}</p>", crate::display::escape(&line))).and(Output::text(line))
}

/// `25,557,032`.
fn thousands(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

impl Render for VisionNet {
    /// The top-level modules stand for the taps: a ResNet-152 has hundreds.
    fn render(&self) -> Output {
        let parameters = self.var_store().trainable_variables().iter().map(|t| t.numel() as i64).sum();
        let mut top: Vec<String> =
            self.stages().into_iter().map(|s| s.stage.to_string()).filter(|n| !n.contains('.')).collect();
        top.retain(|n| n != "head");
        top.push("and every submodule inside them".to_owned());
        card(&format!("{} (torchvision architecture)", self.arch()), self, parameters, &top)
    }
}

impl Render for ScriptModel {
    fn render(&self) -> Output {
        let names: Vec<String> =
            self.stages().into_iter().map(|s| s.stage.to_string()).filter(|n| n != "head").collect();
        card("TorchScript export", self, self.parameter_count(), &names)
    }
}

/// The model's stage names as JSON, for the kernel's completion of stage flags.
pub fn stage_names_json(model: &impl Tapped) -> Output {
    let names: Vec<String> = model.stages().iter().map(|s| s.stage.to_string()).collect();
    Output::json(serde_json::json!(names))
}

/// A table of the model's stages (or of `only`) with channels and output shape for one
/// `size` input (by default the model's own input size, else 32x32). Unknown stage names
/// fail with the model's stages listed.
pub fn layers(model: &impl Tapped, size: Option<(i64, i64)>, only: &[&str]) -> Result<Output, ModelError> {
    let size = size.or(model.input_size()).unwrap_or((32, 32));
    let wanted: Vec<Stage> = only.iter().map(|n| model.stage(n)).collect::<Result<_, _>>()?;
    let shapes = model.output_shapes(size)?;
    let rows: Vec<[String; 3]> = shapes
        .into_iter()
        .filter(|(s, _)| wanted.is_empty() || wanted.contains(s))
        .map(|(s, shape)| [s.to_string(), shape.get(1).map_or(String::new(), |c| c.to_string()), format!("{shape:?}")])
        .collect();
    let header = ["stage", "channels", "output shape"];
    let width = |i: usize| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0);
    let (w0, w1) = (width(0), width(1));
    let mut text = vec![format!("input [1, {}, {}, {}]", model.in_channels(), size.0, size.1)];
    text.push(format!("{:<w0$}  {:>w1$}  {}", header[0], header[1], header[2]));
    text.extend(rows.iter().map(|r| format!("{:<w0$}  {:>w1$}  {}", r[0], r[1], r[2])));
    let html = format!(
        "<table><tr><th>stage</th><th>channels</th><th>output shape</th></tr>{}</table>",
        rows.iter()
            .map(|r| format!("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", r[0], r[1], r[2]))
            .collect::<String>()
    );
    Ok(Output::html(html).and(Output::text(text.join("\n"))))
}

/// [`layers`] for the `:layers` command: a failure becomes the cell's `ModelError`.
pub fn show_layers(model: &impl Tapped, size: Option<(i64, i64)>, only: &[&str]) -> Output {
    layers(model, size, only).unwrap_or_else(|e| crate::runtime::raise("ModelError", &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ResNetConfig, TappedNet, Task};

    #[test]
    fn a_loaded_model_says_what_it_is_and_what_it_taps() {
        let fixture = |dir: &str, name: &str| crate::models::fixture::path(dir, name);
        let text = |o: Output| o.data()["text/plain"].as_str().unwrap().to_owned();
        let plain = ScriptModel::load(fixture("script", "plain.pt"), tch::Device::Cpu).unwrap();
        assert!(text(plain.render()).contains("10 classes, 4,498 parameters, tapped at its output only"));
        let taps = ScriptModel::load(fixture("script", "taps.pt"), tch::Device::Cpu).unwrap();
        assert!(text(taps.render()).contains("4 taps: conv1, conv2, fc1, logits;"));
        assert_eq!(thousands(25_557_032), "25,557,032");
    }

    #[test]
    fn the_table_lists_stages_with_shapes_and_filters() {
        let _serial = crate::interrupt::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let net = TappedNet::new(ResNetConfig::small(Task::Segmentation, 5), tch::Device::Cpu).unwrap();
        let all = layers(&net, Some((32, 32)), &[]).unwrap();
        let text = all.data()["text/plain"].as_str().unwrap().to_owned();
        assert!(text.starts_with("input [1, 3, 32, 32]"), "{text}");
        assert!(text.contains("stem") && text.contains("head"), "{text}");
        let one = layers(&net, None, &["stage1"]).unwrap();
        assert_eq!(one.data()["text/plain"].as_str().unwrap().lines().count(), 3);
        let err = layers(&net, None, &["stage9"]).unwrap_err().to_string();
        assert!(err.contains("stage1"), "{err}");
        let names = stage_names_json(&net);
        assert_eq!(names.data()["application/json"][0], "stem");
    }
}
