"""Inspectability metrics through the kernel: :auic, :dissect, :inspect-curve, :top-channels."""
from conftest import run


def ok(r):
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    return r


def test_auic_commands_bind_results_and_draw(kc):
    ok(run(kc, ":seed 0\nlet probe_net = TappedNet::new(ResNetConfig::small(Task::Segmentation, 11), device).unwrap();"))
    ok(run(kc, ":data scenes --n 24 --size 32 --seed 2 --as probe_scenes"))
    r = ok(run(kc, ":auic probe_net --layer stage2 --data probe_scenes --categories material,colour"))
    shown = r.of("execute_result")[0]["content"]["data"]
    assert shown["text/plain"].startswith("stage2: AUiC") and "image/png" in shown and "<table>" in shown["text/html"]
    # The result is a value: its AUiC is in [0, 1] and it has one score per channel.
    value = ok(run(kc, "(probe_net_stage2_auic.channels.len(), probe_net_stage2_auic.auic >= 0.0 && probe_net_stage2_auic.auic <= 1.0)"))
    assert value.result() == "(32, true)"
    exact = ok(run(kc, ":auic probe_net --layer stage2 --data probe_scenes --categories material,colour --exact --as exact_auic"))
    assert "(exact)" in exact.result()
    close = ok(run(kc, "(exact_auic.auic - probe_net_stage2_auic.auic).abs() < 1e-3"))
    assert close.result() == "true"
    r = ok(run(kc, ":dissect probe_net --layer stage1 --data probe_scenes --as dissected"))
    assert "NetDissect" in r.result() and "detectors" in r.result()
    r = ok(run(kc, ":inspect-curve probe_net_stage2_auic,dissected"))
    pngs = [m for m in r.of("display_data") + r.of("execute_result") if "image/png" in m["content"]["data"]]
    assert len(pngs) == 2
    r = ok(run(kc, ":top-channels probe_net --from probe_net_stage2_auic --data probe_scenes --n 5 --images 3"))
    assert "top-channel maps" in r.result()
    r = ok(run(kc, ":top-channels probe_net --from probe_net_stage2_auic --data probe_scenes --channel 2 --images 3"))
    assert r.of("display_data") and "image/png" in r.of("execute_result")[0]["content"]["data"]


def test_metric_errors_name_what_is_allowed(kc):
    ok(run(kc, ":seed 0\nlet probe_net2 = TappedNet::new(ResNetConfig::small(Task::Segmentation, 11), device).unwrap();"))
    ok(run(kc, ":data scenes --n 4 --size 32 --as tiny_scenes"))
    r = run(kc, ":auic probe_net2 --layer stage9 --data tiny_scenes")
    assert r.reply["content"]["ename"] == "MetricError" and "stage3" in r.reply["content"]["evalue"]
    r = run(kc, ":auic probe_net2 --layer sb --data tiny_scenes")
    assert "has none" in r.reply["content"]["evalue"]
    r = run(kc, ":auic probe_net2 --layer stage1 --data tiny_scenes --bins 1")
    assert r.reply["content"]["ename"] == "UsageError"
    assert ok(run(kc, "probe_net2.stages().len()")).result() == "5"
