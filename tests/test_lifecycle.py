"""The kernel's life cycle around a cell: stdin replies that nobody asked for, interrupts while a
cell waits for input or is still compiling, shutdown while a cell runs, a crash of the REPL
child, the death of the process that launched the kernel, and a flood of output (with a
subscriber that never reads)."""
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

from conftest import FIRST_CELL_TIMEOUT, Run, collect, run

CELL = 120  # seconds a plain cell may take, compile included
MB = 1024 * 1024


# --- processes ---------------------------------------------------------------------------------


def descendants(pid):
    """The live descendants of `pid` (the REPL child, and any compiler it runs)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def gone(proc):
    """Whether the process has exited (a zombie nobody reaped counts as gone)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(procs, deadline):
    """The processes still alive at `deadline` (polling)."""
    while True:
        alive = [p for p in procs if not gone(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def kill(procs):
    """Kills what a test left running (only processes this test started, by pid)."""
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)


def repl_children(kernel_pid, timeout=30):
    """The kernel's REPL child: a re-exec of the glassbox binary under the kernel process."""
    kernel = psutil.Process(kernel_pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for c in descendants(kernel_pid):
            try:
                if c.ppid() == kernel_pid and c.exe() == kernel.exe():
                    found.append(c)
            except psutil.Error:
                pass
        if found:
            return found
        time.sleep(0.1)
    return []


def start_kernel():
    km, kc = start_new_kernel(kernel_name="glassbox", startup_timeout=120)
    first = run(kc, "1", timeout=FIRST_CELL_TIMEOUT)
    assert first.reply["content"]["status"] == "ok", first.iopub
    return km, kc


def stop_kernel(km, kc):
    """Shuts the kernel down, then kills whatever it left behind (its REPL child above all)."""
    pid = km.provisioner.pid if km.provisioner else None
    left = descendants(pid) if pid else []
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=True)
    kill(left)


@pytest.fixture(scope="module")
def shared():
    """One kernel for the tests that keep it alive (and its REPL child unchanged)."""
    km, kc = start_kernel()
    yield km, kc
    stop_kernel(km, kc)


@pytest.fixture
def own():
    """A kernel of its own, for tests that shut it down or crash its REPL child."""
    km, kc = start_kernel()
    yield km, kc
    stop_kernel(km, kc)


def drained(kc):
    for channel in (kc.iopub_channel, kc.shell_channel, kc.stdin_channel):
        while True:
            try:
                channel.get_msg(timeout=0.1)
            except queue.Empty:
                break
    return kc


def value(kc, code, timeout=CELL):
    r = run(kc, code, timeout=timeout)
    content = r.reply["content"]
    assert content["status"] == "ok", (code, content.get("ename"), content.get("evalue"))
    return r.result()


def repl_pid(kc):
    return int(value(kc, "std::process::id()"))


# --- stdin -------------------------------------------------------------------------------------

INPUT_CELL = 'let got = glassbox::runtime::input("name? ");\ngot'


def input_request(kc, msg_id, timeout=60):
    """The cell's input_request (stdin), failing early if the cell ended without asking."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_stdin_msg(timeout=0.2)
        except queue.Empty:
            continue
        if msg["msg_type"] == "input_request" and msg["parent_header"].get("msg_id") == msg_id:
            return msg
    raise AssertionError(f"no input_request for {msg_id} within {timeout} s")


def reply_input(kc, text, parent):
    """Sends an input_reply whose parent header is `parent` (a header dict, possibly made up)."""
    msg = kc.session.msg("input_reply", {"value": text}, parent=parent)
    kc.stdin_channel.send(msg)


def made_up_header():
    return {"msg_id": uuid.uuid4().hex, "msg_type": "input_request", "session": "nobody", "username": "nobody",
            "date": "2024-01-01T00:00:00.000000Z", "version": "5.3"}


def no_reply_for(kc, msg_id, seconds):
    """Asserts the cell stays unanswered (no execute_reply) for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            reply = kc.get_shell_msg(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            return
        if reply["parent_header"].get("msg_id") == msg_id:
            pytest.fail(f"the cell took a reply that did not answer its input_request: {reply['content']}")


def test_an_unasked_input_reply_is_dropped(shared):
    _, kc = shared
    kc = drained(kc)
    # A stray reply while no cell is asking (kc.input sends one with an empty parent header).
    kc.input("stale")
    time.sleep(0.5)
    msg_id = kc.execute(INPUT_CELL, allow_stdin=True)
    request = input_request(kc, msg_id)
    assert request["content"]["prompt"] == "name? "
    reply_input(kc, "fresh", request["header"])
    r = collect(kc, msg_id, 60)
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    assert "fresh" in r.result() and "stale" not in r.result()


def test_an_input_reply_to_another_request_is_dropped(shared):
    _, kc = shared
    kc = drained(kc)
    msg_id = kc.execute(INPUT_CELL, allow_stdin=True)
    request = input_request(kc, msg_id)
    reply_input(kc, "wrong", made_up_header())
    no_reply_for(kc, msg_id, 1.5)
    reply_input(kc, "right", request["header"])
    r = collect(kc, msg_id, 60)
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    assert "right" in r.result() and "wrong" not in r.result()


# --- interrupts --------------------------------------------------------------------------------


def test_interrupting_a_cell_that_waits_for_input_keeps_the_repl(shared):
    km, kc = shared
    kc = drained(kc)
    assert run(kc, "let kept_before = 5;").reply["content"]["status"] == "ok"
    pid = repl_pid(kc)
    msg_id = kc.execute(INPUT_CELL, allow_stdin=True)
    input_request(kc, msg_id)
    asked = time.monotonic()
    km.interrupt_kernel()
    r = collect(kc, msg_id, 20)
    took = time.monotonic() - asked
    content = r.reply["content"]
    assert (content["status"], content.get("ename")) == ("error", "KeyboardInterrupt"), content
    assert took < 3.0, f"took {took:.2f} s to stop"
    assert value(kc, "(kept_before, std::process::id())") == f"(5, {pid})", "the REPL child was restarted"
    # The abandoned request swallows no later reply: the next cell's input works.
    msg_id = kc.execute(INPUT_CELL, allow_stdin=True)
    request = input_request(kc, msg_id)
    reply_input(kc, "after", request["header"])
    r = collect(kc, msg_id, 60)
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    assert "after" in r.result()


def slow_to_compile(tag):
    """A cell that takes ~15 s to compile on the 2-core machine (constant evaluation: 1,000,000
    loop steps inside rustc) and runs instantly. The name is new each time, so nothing is
    cached."""
    return f"""#[allow(long_running_const_eval)]
const SLOW_{tag}: u64 = {{ let mut i = 0u64; let mut s = 0u64; while i < 1_000_000 {{ s = s.wrapping_mul(31).wrapping_add(i); i += 1; }} s }};
SLOW_{tag} % 10"""


def test_interrupting_a_cell_while_it_compiles_cancels_the_compile_and_keeps_the_repl(shared):
    km, kc = shared
    kc = drained(kc)
    assert run(kc, "let kept = 7;").reply["content"]["status"] == "ok"
    pid = repl_pid(kc)
    msg_id = kc.execute(slow_to_compile(uuid.uuid4().hex[:8]))
    time.sleep(0.5)
    asked = time.monotonic()
    km.interrupt_kernel()
    r = collect(kc, msg_id, 60)
    took = time.monotonic() - asked
    content = r.reply["content"]
    assert (content["status"], content.get("ename")) == ("error", "KeyboardInterrupt"), content
    assert "compil" in content["evalue"].lower(), content["evalue"]
    assert took < 5.0, f"took {took:.2f} s to stop"
    assert value(kc, "(kept, std::process::id())") == f"(7, {pid})", "the REPL child was restarted"
    assert value(kc, "kept + 1") == "8"


# --- shutdown, crash, parent death -------------------------------------------------------------


def test_shutdown_during_a_running_cell_ends_the_kernel_and_its_repl_child(own):
    km, kc = own
    kernel = psutil.Process(km.provisioner.pid)
    children = repl_children(kernel.pid)
    assert children, "no REPL child under the kernel"
    msg_id = kc.execute('println!("sleeping");\nstd::thread::sleep(std::time::Duration::from_secs(30));')
    deadline = time.monotonic() + CELL
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" and "sleeping" in msg["content"]["text"]:
            break
    time.sleep(1.0)
    try:
        kc.shutdown()  # on the control channel (jupyter_client 8)
        asked = time.monotonic()
        try:
            km.provisioner.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the kernel was still running {time.monotonic() - asked:.1f} s after shutdown_request")
        left = wait_gone(children, asked + 2.0)
        assert not left, f"REPL child {[p.pid for p in left]} outlived the kernel"
    finally:
        kill(children)  # orphans, once the kernel is gone: the fixture no longer sees them


def test_a_crash_names_the_variables_it_lost(own):
    _, kc = own
    assert run(kc, 'let alpha = 1; let beta = String::from("b");').reply["content"]["status"] == "ok"
    r = run(kc, "std::process::abort();", timeout=CELL)
    content = r.reply["content"]
    assert content["status"] == "error", content
    assert "alpha" in content["evalue"] and "beta" in content["evalue"], content["evalue"]
    assert "restarted" in content["evalue"], content["evalue"]
    assert value(kc, "1 + 1") == "2"
    # The restarted child answers `:vars` again: the prelude's probe came back with it.
    run(kc, "let after_crash = Tensor::zeros([4, 5], (Kind::Int64, device));")
    r = run(kc, ":vars")
    table = r.of("display_data")[0]["content"]["data"]["text/plain"]
    assert "[4, 5]" in table and "Int64" in table, table
    assert "did not say" not in r.stderr()


WRAPPER = """
import os, subprocess, sys, time
argv = sys.argv[1:]
kernel = subprocess.Popen(argv, env=dict(os.environ, JPY_PARENT_PID=str(os.getpid())),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
print(kernel.pid, flush=True)
time.sleep(3600)
"""


def test_the_kernel_exits_when_the_process_that_launched_it_dies():
    connection_file = os.path.join(tempfile.mkdtemp(prefix="glassbox-lifecycle-"), "kernel.json")
    write_connection_file(connection_file)
    argv = [a.replace("{connection_file}", connection_file) for a in KernelSpecManager().get_kernel_spec("glassbox").argv]
    # The kernel's stderr is the wrapper's, a pipe this test closes when it kills the wrapper:
    # as a terminal that goes away with its console, so the kernel's last log line fails.
    wrapper = subprocess.Popen([sys.executable, "-c", WRAPPER, *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    left = []
    kc = BlockingKernelClient(connection_file=connection_file)
    try:
        kernel = psutil.Process(int(wrapper.stdout.readline()))
        left = [kernel]
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)  # kernel_info answered
        children = repl_children(kernel.pid, timeout=10)
        print(f"kernel {kernel.pid}, REPL child {[c.pid for c in children]}")
        left = [kernel, *descendants(kernel.pid)]
        wrapper.send_signal(signal.SIGKILL)
        wrapper.stderr.close()
        killed = time.monotonic()
        wrapper.wait(timeout=5)
        alive = wait_gone([kernel], killed + 5.0)
        assert not alive, "the kernel outlived its parent by 5 s"
        alive = wait_gone(children, killed + 5.0)
        assert not alive, f"REPL child {[p.pid for p in alive]} outlived the kernel"
    finally:
        kc.stop_channels()
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
        kill(left)


# --- output flood ------------------------------------------------------------------------------

LINES = 200_000
FLOOD = f'for i in 0..{LINES} {{ println!("line {{i}}"); }}'


def flood(kc, code=FLOOD, timeout=60):
    """Runs a flood cell; on a timeout, says how much had arrived (rather than hanging)."""
    msg_id = kc.execute(code)
    deadline = time.monotonic() + timeout
    iopub = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            streams = [m for m in iopub if m["msg_type"] == "stream"]
            lines = sum(m["content"]["text"].count("\n") for m in streams)
            pytest.fail(f"no idle after {timeout} s: {len(streams)} stream messages, {lines} lines so far")
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        iopub.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    r = collect_reply(kc, msg_id, deadline, iopub)
    assert r.reply["content"]["status"] == "ok", r.reply["content"]
    return r


def collect_reply(kc, msg_id, deadline, iopub):
    while True:
        reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            return Run(reply, iopub)


def test_a_flood_of_output_arrives_whole_and_coalesced(shared):
    _, kc = shared
    kc = drained(kc)
    r = flood(kc)
    lines = r.stdout().splitlines()
    assert len(lines) == LINES, f"{len(lines)} lines"
    assert lines[0] == "line 0" and lines[-1] == f"line {LINES - 1}"
    assert lines == [f"line {i}" for i in range(LINES)], "lines out of order"
    streams = len(r.of("stream"))
    assert streams < 2_000, f"{streams} stream messages for {LINES} lines"


def stuck_subscriber(km):
    """A raw SUB socket on iopub that subscribes to everything and never reads: with one
    message of room and a 4 KB socket buffer, it pushes back on the kernel almost at once."""
    info = km.get_connection_info()
    stuck = zmq.Context.instance().socket(zmq.SUB)
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.RCVBUF, 4096)
    stuck.setsockopt(zmq.LINGER, 0)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(f"{info['transport']}://{info['ip']}:{info['iopub_port']}")
    time.sleep(1.0)  # the subscription reaches the kernel
    return stuck


def backlog(stuck):
    """How many messages the stuck subscriber finds once it reads at last."""
    n = 0
    while stuck.poll(1000):
        stuck.recv_multipart()
        n += 1
    return n


def test_a_subscriber_that_never_reads_does_not_grow_the_kernel(shared):
    km, kc = shared
    kc = drained(kc)
    stuck = stuck_subscriber(km)
    try:
        kernel = psutil.Process(km.provisioner.pid)
        assert run(kc, "1").reply["content"]["status"] == "ok"
        before = kernel.memory_info().rss
        first = flood(kc)
        after_one = kernel.memory_info().rss
        second = flood(kc)
        after_two = kernel.memory_info().rss
        growth = [(after_one - before) / MB, (after_two - after_one) / MB]
        print(f"kernel RSS {before / MB:.0f} MB, growth per flood {growth[0]:.1f} MB, {growth[1]:.1f} MB")
        for r in (first, second):
            assert len(r.stdout().splitlines()) == LINES, "the reading client lost lines"
        assert growth[0] < 100, f"the first flood grew the kernel by {growth[0]:.0f} MB"
        # Allocator noise alone reaches ~30 MB here (seen without any stuck subscriber).
        assert growth[1] < 50, f"the second flood grew the kernel by {growth[1]:.0f} MB more"
    finally:
        stuck.close(linger=0)


WIDE = 'for i in 0..200_000 { println!("{i:0>250}"); }'  # 50 MB of text


def test_a_subscriber_that_never_reads_costs_bounded_memory_even_for_wide_output(shared):
    """200,000 short lines coalesce to ~3 MB, too little to tell a bounded queue from an
    unbounded one; 50 MB a flood does: a bounded queue stops growing, an unbounded one grows
    by the whole flood each time."""
    km, kc = shared
    kc = drained(kc)
    stuck = stuck_subscriber(km)
    try:
        kernel = psutil.Process(km.provisioner.pid)
        rss = []
        streams = 0
        for _ in range(3):
            r = flood(kc, code=WIDE)
            assert len(r.stdout().splitlines()) == LINES, "the reading client lost lines"
            streams += len(r.of("stream"))
            rss.append(kernel.memory_info().rss / MB)
        climb = rss[2] - rss[0]
        got = backlog(stuck)
        print(f"kernel RSS after each wide flood {[round(x) for x in rss]} MB; {streams} stream messages sent, "
              f"the stuck subscriber finds {got} messages when it reads at last")
        assert climb < 50, (f"the kernel grew {climb:.0f} MB over two more 50 MB floods for a subscriber that never "
                            f"reads (which then found {got} messages queued of ~{streams} sent)")
    finally:
        stuck.close(linger=0)
