"""The notebooks: stored with their outputs (charts as inline SVG, readable offline), parameters first, and not
stale: each one is re-executed top to bottom and the numbers it shows must match the stored ones.

Execution (model.notebook.execute) runs every notebooks/*.ipynb (one test per notebook, so pytest-xdist spreads
them over the cores) in a Jupyter kernel started from this very interpreter, whatever kernels the machine has
registered. After changing the library or a notebook, regenerate them with `python notebooks/run_all.py`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
NOTEBOOK_BUDGET_S = 60  # the rule: each notebook runs in under a minute on 2 cores
REGENERATE = "regenerate the stored outputs with `python notebooks/run_all.py`"


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_with_its_outputs(path: Path):
    nb = _read(path)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    unrun = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unrun, f"{path.name}: code cells {unrun} were stored without running; {REGENERATE}"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
        f"{path.name}: cells were run out of order; {REGENERATE}")
    assert any(c.outputs for c in code), f"{path.name}: stored without outputs; {REGENERATE}"


def _raw_float(cell: str) -> bool:
    """'24.863539' (a float printed with all its digits), not '24.9', '0.00300' or '1,476'."""
    if not re.fullmatch(r"-?[\d,]*\.\d+", cell):
        return False
    return len(cell.replace("-", "").replace(",", "").replace(".", "").lstrip("0")) > 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_charts_render_offline_and_tables_are_formatted(path: Path):
    outputs = [o for c in _read(path).cells if c.cell_type == "code" for o in c.outputs]
    text = json.dumps(outputs)
    assert "cdn.jsdelivr" not in text and "vega-embed" not in text, f"{path.name}: a chart loads from a CDN"
    charts = [o for o in outputs if "alt." in "".join(o.get("data", {}).get("text/plain", ""))]
    assert all("image/svg+xml" in o["data"] for o in charts), f"{path.name}: a chart without its SVG"
    for o in outputs:
        html = "".join(o.get("data", {}).get("text/html", ""))
        cells = re.findall(r"<td>(.*?)</td>", html)
        raw = [c for c in cells if c in ("None", "NaN", "nan") or _raw_float(c)]
        assert not raw, f"{path.name}: unformatted table cells {raw[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_starts_with_a_parameters_cell(path: Path):
    code = [cell for cell in _read(path).cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code"
    assert "parameters" in code[0].metadata.get("tags", []), (
        f"{path.name}: the first code cell must be tagged 'parameters' (papermill style)")


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_and_its_stored_outputs_are_not_stale(path: Path):
    from model.notebook import execute, stale_cells

    start = time.perf_counter()
    fresh = execute(path)  # raises CellExecutionError, naming the cell, on the first error
    elapsed = time.perf_counter() - start
    assert elapsed < NOTEBOOK_BUDGET_S, f"{path.name} took {elapsed:.0f} s (budget {NOTEBOOK_BUDGET_S} s)"
    # the written conclusions are computed: the notebook ends by displaying them
    last = [cell for cell in fresh.cells if cell.cell_type == "code"][-1]
    assert last.outputs, f"{path.name}: the last code cell (the computed conclusion) displayed nothing"
    stale = stale_cells(_read(path), fresh)
    assert not stale, f"{path.name}: stored outputs are stale ({'; '.join(stale[:5])}); {REGENERATE}"


def test_the_staleness_check_sees_a_changed_number():
    import copy

    from model.notebook import stale_cells

    stored = _read(NOTEBOOKS[0])
    fresh = copy.deepcopy(stored)
    out = next(o for c in fresh.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream")
    number = re.search(r"\d+\.\d+", out["text"]).group(0)
    out["text"] = out["text"].replace(number, f"{float(number) * 1.01:.2f}", 1)
    assert stale_cells(stored, stored) == []
    assert stale_cells(stored, fresh)
