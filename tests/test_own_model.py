"""Your own model through the kernel: `:model load` opens a torchvision state dict and a
TorchScript export made by PyTorch (tests/fixtures, with the scripts that made them), and
every method command runs on them. Small inputs and few steps: these check that each
command reaches the library with the loaded model and shows its result; the Rust tests
check the taps against PyTorch and that training learns."""
import os

from conftest import error, ok, outputs, pngs, run

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
STATE_DICT = os.path.join(FIXTURES, "vision", "squeezenet1_1-fixture.pth")
EXPORT = os.path.join(FIXTURES, "script", "taps.pt")
TUPLE_EXPORT = os.path.join(FIXTURES, "script", "tuple.pt")


def test_a_state_dict_opens_as_its_torchvision_architecture(kc):
    # 727,626 parameters, as PyTorch counts them for squeezenet1_1(num_classes=10).
    r = ok(run(kc, f":model load {STATE_DICT}"))
    assert r.result().startswith("squeezenet1_1 (torchvision architecture): 10 classes, 727,626 parameters"), r.result()
    table = ok(run(kc, ":layers squeezenet1_1 --only features.3,features.12.expand3x3,classifier.1")).result()
    assert table.startswith("input [1, 3, 224, 224]"), table
    assert "features.3" in table and "[1, 128, 55, 55]" in table and "[1, 10, 13, 13]" in table, table
    line = ":layers squeezenet1_1 --only features.12.exp"
    kc.complete(line, len(line))
    reply = kc.get_shell_msg(timeout=120)
    matches = set(reply["content"]["matches"])
    assert {"features.12.expand1x1", "features.12.expand3x3_activation"} <= matches, matches
    # The same file under another architecture is refused and the variable stays.
    evalue = error(run(kc, f":model load {STATE_DICT} --arch squeezenet1_0 --as wrong"), "ModelError")
    assert "`features.0.weight` is [64, 3, 3, 3] in the file but [96, 3, 7, 7]" in evalue, evalue
    assert "squeezenet1_0, squeezenet1_1" in error(run(kc, f":model load {STATE_DICT} --arch squeezenet2"))
    assert "needs PATH" in error(run(kc, ":model load"))
    assert "no-such.pth" in error(run(kc, ":model load no-such.pth"))
    assert ok(run(kc, "squeezenet1_1.num_classes()")).result() == "10"


def test_a_torchscript_export_is_tapped_by_its_keys(kc):
    r = ok(run(kc, f":model load {EXPORT} --as cnn"))
    assert r.result().startswith("TorchScript export: 10 classes") and "conv1, conv2, fc1, logits" in r.result(), r.result()
    table = ok(run(kc, ":layers cnn")).result()
    assert table.startswith("input [1, 3, 224, 224]") is False and "conv2" in table, table
    evalue = error(run(kc, f":model load {TUPLE_EXPORT} --as pair"), "ModelError")
    assert "tuple of 2 outputs" in evalue
    ok(run(kc, f":model load {TUPLE_EXPORT} --as pair --taps conv2,logits"))
    assert "state dict" in error(run(kc, f":model load {STATE_DICT} --taps a,b"))
    assert "TorchScript" in error(run(kc, f":model load {EXPORT} --arch resnet18"))


def test_inspectability_and_embeddings_run_on_a_loaded_model(kc):
    ok(run(kc, f":seed 0\n:model load {STATE_DICT} --as sq"))
    ok(run(kc, ":data scenes --n 12 --size 64 --seed 2 --as own_scenes"))
    ok(run(kc, ":data scenes --n 8 --size 64 --seed 3 --as own_val"))
    r = ok(run(kc, ":auic sq --layer features.12 --data own_scenes --categories colour"))
    assert r.result().startswith("features.12: AUiC") and pngs(r)
    r = ok(run(kc, ":dissect sq --layer features.9.expand3x3_activation --data own_scenes --as sq_dissected"))
    assert "NetDissect" in r.result()
    r = ok(run(kc, ":top-channels sq --from sq_features_12_auic --data own_scenes --n 3 --images 2"))
    assert "top-channel maps" in r.result()
    r = ok(run(kc, ":net2vec sq --layer features.12 --data own_scenes --val own_val --categories colour --epochs 1"))
    assert "Net2Vec" in r.result() and pngs(r)
    r = ok(run(kc, ":sevec sq --layer features.12 --data own_scenes --categories colour"))
    assert pngs(r)
    assert ok(run(kc, "sq_features_12_sevec.len() > 0")).result() == "true"


def test_inns_interpret_a_tap_of_a_loaded_export(kc):
    ok(run(kc, f":seed 0\n:model load {EXPORT} --as inn_cnn"))
    ok(run(kc, ":autoencoder colormnist-ae --as own_ae"))
    ok(run(kc, ":data colormnist --n 200 --seed 1000 --as own_digits"))
    r = ok(run(kc, ":cinn inn_cnn --layer conv2 --data own_digits --steps 20 --ae own_ae"))
    assert "cINN on `conv2`" in r.result() and pngs(r)
    r = ok(run(kc, ":invariance inn_cnn --layers conv1,logits --data own_digits --steps 10 --n 3 --count 2 --ae own_ae"))
    assert outputs(r)
    r = ok(run(kc, ":fgsm inn_cnn_conv1_cinn,inn_cnn_logits_cinn --data own_digits --eps 0.1 --count 2"))
    assert "FGSM, eps 0.1" in str(outputs(r)[-1]["content"]["data"]["text/plain"])


def test_saliency_and_the_pointing_game_run_on_your_models(kc):
    ok(run(kc, ":seed 0\nlet vnet = VisionNet::new(Arch::ResNet18, 11, device).unwrap();"))
    ok(run(kc, ":data scenes --n 24 --size 64 --seed 5 --as sal_scenes"))
    ok(run(kc, ":sevec vnet --layer layer3 --data sal_scenes"))
    classes = ok(run(kc, 'vnet_layer3_sevec.concepts.iter().filter(|c| c.starts_with("object:")).take(2).cloned().collect::<Vec<_>>().join(",")'))
    two = classes.result().strip('"')
    r = ok(run(kc, f":saliency vnet sal_scenes[0] --class {two} --semantic --in vnet_layer3_sevec"))
    assert pngs(r)
    r = ok(run(kc, ":pointing-game vnet --data sal_scenes --in vnet_layer3_sevec"))
    assert pngs(r)
    # A TorchScript export: gradients reach its input (Gradient×Input), but its ReLUs are
    # libtorch's, so Guided Backprop is refused with the alternative.
    ok(run(kc, f":model load {EXPORT} --as sal_cnn"))
    ok(run(kc, ":data scenes --n 24 --size 32 --seed 5 --as sal_small"))
    ok(run(kc, ":sevec sal_cnn --layer conv2 --data sal_small"))
    one = ok(run(kc, 'sal_cnn_conv2_sevec.concepts.iter().find(|c| c.starts_with("object:") && sal_cnn_conv2_sevec.class_index(c).unwrap() < 10).unwrap().clone()')).result().strip('"')
    r = ok(run(kc, f":saliency sal_cnn sal_small[0] --class {one} --method gxi --in sal_cnn_conv2_sevec"))
    assert pngs(r)
    evalue = error(run(kc, f":saliency sal_cnn sal_small[0] --class {one} --method gbp --in sal_cnn_conv2_sevec"), "MetricError")
    assert "--method gxi" in evalue, evalue
    r = ok(run(kc, ":pointing-game sal_cnn --data sal_small --in sal_cnn_conv2_sevec"))
    assert pngs(r) and "GBP" not in r.result() and "GxI" in r.result(), r.result()


def test_a_usb_after_a_block_of_a_torchvision_resnet(kc):
    ok(run(kc, ":seed 0\nlet usb_net = VisionNet::new(Arch::ResNet18, 10, device).unwrap();"))
    ok(run(kc, ":data colormnist --n 64 --split train --seed 3 --as usb_digits"))
    r = ok(run(kc, ":usb usb_net --after layer3.1 --groups 2 --width 4 --data usb_digits --epochs 1 --seed 0"))
    assert outputs(r)
    table = ok(run(kc, ":layers usb_net_usb --size 32 --only layer3.1,usb,layer4.0.conv1")).result()
    assert "usb" in table and "[1, 8, 2, 2]" in table, table
    assert "accuracy" in ok(run(kc, ":eval usb_net_usb --data usb_digits")).result()
    evalue = error(run(kc, ":ssb usb_net --after layer3.1 --data usb_digits"))
    assert "torchvision classifier" in evalue and ":usb" in evalue, evalue
    evalue = error(run(kc, ":usb usb_net --after layer3.1.conv1 --width 4 --data usb_digits"), "SbError")
    assert "layer3.1" in evalue, evalue
