"""The :command language, completion, inspection, stdin and comms, through the real kernel."""
import re
from conftest import ask_analysis, collect, learned, run, seed, unready, warming_up


def test_help_lists_commands_and_question_mark_pages_usage(kc):
    listing = run(kc, ":help").result()
    for name in (":device", ":vars", ":time", ":seed"):
        assert name in listing
    r = run(kc, "?seed")
    assert r.reply["content"]["payload"][0]["data"]["text/plain"].startswith(":seed N")


def test_command_errors_name_the_problem_and_keep_the_session(kc):
    run(kc, "let kept_value = 11;")
    r = run(kc, ":sed 4")
    assert r.reply["content"]["ename"] == "UsageError"
    assert "Did you mean :seed?" in r.reply["content"]["evalue"]
    assert len(r.of("error")) == 1
    r = run(kc, ":seed minus-one")
    assert "non-negative integer" in r.reply["content"]["evalue"]
    assert run(kc, "kept_value").result() == "11"


def test_seed_makes_random_tensors_repeat(kc):
    code = ":seed 7\nVec::<f32>::try_from(Tensor::randn([3], (Kind::Float, device)).to_device(Device::Cpu)).unwrap()"
    assert run(kc, code).result() == run(kc, code).result()


def test_seed_compiles_nothing_and_reaches_the_next_code_that_compiles(kc):
    # `:seed` alone answers at once; the seed is set in the child before the next cell's code.
    assert run(kc, ":seed 5").of("execute_result") == []
    assert run(kc, "glassbox::seed::current()").result() == "5"
    # Code that does not compile runs nothing, so the seed waits for code that does.
    run(kc, ":seed 6")
    assert run(kc, "let broken: u8 = \"no\";").reply["content"]["ename"] == "CompileError"
    assert run(kc, "glassbox::seed::current()").result() == "6"
    # The user's columns stay theirs after the kernel's additions on the same line.
    code = ":seed 2\nlet q = 5i32; q.foo()"
    r = run(kc, code)
    assert r.reply["content"]["ename"] == "CompileError"
    assert f"--> cell line 2:{code.splitlines()[1].index('foo') + 1}" in "\n".join(r.reply["content"]["traceback"])


def test_vars_shows_tensor_shapes_and_commands_share_state_with_rust(kc):
    run(kc, "let grid = Tensor::zeros([2, 3], (Kind::Float, device));\nlet label = \"cat\";")
    r = run(kc, ":vars")
    table = r.of("display_data")[0]["content"]["data"]
    assert "grid" in table["text/plain"] and "[2, 3]" in table["text/plain"] and "Float" in table["text/plain"]
    assert "<table>" in table["text/html"]
    names = [line.split()[0] for line in table["text/plain"].splitlines()[1:]]
    assert names == sorted(names), names
    # A cell may mix commands and Rust; the command sees what the Rust lines defined.
    r = run(kc, "let mixed = 3;\n:vars\nmixed + 1")
    assert "mixed" in r.of("display_data")[0]["content"]["data"]["text/plain"]
    assert r.result() == "4"


def test_device_and_time(kc):
    assert "device:" in run(kc, ":device").result()
    assert run(kc, ":time on").result() == "per-cell timing on"
    assert "cell took" in run(kc, "1 + 1").stderr()
    assert run(kc, ":time off").result() == "per-cell timing off"


def test_compile_errors_after_a_command_name_the_right_line(kc):
    r = run(kc, ":seed 1\nlet a = 1;\nlet b: u8 = \"no\";")
    assert r.reply["content"]["ename"] == "CompileError"
    assert "cell line 3" in r.reply["content"]["evalue"]


def test_completion_of_commands_flags_and_rust(kc):
    msg_id = kc.complete(":see", 4)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["matches"] == [":seed"]
    assert (reply["content"]["cursor_start"], reply["content"]["cursor_end"]) == (0, 4)
    run(kc, "let completion_target = 5;")
    code = "completion_ta"
    assert "completion_target" in ask_analysis(kc, lambda: kc.complete(code, len(code)))["matches"]


def test_rust_completion_answers_at_once_while_rust_analyzer_warms_up(fresh_kernel):
    _, kc = fresh_kernel
    # The fixture's first cell has its answer: rust-analyzer now warms up in the background,
    # for seconds, and neither requests nor cells wait for it.
    code = "let v: Vec<i32> = Vec::new();\nv.le"
    kc.complete(code, len(code))
    early = kc.get_shell_msg(timeout=30)["content"]
    assert early["matches"] == [] and warming_up(early), early
    # Meanwhile the session's own variables complete, from the kernel's side.
    kc.complete("f(&zo", 5)
    early = kc.get_shell_msg(timeout=30)["content"]
    assert (early["matches"], early["cursor_start"], early["cursor_end"]) == (["zoo"], 3, 5), early
    kc.inspect("Vec", 3)
    assert warming_up(kc.get_shell_msg(timeout=30)["content"])
    assert run(kc, "20 + 22").result() == "42"
    # A cell whose variable has no written type asks rust-analyzer, and gets it mid-warm-up.
    assert run(kc, "let answer = 40 + 2; answer").result() == "42"
    warm = ask_analysis(kc, lambda: kc.complete(code, len(code)))
    assert unready(warm) is None and any(m.startswith("len") for m in warm["matches"]), warm


def test_a_command_whose_code_does_not_fit_a_variable_says_so_in_its_own_terms(kc):
    # A type of the user's that shares a library type's name passes the kernel's check by
    # name; the library call it compiles to does not take it.
    assert run(kc, "mod mine { pub struct LeNet; }\nlet look_alike = mine::LeNet;").reply["content"]["status"] == "ok"
    r = run(kc, "let before = 1;\n:layers look_alike")
    content = r.reply["content"]
    assert content["ename"] == "CommandError", content
    assert content["evalue"].startswith(":layers cannot run on these variables: "), content
    assert "LeNet" in content["evalue"], content
    assert content["traceback"][0] == "cell line 2: :layers look_alike", content
    assert not any("show_layers" in line for line in content["traceback"]), content
    assert run(kc, "before").result() == "1"


def test_inspect_shows_command_usage_and_rust_docs(kc):
    kc.inspect(":vars", 3)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["found"] and reply["content"]["data"]["text/plain"].startswith(":vars")
    code = "glassbox::seed::set"
    content = ask_analysis(kc, lambda: kc.inspect(code, len(code)))
    assert content["found"], content
    assert "libtorch" in content["data"]["text/plain"]


def test_input_request_reaches_the_client(kc):
    msg_id = kc.execute('let name = input("who? ");\nprintln!("hello {name}");', allow_stdin=True)
    request = kc.get_stdin_msg(timeout=120)
    assert request["msg_type"] == "input_request"
    assert request["content"]["prompt"] == "who? "
    kc.input("glassbox")
    r = collect(kc, msg_id, 120)
    assert r.stdout() == "hello glassbox\n"


def test_comm_info_and_unknown_comms_are_closed(kc):
    msg_id = kc.comm_info()
    reply = kc.get_shell_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["comms"] == {}
    msg = kc.session.msg("comm_open", {"comm_id": "c-1", "target_name": "nobody", "data": {}})
    kc.shell_channel.send(msg)
    while True:
        got = kc.get_iopub_msg(timeout=10)
        if got["msg_type"] == "comm_close":
            assert got["content"]["comm_id"] == "c-1"
            break


def test_layers_and_stage_completion_come_from_a_live_model(kc):
    made = run(kc, ":seed 1\nlet net = TappedNet::new(ResNetConfig::small(Task::Segmentation, 5), device).unwrap();")
    assert made.reply["content"]["status"] == "ok", made.reply["content"]
    table = run(kc, ":layers net --size 64").result()
    assert table.startswith("input [1, 3, 64, 64]")
    assert "stem" in table and "stage1" in table and "head" in table
    line = ":layers net --only st"
    kc.complete(line, len(line))
    reply = kc.get_shell_msg(timeout=120)
    assert {"stem", "stage1", "stage2"} <= set(reply["content"]["matches"]), reply["content"]
    bad = run(kc, ":layers net --only stage9")
    assert bad.reply["content"]["ename"] == "ModelError"
    assert "stage1" in bad.reply["content"]["evalue"]
    assert len(bad.of("error")) == 1
    assert run(kc, "net.stages().len() > 3").result() == "true"


def test_show_draws_a_data_set_with_its_label_maps(kc):
    run(kc, "let scenes = ConceptScenes::generate(12, &SceneConfig { size: 32, seed: 4, ..Default::default() }).unwrap();")
    r = run(kc, ":show scenes --n 4 --category part")
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    shown = r.of("display_data")
    assert len(shown) == 2 and all("image/png" in m["content"]["data"] for m in shown)
    assert shown[0]["content"]["data"]["text/plain"].startswith("grid of 4 images")
    legend = shown[1]["content"]["data"]["text/plain"].split("legend: ")[1]
    # The legend names parts (drawn from the part vocabulary), never objects.
    assert legend and "sky" not in legend
    wrong = run(kc, ":show kept_value")
    assert wrong.reply["content"]["ename"] == "UsageError"
    assert "scenes" in wrong.reply["content"]["evalue"]


def percent(text, label):
    """The figure after `label` in a score line: `accuracy 91.20%` -> 0.912."""
    return float(re.search(label + r" ([0-9.]+)%", text).group(1)) / 100


def test_zoo_models_load_with_their_scores_and_checkpoints(kc):
    listing = run(kc, ":model").result()
    assert "scenes-resnet" in listing and "colormnist-lenet" in listing
    # The first load trains the model (a few seconds here) and caches it; the card reports
    # the test scores.
    r = run(kc, ":model colormnist-lenet", timeout=900)
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    card = r.result()
    learned("zoo colormnist-lenet: test accuracy", percent(card, "test: loss [0-9.]+, accuracy"), at_least=0.8)
    r = run(kc, ":model colormnist-lenet@0 --as untrained")
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    assert "trains on first use" not in r.stdout()
    run(kc, f":data colormnist --n 300 --split test --seed {seed(9)} --as held_out")
    trained = percent(run(kc, ":eval colormnist_lenet --data held_out").result(), "accuracy")
    untrained = percent(run(kc, ":eval untrained --data held_out").result(), "accuracy")
    learned("zoo colormnist-lenet: held-out accuracy", trained, at_least=0.8)
    learned("zoo colormnist-lenet@0: held-out accuracy", untrained, at_most=0.3)
    # The zoo in the prelude loads the same weights.
    same = run(kc, "let again: LeNet = zoo.load(\"colormnist-lenet\").unwrap();\n"
                   "glassbox::models::score(&again, &held_out).unwrap().accuracy")
    assert abs(float(same.result()) - trained) < 1e-3
    wrong = run(kc, ":model colormnist-lenet@7")
    assert wrong.reply["content"]["ename"] == "UsageError"
    assert "checkpoints are at steps 0, " in wrong.reply["content"]["evalue"]


def test_data_train_and_eval_a_small_net(kc):
    r = run(kc, f":data scenes --n 96 --size 32 --seed {seed(3)} --as small_scenes")
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    assert r.result().startswith("96 images of 32×32")
    run(kc, f":seed {seed(0)}\n" "let seg = TappedNet::new(ResNetConfig { widths: vec![8, 16], depths: vec![1, 1], "
            "strides: vec![1, 2], stem_width: 8, ..ResNetConfig::small(Task::Segmentation, "
            "Vocabulary::scenes().names(Category::Object).len() as i64) }, device).unwrap();")
    before = run(kc, ":eval seg --data small_scenes").result()
    r = run(kc, f":train seg --data small_scenes --epochs 4 --lr 0.05 --seed {seed(0)}")
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    first, last = map(float, re.search(r"epoch loss ([0-9.]+) -> ([0-9.]+)", r.result()).groups())
    learned(":train seg: epoch loss drop", first - last, at_least=0.0)
    curves = [m for m in r.of("display_data") + r.of("update_display_data")
              if m["content"]["data"].get("text/plain", "").startswith("line plot")]
    assert curves and all("image/png" in m["content"]["data"] for m in curves)
    after = run(kc, ":eval seg --data small_scenes").result()
    print(before, after)
    learned(":train seg: accuracy - majority", percent(after, "accuracy") - percent(after, "majority baseline"), at_least=0.1)
    # A task mismatch is the library's error; the model is still there.
    run(kc, ":data colormnist --n 10 --as few_digits")
    bad = run(kc, ":train seg --data few_digits")
    assert bad.reply["content"]["ename"] == "ModelError"
    assert "classification" in bad.reply["content"]["evalue"]
    assert run(kc, ":eval seg --data small_scenes").reply["content"]["status"] == "ok"
