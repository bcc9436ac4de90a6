"""Interrupts keep state: a glassbox loop stops at a step boundary; code that ignores the
interrupt is stopped by restarting the REPL, and the error names what was lost."""
import time

from conftest import collect, run

TRAIN = """
let x = Tensor::randn([256, 4], (Kind::Float, device));
let y = x.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
let mut progress = Progress::new("training", None);
println!("started");
loop {
    let loss = lin.forward(&x).mse_loss(&y, tch::Reduction::Mean);
    opt.backward_step(&loss);
    progress.metric("loss", loss.double_value(&[]));
    if progress.step().is_err() { break; }
}
"""


def wait_for_stdout(kc, msg_id, text, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=deadline - time.monotonic())
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" and text in msg["content"]["text"]:
            return
    raise AssertionError(f"{text!r} never printed")


def test_interrupting_a_glassbox_loop_keeps_the_model_and_variables(fresh_kernel):
    km, kc = fresh_kernel
    setup = """
let earlier = 7;
let vs = nn::VarStore::new(device);
let lin = nn::linear(vs.root(), 4, 1, Default::default());
let mut opt = nn::Sgd::default().build(&vs, 0.05).unwrap();
let loss_before = lin.forward(&Tensor::ones([8, 4], (Kind::Float, device))).mse_loss(&Tensor::full([8, 1], 4.0, (Kind::Float, device)), tch::Reduction::Mean).double_value(&[]);
"""
    assert run(kc, setup).reply["content"]["status"] == "ok"
    msg_id = kc.execute(TRAIN)
    wait_for_stdout(kc, msg_id, "started")
    time.sleep(1.0)
    asked = time.monotonic()
    km.interrupt_kernel()
    r = collect(kc, msg_id, 30)
    stopped_after = time.monotonic() - asked
    assert r.reply["content"]["status"] == "error"
    assert r.reply["content"]["ename"] == "KeyboardInterrupt"
    assert "kept" in r.reply["content"]["evalue"]
    assert stopped_after < 2.0, f"took {stopped_after:.2f} s to stop"
    after = run(kc, """
let loss_after = lin.forward(&Tensor::ones([8, 4], (Kind::Float, device))).mse_loss(&Tensor::full([8, 1], 4.0, (Kind::Float, device)), tch::Reduction::Mean).double_value(&[]);
(earlier, loss_after < loss_before, progress.done() > 10)
""")
    assert after.result() == "(7, true, true)"


def test_interrupting_code_that_ignores_it_restarts_the_repl_and_names_lost_variables(fresh_kernel):
    km, kc = fresh_kernel
    assert run(kc, "let doomed = 5;").reply["content"]["status"] == "ok"
    msg_id = kc.execute('println!("spinning");\nloop { std::hint::spin_loop(); }')
    wait_for_stdout(kc, msg_id, "spinning")
    km.interrupt_kernel()
    r = collect(kc, msg_id, 60)
    assert r.reply["content"]["ename"] == "KeyboardInterrupt"
    assert "restarted" in r.reply["content"]["evalue"] and "doomed" in r.reply["content"]["evalue"]
    # The session goes on: a new child with the prelude, without the lost variable.
    assert run(kc, "device").result() in ("Cpu", "Cuda(0)")
    assert run(kc, "doomed").reply["content"]["status"] == "error"
