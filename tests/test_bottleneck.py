"""Semantic bottlenecks through the kernel: :usb, :ssb, :bottleneck, :sb-report, :sweep-usb on the zoo net."""
from conftest import run


def ok(r):
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    return r


def test_bottleneck_commands_train_report_and_plot(kc):
    ok(run(kc, ":model scenes-resnet", timeout=900))
    ok(run(kc, ":data scenes --n 150 --seed 7 --as sb_scenes"))
    line = ":usb scenes_resnet --after st"
    kc.complete(line, len(line))
    reply = kc.get_shell_msg(timeout=120)
    assert {"stage1", "stage2", "stem"} <= set(reply["content"]["matches"]), reply["content"]

    r = ok(run(kc, ":usb scenes_resnet --after stage2 --width 8 --data sb_scenes --epochs 2 --seed 0"))
    row = r.result()
    assert "USB 1×8" in row and "softmax" in row and "argmax" in row and "active" in row
    html = r.of("execute_result")[0]["content"]["data"]["text/html"]
    assert "Σ&gt;0" in html or "Σ>0" in html
    assert ok(run(kc, ":sb-report scenes_resnet_usb")).result() == row
    assert "usb" in ok(run(kc, ":layers scenes_resnet_usb --size 64")).result()
    assert "mIoU" in ok(run(kc, ":eval scenes_resnet_usb --data sb_scenes")).result()
    # The library API is the same thing: the bottleneck's channels, one-hot under argmax.
    one_hot = ok(run(kc, "let xs = sb_scenes.images.narrow(0, 0, 2);\n"
                         "scenes_resnet_usb.sb_outputs(&xs).unwrap().sum_dim_intlist(1, false, Kind::Float)"
                         ".eq(1.0).all().int64_value(&[])"))
    assert one_hot.result() == "1"

    r = ok(run(kc, ":ssb scenes_resnet --after stage2 --groups material,colour --data sb_scenes "
                   "--phase1-epochs 1 --phase2-epochs 1 --seed 0 --as ssb_net"))
    assert "SSB (material 7, colour 11)" in r.result() and "material accuracy" in r.result()

    # Table 7's baseline: linear channels, one score, bound and tapped as `sb` like the others.
    r = ok(run(kc, ":bottleneck scenes_resnet --after stage2 --width 4 --data sb_scenes --epochs 1 --seed 0"))
    assert "plain bottleneck (4 linear channels) after stage2 (32 -> 4 channels)" in r.result(), r.result()
    assert "linear" in r.result() and "argmax" not in r.result()
    assert "plain" in ok(run(kc, ":layers scenes_resnet_plain --size 64")).result()
    r = ok(run(kc, ":auic scenes_resnet_plain --layer sb --data sb_scenes --categories colour"))
    assert "plain: AUiC" in r.result() and "4 channels" in r.result(), r.result()

    r = ok(run(kc, ":sweep-usb scenes_resnet --after stage2 --n 1 --k 2,4 --data sb_scenes --epochs 1 --seed 0"))
    shown = r.of("execute_result")[0]["content"]["data"]
    assert "image/png" in shown and "1×2" in shown["text/plain"] and "1×4" in shown["text/plain"]


def test_bottleneck_errors_name_what_is_allowed(kc):
    ok(run(kc, ":model scenes-resnet", timeout=900))
    ok(run(kc, ":data scenes --n 20 --seed 3 --as few_scenes"))
    r = run(kc, ":usb scenes_resnet --after stage9 --width 4 --data few_scenes")
    assert r.reply["content"]["ename"] == "SbError"
    assert "stage9" in r.reply["content"]["evalue"] and "stage2" in r.reply["content"]["evalue"]
    assert len(r.of("error")) == 1
    r = run(kc, ":usb scenes_resnet --after stage2 --width 1 --data few_scenes")
    assert r.reply["content"]["ename"] == "UsageError" and "at least 2" in r.reply["content"]["evalue"]
    r = run(kc, ":ssb scenes_resnet --after stage2 --groups materials --data few_scenes")
    assert "did you mean `material`" in r.reply["content"]["evalue"]
    r = run(kc, ":bottleneck scenes_resnet --after stage2 --width 0 --data few_scenes")
    assert r.reply["content"]["ename"] == "UsageError" and "at least 1 channel" in r.reply["content"]["evalue"]
    r = run(kc, ":sb-report scenes_resnet")
    assert r.reply["content"]["ename"] == "UsageError" and "SbNet" in r.reply["content"]["evalue"]
    # The session is intact.
    assert "mIoU" in ok(run(kc, ":eval scenes_resnet --data few_scenes")).result()
