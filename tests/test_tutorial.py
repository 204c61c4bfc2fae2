"""examples/tutorial.ipynb: executed headless with nbclient, on the CMU takes and without them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"
CMU = ROOT.parent / "shared" / "data" / "cmu"
CELL_TIMEOUT_S = 180  # generous: the whole notebook takes seconds, but the machine may be shared
MIRROR_ERROR = re.compile(r"^(plain|chiral) model: max \|f\(T x\) - T f\(x\)\| = (\S+)",
                          re.MULTILINE)


def execute(monkeypatch: pytest.MonkeyPatch, data: str | None) -> Any:
    """Run the notebook in a fresh python3 kernel with examples/ as its working directory."""
    if data is None:
        monkeypatch.delenv("SYMMETRIZE_CMU", raising=False)
    else:
        monkeypatch.setenv("SYMMETRIZE_CMU", data)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # headless, whatever the notebook selects
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    return nb


def text_of(nb: Any) -> str:
    """Everything the code cells printed or displayed as text, in order."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            if output["output_type"] == "stream" and output["name"] == "stdout":
                parts.append(output["text"])
            elif "data" in output and "text/plain" in output["data"]:
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


def pictures(cell: Any) -> int:
    """PNG images a code cell displayed."""
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def drawn(cell: Any) -> int:
    """Figures a code cell's source shows: ``plt.show()`` and ``display(Image(...))`` calls."""
    return cell.source.count("plt.show()") + cell.source.count("display(Image(")


def test_saved_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("data", ["default", "absent"])
def test_notebook_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: str) -> None:
    folder = None if data == "default" else str(tmp_path / "no-such-folder")
    nb = execute(monkeypatch, folder)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, cell.source[:60]
    text = text_of(nb)
    real = data == "default" and any(CMU.glob("*.bvh"))
    if real:
        assert "Real motion capture: CMU take" in text
    else:
        assert "using procedural walking from symmetrize.data.synthetic instead" in text

    # the pictures: pose + mirror, Rep matrices, weight sharing, report graph, two in section 5;
    # every figure a cell draws is rendered, and no cell displays one it does not draw
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [pictures(cell) for cell in code] == [drawn(cell) for cell in code]
    assert sum(drawn(cell) for cell in code) >= 6
    assert "VideoPose3DLike" in text and "replaced by ChiralConv1d" in text  # the report
    assert re.search(r"^equivariance check\b.*\bpassed$", text, re.MULTILINE), text  # check()
    assert "parameters: plain MLP 123 -> chiral MLP 62" in text
    assert "plain model passes: False" in text

    errors = {name: float(value) for name, value in MIRROR_ERROR.findall(text)}
    assert set(errors) == {"plain", "chiral"}, text
    assert errors["chiral"] < 1e-10  # float64: exact up to rounding
    assert errors["plain"] > 1e-3  # an ordinary network does not mirror its output
