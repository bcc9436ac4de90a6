"""Invertible interpretation through the kernel (invariances paper): :autoencoder, :cinn,
:samples, :invariance, :fgsm, :semantic-inn, :swap, :factor-probe, :sensitivity. Small step
counts: these check that each command runs the library end to end and shows its result; the
Rust tests check that training learns."""
from conftest import error, ok, outputs, pngs, run


def figures(r):
    return [m for m in outputs(r) if "<img" in m["content"]["data"].get("text/html", "")]


def test_invariances_of_layers_samples_and_attacks(kc):
    ok(run(kc, ":seed 0\n:model colormnist-lenet --as inn_net"))
    r = ok(run(kc, ":autoencoder colormnist-ae --as inn_ae"))
    assert "colormnist-ae: trained on" in r.result()
    ok(run(kc, ":data colormnist --n 400 --seed 1000 --as inn_digits"))
    r = ok(run(kc, ":cinn inn_net --layer head --data inn_digits --steps 30 --ae inn_ae"))
    assert "cINN on `head`" in r.result() and pngs(r)
    held = ok(run(kc, "(inn_net_head_cinn.report.nll_before.is_finite(), inn_net_head_cinn.report.train.steps)"))
    assert held.result() == "(true, 30)"
    r = ok(run(kc, ":samples inn_net_head_cinn inn_digits[0..3] --n 4 --seed 2"))
    assert pngs(r) and "4 samples for each of 3 images" in r.result()
    r = ok(run(kc, ":invariance inn_net --layers conv1,fc1 --data inn_digits --steps 20 --n 3 --count 2 --ae inn_ae"))
    assert figures(r) and "conv1: sample variance" in r.stdout() + str(outputs(r)[-1]["content"]["data"])
    # Both layers' t's are variables now, and an attack is decoded through them.
    r = ok(run(kc, ":fgsm inn_net_conv1_cinn,inn_net_fc1_cinn --data inn_digits --eps 0.1 --count 3"))
    assert figures(r) and "FGSM, eps 0.1" in str(outputs(r)[-1]["content"]["data"]["text/plain"])
    # Bad input: clear errors, and the variables survive.
    assert "(0, 1]" in error(run(kc, ":fgsm inn_net_conv1_cinn --data inn_digits --eps 3"))
    assert "not a :cinn result" in error(run(kc, ":samples inn_net inn_digits"))
    assert "images 0..100000 asked of a data set of" in error(
        run(kc, ":samples inn_net_head_cinn inn_digits[0..100000]"), "DataError")
    assert "an integer of at least 2, got `1`" in error(run(kc, ":samples inn_net_head_cinn inn_digits --n 1"))
    assert "needs --layer" in error(run(kc, ":cinn inn_net --data inn_digits"))
    evalue = error(run(kc, ":cinn inn_net --layer conv9 --data inn_digits --steps 5 --ae inn_ae"), "InnError")
    assert "conv9" in evalue
    assert ok(run(kc, "inn_net_head_cinn.report.train.steps")).result() == "30"


def test_semantic_factors_swaps_and_sensitivity(kc):
    ok(run(kc, ":seed 0"))
    ok(run(kc, ":autoencoder colormnist-ae --as sem_ae"))
    ok(run(kc, ":data colormnist --n 300 --seed 1000 --as sem_digits"))
    r = ok(run(kc, ":semantic-inn sem_ae --factors digit,fg,bg --sizes 4,3,3 --pairs 200 --steps 20 --as sem"))
    assert "factors residual 54, digit 4, fg 3, bg 3" in r.result() and pngs(r)
    r = ok(run(kc, ":factor-probe sem --data sem_digits --ae sem_ae"))
    assert "linear probe for digit from each factor: residual" in r.result() and pngs(r)
    r = ok(run(kc, ":swap sem --data sem_digits --count 3 --ae sem_ae"))
    assert "rows: image, donor, residual swapped, digit swapped, fg swapped, bg swapped" in r.result() and pngs(r)
    r = ok(run(kc, ":sensitivity colormnist-lenet --layer conv2 --semantic sem --data sem_digits --ae sem_ae "
                   "--checkpoints 0,1280 --steps 10 --samples 3"))
    assert "step 0:" in r.result() and "step 1280:" in r.result() and "class kept" in r.result() and pngs(r)
    assert ok(run(kc, "sensitivity.class_kept.len()")).result() == "2"
    # Estimated sizes when none are given; they add up to z̄'s 64 dimensions.
    r = ok(run(kc, ":semantic-inn sem_ae --factors fg,bg --pairs 100 --steps 5 --as sem_estimated"))
    sizes = ok(run(kc, "sem_estimated.factors().sizes.iter().sum::<i64>()"))
    assert sizes.result() == "64"
    assert "digit, fg, bg" in error(run(kc, ":semantic-inn sem_ae --factors colour"))
    assert "1 sizes for 2 factors" in error(run(kc, ":semantic-inn sem_ae --factors fg,bg --sizes 3"))
    assert "no checkpoint at step 7" in error(run(
        kc, ":sensitivity colormnist-lenet --layer conv2 --semantic sem --data sem_digits --ae sem_ae --checkpoints 7"
    ), "InnError")
    assert "without a step" in error(run(kc, ":sensitivity colormnist-lenet@128 --layer conv2 --semantic sem --data sem_digits"))
    assert "20 images" not in error(run(kc, ":swap sem --data sem_digits --count 200 --ae sem_ae"), "InnError")
    assert ok(run(kc, "sem.factors().names.join(\",\")")).result() == '"residual,digit,fg,bg"'
