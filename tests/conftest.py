"""Fixtures that start the real glassbox kernel (installed into .venv by `make install`)
and talk to it with jupyter_client over ZeroMQ."""
import os
import queue
import struct
import time
import zlib
from dataclasses import dataclass, field

import pytest
from jupyter_client.manager import start_new_kernel

# A cold first start compiles the library and tch for the REPL; later starts reuse that.
FIRST_CELL_TIMEOUT = 1200
CELL_TIMEOUT = 300


# Learned scores: as in the Rust tests (src/learned.rs), scripts/spread.py reruns the tests
# with GLASSBOX_TEST_SEED (an offset added to every seed of a learning test) and
# OMP_NUM_THREADS, and reads the lines `learned` prints; GLASSBOX_TEST_MEASURE=1 only prints.
SEED_OFFSET = int(os.environ.get("GLASSBOX_TEST_SEED", "0"))
MEASURING = os.environ.get("GLASSBOX_TEST_MEASURE") == "1"


def seed(base):
    """The seed a learning test uses for `base`."""
    return base + SEED_OFFSET


def learned(name, value, at_least=None, at_most=None):
    """Asserts a learned quantity's bound, after printing both for scripts/spread.py."""
    relation, bound = (">=", at_least) if at_least is not None else ("<=", at_most)
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"learned: {name} = {value:.6f} {relation} {bound} (seed offset {SEED_OFFSET}, {threads} threads)")
    if not MEASURING:
        assert value >= bound if relation == ">=" else value <= bound, f"{name}: {value}, expected {relation} {bound}"


@dataclass
class Run:
    """Everything a request produced: its reply and its iopub messages, in order."""

    reply: dict
    iopub: list = field(default_factory=list)

    @property
    def types(self):
        return [m["msg_type"] for m in self.iopub]

    def of(self, msg_type):
        return [m for m in self.iopub if m["msg_type"] == msg_type]

    def stdout(self):
        return "".join(m["content"]["text"] for m in self.of("stream") if m["content"]["name"] == "stdout")

    def stderr(self):
        return "".join(m["content"]["text"] for m in self.of("stream") if m["content"]["name"] == "stderr")

    def result(self):
        results = self.of("execute_result")
        assert len(results) == 1, f"expected one execute_result, got {self.types}"
        return results[0]["content"]["data"]["text/plain"]


def tiny_png(width=2, height=2):
    """A real PNG file (RGB, one colour), to push through the kernel's display path."""
    raw = b"".join(b"\x00" + b"\x40\x80\xc0" * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def tiny_png_rust(width=2, height=2):
    """The PNG as a Rust byte-slice expression."""
    return "&[" + ", ".join(str(b) for b in tiny_png(width, height)) + "]"


def run(kc, code, timeout=CELL_TIMEOUT, **kwargs):
    """Executes `code` and collects iopub up to this request's idle."""
    msg_id = kc.execute(code, **kwargs)
    return collect(kc, msg_id, timeout)


def collect(kc, msg_id, timeout):
    deadline = time.monotonic() + timeout
    iopub = []
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        iopub.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while True:
        reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            return Run(reply, iopub)


def unready(content):
    """Why a complete or inspect reply holds nothing from rust-analyzer: "warming up" (its
    first analysis runs), "answering late" (the query missed the kernel's budget and goes on),
    or None."""
    return content.get("metadata", {}).get("glassbox", {}).get("rust_analyzer")


def warming_up(content):
    return unready(content) == "warming up"


def ask_analysis(kc, send, timeout=120):
    """The reply content of a Rust completion or inspection (`send` sends it and returns the
    id), asked again while the kernel says rust-analyzer is not ready, as a user presses Tab
    again; the kernel answers at once meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        msg_id = send()
        reply = kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        if unready(reply["content"]) is None or time.monotonic() > deadline:
            return reply["content"]
        time.sleep(0.5)


def drain(kc):
    for channel in (kc.iopub_channel, kc.shell_channel):
        while True:
            try:
                channel.get_msg(timeout=0.2)
            except queue.Empty:
                break


@pytest.fixture(scope="session")
def kernel():
    """One kernel for the session, warmed up so the tests measure cells, not compiles."""
    km, kc = start_new_kernel(kernel_name="glassbox", startup_timeout=120)
    first = run(kc, "1", timeout=FIRST_CELL_TIMEOUT)
    assert first.reply["content"]["status"] == "ok", first.iopub
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=False)


@pytest.fixture
def fresh_kernel():
    """A kernel of its own, for tests that interrupt or restart the REPL."""
    km, kc = start_new_kernel(kernel_name="glassbox", startup_timeout=120)
    assert run(kc, "1", timeout=FIRST_CELL_TIMEOUT).reply["content"]["status"] == "ok"
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


@pytest.fixture
def kc(kernel):
    _, client = kernel
    drain(client)
    return client


def ok(r):
    """The run, after checking its cell succeeded."""
    content = r.reply["content"]
    assert content["status"] == "ok", (content.get("ename"), content.get("evalue"))
    return r


def error(r, ename="UsageError"):
    """The message of the cell's error, after checking it is an `ename`."""
    content = r.reply["content"]
    assert content["status"] == "error" and content["ename"] == ename, content
    return content["evalue"]


def outputs(r):
    return r.of("display_data") + r.of("execute_result")


def pngs(r):
    return [m for m in outputs(r) if "image/png" in m["content"]["data"]]
