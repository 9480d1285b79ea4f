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


def bench_serving(scenarios: int = 100_000) -> dict[str, float]:
    """Serving estimates per second: continuous-batching steady states (iteration cost, KV capacity,
    throughput) vectorized over scenarios of input/output length and concurrency."""
    from model.api import deployment
    from model.serving.batching import steady_state
    from model.serving.estimate import estimate
    from model.serving.policy import ENGINES
    from model.serving.workload import Lengths, Workload

    rng = np.random.default_rng(0)
    i = rng.integers(64, 8192, scenarios).astype(float)
    o = rng.integers(16, 2048, scenarios).astype(float)
    n = rng.integers(1, 256, scenarios).astype(float)
    out = {}
    for model, gpu, tp in (("llama-3.1-8b", "h100-sxm", 1), ("llama-3.1-70b", "h100-sxm", 4)):
        d = deployment(model, gpu, tp=tp)

        def run() -> None:
            steady_state(d, ENGINES["vllm"], i, o, n)

        run()
        out[f"{model} TP{tp}: steady-state serving evaluations/s"] = scenarios / _best_of(run)
    d = deployment("llama-3.1-8b", "h100-sxm")
    work = Workload(Lengths.lognormal(1000, 300), rate_per_s=10)
    out["full estimate (percentiles + goodput search), per second"] = 1 / _best_of(lambda: estimate(d, work))
    return out


BENCHES: dict[str, Callable[[], dict[str, float]]] = {"operators": bench_operators, "serving": bench_serving}


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
