"""Output while a cell runs: displays, updates, clear_output, progress, partial lines."""
import base64
import re

from conftest import run, tiny_png, tiny_png_rust


def test_five_pngs_are_five_display_data_before_idle(kc):
    code = f"""
let png: &[u8] = {tiny_png_rust()};
for i in 0..5 {{
    glassbox::display::show(&Output::png(png).and(Output::text(format!("picture {{i}}"))));
}}
"""
    r = run(kc, code)
    assert r.reply["content"]["status"] == "ok"
    shown = r.of("display_data")
    assert len(shown) == 5
    assert r.types.index("display_data") < len(r.types) - 1 and r.types[-1] == "status"
    for i, msg in enumerate(shown):
        assert base64.b64decode(msg["content"]["data"]["image/png"]) == tiny_png()
        assert msg["content"]["data"]["text/plain"] == f"picture {i}"


def test_a_display_is_updated_in_place_by_its_id(kc):
    code = """
let h = glassbox::display::show(&Output::text("step 0"));
for i in 1..=3 { h.update(&Output::text(format!("step {i}"))); }
"""
    r = run(kc, code)
    shown, updates = r.of("display_data"), r.of("update_display_data")
    assert len(shown) == 1 and len(updates) == 3
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert all(u["content"]["transient"]["display_id"] == display_id for u in updates)
    assert [u["content"]["data"]["text/plain"] for u in updates] == ["step 1", "step 2", "step 3"]


def test_clear_output_is_sent(kc):
    r = run(kc, 'println!("old");\nglassbox::display::clear(true);\nprintln!("new");')
    assert r.types.index("clear_output") > 0
    clear = r.of("clear_output")[0]
    assert clear["content"]["wait"] is True


def test_progress_is_one_live_display_throttled(kc):
    code = """
let mut p = Progress::new("work", Some(40));
for i in 0..40 {
    std::thread::sleep(std::time::Duration::from_millis(25));
    p.metric("loss", 1.0 / (i + 1) as f64);
    p.step().unwrap();
}
p.finish();
"""
    r = run(kc, code)
    assert r.reply["content"]["status"] == "ok"
    shown, updates = r.of("display_data"), r.of("update_display_data")
    assert len(shown) == 1, r.types
    # 40 steps over ~1 s: redrawn at most ~10 times a second, plus the final state.
    assert 3 <= len(updates) <= 16, len(updates)
    final = updates[-1]["content"]["data"]
    assert "40/40" in final["text/plain"] and "loss=0.0250" in final["text/plain"]
    assert "text/html" in final


def test_partial_lines_reach_the_client_as_they_are(kc):
    code = """
use std::io::Write;
print!("\\r50%");
std::io::stdout().flush().unwrap();
std::thread::sleep(std::time::Duration::from_millis(300));
println!("\\r100%");
"""
    r = run(kc, code)
    texts = [m["content"]["text"] for m in r.of("stream")]
    assert texts[0] == "\r50%", texts
    assert "".join(texts) == "\r50%\r100%\n"


def png_size(b64):
    data = base64.b64decode(b64)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_a_plot_and_a_grid_arrive_as_pngs_of_the_asked_size(kc):
    code = """
let plot = LinePlot::new("loss").x_label("step").y_label("loss")
    .series_y("train", vec![1.0, 0.6, 0.4, 0.3]).size(320, 200);
glassbox::display::show(&plot);
let scenes = ConceptScenes::generate(4, &SceneConfig { size: 32, seed: 1, ..Default::default() }).unwrap();
glassbox::display::show(&Grid::new(&scenes.images).columns(2).padding(0).border(0));
"""
    r = run(kc, code)
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    shown = r.of("display_data")
    assert len(shown) == 2
    assert png_size(shown[0]["content"]["data"]["image/png"]) == (320, 200)
    assert "line plot 'loss'" in shown[0]["content"]["data"]["text/plain"]
    assert png_size(shown[1]["content"]["data"]["image/png"]) == (64, 64)


def final_progress_text(r):
    updates = r.of("update_display_data") or r.of("display_data")
    return updates[-1]["content"]["data"]["text/plain"]


def test_progress_says_interrupted_or_stopped_never_done_early(kc):
    # An interrupt (the kernel's own signal handler calls `interrupt::request`) ends the loop
    # at a step; the display says so, with whole-number metrics as integers.
    code = """
let mut p = Progress::new("training", Some(25000));
for i in 0..25000 {
    p.metric("i", i as f64);
    if i == 132 { glassbox::interrupt::request(); }
    if p.step().is_err() { break; }
}
p.finish();
"""
    r = run(kc, code)
    assert r.reply["content"]["status"] == "ok"
    final = final_progress_text(r)
    assert "interrupted at 133/25000" in final and "done in" not in final, final
    assert "i=132" in final and "i=132.0000" not in final, final
    r = run(kc, 'let mut p = Progress::new("work", Some(100));\nfor _ in 0..10 { p.step().unwrap(); }\np.finish();')
    final = final_progress_text(r)
    assert "stopped at 10/100" in final and "done in" not in final, final


def test_a_loss_curve_has_a_smoothed_line_and_whole_step_labels(kc):
    code = """
let mut curve = LinePlot::new("loss").x_label("step").smoothed(0.9).svg_output();
for step in 0..300 { curve.push("train", step as f64, 1.0 / (1.0 + step as f64) + 0.05 * ((step * 7919 % 13) as f64 / 13.0)); }
curve
"""
    r = run(kc, code)
    data = r.of("execute_result")[0]["content"]["data"]
    assert "smoothed 0.9" in data["text/plain"]
    svg = data["image/svg+xml"]
    labels = re.findall(r"<text[^>]*>\s*([^<]*?)\s*</text>", svg)
    assert "100" in labels and "100.0" not in labels, labels
    # Two lines per series: the raw losses, light, under their smoothed trend.
    assert svg.count("<polyline") >= 2, svg.count("<polyline")
