"""Concept embeddings through the kernel: :net2vec, :nearest, :arith, :embed-distance (Net2Vec),
and :sevec, :diversity, :relevance, :saliency, :pointing-game (semantic vectors)."""
from conftest import ok, pngs, run


def test_net2vec_commands_bind_an_embedding_and_query_it(kc):
    ok(run(kc, ":seed 0\nlet n2v_net = TappedNet::new(ResNetConfig::small(Task::Segmentation, 11), device).unwrap();"))
    ok(run(kc, ":data scenes --n 40 --size 32 --seed 3 --as n2v_train"))
    ok(run(kc, ":data scenes --n 20 --size 32 --seed 4 --as n2v_val"))
    r = ok(run(kc, ":net2vec n2v_net --layer stage2 --data n2v_train --val n2v_val --categories object,colour --epochs 2 --seed 1"))
    assert "Net2Vec segmentation on stage2" in r.result() and pngs(r)
    # The result is a value: one learned score per concept, all of them IoUs.
    shown = ok(run(kc, "n2v_net_stage2_net2vec.multi.iter().all(|s| (0.0..=1.0).contains(s)) && !n2v_net_stage2_net2vec.multi.is_empty()"))
    assert shown.result() == "true"
    r = ok(run(kc, ":nearest sky --n 3"))
    assert r.result().startswith("nearest to object:sky") and len(r.result().splitlines()) == 4
    r = ok(run(kc, ':arith "sky - blue + green" --n 2'))
    assert "nearest to" in r.result()
    ok(run(kc, ":net2vec n2v_net --layer stage3 --data n2v_train --val n2v_val --categories object,colour --epochs 2 --as deep"))
    r = ok(run(kc, ":embed-distance n2v_net_stage2_net2vec deep"))
    assert r.result().startswith("D_ij = ")
    r = run(kc, ":nearest skyy --in deep")
    assert r.reply["content"]["ename"] == "MetricError" and "sky" in r.reply["content"]["evalue"]
    r = run(kc, ":nearest sky")
    assert r.reply["content"]["ename"] == "UsageError" and "choose one with --in" in r.reply["content"]["evalue"]
    r = run(kc, ":net2vec n2v_net --layer stage2 --data n2v_train")
    assert r.reply["content"]["ename"] == "UsageError" and "--val" in r.reply["content"]["evalue"]
    # Errors lose nothing.
    assert ok(run(kc, "deep.multi.len() > 0")).result() == "true"


def test_sevec_commands_bind_vectors_and_explain(kc):
    ok(run(kc, ":seed 0\nlet sv_net = TappedNet::new(ResNetConfig::small(Task::Segmentation, 11), device).unwrap();"))
    ok(run(kc, ":data scenes --n 40 --size 32 --seed 5 --as sv_scenes"))
    r = ok(run(kc, ":sevec sv_net --layer stage2 --data sv_scenes"))
    assert pngs(r)
    rows = ok(run(kc, "(sv_net_stage2_sevec.vectors.size()[0] as usize == sv_net_stage2_sevec.len(), sv_net_stage2_sevec.diversity.iter().all(|d| (0.0..=1.0).contains(d)))"))
    assert rows.result() == "(true, true)"
    r = ok(run(kc, ":relevance wheel car"))
    assert r.result().startswith("cos(v_wheel, v_car) = ")
    r = ok(run(kc, ":relevance object colour"))
    assert r.of("execute_result")
    r = ok(run(kc, ":diversity --net sv_net --data sv_scenes"))
    assert "p" in r.result()
    classes = ok(run(kc, 'sv_net_stage2_sevec.concepts.iter().filter(|c| c.starts_with("object:")).take(2).cloned().collect::<Vec<_>>().join(",")'))
    two = classes.result().strip('"')
    r = ok(run(kc, f":saliency sv_net sv_scenes[0] --class {two} --semantic"))
    assert pngs(r)
    r = ok(run(kc, ":pointing-game sv_net --data sv_scenes"))
    assert pngs(r)
    r = run(kc, f":saliency sv_net sv_scenes[99] --class {two}")
    assert r.reply["content"]["ename"] == "MetricError" and "40 images" in r.reply["content"]["evalue"]
    r = run(kc, ":saliency sv_net sv_scenes[0] --class sky --method lrp")
    assert r.reply["content"]["ename"] == "UsageError" and "gbp, gxi" in r.reply["content"]["evalue"]
    # One unit per channel: the vectors have stage2's 32 channels, and the gates spread them
    # over the map for the semantic saliency of the pointing game.
    r = ok(run(kc, ":sevec sv_net --layer stage2 --data sv_scenes --channels --top 0.3 --as ch"))
    assert "32 channel-units of [32, " in r.result()
    assert ok(run(kc, "ch.vectors.size()[1]")).result() == "32"
    r = ok(run(kc, ":pointing-game sv_net --data sv_scenes --in ch --as ch_game"))
    assert "semantic GBP" in r.result()
    # Table 2 with a classifier: scored on the scenes that show one object.
    ok(run(kc, "let sv_cls = TappedNet::new(ResNetConfig::small(Task::Classification, 11), device).unwrap();"))
    ok(run(kc, ":data scenes --n 24 --size 32 --objects 1 --seed 6 --as sv_one"))
    assert "Pearson" in ok(run(kc, ":diversity --net sv_cls --data sv_one --in ch")).result()
    ok(run(kc, ":data scenes --n 8 --size 32 --objects 2 --seed 6 --as sv_two"))
    r = run(kc, ":diversity --net sv_cls --data sv_two --in ch")
    assert r.reply["content"]["ename"] == "MetricError" and "exactly one object" in r.reply["content"]["evalue"]
