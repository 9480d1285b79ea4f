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


def bench_planner() -> dict[str, float]:
    """Time to plan: 6 GPU types x every layout (1-8 GPUs, TP/PP) x 4 precisions x 3 roles x 64 traffic slices
    (16 request-size buckets x 4 rate slices that may not split), ILP and re-checks included."""
    from model.planner import GpuOption, PlanRequest, Traffic, plan
    from model.planner.candidates import capacities, enumerate_candidates
    from model.planner.request import buckets
    from model.serving.estimate import SLO
    from model.serving.workload import Lengths

    gpus = ("h100-sxm", "h200", "a100-sxm-80gb", "l40s", "l4", "a10g")
    req = PlanRequest((Traffic("llama-3.1-8b", 40.0, Lengths.lognormal(1500, 300)),), SLO(1.0, 0.05),
                      tuple(GpuOption(g) for g in gpus), max_buckets=16, slices_per_bucket=4, split_slices=False)
    t0 = time.perf_counter()
    result = plan(req)  # first call: compiles the model's operator graph and loads the devices
    cold = time.perf_counter() - t0
    warm = _best_of(lambda: plan(req), repeats=2)
    cands, _ = enumerate_candidates(req)
    bi, bo, _ = buckets(req.traffic[0].lengths, 16)
    cap_s = _best_of(lambda: capacities(cands, bi, bo, req), repeats=2)
    return {"plan end to end, first call (s)": cold, "plan end to end, warm (s)": warm,
            "candidate configurations": float(len(cands)),
            "candidate x bucket capacity evaluations/s": len(cands) * bi.size / cap_s,
            "plan cost ($/h)": result.cost_per_hour_usd}


BENCHES: dict[str, Callable[[], dict[str, float]]] = {"operators": bench_operators, "serving": bench_serving,
                                                      "planner": bench_planner}


def bench_training(repeats: int = 3) -> dict[str, float]:
    """Training plans per second (whole searches: enumerate layouts, evaluate memory and time vectorized, pick),
    and candidate layouts evaluated per second inside them."""
    from model.training import plan_training

    out = {}
    for model, gpus in (("llama-3.1-8b", 64), ("llama-3.1-70b", 512)):
        kw = dict(node="dgx-h100", tokens=1e12, seq_len=4096)
        plan = plan_training(model, "h100-sxm", gpus, **kw)
        seconds = _best_of(lambda: plan_training(model, "h100-sxm", gpus, **kw), repeats)
        out[f"{model} on {gpus} H100: training plans/s"] = 1 / seconds
        out[f"{model} on {gpus} H100: candidate layouts/s"] = plan.candidates_evaluated / seconds
    return out


BENCHES["training"] = bench_training


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
        from model.format import with_schema

        print(json.dumps(with_schema(results), indent=2))
    else:
        for key, value in results.items():
            print(f"{key:60s} {value:>16,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
