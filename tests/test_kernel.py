"""The real kernel over ZeroMQ: cells, outputs, errors, state, signatures, shutdown."""
import os
import queue
import subprocess
import sys
import time

from jupyter_client import BlockingKernelClient
from jupyter_client.manager import start_new_kernel

from conftest import FIRST_CELL_TIMEOUT, run

VENV_BIN = os.path.dirname(sys.executable)


def test_stdout_streams_and_message_order(kc):
    r = run(kc, 'println!("hello {}", 1 + 2);\n6 * 7')
    assert r.reply["content"]["status"] == "ok"
    assert r.stdout() == "hello 3\n"
    assert r.result() == "42"
    assert r.types[0] == "status" and r.iopub[0]["content"]["execution_state"] == "busy"
    assert r.types[1] == "execute_input"
    assert r.types.index("stream") < r.types.index("execute_result")
    assert r.types[-1] == "status"


def test_execution_count_increases_by_one(kc):
    a = run(kc, "1")
    b = run(kc, "2")
    assert b.reply["content"]["execution_count"] == a.reply["content"]["execution_count"] + 1
    assert b.of("execute_input")[0]["content"]["execution_count"] == b.reply["content"]["execution_count"]


def test_stderr_streams(kc):
    r = run(kc, 'eprintln!("careful");')
    assert r.reply["content"]["status"] == "ok"
    assert "careful" in r.stderr()


def test_variables_persist_across_cells(kc):
    assert run(kc, "let answer: i64 = 41;").reply["content"]["status"] == "ok"
    assert run(kc, "answer + 1").result() == "42"


def test_compile_error_is_one_error_naming_the_cell_line(kc):
    r = run(kc, 'let fine = 1;\nlet bad: i32 = "text";')
    assert r.reply["content"]["status"] == "error"
    assert r.reply["content"]["ename"] == "CompileError"
    errors = r.of("error")
    assert len(errors) == 1
    traceback = "\n".join(errors[0]["content"]["traceback"])
    assert "cell line 2" in traceback, traceback
    assert "mismatched types" in traceback, traceback
    # The kernel keeps going and earlier state is intact.
    assert run(kc, "answer * 2").result() == "82"


def test_panic_is_one_error_and_keeps_earlier_variables(kc):
    run(kc, "let kept = vec![1, 2, 3];")
    r = run(kc, 'let n = kept.len();\nif n == 3 { panic!("boom at {}", n); }')
    assert r.reply["content"]["status"] == "error"
    assert r.reply["content"]["ename"] == "Panic"
    assert r.reply["content"]["evalue"] == "boom at 3"
    errors = r.of("error")
    assert len(errors) == 1, r.types
    assert "cell line 2" in errors[0]["content"]["traceback"][0]
    assert run(kc, "kept.iter().sum::<i32>()").result() == "6"


def test_tch_cell_returns_the_right_numbers(kc):
    code = """
let x = Tensor::arange(16, (Kind::Float, device)).reshape([1, 1, 4, 4]);
let w = Tensor::ones([1, 1, 3, 3], (Kind::Float, device));
let y = x.conv2d(&w, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
Vec::<f32>::try_from(y.flatten(0, -1)).unwrap()
"""
    assert run(kc, code).result() == "[45.0, 54.0, 81.0, 90.0]"


def test_prelude_device_is_bound(kc):
    assert run(kc, "device").result() in ("Cpu", "Cuda(0)")


def test_evcxr_commands_work(kc):
    r = run(kc, ":type answer")
    assert r.reply["content"]["status"] == "ok"
    assert "i64" in str(r.of("execute_result"))


def test_bad_signature_is_ignored_and_kernel_keeps_answering(kernel, kc):
    km, _ = kernel
    info = km.get_connection_info()
    forger = BlockingKernelClient()
    info = dict(info, key=b"not-the-key")
    forger.load_connection_info(info)
    forger.start_channels()
    try:
        forger.kernel_info()
        try:
            reply = forger.get_shell_msg(timeout=2)
            raise AssertionError(f"kernel answered a forged message: {reply['msg_type']}")
        except queue.Empty:
            pass
    finally:
        forger.stop_channels()
    msg_id = kc.kernel_info()
    reply = kc.get_shell_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["language_info"]["name"] == "rust"
    assert run(kc, "answer").result() == "41"


def test_replies_of_the_right_type_for_every_request(kc):
    requests = {
        "complete_reply": lambda: kc.complete("let x = ans", 11),
        "inspect_reply": lambda: kc.inspect("answer", 3),
        "is_complete_reply": lambda: kc.is_complete("fn f() {"),
        "history_reply": lambda: kc.history(),
        "comm_info_reply": lambda: kc.comm_info(),
        "kernel_info_reply": lambda: kc.kernel_info(),
    }
    for expected, send in requests.items():
        msg_id = send()
        reply = kc.get_shell_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["msg_type"] == expected
    msg_id = kc.is_complete("fn f() {")
    assert kc.get_shell_msg(timeout=10)["content"]["status"] == "incomplete"


def test_kernelspec_is_listed():
    out = subprocess.run(
        [os.path.join(VENV_BIN, "jupyter"), "kernelspec", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "glassbox" in out


def test_kernel_info_is_answered_at_once_and_shutdown_on_control_ends_the_kernel():
    started = time.monotonic()
    km, kc = start_new_kernel(kernel_name="glassbox", startup_timeout=60)
    # start_new_kernel has waited for kernel_info; the REPL is still starting behind it.
    assert time.monotonic() - started < 30
    try:
        # A second kernel beside the session's starts from a copy of the warm build directory.
        assert run(kc, "2 + 2", timeout=FIRST_CELL_TIMEOUT).result() == "4"
        msg_id = kc.shutdown()  # jupyter_client sends shutdown_request on control
        reply = kc.get_control_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["msg_type"] == "shutdown_reply"
        deadline = time.monotonic() + 10
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not km.is_alive(), "kernel still running after shutdown_request"
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)


def test_jupyter_console_runs_a_cell():
    console = subprocess.run(
        [os.path.join(VENV_BIN, "jupyter"), "console", "--kernel", "glassbox", "--simple-prompt",
         "--ZMQTerminalInteractiveShell.kernel_timeout=120"],
        input='println!("from the console {}", 20 + 22);\nexit\n',
        capture_output=True, text=True, timeout=FIRST_CELL_TIMEOUT,
    )
    assert "from the console 42" in console.stdout, console.stdout + console.stderr
