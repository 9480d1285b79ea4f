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


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (CBC runs as a child): a figure that contention on a
    shared machine inflates far less than wall time."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object], repeats: int = 2) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run) over `repeats` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        c0, t0 = _cpu_s(), time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - t0, _cpu_s() - c0))
    return best


BENCH_GPUS = ("h100-sxm", "h200", "a100-sxm-80gb", "l40s", "l4", "a10g")


def bench_request(rate: float = 40.0, input_mean: float = 1500, output_mean: float = 300):
    """The README benchmark: Llama-3.1-8B, 6 GPU types x every layout (1-8 GPUs, TP/PP) x 4 precisions x 3 roles x
    64 traffic slices (16 request-size buckets x 4 rate slices that may not split), TTFT 1 s / TPOT 50 ms at p90."""
    from model.planner import GpuOption, PlanRequest, Traffic
    from model.serving.estimate import SLO
    from model.serving.workload import Lengths

    return PlanRequest((Traffic("llama-3.1-8b", rate, Lengths.lognormal(input_mean, output_mean)),), SLO(1.0, 0.05),
                       tuple(GpuOption(g) for g in BENCH_GPUS), max_buckets=16, slices_per_bucket=4,
                       split_slices=False)


def _tallied(fn: Callable[[], object], repeats: int = 2) -> tuple[float, float, dict[str, list[float]]]:
    """`_timed`, with the fleet-program solves and the re-check's simulations of the best run counted and their
    CPU seconds (CBC's included): {'solves': [count, cpu_s], 'simulations': [count, cpu_s]}."""
    from model.planner import check, ilp

    best: tuple[float, float, dict[str, list[float]]] = (float("inf"), float("inf"), {})
    saved = ilp.solve, check._simulated
    for _ in range(repeats):
        tally = {"solves": [0, 0.0], "simulations": [0, 0.0]}

        def counted(real, name, tally=tally):
            def run(*args, **kwargs):
                c0 = _cpu_s()
                try:
                    return real(*args, **kwargs)
                finally:
                    tally[name][0] += 1
                    tally[name][1] += _cpu_s() - c0
            return run

        ilp.solve, check._simulated = counted(saved[0], "solves"), counted(saved[1], "simulations")
        try:
            c0, t0 = _cpu_s(), time.perf_counter()
            fn()
            best = min(best, (time.perf_counter() - t0, _cpu_s() - c0, tally), key=lambda b: b[0])
        finally:
            ilp.solve, check._simulated = saved
    return best


def _tally_rows(name: str, tally: dict[str, list[float]]) -> dict[str, float]:
    return {f"{name}: integer-program solves": float(tally["solves"][0]),
            f"{name}: solve CPU (s)": tally["solves"][1],
            f"{name}: simulations (1,000 requests each)": float(tally["simulations"][0]),
            f"{name}: simulation CPU (s)": tally["simulations"][1]}


def bench_planner() -> dict[str, float]:
    """Time to plan the README benchmark (`bench_request`), ILP and simulator re-checks included: the first call
    in a process, warm (the same request again: its SLO capacities and simulated verdicts are remembered,
    model.planner.candidates.cached_capacities, model.planner.check.simulator_check) and warm with new traffic
    (another rate and lengths: nothing but compiled graphs, loaded tables and a deployment's simulator cost table
    reused); the README's Python example warm, again and at another rate (capacities remembered, verdicts not);
    the README's plan commands as processes. The warm runs count their integer-program solves and simulations;
    the SLO capacities of a new traffic shape (new rate and lengths) are timed on their own as well."""
    from dataclasses import replace

    from model.planner import GpuOption, PlanRequest, Traffic, plan
    from model.planner.candidates import capacities, enumerate_candidates
    from model.planner.request import buckets
    from model.serving.estimate import SLO
    from model.serving.workload import Lengths

    req = bench_request()
    c0, t0 = _cpu_s(), time.perf_counter()
    result = plan(req)  # first call: compiles the model's operator graph and loads the devices
    cold, cold_cpu = time.perf_counter() - t0, _cpu_s() - c0
    warm, warm_cpu, warm_n = _tallied(lambda: plan(req))
    fresh = iter([bench_request(31.0, 1200, 250), bench_request(47.0, 1700, 350)])
    new, new_cpu, new_n = _tallied(lambda: plan(next(fresh)))
    cands, _ = enumerate_candidates(req)
    bi, bo, _ = buckets(req.traffic[0].lengths, 16)
    cap_s = _best_of(lambda: capacities(cands, bi, bo, req), repeats=2)
    shape_cpu = []  # the SLO capacities of a new traffic shape, as a warm plan computes them (fresh candidates)
    for shape in ((31.0, 1200, 250), (47.0, 1700, 350), (40.0, 2500, 300)):
        new_req = bench_request(*shape)
        new_cands, _ = enumerate_candidates(new_req)
        nbi, nbo, _ = buckets(new_req.traffic[0].lengths, 16)
        c0 = _cpu_s()
        capacities(new_cands, nbi, nbo, new_req)
        shape_cpu.append(_cpu_s() - c0)
    readme = PlanRequest((Traffic("llama-3.1-8b", 40.0, Lengths.lognormal(1500, 300)),), SLO(1.0, 0.05),
                         (GpuOption("h100-sxm"), GpuOption("l40s"), GpuOption("l4")))
    readme_cost = plan(readme).cost_per_hour_usd
    readme_warm, readme_cpu, readme_n = _tallied(lambda: plan(readme).to_dict())
    rates = iter([35.0, 45.0])
    other, other_cpu, other_n = _tallied(lambda: plan(replace(readme, traffic=(
        Traffic("llama-3.1-8b", next(rates), Lengths.lognormal(1500, 300)),))).to_dict())
    return {"plan end to end, first call in a process (s)": cold, "plan, first call: CPU (s)": cold_cpu,
            "plan end to end, warm, same request (s)": warm, "plan, warm, same request: CPU (s)": warm_cpu,
            **_tally_rows("plan, warm, same request", warm_n),
            "plan end to end, warm, new traffic (s)": new, "plan, warm, new traffic: CPU (s)": new_cpu,
            **_tally_rows("plan, warm, new traffic", new_n),
            "candidate configurations": float(len(cands)),
            "candidate x bucket capacity evaluations/s": len(cands) * bi.size / cap_s,
            "SLO capacities of a new traffic shape, warm: CPU (s, best of 3 shapes)": min(shape_cpu),
            "SLO capacities of a new traffic shape, warm: CPU (s, worst of 3 shapes)": max(shape_cpu),
            "plan cost ($/h)": result.cost_per_hour_usd,
            "README python plan, warm in one process (s)": readme_warm, "README python plan, warm: CPU (s)": readme_cpu,
            **_tally_rows("README python plan, warm", readme_n),
            "README python plan at 35 or 45 req/s, warm (s)": other,
            "README python plan at another rate: CPU (s)": other_cpu,
            **_tally_rows("README python plan at another rate", other_n),
            "README python plan cost ($/h)": readme_cost,
            **bench_plan_command(), "load average (1 min) while measuring": os.getloadavg()[0]}


PLAN_COMMANDS = {  # the README's `ridgeplan plan` examples (the second without its Pareto sweep)
    "README plan 1 (llama-3.1-70b)": ["--model", "llama-3.1-70b", "--rate", "20", "--input-len", "2048", "--output-len",
                                      "256", "--ttft-ms", "2000", "--tpot-ms", "50"],
    "README plan 2 (llama-3.1-8b, budget)": ["--model", "llama-3.1-8b", "--rate", "40", "--tpot-ms", "50", "--gpus",
                                             "h100-sxm:3.0:16,l40s,l4", "--budget", "40"],
}
IMPORT_PLAN_PATH = "import model.cli, model.cli.plan, model.planner.plan, model.serving.simulator.run"


def bench_plan_command(repeats: int = 2) -> dict[str, float]:
    """`ridgeplan plan ... --json` as a command: process start to the JSON on stdout (best of `repeats`, with its
    CPU), and the import of the plan path alone."""
    import subprocess

    out: dict[str, float] = {}
    code = "from model.cli import main; raise SystemExit(main())"
    for name, args in PLAN_COMMANDS.items():
        best = (float("inf"), float("inf"))
        for _ in range(repeats):
            c0, t0 = _cpu_s(), time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code, "plan", *args, "--json"], capture_output=True, text=True,
                                  check=True)
            best = min(best, (time.perf_counter() - t0, _cpu_s() - c0))
        out[f"{name}: command, process start to JSON (s)"] = best[0]
        out[f"{name}: command CPU (s)"] = best[1]
        out[f"{name}: cost ($/h)"] = float(json.loads(done.stdout)["cost_per_hour_usd"] or float("nan"))
    timing = (f"import time; t = time.perf_counter(); {IMPORT_PLAN_PATH}; "
              "print(time.perf_counter() - t)")
    out["import of the plan path (s)"] = min(
        float(subprocess.run([sys.executable, "-c", timing], capture_output=True, text=True, check=True).stdout)
        for _ in range(repeats))
    return out


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


def bench_simulator() -> dict[str, float]:
    """The engine simulator (targets in issue 13): a 1,000-request closed loop at C = 64 of Llama-3.1-70B TP4 on
    H100 (vLLM, 2,000 in / 500 out) <= 0.2 s; the cost table built <= 0.3 s and within 1% of direct evaluation
    at random points; >= 50,000 scheduler iterations per second (an open loop, where arrivals keep every
    iteration a real scheduling decision)."""
    from model.api import deployment
    from model.serving.batching import iteration_cost
    from model.serving.policy import ENGINES
    from model.serving.simulator import Load, build_cost_table, simulate
    from model.serving.workload import Lengths

    d = deployment("llama-3.1-70b", "h100-sxm", tp=4)
    policy = ENGINES["vllm"]
    lengths = Lengths.fixed(2000, 500)
    build_cost_table(d, policy, 2500)  # compiles the deployment's operator graph once
    table_s = _best_of(lambda: build_cost_table(d, policy, 2500))
    table = build_cost_table(d, policy, 2500)
    rng = np.random.default_rng(0)
    nd = rng.integers(0, 257, 400).astype(float)
    cd = rng.uniform(1, 2500, 400)
    pt = np.where(rng.random(400) < 0.5, np.floor(rng.uniform(0, 1, 400) * (8192 - nd)), 0.0)
    pc = rng.uniform(0, 2000, 400)
    keep = (nd + pt) > 0
    nd, cd, pt, pc = nd[keep], cd[keep], pt[keep], pc[keep]
    direct = iteration_cost(d, nd, cd, pt, (pt > 0).astype(float), pc).time_s
    approx = np.array([table.iteration_s(a, b, [(c, e, 1)] if c else []) for a, b, c, e in zip(nd, cd, pt, pc)])
    closed = Load("closed", concurrency=64, num_requests=1000)
    result = simulate(d, lengths, closed, policy, table=table)
    loop_s = _best_of(lambda: simulate(d, lengths, closed, policy, table=table))
    raw_s = _best_of(lambda: simulate(d, lengths, closed, policy, table=table, macro_steps=False))
    opened = Load("poisson", rate_per_s=3.0, num_requests=1000)
    r_open = simulate(d, lengths, opened, policy, table=table)
    open_s = _best_of(lambda: simulate(d, lengths, opened, policy, table=table))
    return {"simulator: 1,000-request closed loop C=64, 70B TP4 H100 (s)": loop_s,
            "simulator: its scheduler iterations": float(result.iterations),
            "simulator: closed-loop iterations/s": result.iterations / loop_s,
            "simulator: same loop, every iteration scheduled alone (s)": raw_s,
            "simulator: same loop, every iteration scheduled alone, iterations/s": result.iterations / raw_s,
            "simulator: open loop (Poisson 3 req/s, 1,000 requests) iterations/s": r_open.iterations / open_s,
            "simulator: cost table build (s)": table_s,
            "simulator: cost table max |error| vs direct evaluation (%)": float(np.max(np.abs(approx / direct - 1))) * 100}


BENCHES["simulator"] = bench_simulator


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
            print(f"{key:60s} {value:>16,.1f}" if abs(value) >= 10 else f"{key:60s} {value:>16.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
