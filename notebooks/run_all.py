"""Execute every notebook in this folder top to bottom and store it with its outputs (charts as inline SVG).

    python notebooks/run_all.py            # all of them
    python notebooks/run_all.py 03 07      # those whose name starts with 03 or 07

Run it from the repository root with the package importable (`pip install -e .` or PYTHONPATH=.) after changing
the library or a notebook: tests/test_notebooks.py re-executes each notebook and fails when its numbers no longer
match the stored ones (the stored outputs are stale).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository's own package, also without an install

import nbformat  # noqa: E402

from model.notebook import execute  # noqa: E402


def main(prefixes: list[str]) -> int:
    paths = [p for p in sorted(HERE.glob("*.ipynb")) if not prefixes or p.name.startswith(tuple(prefixes))]
    if not paths:
        print(f"error: no notebook in {HERE} starts with {', '.join(prefixes)}", file=sys.stderr)
        return 2
    for path in paths:
        start = time.perf_counter()
        nb = execute(path)
        nbformat.write(nb, path)
        print(f"{path.name}: executed and stored in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
