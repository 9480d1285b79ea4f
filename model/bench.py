"""Speed benchmarks (not timed tests): run `python -m model.bench` or `ridgeplan bench`.

Reports, on one core (BLAS and OpenMP threads pinned to 1):
- operator-scenario evaluations per second of the vectorized operator graph + roofline evaluator;
- serving estimates per second and planner time once those layers exist (see the functions below).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402


def _best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_operators(scenarios: int = 200_000) -> dict[str, float]:
    """Operator-scenario evaluations per second: graph evaluation plus roofline times, vectorized."""
    from model.architecture import load_architecture
    from model.hardware import load_device
    from model.operators.compiled import compile_graph
    from model.roofline.evaluator import context_for, evaluate

    out = {}
    rng = np.random.default_rng(0)
    batch = rng.integers(1, 512, scenarios).astype(float)
    tokens = rng.choice([1.0, 1.0, 1.0, 128.0, 2048.0], scenarios)
    context = rng.integers(0, 32_000, scenarios).astype(float)
    ctx = context_for(load_device("h100-sxm"))
    for model in ("llama-3.1-70b", "deepseek-v3"):
        graph = compile_graph(load_architecture(model))
        n_ops = len(graph.ops)

        def run() -> None:
            evaluate(graph.evaluate(B=batch, T=tokens, C=context), ctx).step_time_s()

        run()
        seconds = _best_of(run)
        out[f"{model}: operator-scenario evaluations/s"] = n_ops * scenarios / seconds
        out[f"{model}: step evaluations/s"] = scenarios / seconds
    return out


BENCHES: dict[str, Callable[[], dict[str, float]]] = {"operators": bench_operators}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    names = [a for a in args if not a.startswith("--")] or list(BENCHES)
    results: dict[str, float] = {}
    for name in names:
        if name not in BENCHES:
            print(f"error: bench: unknown benchmark {name!r} (allowed: {', '.join(BENCHES)})", file=sys.stderr)
            return 2
        results.update(BENCHES[name]())
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:60s} {value:>16,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
