"""Every notebook in notebooks/ is committed with its outputs, runs end to end through the
real kernel with no error output, and prints what its committed copy printed, each number
within the cell's tolerance (`notebook_numbers`)."""
import base64
import sys
from pathlib import Path

import nbformat
import pytest

from notebook_numbers import DEFAULT, differences

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from run_notebook import execute  # noqa: E402

# A reviewer reads the committed notebooks in a repository browser: each stays small.
MAX_NOTEBOOK_BYTES = 1_500_000
MAX_PNG_BYTES = 300_000

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path, tmp_path):
    nb = execute(path, tmp_path / path.name)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{path.name}: {out.get('ename')}: {out.get('evalue')}"
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells)
    strayed = differences(nbformat.read(path, as_version=4), nb)
    assert not strayed, f"{path.name} no longer prints what its committed copy printed " + (
        "(rerun `make notebooks` if the change is meant):\n" + "\n".join(strayed)
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_with_small_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code_cells), f"{path.name} is committed unexecuted"
    assert any(c.get("outputs") for c in code_cells), f"{path.name} is committed without outputs"
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size} bytes"
    for cell in code_cells:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                size = len(base64.b64decode(png))
                assert size <= MAX_PNG_BYTES, f"{path.name} cell {cell.get('id')}: a {size}-byte PNG"


def notebook(*printed):
    cells = [nbformat.v4.new_code_cell(f"cell {i}", id=f"c{i}") for i in range(len(printed))]
    for cell, text in zip(cells, printed):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)] if text else []
    return nbformat.v4.new_notebook(cells=cells)


def test_a_number_beyond_its_tolerance_or_a_changed_word_is_reported():
    committed = notebook("mIoU 40.5% at stage2: holds\n", "AUiC 0.277\n")
    assert differences(committed, notebook("mIoU 41.0% at stage2: holds\n", "AUiC 0.290\n")) == []
    assert len(differences(committed, notebook("mIoU 45.0% at stage2: holds\n", "AUiC 0.277\n"))) == 1
    assert "other words" in differences(committed, notebook("mIoU 40.5% at stage2: holds weakly\n", "AUiC 0.277\n"))[0]
    loose = notebook("mIoU 40.5% at stage2: holds\n", "AUiC 0.277\n")
    loose.cells[0].metadata["glassbox"] = {"tolerance": {"rel": 0.2}}
    assert differences(loose, notebook("mIoU 45.0% at stage2: holds\n", "AUiC 0.277\n")) == []
    noted = notebook("glassbox: compiled the glassbox library for the Rust REPL (29 s)\nloss 0.4674\n")
    assert differences(notebook("loss 0.4674\n"), noted) == []
    timed = notebook("trained for 500 steps in 32 s on cpu, loss 0.4674\n")
    assert differences(timed, notebook("trained for 500 steps in 45.5s on cpu, loss 0.4674\n")) == []
    assert len(differences(timed, notebook("trained for 500 steps in 32 s on cpu, loss 0.6\n"))) == 1
    loose.cells[0].metadata["glassbox"] = {"compare": False}
    assert differences(loose, notebook("took 3 s\n", "AUiC 0.277\n")) == []
    assert DEFAULT.rel > 0 and DEFAULT.abs > 0


def test_there_is_a_tour():
    assert (ROOT / "notebooks" / "00-tour.ipynb").exists()
    nbformat.validate(nbformat.read(ROOT / "notebooks" / "00-tour.ipynb", as_version=4))
