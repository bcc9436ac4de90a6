"""How a cell's result is shown: the value of its last expression (typed by inference, tensors
printed as PyTorch prints them, values without Debug by their type name, no result for a block
or loop), where panics and compile errors in the cell point (the user's line and column, never
the kernel's wrapper), that a warm kernel start prints no compile note, and that `exit`/`quit`
ask jupyter console to leave; that variables keep their types whether written or inferred;
that an edited path dependency reaches the next cell although cells compile without cargo.

All tests share the session kernel `kc` except the warm-start one, which starts two of its own."""
import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from conftest import FIRST_CELL_TIMEOUT, error, ok, run


def html(r):
    results = r.of("execute_result")
    assert len(results) == 1, f"expected one execute_result, got {r.types}"
    return results[0]["content"]["data"]["text/html"]


def traceback(r):
    return r.reply["content"]["traceback"]


# 1. The final expression's type comes from inference, not from an annotation.


def test_an_inferred_integer_binding_is_shown(kc):
    assert ok(run(kc, "let x = 40 + 2; x")).result() == "42"


# Variable types: rust-analyzer is asked only for variables without a written type (the
# vendored evcxr's patch); every kind of binding still persists with its real type.


def test_written_and_inferred_variable_types_persist(kc):
    ok(run(kc, "let typed_a: i64 = 5;\nlet (pair_b, pair_c) = (1u8, \"x\");\nlet inferred_d = vec![1.5f32];"))
    assert ok(run(kc, "(typed_a, pair_b, pair_c, inferred_d.len())")).result() == '(5, 1, "x", 1)'
    ok(run(kc, "let typed_a: i64 = typed_a * 2;"))
    assert ok(run(kc, "typed_a")).result() == "10"


# 2. Tensors, as PyTorch's repr prints them (the Rust unit tests compare all of
# tests/fixtures/tensor_repr.json; these check the kernel sends that text).


def test_a_scalar_tensor_prints_as_pytorch(kc):
    assert ok(run(kc, "Tensor::from_slice(&[1.0f32, 2.0, 3.0]).sum(Kind::Float)")).result() == "tensor(6.)"


def test_a_matrix_tensor_prints_as_pytorch_with_html(kc):
    r = ok(run(kc, "Tensor::ones([3, 4], (Kind::Float, device))"))
    text = "tensor([[1., 1., 1., 1.],\n        [1., 1., 1., 1.],\n        [1., 1., 1., 1.]])"
    assert r.result() == text
    page = html(r)
    assert f"<pre>{text}</pre>" in page, page
    assert "shape [3, 4] · float32 · cpu" in page, page


def test_a_long_tensor_is_summarised_as_pytorch(kc):
    r = ok(run(kc, "Tensor::arange(2000, (Kind::Int64, device))"))
    assert r.result() == "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"


def test_an_int32_tensor_names_its_dtype(kc):
    r = ok(run(kc, "Tensor::from_slice(&[1i32, -20, 300])"))
    assert r.result() == "tensor([  1, -20, 300], dtype=torch.int32)"


# 3. A block or loop as the last statement has no result (it used to show `()`).


def test_a_final_loop_shows_no_result(kc):
    r = ok(run(kc, 'for i in 0..2 { println!("{i}"); }'))
    assert r.stdout() == "0\n1\n"
    assert r.of("execute_result") == [], r.types
    assert r.of("display_data") == [], r.types


def test_a_final_block_shows_no_result(kc):
    r = ok(run(kc, "{ let _y = 1; }"))
    assert r.of("execute_result") == [], r.types
    assert r.of("display_data") == [], r.types


# 4. A panic names the line of the cell it happened on.


@pytest.mark.parametrize(
    "code, line",
    [
        ("let v: Vec<i32> = vec![]; v[3]", 1),
        ("let a = 1;\nlet v: Vec<i32> = vec![]; v[a + 2]", 2),
    ],
    ids=["line1", "line2"],
)
def test_a_panic_names_the_cell_line(kc, code, line):
    r = run(kc, code)
    assert "index out of bounds" in error(r, "Panic")
    text = "\n".join(traceback(r))
    assert f"panicked at cell line {line}" in text, text
    assert "src/lib.rs" not in text, text


# 5. A compile error in the final expression points at the user's text.


def test_a_compile_error_in_the_result_points_at_the_users_column(kc):
    code = "let q = 5i32; q.foo()"
    r = run(kc, code)
    error(r, "CompileError")
    lines = traceback(r)
    column = code.index("foo") + 1
    assert f"--> cell line 1:{column}" in "\n".join(lines), lines
    assert any(line.endswith(f"| {code}") for line in lines), lines
    assert not any("show_result" in line for line in lines), lines


# 6-7. Values without Debug show their type; common values show their Debug text.


def test_a_value_without_debug_shows_its_type(kc):
    ok(run(kc, "struct Opaque;"))
    assert "Opaque" in ok(run(kc, "Opaque")).result()


@pytest.mark.parametrize(
    "code, shown",
    [('"abc"', '"abc"'), ("vec![1, 2]", "[1, 2]"), ("1 < 2", "true")],
    ids=["str", "vec", "bool"],
)
def test_common_values_show_their_debug_text(kc, code, shown):
    assert ok(run(kc, code)).result() == shown


# 8. Once the library is built, a kernel start is quiet.


def start_and_run_one(log):
    """Starts a kernel of its own, its log (stderr) going to the file `log`, runs `1` and shuts
    it down; gives that first cell's run."""
    with open(log, "w") as stderr:
        km, client = start_new_kernel(kernel_name="glassbox", startup_timeout=120, stderr=stderr)
        try:
            return ok(run(client, "1", timeout=FIRST_CELL_TIMEOUT))
        finally:
            client.stop_channels()
            km.shutdown_kernel(now=True)


def glassbox_changed_since(t0):
    """Whether a source of the glassbox crate, which the REPL compiles, was written after `t0`."""
    root = Path(__file__).resolve().parent.parent
    files = [root / "Cargo.toml", root / "Cargo.lock", root / "build.rs", *(root / "src").rglob("*")]
    return any(f.is_file() and f.stat().st_mtime > t0 for f in files)


def test_a_warm_start_prints_no_compile_note_and_runs_cargo_once(kc, tmp_path):
    # Each running kernel locks a build directory of its own (the session kernel holds one),
    # and one that is stale (glassbox changed since it was built) compiles the library again,
    # rightly announcing it. So the first start here warms the directory a kernel beside the
    # session kernel gets, and frees it; the second start takes that same directory, warm.
    t0 = time.time()
    start_and_run_one(tmp_path / "cold.log")
    first = start_and_run_one(tmp_path / "warm.log")
    if glassbox_changed_since(t0):
        pytest.skip("glassbox's sources changed during the test, so a rebuild was due")
    assert first.stderr() == ""
    assert "compiled the glassbox library" not in first.stdout(), first.stdout()
    assert "Rust REPL ready after" not in first.stdout(), first.stdout()
    assert first.result() == "1"
    # The context's first compile has the library as a dependency, so cargo checks it once and
    # the prelude and the cell replay that compile's rustc command: no `:dep` validation, no
    # second resolution of the lock file (each was most of a second).
    log = (tmp_path / "warm.log").read_text()
    assert "REPL ready in" in log, log
    assert "cargo ran 1 time:" in log, log


# 9. `exit` and `quit` ask jupyter console to leave; the kernel itself keeps running.


@pytest.mark.parametrize("code", ["exit", "quit", "exit()"])
def test_exit_asks_the_console_to_leave(kc, code):
    content = ok(run(kc, code)).reply["content"]
    assert any(
        p.get("source") == "ask_exit" and p.get("keepkernel") is False for p in content["payload"]
    ), content["payload"]
    assert ok(run(kc, "2")).result() == "2"


@pytest.mark.parametrize("code", ["let a = 5", "let b = 5\nb"])
def test_a_missing_semicolon_is_named_without_generated_code(kc, code):
    r = run(kc, code)
    assert error(r, "CompileError").endswith("expected `;` at the end of this statement")
    lines = traceback(r)
    assert "--> cell line 1:10" in "\n".join(lines), lines
    assert not any("evcxr" in l or "keyword `fn`" in l for l in lines), lines
    assert all(l.strip() != ";" for l in lines), lines


# 10. Cells compile without cargo while nothing cargo decides on changed (the vendored evcxr
# replays the cell crate's rustc command); an edited path dependency still reaches the cell.


def test_an_edited_path_dependency_reaches_the_next_cell(kc, tmp_path):
    crate = tmp_path / "edited_dep"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text('[package]\nname = "edited_dep"\nversion = "0.1.0"\nedition = "2021"\n')
    (crate / "src" / "lib.rs").write_text("pub fn answer() -> i32 { 1 }\n")
    ok(run(kc, f':dep edited_dep = {{ path = "{crate}" }}'))
    assert ok(run(kc, "edited_dep::answer()")).result() == "1"
    assert ok(run(kc, "edited_dep::answer() + 1")).result() == "2"
    time.sleep(0.05)
    (crate / "src" / "lib.rs").write_text("pub fn answer() -> i32 { 40 }\n")
    assert ok(run(kc, "edited_dep::answer() + 2")).result() == "42"
    # A compile error on the replayed path reads as on cargo's.
    assert "mismatched types" in error(run(kc, 'let n: i32 = "x";'), "CompileError")


def test_an_edited_dependency_of_a_path_dependency_reaches_the_next_cell(kc, tmp_path):
    # The shape of the kernel's own `glassbox` dependency: a crate that re-exports another.
    for name, deps in [("inner_dep", ""), ("outer_dep", '\n[dependencies]\ninner_dep = { path = "../inner_dep" }\n')]:
        (tmp_path / name / "src").mkdir(parents=True)
        (tmp_path / name / "Cargo.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n{deps}'
        )
    (tmp_path / "outer_dep" / "src" / "lib.rs").write_text("pub use inner_dep::*;\n")
    (tmp_path / "inner_dep" / "src" / "lib.rs").write_text("pub fn answer() -> i32 { 1 }\n")
    ok(run(kc, f':dep outer_dep = {{ path = "{tmp_path / "outer_dep"}" }}'))
    assert ok(run(kc, "outer_dep::answer()")).result() == "1"
    time.sleep(0.05)
    (tmp_path / "inner_dep" / "src" / "lib.rs").write_text("pub fn answer() -> i32 { 41 }\n")
    assert ok(run(kc, "outer_dep::answer() + 1")).result() == "42"


# 11. Cells link the library as one shared object (`repl/`). tch's generic and inline
# functions, instantiated in the cell, call its C++ wrapper, which that object must export.


def test_a_cell_calls_tch_operations_the_library_never_instantiates(kc):
    code = (
        "tch::Tensor::arange(6, (tch::Kind::Float, tch::Device::Cpu))"
        ".reshape([2, 3]).logsumexp([1i64].as_slice(), false)"
    )
    assert ok(run(kc, code)).result() == "tensor([2.4076, 5.4076])"
