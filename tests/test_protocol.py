"""Protocol hardening, below jupyter_client: a size cap on every socket, replayed messages,
a reply to every signed request, the IOPub welcome (JEP 65, protocol 5.4), and a bounded fuzz.

Two kinds of hand-made peers talk to the kernel here:
- `Peer`: a raw TCP socket that speaks ZMTP 3.0 by hand (greeting, READY, frames), to send
  what no ZeroMQ library would (frames announcing 2**44 bytes, broken greetings);
- `Wire`: raw pyzmq sockets (DEALER on shell/control/stdin, SUB on iopub) carrying frames
  built and signed (or mis-signed) by hand, so that headers, parts and signatures can be
  anything.

One kernel, started with a small cap (GLASSBOX_MAX_MESSAGE_BYTES = 1 MiB), is shared by the
module; a test that kills it fails, and the next test gets a fresh one (see `Capped.ensure`).
"""
import hashlib
import hmac
import json
import os
import queue
import random
import socket
import string
import struct
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.manager import start_new_kernel
from jupyter_client.session import Session

from conftest import FIRST_CELL_TIMEOUT, run

CAP = 1 << 20
CAP_ENV = "GLASSBOX_MAX_MESSAGE_BYTES"
# How long something that should happen at once (a reply, a close) may take.
QUICK = 5.0
# How long a "no reply" is waited for.
SILENCE = 3.0
RSS_SLACK = 50 << 20
DELIM = b"<IDS|MSG>"
MiB = 1 << 20
KiB = 1 << 10
BUILD = Path(__file__).resolve().parent.parent / "build"


# --------------------------------------------------------------------------------------------
# Message parts, signed by hand


def sign(key, parts):
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        mac.update(p)
    return mac.hexdigest().encode()


def as_bytes(part):
    """A message part: bytes as they are, anything else as JSON."""
    return part if isinstance(part, bytes) else json.dumps(part).encode()


def new_header(msg_type, **changes):
    header = {
        "msg_id": uuid.uuid4().hex,
        "session": "protocol-test-session",
        "username": "protocol-test",
        "date": datetime.now(timezone.utc).isoformat(),
        "msg_type": msg_type,
        "version": "5.3",
    }
    header.update(changes)
    return header


def signed(key, header, content, parent=None, metadata=None, signature=None):
    """[delimiter, signature, header, parent, metadata, content], each part JSON or raw bytes,
    signed with `key` unless a `signature` is given."""
    parts = [as_bytes(header), as_bytes({} if parent is None else parent), as_bytes({} if metadata is None else metadata),
             as_bytes(content)]
    return [DELIM, sign(key, parts) if signature is None else signature, *parts]


def loads(raw):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def decode(frames, key):
    """A received message as a dict (signature_ok, header, parent_header, metadata, content,
    msg_type), or None if it has no delimiter or too few frames."""
    if DELIM not in frames:
        return None
    at = frames.index(DELIM)
    rest = frames[at + 1:]
    if len(rest) < 5:
        return None
    header = loads(rest[1])
    msg = {
        "signature_ok": hmac.compare_digest(rest[0], sign(key, rest[1:5])),
        "header": header,
        "parent_header": loads(rest[2]),
        "metadata": loads(rest[3]),
        "content": loads(rest[4]),
        "msg_type": header.get("msg_type") if isinstance(header, dict) else None,
    }
    return msg


def instant(date):
    try:
        return datetime.fromisoformat(date)
    except (TypeError, ValueError):
        return date


def same_header(parent, header):
    """Whether a reply's parent header is the request's header as sent: every field sent, with
    its value (`date` compared as an instant: a kernel may write it anew, as ipykernel does);
    a required field the request lacked may stand there empty, and nothing else is added."""
    if not isinstance(parent, dict) or not isinstance(header, dict):
        return False
    added = parent.keys() - header.keys()
    if any(parent[f] != "" for f in added) or not added <= {"msg_id", "session", "username", "version"}:
        return False
    return all(f in parent and (instant(parent[f]) == instant(header[f]) if f == "date" else parent[f] == header[f])
               for f in header)


def is_child_of(msg, header):
    """Whether `msg` answers the request with this header: the same msg_id, or, for a header
    without one, the same msg_type and date (unique per request here)."""
    parent = msg["parent_header"]
    if not isinstance(parent, dict) or not isinstance(header, dict):
        return False
    if "msg_id" in header:
        return parent.get("msg_id") == header["msg_id"]
    return parent.get("msg_type") == header.get("msg_type") and instant(parent.get("date")) == instant(header.get("date"))


def reply_type(msg_type):
    return msg_type[: -len("_request")] + "_reply"


def execute_content(code):
    # store_history true: only then does a cell take an execution count.
    return {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False,
            "stop_on_error": True}


# --------------------------------------------------------------------------------------------
# Raw pyzmq sockets


class Wire:
    """DEALERs on shell, control and stdin and a SUB on iopub, with everything received kept
    (decoded) per channel in `got`."""

    CHANNELS = ("shell", "control", "stdin")

    def __init__(self, info):
        self.info = info
        self.key = info["key"] if isinstance(info["key"], bytes) else info["key"].encode()
        self.session = Session(key=self.key, signature_scheme=info["signature_scheme"], username="protocol-test")
        self.ctx = zmq.Context()
        self.sockets = {}
        for channel in self.CHANNELS:
            s = self.ctx.socket(zmq.DEALER)
            s.linger = 0
            if channel in ("shell", "stdin"):
                # As jupyter_client does: the kernel sends input_request to the shell's identity.
                s.identity = self.session.bsession
            s.connect(self.url(channel))
            self.sockets[channel] = s
        self.sockets["iopub"] = self.subscriber()
        self.poller = zmq.Poller()
        for s in self.sockets.values():
            self.poller.register(s, zmq.POLLIN)
        self.names = {s: name for name, s in self.sockets.items()}
        self.got = {name: [] for name in self.sockets}
        self.join()

    def url(self, channel):
        return f"{self.info['transport']}://{self.info['ip']}:{self.info[channel + '_port']}"

    def subscriber(self):
        s = self.ctx.socket(zmq.SUB)
        s.linger = 0
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect(self.url("iopub"))
        return s

    def dealer(self, channel):
        s = self.ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(self.url(channel))
        return s

    def join(self, timeout=30):
        """Waits until the iopub subscription is in place (PUB drops what is published before
        it is): asks kernel_info until a status for one of the asks arrives."""
        deadline = time.monotonic() + timeout
        asked = []
        while time.monotonic() < deadline:
            header = new_header("kernel_info_request")
            asked.append(header)
            self.send("shell", signed(self.key, header, {}))
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                self.pump(0.05)
                if any(is_child_of(m, h) for m in self.got["iopub"] for h in asked):
                    self.wait(lambda: all(self.replies_to(h, "shell") for h in asked), QUICK)
                    self.clear()
                    return
        raise AssertionError("the iopub subscription never saw a status for kernel_info_request")

    def send(self, channel, frames):
        self.sockets[channel].send_multipart(frames, copy=True)

    def pump(self, timeout):
        """Receives (for up to `timeout` s) whatever is waiting on any socket."""
        for s, _ in self.poller.poll(int(timeout * 1000)):
            while True:
                try:
                    frames = s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = decode(frames, self.key)
                if msg is not None:
                    self.got[self.names[s]].append(msg)

    def wait(self, done, timeout):
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(0.05, left))
        return True

    def clear(self):
        for v in self.got.values():
            v.clear()

    def replies_to(self, header, channel):
        return [m for m in self.got[channel] if is_child_of(m, header)]

    def iopub_of(self, header):
        return [m for m in self.got["iopub"] if is_child_of(m, header)]

    def exchange(self, channel, frames, header, timeout=QUICK * 2):
        """Sends a request; waits for its reply and its `idle` (or the timeout)."""
        self.send(channel, frames)

        def done():
            idle = any(m["msg_type"] == "status" and (m["content"] or {}).get("execution_state") == "idle"
                       for m in self.iopub_of(header))
            return idle and self.replies_to(header, channel)

        self.wait(done, timeout)
        self.pump(0.1)
        return Exchange(header, self.replies_to(header, channel), self.iopub_of(header), list(self.got[channel]))

    def close(self):
        for s in self.sockets.values():
            s.close(linger=0)
        self.ctx.term()


@dataclass
class Exchange:
    header: dict
    replies: list
    iopub: list
    everything: list = field(default_factory=list)

    def reply(self, msg_type):
        """The one reply, after checking its type and signature and the busy/idle around it."""
        assert self.replies, (f"no reply to {msg_type_of(self.header)} within {QUICK * 2} s; "
                              f"the channel got: {[(m['msg_type'], m['parent_header']) for m in self.everything]}")
        assert len(self.replies) == 1, [m["msg_type"] for m in self.replies]
        reply = self.replies[0]
        assert reply["signature_ok"], "the reply's signature does not verify"
        assert reply["msg_type"] == msg_type, (reply["msg_type"], reply["content"])
        states = [(m["content"] or {}).get("execution_state") for m in self.iopub if m["msg_type"] == "status"]
        assert "busy" in states and "idle" in states and states.index("busy") < states.index("idle"), (
            f"iopub status for the request: {states}, expected busy then idle")
        return reply


def msg_type_of(header):
    return header.get("msg_type") if isinstance(header, dict) else header


# --------------------------------------------------------------------------------------------
# A raw TCP peer speaking ZMTP 3.0 by hand


def greeting(mechanism=b"NULL", major=3, minor=0, as_server=0, signature_end=0x7F):
    """The 64-byte ZMTP 3.0 greeting."""
    return (b"\xff" + b"\x00" * 8 + bytes([signature_end, major, minor]) + mechanism.ljust(20, b"\x00")[:20]
            + bytes([as_server]) + b"\x00" * 31)


def frame_header(size, more=False, command=False, long=None):
    long = size > 255 if long is None else long
    flags = (0x01 if more else 0) | (0x02 if long else 0) | (0x04 if command else 0)
    return bytes([flags]) + (struct.pack(">Q", size) if long else bytes([size]))


def frame(body, more=False, command=False):
    return frame_header(len(body), more, command) + body


def command(name, properties=()):
    """A ZMTP command frame: name length, name, then properties (name length, name, value
    length as 4 bytes big-endian, value)."""
    body = bytes([len(name)]) + name
    for key, value in properties:
        body += bytes([len(key)]) + key + struct.pack(">I", len(value)) + value
    return frame(body, command=True)


def ready(socket_type):
    return command(b"READY", [(b"Socket-Type", socket_type)])


# Each kernel socket, the connection-info key of its port and the type a peer of it has.
PEERS = {
    "shell": ("shell_port", b"DEALER"),
    "control": ("control_port", b"DEALER"),
    "stdin": ("stdin_port", b"DEALER"),
    "hb": ("hb_port", b"REQ"),
    "iopub": ("iopub_port", b"SUB"),
}


class Peer:
    def __init__(self, port, timeout=QUICK):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        """'sent', or 'closed' if the kernel closed or reset the connection, or 'stalled' if it
        stopped reading."""
        try:
            self.sock.sendall(data)
            return "sent"
        except socket.timeout:
            return "stalled"
        except OSError:
            return "closed"

    def send_all(self, chunks):
        for chunk in chunks:
            outcome = self.send(chunk)
            if outcome != "sent":
                return outcome
        return "sent"

    def read_exact(self, n, timeout=QUICK):
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < n and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                more = self.sock.recv(n - len(data))
            except socket.timeout:
                break
            except OSError:
                break
            if not more:
                break
            data += more
        self.sock.settimeout(QUICK)
        return data

    def exchange_greetings(self, ours=None, timeout=QUICK):
        self.send(greeting() if ours is None else ours)
        return self.read_exact(64, timeout)

    def handshake(self, socket_type, timeout=QUICK):
        """Greeting and READY both ways; returns the kernel's READY body."""
        theirs = self.exchange_greetings(timeout=timeout)
        assert len(theirs) == 64 and theirs[0] == 0xFF and theirs[9] == 0x7F, f"kernel's greeting: {theirs!r}"
        assert theirs[12:32].rstrip(b"\x00") == b"NULL", f"kernel's mechanism: {theirs[12:32]!r}"
        assert self.send(ready(socket_type)) == "sent"
        flags = self.read_exact(1, timeout)
        assert flags and flags[0] & 0x04, f"expected the kernel's READY command, got flags {flags!r}"
        size = struct.unpack(">Q", self.read_exact(8, timeout))[0] if flags[0] & 0x02 else self.read_exact(1, timeout)[0]
        body = self.read_exact(size, timeout)
        assert body.startswith(b"\x05READY"), body
        return body

    def closed_within(self, timeout):
        """Whether the kernel closes (or resets) the connection within `timeout` s; whatever
        it sends meanwhile is read and dropped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                if not self.sock.recv(1 << 16):
                    return True
            except socket.timeout:
                return False
            except OSError:
                return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# The shared kernel


def heartbeat(ctx, url, timeout=3.0):
    s = ctx.socket(zmq.REQ)
    s.linger = 0
    try:
        s.connect(url)
        s.send(b"protocol-test ping")
        if s.poll(int(timeout * 1000)):
            return s.recv() == b"protocol-test ping"
        return False
    finally:
        s.close(linger=0)


def peak_rss_reset(pid):
    """Resets the kernel's peak RSS (VmHWM) to its current RSS, where Linux allows it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss(pid):
    """Peak RSS since the last reset (bytes), or the current RSS where the peak is unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return psutil.Process(pid).memory_info().rss


class Capped:
    """A kernel started with the small cap, its jupyter_client client and a `Wire`."""

    def __init__(self):
        self.starts = 0
        self.start()

    def start(self):
        env = {**os.environ, CAP_ENV: str(CAP)}
        self.km, self.kc = start_new_kernel(kernel_name="glassbox", startup_timeout=120, env=env)
        try:
            warm = run(self.kc, "1", timeout=FIRST_CELL_TIMEOUT)
            assert warm.reply["content"]["status"] == "ok", warm.iopub
            environ = Path(f"/proc/{self.pid}/environ")
            if environ.exists():
                assert f"{CAP_ENV}={CAP}".encode() in environ.read_bytes().split(b"\0"), "the cap did not reach the kernel"
            self.info = self.km.get_connection_info()
            self.ctx = zmq.Context()
            self.wire = Wire(self.info)
        except BaseException:
            self.stop()
            raise
        self.starts += 1
        self.suspect = False

    def stop(self):
        """Ends the kernel and closes every socket; whatever part of `start` got done."""
        for closing in (lambda: self.wire.close(), lambda: self.kc.stop_channels(),
                        lambda: self.km.shutdown_kernel(now=True), lambda: self.ctx.term()):
            try:
                closing()
            except Exception as e:  # noqa: BLE001 - a dead kernel may fail to shut down cleanly
                print(f"protocol tests: while stopping the kernel: {e!r}")

    @property
    def pid(self):
        return self.km.provisioner.pid

    def port(self, channel):
        return self.info[PEERS[channel][0]]

    def alive(self):
        return self.km.is_alive()

    def exit_status(self):
        process = getattr(self.km.provisioner, "process", None)
        return process.poll() if process is not None else None

    def heartbeat(self, timeout=3.0):
        return heartbeat(self.ctx, f"tcp://{self.info['ip']}:{self.info['hb_port']}", timeout)

    def ensure(self):
        """The kernel, restarted if an earlier check found it dead, wedged or broken, so that
        one failure does not fail every test after it."""
        if self.suspect or not (self.alive() and self.heartbeat()):
            print(f"protocol tests: the kernel is unwell (exit status {self.exit_status()}); starting a new one")
            self.stop()
            self.start()
        self.wire.clear()
        return self

    def problems(self, timeout=30):
        """What is wrong with the kernel now: empty if it is alive, its heartbeat echoes and
        `1 + 1` answers 2."""
        if not self.alive():
            self.suspect = True
            status = self.exit_status()
            how = f"killed by signal {-status}" if status is not None and status < 0 else f"exit status {status}"
            return [f"the kernel process is gone ({how})"]
        problems = []
        pinged = time.monotonic()
        if not self.heartbeat():
            # How late it is tells a stall from a dead heartbeat.
            late = self.heartbeat(timeout=30)
            problems.append("the heartbeat did not echo within 3 s; " + (
                f"a second ping was echoed {time.monotonic() - pinged:.1f} s after the first was sent" if late
                else "nor did a second within 30 s"))
        try:
            r = run(self.kc, "1 + 1", timeout=timeout)
            results = r.of("execute_result")
            text = results[0]["content"]["data"].get("text/plain") if len(results) == 1 else None
            if text != "2":
                c = r.reply["content"]
                problems.append(f"`1 + 1` gave {text!r} (status {c.get('status')}, {c.get('ename')}: "
                                f"{str(c.get('evalue'))[:300]!r}; iopub {r.types})")
        except queue.Empty:
            problems.append(f"`1 + 1` got no answer within {timeout} s")
        self.suspect = self.suspect or bool(problems)
        return problems


@pytest.fixture(scope="module")
def capped_kernel():
    k = Capped()
    yield k
    k.stop()


@pytest.fixture
def k(capped_kernel):
    return capped_kernel.ensure()


# ============================================================================================
# D. The IOPub welcome (JEP 65) and protocol 5.4


def test_kernel_info_reports_protocol_5_4(k):
    msg_id = k.kc.kernel_info()
    reply = k.kc.get_shell_msg(timeout=QUICK * 2)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = k.kc.get_shell_msg(timeout=QUICK * 2)
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["protocol_version"] == "5.4"


def test_a_new_iopub_subscriber_is_welcomed(k):
    sub = k.wire.ctx.socket(zmq.SUB)
    sub.linger = 0
    try:
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(k.wire.url("iopub"))
        seen = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            if not sub.poll(int(max(0.01, deadline - time.monotonic()) * 1000)):
                break
            msg = decode(sub.recv_multipart(), k.wire.key)
            seen.append(msg)
            if msg is not None and msg["msg_type"] == "iopub_welcome":
                assert msg["signature_ok"], "the welcome's signature does not verify"
                assert msg["content"] == {"subscription": ""}, msg["content"]
                return
        pytest.fail(f"no iopub_welcome within 2.5 s of subscribing; got {[m and m['msg_type'] for m in seen]}")
    finally:
        sub.close(linger=0)


def test_a_blocking_client_still_works(k):
    # A client of its own session (km.client() would share k.kc's, hence its socket identity).
    kc = BlockingKernelClient()
    kc.load_connection_info(k.info)
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        r = run(kc, "1 + 1", timeout=60)
        assert r.result() == "2"
        assert r.types[0] == "status" and r.types[-1] == "status", r.types
    finally:
        kc.stop_channels()


# ============================================================================================
# C. A reply of its type to every signed request, bracketed by busy/idle


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_debug_request_gets_an_error_reply(k, channel):
    header = new_header("debug_request")
    content = {"seq": 1, "type": "request", "command": "initialize", "arguments": {}}
    ex = k.wire.exchange(channel, signed(k.wire.key, header, content), header)
    reply = ex.reply("debug_reply")
    assert reply["content"].get("status") == "error", reply["content"]
    assert not k.problems()


def test_code_with_a_lone_surrogate_is_a_malformed_request(k):
    header = new_header("execute_request")
    # JSON that Python reads but that is not Unicode: a lone high surrogate in \u escapes.
    content = (b'{"code": "\\ud800", "silent": false, "store_history": false, "user_expressions": {}, '
               b'"allow_stdin": false, "stop_on_error": true}')
    ex = k.wire.exchange("shell", signed(k.wire.key, header, content), header)
    reply = ex.reply("execute_reply")
    assert reply["content"].get("status") == "error", reply["content"]
    assert reply["content"].get("ename") == "MalformedRequest", reply["content"]
    assert not k.problems()


@pytest.mark.parametrize("missing", ["msg_id", "session", "username", "version"])
@pytest.mark.parametrize("msg_type", ["kernel_info_request", "execute_request"])
def test_a_header_missing_a_field_is_answered(k, msg_type, missing):
    header = new_header(msg_type)
    del header[missing]
    content = execute_content("1 + 1") if msg_type == "execute_request" else {}
    ex = k.wire.exchange("shell", signed(k.wire.key, header, content), header)
    reply = ex.reply(reply_type(msg_type))
    assert same_header(reply["parent_header"], header), (
        f"parent_header {reply['parent_header']} is not the header as sent, {header}")
    if msg_type == "execute_request":
        assert reply["content"].get("status") == "error", reply["content"]
        assert reply["content"].get("ename") == "MalformedRequest", reply["content"]
        assert not [m for m in ex.iopub if m["msg_type"] in ("execute_input", "execute_result")], ex.iopub
    assert not k.problems()


def test_an_unknown_request_gets_an_error_reply(k):
    header = new_header("frobnicate_request")
    ex = k.wire.exchange("shell", signed(k.wire.key, header, {"knob": 11}), header)
    reply = ex.reply("frobnicate_reply")
    assert reply["content"].get("status") == "error", reply["content"]


def test_invalid_json_content_gets_an_error_reply(k):
    header = new_header("complete_request")
    ex = k.wire.exchange("shell", signed(k.wire.key, header, b'{"code": "let x = ", "cursor_pos": '), header)
    reply = ex.reply("complete_reply")
    assert reply["content"].get("status") == "error", reply["content"]
    assert not k.problems()


def test_a_completion_that_panics_rust_analyzer_leaves_the_repl_working(k):
    """Found by the fuzz (seed 17, an earlier case mix; shrunk by hand): completing "h\\nV" at 0
    panics inside rust-analyzer ("failed to unify type owners", ra_ap_hir
    Type::could_unify_with_deeply), which took the REPL thread down: every later cell answered
    ReplDied."""
    header = new_header("complete_request")
    content = {"code": "h\nV", "cursor_pos": 0, "detail_level": 0}
    ex = k.wire.exchange("shell", signed(k.wire.key, header, content), header, timeout=30)
    ex.reply("complete_reply")
    assert not k.problems()


def test_a_stray_non_request_gets_no_reply(k):
    stray = [new_header("comm_msg"), new_header("comm_msg"), new_header("status")]
    contents = [b'{"comm_id": 7, "data": ', [1, 2, 3], {"execution_state": 12}]
    for header, content in zip(stray, contents):
        k.wire.send("shell", signed(k.wire.key, header, content))
    # Shell answers in order: once this one is answered, the stray ones were handled.
    sentinel = new_header("kernel_info_request")
    ex = k.wire.exchange("shell", signed(k.wire.key, sentinel, {}), sentinel)
    ex.reply("kernel_info_reply")
    for header in stray:
        assert not k.wire.replies_to(header, "shell"), k.wire.replies_to(header, "shell")
    assert not k.problems()


# ============================================================================================
# B. A signed message replayed byte for byte runs once


def test_a_replayed_execute_request_runs_once(k):
    before = run(k.kc, "1 + 1").reply["content"]["execution_count"]
    session = k.wire.session
    msg = session.msg("execute_request", execute_content("40 + 2"))
    frames = session.serialize(msg)
    for _ in range(4):
        k.wire.send("shell", frames)
    # Shell answers in order: when this is answered, every copy has been run or refused.
    sentinel = new_header("kernel_info_request")
    k.wire.send("shell", signed(k.wire.key, sentinel, {}))
    k.wire.wait(lambda: k.wire.replies_to(sentinel, "shell") and any(
        m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in k.wire.iopub_of(sentinel)),
        60)
    k.wire.pump(0.2)
    assert k.wire.replies_to(sentinel, "shell"), "the kernel_info_request sent after the replays got no reply"
    header = msg["header"]
    replies = k.wire.replies_to(header, "shell")
    inputs = [m for m in k.wire.iopub_of(header) if m["msg_type"] == "execute_input"]
    assert len(replies) == 1, f"{len(replies)} execute_replies to 4 copies of one signed request"
    assert len(inputs) == 1, f"{len(inputs)} execute_inputs for 4 copies of one signed request"
    assert replies[0]["content"]["execution_count"] == before + 1, replies[0]["content"]
    after = run(k.kc, "1 + 1").reply["content"]["execution_count"]
    assert after == before + 2, f"execution_count went from {before} to {after} over the replays and one cell"


def test_a_replay_with_the_signature_in_another_letter_case_runs_at_most_once(k):
    """Beyond the letter of the spec: hex is case-blind, so a replay whose signature is the
    same digest in upper or mixed case must not count as a new message (ipykernel refuses it
    as a bad signature; deduplicating it is as good)."""
    header = new_header("execute_request")
    frames = signed(k.wire.key, header, execute_content("40 + 2"))
    sig = frames[1].decode()
    variants = [sig, sig.upper(), "".join(c.upper() if i % 2 else c for i, c in enumerate(sig)),
                "".join(c if i % 2 else c.upper() for i, c in enumerate(sig))]
    assert len(set(variants)) == 4
    for variant in variants:
        k.wire.send("shell", [frames[0], variant.encode(), *frames[2:]])
    sentinel = new_header("kernel_info_request")
    k.wire.send("shell", signed(k.wire.key, sentinel, {}))
    k.wire.wait(lambda: k.wire.replies_to(sentinel, "shell"), 60)
    k.wire.pump(0.2)
    assert k.wire.replies_to(sentinel, "shell"), "the kernel_info_request sent after the replays got no reply"
    inputs = [m for m in k.wire.iopub_of(header) if m["msg_type"] == "execute_input"]
    replies = k.wire.replies_to(header, "shell")
    assert len(inputs) == 1 and len(replies) == 1, (
        f"one signed execute_request, resent with its hex signature in 3 other letter cases, ran {len(inputs)} "
        f"times ({len(replies)} replies)")


# ============================================================================================
# A. The size cap, on every socket


VARIANTS = {
    # A frame header announcing 2**44 bytes (16 TiB), and no body.
    "announces_2e44": lambda: [frame_header(2**44, long=True)],
    "announces_2e63_minus_1": lambda: [frame_header(2**63 - 1, long=True)],
    # A 2 MiB frame, sent in full.
    "frame_2MiB": lambda: [frame_header(2 * MiB)] + [b"\x00" * (64 * KiB)] * 32,
    # One message of 320 frames of 256 KiB (80 MiB): no frame is over the cap, the message
    # is, and by more than the RSS slack, so a kernel that buffers it shows.
    "multipart_80MiB": lambda: (frame(b"\x01" * (256 * KiB), more=i < 319) for i in range(320)),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channel", PEERS)
def test_an_oversized_frame_from_an_unauthenticated_peer_is_refused(k, channel, variant):
    port, socket_type = PEERS[channel]
    peer = Peer(k.info[port])
    try:
        peer.handshake(socket_type)
        pid = k.pid
        peak_rss_reset(pid)
        base = psutil.Process(pid).memory_info().rss
        sent = peer.send_all(VARIANTS[variant]())
        closed = sent == "closed" or peer.closed_within(QUICK)
        try:
            grown = peak_rss(pid) - base
        except (psutil.NoSuchProcess, ProcessLookupError, FileNotFoundError):
            grown = None
    finally:
        peer.close()
    problems = []
    if not closed:
        problems.append(f"the connection was still open {QUICK} s later (sending: {sent})")
    if grown is not None and grown > RSS_SLACK:
        problems.append(f"the kernel's peak RSS grew by {grown / MiB:.0f} MiB")
    problems += k.problems()
    assert not problems, "; ".join(problems)


def test_a_signed_message_over_the_cap_gets_no_reply(k):
    dealer = k.wire.dealer("shell")
    try:
        header = new_header("execute_request")
        dealer.send_multipart(signed(k.wire.key, header, execute_content(" " * (2 * MiB))))
        answered = dealer.poll(int(SILENCE * 1000))
        reply = decode(dealer.recv_multipart(), k.wire.key) if answered else None
    finally:
        dealer.close(linger=0)
    k.wire.pump(0.1)
    assert reply is None, f"a {2 * MiB}-byte message (cap {CAP}) was answered: {reply['msg_type']} {reply['content']}"
    assert not k.wire.iopub_of(header), [m["msg_type"] for m in k.wire.iopub_of(header)]
    assert not k.problems()


# ============================================================================================
# E. Fuzz: batches of malformed input, the kernel checked after each


FUZZ_SEED = 17
FUZZ_MAX_CASES = 400
FUZZ_SECONDS = 60
FUZZ_MAX_RESTARTS = 3

# msg_types for random signed messages: requests the kernel knows and does not, and other
# messages. Never shutdown_request; execute_request only with content that cannot run.
FUZZ_TYPES = [
    "kernel_info_request", "comm_info_request", "is_complete_request", "complete_request", "inspect_request",
    "history_request", "debug_request", "usage_request", "create_subshell_request", "list_subshell_request",
    "delete_subshell_request", "frobnicate_request", "execute_request", "interrupt_request", "_request",
    "comm_open", "comm_msg", "comm_close", "input_reply", "input_request", "status", "stream", "display_data",
    "execute_result", "clear_output", "kernel_info_reply", "execute_reply", "",
]
TEXT = string.ascii_letters + string.digits + " _{}()[];:.,'\"\\\n\t" + "éß中😀\u0000\u200b"


def rand_text(rng, most=40):
    return "".join(rng.choice(TEXT) for _ in range(rng.randint(0, most)))


def rand_json(rng, depth=0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, 2**64 + 1, -(2**70), rng.randint(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, -1e-308, rng.random()])
    if kind == 4:
        return rand_text(rng)
    if kind == 5:
        return [rand_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rand_text(rng, 12): rand_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def rand_content(rng, msg_type):
    """Content for `msg_type`: often the right fields with wrong or extreme values."""
    if rng.random() < 0.4:
        content = rand_json(rng)
        if msg_type == "execute_request" and isinstance(content, dict):
            content["code"] = 5  # never runnable
        return content
    code = rand_text(rng, 60)
    if msg_type in ("complete_request", "inspect_request"):
        return {"code": code, "cursor_pos": rng.choice([-1, 0, len(code), len(code) + 1, 2**40, rng.randint(0, 80)]),
                "detail_level": rng.choice([0, 1, -1, 99])}
    if msg_type == "is_complete_request":
        return {"code": code}
    if msg_type == "history_request":
        return {"output": rng.random() < 0.5, "raw": True, "hist_access_type": rng.choice(["tail", "range", "search", "x"]),
                "n": rng.choice([0, -1, 10, 10**9, 2**63]), "session": rng.choice([0, -1, 10**6]),
                "start": rng.choice([0, -5, 2**40]), "stop": rng.choice([0, 3, 2**40]), "pattern": code,
                "unique": rng.random() < 0.5}
    if msg_type == "execute_request":
        # Never runnable code: the field has the wrong type.
        return {"code": rng.choice([5, None, [], {}]), "silent": rand_json(rng)}
    if msg_type == "comm_open":
        return {"comm_id": rand_text(rng), "target_name": rand_text(rng), "data": rand_json(rng)}
    if msg_type == "input_reply":
        return {"value": code, "status": "ok"}
    return {rand_text(rng, 8): rand_json(rng) for _ in range(rng.randint(0, 4))}


def not_json(rng):
    return rng.choice([
        b"", b"{", b'{"a":', b"\xff\xfe\xfd", b"[1, 2", b"NaN", b'{"a": NaN}', b'{"a": 1} trailing', b"\x00" * 8,
        b'{"a": "\\ud800"}', b"[" * 5000 + b"]" * 5000, b'{"a": "' + b"\xc3\x28" + b'"}', rng.randbytes(rng.randint(1, 64)),
    ])


@dataclass
class KindStats:
    tried: int = 0
    survived: int = 0
    batches: int = 0
    requests: int = 0
    replied: int = 0
    answered_refused: int = 0
    notes: list = field(default_factory=list)


class Fuzz:
    """One batch's worth of state: what was sent, what must be answered, what must not."""

    def __init__(self, k, rng):
        self.k, self.rng = k, rng
        self.expected = []  # (channel, header): validly signed requests, each must get a reply of its type
        self.refused = []  # (channel, header): messages that must get no reply (bad or foreign signature)
        self.informational = []  # (channel, header): replies counted, nothing asserted (stdin)
        self.replays = []  # (channel, header, copies)

    @property
    def key(self):
        return self.k.wire.key

    def channel(self, channels=("shell", "control")):
        return self.rng.choice(channels)

    def send(self, channel, frames):
        self.k.wire.send(channel, frames)

    # -- raw TCP -----------------------------------------------------------------------------

    def peer(self):
        name = self.rng.choice(list(PEERS))
        return Peer(self.k.port(name), timeout=1.0), PEERS[name][1]

    def raw_before_greeting(self):
        peer, _ = self.peer()
        data = self.rng.randbytes(self.rng.randint(1, 2048))
        peer.send(data if self.rng.random() < 0.5 else b"\xff" + data)
        peer.close()

    def truncated_greeting(self):
        peer, _ = self.peer()
        peer.send(greeting()[: self.rng.randint(1, 63)])
        if self.rng.random() < 0.5:
            peer.read_exact(64, 0.2)
        peer.close()

    def bad_mechanism(self):
        peer, _ = self.peer()
        ours = self.rng.choice([
            greeting(mechanism=self.rng.choice([b"PLAIN", b"CURVE", b"GSSAPI", b"null", b"", b"NULL\x01",
                                                self.rng.randbytes(20)])),
            greeting(major=self.rng.choice([0, 1, 2, 4, 255]), minor=self.rng.randint(0, 255)),
            greeting(signature_end=self.rng.randint(0, 0x7E)),
            greeting(as_server=self.rng.randint(1, 255)),
        ])
        peer.exchange_greetings(ours, timeout=0.3)
        peer.send(ready(b"DEALER"))
        peer.close()

    def raw_after_greeting(self):
        peer, _ = self.peer()
        peer.exchange_greetings(timeout=1.0)
        peer.send(self.rng.randbytes(self.rng.randint(1, 4096)))
        peer.close()

    def garbage_commands(self):
        peer, socket_type = self.peer()
        peer.exchange_greetings(timeout=1.0)
        rng = self.rng
        name = rng.choice([b"READY", b"ERROR", b"PING", b"SUBSCRIBE", b"", rng.randbytes(rng.randint(1, 20))])
        garbage = rng.choice([
            command(name, [(rand_text(rng, 10).encode()[:255], rng.randbytes(rng.randint(0, 40)))]),
            command(b"READY", [(b"Socket-Type", rng.choice([b"PUB", b"XYZ", b"", b"ROUTER" * 40]))]),
            command(b"READY", []),
            frame(b"\x05READY\x0bSocket-Type\xff\xff\xff\xffDEALER", command=True),  # value length past the end
            frame(b"\x05READY\xffSocket", command=True),  # name length past the end
            frame(b"\x10READY", command=True),  # command name length past the end
            frame(b"", command=True),
            frame(rng.randbytes(300), command=True),
            ready(socket_type) + ready(socket_type),
            frame_header(rng.randint(0, 255), command=True) + rng.randbytes(rng.randint(0, 100)),
        ])
        peer.send(garbage)
        if rng.random() < 0.5:
            peer.send(frame(rng.randbytes(rng.randint(0, 300)), more=rng.random() < 0.5))
        peer.close()

    def raw_after_handshake(self):
        peer, socket_type = self.peer()
        try:
            peer.handshake(socket_type, timeout=1.0)
        except AssertionError:
            pass
        peer.send(self.rng.randbytes(self.rng.randint(1, 4096)))
        peer.close()

    def oversized_unauthenticated(self):
        peer, socket_type = self.peer()
        try:
            peer.handshake(socket_type, timeout=1.0)
        except AssertionError:
            pass
        rng = self.rng
        choice = rng.randrange(3)
        if choice == 0:
            size = min(2**64 - 1, int(2 ** rng.uniform(20.1, 64)))
            peer.send(frame_header(size, more=rng.random() < 0.5, command=rng.random() < 0.2, long=True)
                      + rng.randbytes(rng.randint(0, 1024)))
        elif choice == 1:
            peer.send_all(frame(b"\x00" * (256 * KiB), more=True) for _ in range(6))
        else:
            peer.send_all([frame_header(CAP + rng.randint(1, 4096)), b"\x00" * (CAP + 4096)])
        peer.closed_within(0.3)
        peer.close()

    # -- over pyzmq ----------------------------------------------------------------------------

    def request(self, channel, msg_type=None, content=None):
        """A validly signed message; a reply is expected if its type ends in _request."""
        msg_type = msg_type if msg_type is not None else self.rng.choice(FUZZ_TYPES)
        header = new_header(msg_type)
        self.send(channel, signed(self.key, header, rand_content(self.rng, msg_type) if content is None else content))
        self.note(channel, header)
        return header

    def note(self, channel, header):
        if channel == "stdin":
            self.informational.append((channel, header))
        elif isinstance(header, dict) and str(header.get("msg_type", "")).endswith("_request"):
            self.expected.append((channel, header))
        else:
            self.refused.append((channel, header))

    def bad_signature(self):
        channel = self.channel()
        header = new_header(self.rng.choice(["kernel_info_request", "comm_info_request", "frobnicate_request"]))
        good = signed(self.key, header, {})
        bad = self.rng.choice([
            b"", b"0" * 64, self.rng.randbytes(32).hex().encode(), b"zz" * 32, good[1][:-2], good[1] + b"00",
            "é".encode() * 32, sign(self.key, [b"{}", b"{}", b"{}", b"{}"]), good[1][::-1],
        ])
        self.send(channel, [good[0], bad, *good[2:]])
        self.refused.append((channel, header))

    def no_delimiter(self):
        good = signed(self.key, new_header("kernel_info_request"), {})
        frames = self.rng.choice([good[1:], [self.rng.randbytes(self.rng.randint(0, 40)) for _ in range(self.rng.randint(1, 7))],
                                  [b"<IDS|MSG"] + good[1:], [b"<ids|msg>"] + good[1:]])
        self.send(self.channel(), frames)

    def too_few_frames(self):
        header = new_header("kernel_info_request")
        good = signed(self.key, header, {})
        channel = self.channel()
        self.send(channel, good[: self.rng.randint(1, 5)])
        self.refused.append((channel, header))

    def non_json_parts(self):
        channel = self.channel()
        msg_type = self.rng.choice(["kernel_info_request", "complete_request", "execute_request", "is_complete_request",
                                    "history_request", "comm_msg", "frobnicate_request"])
        header = new_header(msg_type)
        parts = [header, {}, {}, rand_content(self.rng, msg_type)]
        broken = self.rng.sample(range(4), self.rng.randint(1, 2))
        for i in broken:
            parts[i] = not_json(self.rng)
        self.send(channel, signed(self.key, parts[0], parts[3], parent=parts[1], metadata=parts[2]))
        if 0 not in broken:
            self.note(channel, header)

    def wrong_header_types(self):
        header = self.rng.choice([[], ["kernel_info_request"], 3, 3.5, None, "kernel_info_request", True,
                                  {"msg_type": 5}, {"msg_type": None}, {"msg_type": ["x"]}, {}])
        self.send(self.channel(), signed(self.key, header, {}))

    def unknown_types(self):
        msg_type = self.rng.choice([
            rand_text(self.rng, 20) + "_request", rand_text(self.rng, 20), "x" * 1000 + "_request", "ßtrange_request",
            "execute_request ", "EXECUTE_REQUEST", "kernel_info_request\u0000", "request", "_reply",
        ])
        self.request(self.channel(), msg_type, rand_json(self.rng))

    def huge_identities(self):
        channel = self.channel()
        rng = self.rng
        if rng.random() < 0.5:
            idents = [rng.randbytes(rng.choice([64 * KiB, 256 * KiB, 512 * KiB]))]
        else:
            idents = [rng.randbytes(rng.randint(0, 16)) for _ in range(rng.randint(100, 2000))]
        header = new_header(rng.choice(["kernel_info_request", "comm_info_request"]))
        self.send(channel, idents + signed(self.key, header, {}))
        self.expected.append((channel, header))

    def replayed(self):
        channel = self.channel()
        header = new_header(self.rng.choice(["kernel_info_request", "comm_info_request", "is_complete_request"]))
        frames = signed(self.key, header, {"code": "1 +"} if header["msg_type"] == "is_complete_request" else {})
        copies = self.rng.randint(2, 5)
        for _ in range(copies):
            self.send(channel, frames)
        self.expected.append((channel, header))
        self.replays.append((channel, header, copies))

    def foreign_key(self):
        channel = self.channel()
        header = new_header(self.rng.choice(["kernel_info_request", "frobnicate_request", "comm_info_request"]))
        other = self.rng.choice([b"", self.rng.randbytes(16), self.key + b"x", self.key[:-1]])
        self.send(channel, signed(other or b"\x00", header, {}))
        self.refused.append((channel, header))

    def unasked_input_reply(self):
        header = new_header("input_reply")
        self.send("stdin", signed(self.key, header, {"value": rand_text(self.rng), "status": "ok"}))
        self.informational.append(("stdin", header))


# (kind, method, cases per batch, batches): signed messages first, then raw ZMTP, the
# oversized frames last, as they are the likeliest to kill an unhardened kernel (each death
# costs a restart, and after FUZZ_MAX_RESTARTS the remaining kinds are not run).
FUZZ_KINDS = [
    ("wrong / empty / garbage signature", "bad_signature", 16, 1),
    ("signed with another key", "foreign_key", 12, 1),
    ("no delimiter", "no_delimiter", 12, 1),
    ("too few frames", "too_few_frames", 12, 1),
    ("non-JSON header / parent / metadata / content", "non_json_parts", 32, 1),
    ("header of a wrong JSON type", "wrong_header_types", 16, 1),
    ("unknown msg_types", "unknown_types", 24, 1),
    ("replayed signed messages", "replayed", 10, 1),
    ("random signed messages on shell", "random_shell", 64, 1),
    ("random signed messages on control", "random_control", 40, 1),
    ("random signed messages on stdin", "random_stdin", 16, 1),
    ("input_reply on stdin, unasked", "unasked_input_reply", 8, 1),
    ("huge identity frames", "huge_identities", 8, 1),
    ("random bytes before greeting", "raw_before_greeting", 12, 1),
    ("truncated greeting", "truncated_greeting", 12, 1),
    ("bad mechanism / version / signature byte", "bad_mechanism", 12, 1),
    ("random bytes after greeting", "raw_after_greeting", 12, 1),
    ("garbage ZMTP commands", "garbage_commands", 16, 1),
    ("random bytes after READY", "raw_after_handshake", 12, 1),
    ("oversized frames, unauthenticated (cap 1 MiB)", "oversized_unauthenticated", 12, 1),
]
assert sum(n * b for _, _, n, b in FUZZ_KINDS) <= FUZZ_MAX_CASES


def fuzz_case(fuzz, method):
    if method.startswith("random_"):
        return fuzz.request(method[len("random_"):])
    return getattr(fuzz, method)()


def settle(k, fuzz):
    """Waits until shell and control have handled the batch (each answers in order, so a
    kernel_info_request sent last is answered last), then a little for stdin."""
    sentinels = []
    for channel in ("shell", "control"):
        header = new_header("kernel_info_request")
        k.wire.send(channel, signed(k.wire.key, header, {}))
        sentinels.append((channel, header))
    settled = k.wire.wait(lambda: all(k.wire.replies_to(h, c) for c, h in sentinels), 30)
    k.wire.pump(0.3)
    return settled


def fuzz_table(stats, elapsed, restarts):
    lines = [
        f"Protocol fuzz: seed {FUZZ_SEED}, {sum(s.tried for s in stats.values())} cases in {elapsed:.0f} s, "
        f"cap {CAP} bytes, kernel restarts {restarts}",
        "",
        "| kind | tried | survived | signed requests | replied (own type) | answered though refused | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, s in stats.items():
        lines.append(f"| {kind} | {s.tried} | {s.survived} | {s.requests} | {s.replied} | {s.answered_refused} | "
                     f"{'; '.join(s.notes)} |")
    return "\n".join(lines) + "\n"


def test_fuzz(k):
    rng = random.Random(FUZZ_SEED)
    stats = {kind: KindStats() for kind, *_ in FUZZ_KINDS}
    failures = []
    restarts = 0
    spent = 0.0  # fuzzing time, kernel restarts not counted
    started = time.monotonic()
    for kind, method, cases, batches in FUZZ_KINDS:
        s = stats[kind]
        for _ in range(batches):
            if spent > FUZZ_SECONDS:
                s.notes.append("not run: out of time")
                break
            if k.suspect or not (k.alive() and k.heartbeat()):
                if restarts >= FUZZ_MAX_RESTARTS:
                    s.notes.append("not run: the kernel died too often")
                    break
                restarts += 1
                k.ensure()
            t0 = time.monotonic()
            k.wire.clear()
            fuzz = Fuzz(k, rng)
            errors = 0
            for _ in range(cases):
                try:
                    fuzz_case(fuzz, method)
                except (OSError, zmq.ZMQError, AssertionError) as e:
                    errors += 1
                    last_error = repr(e)[:80]
                s.tried += 1
            if errors:
                s.notes.append(f"{errors} cases hit a closed connection or timeout ({last_error})")
            settled = settle(k, fuzz) if k.alive() else True
            problems = k.problems()
            if not settled:
                problems.append("shell/control did not answer a kernel_info_request after the batch within 30 s")
            s.batches += 1
            if not problems:
                s.survived += cases
            else:
                failures.append(f"{kind}: {'; '.join(problems)}")
                s.notes.append("NOT SURVIVED: " + "; ".join(problems))
            # Replies: every validly signed request on shell/control gets one of its own type.
            for channel, header in fuzz.expected:
                s.requests += 1
                replies = k.wire.replies_to(header, channel)
                if any(m["msg_type"] == reply_type(header["msg_type"]) for m in replies):
                    s.replied += 1
                elif k.alive():
                    failures.append(f"{kind}: no {reply_type(header['msg_type'])} to a signed "
                                    f"{header['msg_type']!r} on {channel} (got {[m['msg_type'] for m in replies]})")
            for channel, header, copies in fuzz.replays:
                extra = len(k.wire.replies_to(header, channel)) - 1
                if extra > 0:
                    s.notes.append(f"{extra} replies to replayed copies")
            for channel, header in fuzz.refused:
                answered = k.wire.replies_to(header, channel)
                if answered:
                    s.answered_refused += 1
                    failures.append(f"{kind}: a message that must be refused ({msg_type_of(header)!r} on {channel}) "
                                    f"was answered with {[m['msg_type'] for m in answered]}")
            stdin_replies = sum(len(k.wire.replies_to(h, "stdin")) for _, h in fuzz.informational)
            if fuzz.informational:
                s.notes.append(f"stdin: {stdin_replies} replies to {len(fuzz.informational)} messages (not checked)")
            spent += time.monotonic() - t0
    table = fuzz_table(stats, time.monotonic() - started, restarts)
    BUILD.mkdir(exist_ok=True)
    (BUILD / "fuzz-table.md").write_text(table)
    print(table)
    assert not failures, f"{len(failures)} fuzz failures:\n" + "\n".join(failures[:40])
    assert not k.problems()
