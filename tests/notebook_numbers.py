"""What a notebook prints, compared with what its committed copy printed: the same words, and
each number within a tolerance of the committed one (nbval-style, for numbers).

A code cell's printed text is its stdout and the plain text of its result, in order; stderr
(progress, timings) and images are not compared, nor is a number followed by a unit of time
(`32 s`, `1.7s`, `12 ms`): wall-clock. Nor are the kernel's own notes, the lines that start
with `glassbox: ` (that a start compiled the library for the REPL, say). A cell states its own tolerance in its
metadata, `{"glassbox": {"tolerance": {"rel": 0.1, "abs": 0.05}}}`, or opts out with
`{"glassbox": {"compare": false}}` (wall-clock times, say); otherwise [`DEFAULT`] holds. A
number passes when it is within `abs` or within `rel` of the committed number's size."""
import math
import re
from dataclasses import dataclass

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|\bNaN\b|\binf\b")
KERNEL_NOTE = "glassbox: "
TIME = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ms|min|s)\b")


@dataclass(frozen=True)
class Tolerance:
    rel: float
    abs: float

    def admits(self, committed: float, now: float) -> bool:
        if math.isnan(committed) or math.isnan(now):
            return math.isnan(committed) and math.isnan(now)
        return abs(now - committed) <= max(self.abs, self.rel * abs(committed))


# Seeded runs repeat exactly on one machine; another CPU's kernels round differently, and a few
# hundred training steps carry that into the second digit.
DEFAULT = Tolerance(rel=0.05, abs=0.02)


def printed(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "execute_result":
            parts.append(out.get("data", {}).get("text/plain", ""))
    lines = "".join(parts).splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(KERNEL_NOTE))


def numbers(text: str) -> list[float]:
    return [float(m.group(0).replace("NaN", "nan")) for m in NUMBER.finditer(TIME.sub("", text))]


def words(text: str) -> str:
    return NUMBER.sub("#", TIME.sub("# s", text))


def tolerance(cell) -> Tolerance | None:
    """The cell's tolerance; `None` when it opts out."""
    meta = cell.get("metadata", {}).get("glassbox", {})
    if meta.get("compare") is False:
        return None
    stated = meta.get("tolerance", {})
    return Tolerance(rel=stated.get("rel", DEFAULT.rel), abs=stated.get("abs", DEFAULT.abs))


def differences(committed, executed) -> list[str]:
    """Where `executed` (a notebook just run) strays from `committed`: one line per cell whose
    words differ or whose numbers left their tolerance, naming the cell by its number and id."""
    found = []
    old_cells = [c for c in committed.cells if c.cell_type == "code"]
    new_cells = [c for c in executed.cells if c.cell_type == "code"]
    if len(old_cells) != len(new_cells):
        return [f"{len(new_cells)} code cells, the committed notebook has {len(old_cells)}"]
    for index, (old, new) in enumerate(zip(old_cells, new_cells)):
        allowed = tolerance(old)
        if allowed is None:
            continue
        was, now = printed(old), printed(new)
        name = f"code cell {index} ({old.get('id', 'no id')})"
        if not was.strip():
            continue
        if words(was) != words(now):
            found.append(f"{name} printed other words:\n--- committed\n{was}--- now\n{now}")
            continue
        for a, b in zip(numbers(was), numbers(now)):
            if not allowed.admits(a, b):
                found.append(f"{name}: {b} where the committed notebook has {a} (tolerance {allowed})")
    return found
