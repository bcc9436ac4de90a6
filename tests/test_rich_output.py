"""Output while a cell runs: displays, updates, clear_output, progress, partial lines."""
import base64

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
