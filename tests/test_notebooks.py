"""The notebooks: stored without outputs, parameters first, and each one runs top to bottom without error.

Execution runs every notebooks/*.ipynb (one test per notebook, so pytest-xdist spreads them over the cores) in
a Jupyter kernel started from this very interpreter: a kernelspec written for sys.executable into a temporary
folder, so the notebooks see the environment under test whatever kernels the machine has registered (no
`ipykernel install` needed).
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 120
NOTEBOOK_BUDGET_S = 60  # the rule: each notebook runs in under a minute on 2 cores
KERNEL_NAME = "ridgeplan-notebook-tests"


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_without_outputs(path: Path):
    nb = _read(path)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them before "
                       "committing (Jupyter: Clear All Outputs, or the command in README.md, section Notebooks)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_starts_with_a_parameters_cell(path: Path):
    code = [cell for cell in _read(path).cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code"
    assert "parameters" in code[0].metadata.get("tags", []), (
        f"{path.name}: the first code cell must be tagged 'parameters' (papermill style)")


@pytest.fixture(scope="session")
def kernel_dirs(tmp_path_factory) -> list[str]:
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(root / KERNEL_NAME, overrides={"display_name": "ridgeplan notebook tests"})
    return [str(root)]


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_top_to_bottom(path: Path, kernel_dirs: list[str]):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = _read(path)
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs))
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    elapsed = time.perf_counter() - start
    assert elapsed < NOTEBOOK_BUDGET_S, f"{path.name} took {elapsed:.0f} s (budget {NOTEBOOK_BUDGET_S} s)"
    # the written conclusions are computed: the notebook ends by displaying them
    last = [cell for cell in nb.cells if cell.cell_type == "code"][-1]
    assert last.outputs, f"{path.name}: the last code cell (the computed conclusion) displayed nothing"
