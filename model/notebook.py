"""The notebooks' face: how their charts and tables look, and how they are executed and checked for staleness.

`setup()` (first thing every notebook runs) makes altair charts render as inline SVG through vl-convert, so a
stored notebook shows its charts offline (no CDN), and shows every DataFrame with model.format: units read
from column names, significant digits, thousands separators and a dash for a missing value. `execute()` runs a
notebook in a kernel of this very interpreter (notebooks/run_all.py stores the outputs; tests/test_notebooks.py
re-executes and compares), and `numbers()` extracts what a staleness check compares.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from model import format as fmt

KERNEL_NAME = "ridgeplan-notebooks"
CELL_TIMEOUT_S = 120


def cell_text(column: str, value: Any) -> str:
    """One table cell for a reader: a missing value is a dash; in a library frame's column (a snake_case key
    with its unit, `ttft_s`) a number carries that unit; under a column a notebook titled in words ('context
    (tokens)') it gets significant digits and thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return fmt.DASH
    if isinstance(value, (bool, dict, list, tuple)) or fmt.is_number(value):
        if re.fullmatch(r"[a-z][a-z0-9_]*", column):
            return fmt.by_key(column, value)
        if isinstance(value, bool):
            return fmt.yes_no(value)
        if fmt.is_number(value):
            whole = math.isfinite(float(value)) and float(value).is_integer()
            return fmt.count(value) if whole else fmt.number(value)
        return fmt.by_key(column, value)
    return str(value)


def table(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with every cell formatted for reading (cell_text); the index is kept."""
    out = df.copy()
    for col in out.columns:
        out[col] = [cell_text(str(col), v) for v in df[col].tolist()]
    return out


def setup() -> None:
    """Charts as inline SVG (offline); DataFrames through `table`."""
    import altair as alt

    alt.renderers.enable("svg")
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 200)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - outside Jupyter there is nothing to register
        return
    ip = get_ipython()
    if ip is None:
        return
    ip.display_formatter.formatters["text/html"].for_type(pd.DataFrame, lambda df: table(df).to_html())
    ip.display_formatter.formatters["text/plain"].for_type(
        pd.DataFrame, lambda df, p, cycle: p.text(table(df).to_string()))


# --- execution and staleness ---------------------------------------------------------------------------------

def execute(path: Path, timeout_s: int = CELL_TIMEOUT_S):
    """`path` executed top to bottom in a kernel of this interpreter (its folder as the working directory);
    returns the executed notebook (nbformat NotebookNode). Raises nbclient's CellExecutionError on an error."""
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as root:
        write_kernel_spec(Path(root) / KERNEL_NAME, overrides={"display_name": "ridgeplan notebooks",
                                                               "argv": [sys.executable, "-m", "ipykernel_launcher",
                                                                        "-f", "{connection_file}"]})
        km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[root]))
        client = NotebookClient(nb, km=km, timeout=timeout_s, allow_errors=False, record_timing=False,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    nb.metadata.pop("widgets", None)
    return nb


_NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")
_TEXT_MIMES = ("text/plain", "text/markdown", "text/html", "text/latex")


def numbers(cell) -> list[float]:
    """Every number a code cell shows in its text outputs (stream, plain, markdown, HTML, LaTeX), in order;
    images (the charts' SVG coordinates) are not compared."""
    texts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            texts.append(out.get("text", ""))
        for mime in _TEXT_MIMES:
            if mime in out.get("data", {}):
                data = out["data"][mime]
                texts.append(data if isinstance(data, str) else "".join(data))
                break  # one representation per output: the richest text one
    found = []
    for text in texts:
        text = re.sub(r"<[^>]+>", " ", text)  # HTML tags carry no numbers a reader sees
        for m in _NUMBER.findall(text):
            try:
                found.append(float(m.replace(",", "").replace("−", "-")))
            except ValueError:
                continue
    return found


def stale_cells(stored, fresh, rel_tol: float = 1e-3, abs_tol: float = 1e-9) -> list[str]:
    """Where a re-executed notebook's numbers differ from the stored ones (more than `rel_tol`), one line per
    code cell: its index and the first differing pair."""
    problems = []
    old_cells = [c for c in stored.cells if c.cell_type == "code"]
    new_cells = [c for c in fresh.cells if c.cell_type == "code"]
    for i, (old, new) in enumerate(zip(old_cells, new_cells)):
        a, b = numbers(old), numbers(new)
        if len(a) != len(b):
            problems.append(f"code cell {i}: {len(a)} numbers stored, {len(b)} now")
            continue
        for x, y in zip(a, b):
            if not math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol):
                problems.append(f"code cell {i}: stored {x:g}, now {y:g}")
                break
    return problems
