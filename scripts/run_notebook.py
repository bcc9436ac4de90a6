"""Execute a notebook headless through the real glassbox kernel (nbclient) and save it.

    python scripts/run_notebook.py IN.ipynb OUT.ipynb

Exits non-zero, naming the cell, if any cell fails; prints where the executed notebook is.
"""
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

# The first kernel start on a machine compiles the glassbox library for the REPL (minutes).
CELL_TIMEOUT = 1200


def execute(src: Path, dst: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="glassbox",
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        # Committed notebooks keep their outputs; per-cell timestamps would only churn them.
        record_timing=False,
        resources={"metadata": {"path": str(src.parent)}},
    )
    try:
        client.execute()
    finally:
        dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dst)
    return nb


def main() -> int:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    started = time.monotonic()
    try:
        execute(src, dst)
    except CellExecutionError as e:
        print(f"{src}: a cell failed; the partly executed notebook is {dst.resolve()}\n{e}", file=sys.stderr)
        return 1
    print(f"executed {src} in {time.monotonic() - started:.0f} s")
    print(f"executed notebook: {dst.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
