"""`ridgeplan plan`: the cheapest fleet for traffic within an SLO, with launch commands."""

from __future__ import annotations

from typing import Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from model.cli import app
from model.cli.output import console, kv_table, print_json
from model.errors import RidgeplanError


def parse_gpus(text: str):
    """'h100-sxm,l4:0.8,a100-sxm-80gb:1.5:16' -> GpuOptions (id[:usd_per_hour[:available_gpus]])."""
    from model.planner import GpuOption

    out = []
    for item in [x.strip() for x in text.split(",") if x.strip()]:
        parts = item.split(":")
        try:
            price = float(parts[1]) if len(parts) > 1 and parts[1] else None
            avail = int(parts[2]) if len(parts) > 2 and parts[2] else None
        except ValueError:
            raise RidgeplanError("gpus", f"expected ID[:USD_PER_HOUR[:AVAILABLE]], got {item!r}") from None
        out.append(GpuOption(parts[0], price, avail))
    if not out:
        raise RidgeplanError("gpus", "give at least one GPU id")
    return tuple(out)


def parse_precisions(text: str):
    pairs = []
    for item in [x.strip() for x in text.split(",") if x.strip()]:
        w, _, kv = item.partition("/")
        pairs.append((w, kv or "bf16"))
    if not pairs:
        raise RidgeplanError("precisions", "give WEIGHTS/KV pairs such as bf16/bf16,fp8/fp8")
    return tuple(pairs)


@app.command("plan")
def plan_command(
    model: list[str] = typer.Option(..., "--model", help="model id (repeat for several models)"),
    rate: list[float] = typer.Option(..., "--rate", help="requests/s per model (same order as --model)"),
    input_len: list[int] = typer.Option([1024], "--input-len", help="mean prompt tokens per model"),
    output_len: list[int] = typer.Option([256], "--output-len", help="mean output tokens per model"),
    lengths: str = typer.Option("lognormal", "--lengths", help="fixed | lognormal"),
    trace: Optional[str] = typer.Option(None, "--trace", help="CSV of input_len,output_len (one model)"),
    ttft_ms: Optional[float] = typer.Option(None, "--ttft-ms"),
    tpot_ms: Optional[float] = typer.Option(None, "--tpot-ms"),
    attainment: float = typer.Option(0.9, "--attainment"),
    gpus: str = typer.Option("h100-sxm,a100-sxm-80gb,l40s,l4", "--gpus", help="ID[:USD_PER_HOUR[:AVAILABLE]],..."),
    precisions: str = typer.Option("bf16/bf16,fp8/fp8,int4/bf16,fp8/bf16", "--precisions", help="WEIGHTS/KV,..."),
    roles: str = typer.Option("aggregated,prefill,decode", "--roles"),
    max_risk: int = typer.Option(3, "--max-risk", help="0-3: drop formats with higher published accuracy risk"),
    budget: Optional[float] = typer.Option(None, "--budget", help="USD per hour"),
    power_cap: Optional[float] = typer.Option(None, "--power-cap", help="watts"),
    objective: str = typer.Option("cost", "--objective", help="cost | gpus | power | goodput"),
    engine: str = typer.Option("vllm", "--engine"),
    pareto: Optional[str] = typer.Option(None, "--pareto", help="tpot | ttft: also the cost-vs-target frontier"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Pick GPU mix, parallelism, precision and prefill/decode split for the traffic at least cost."""
    from model.planner import PlanRequest, Traffic, pareto_frontier, plan
    from model.serving.estimate import SLO
    from model.serving.workload import Lengths

    n = len(model)
    if len(rate) != n:
        raise RidgeplanError("rate", f"give one --rate per --model ({n}), got {len(rate)}")
    ins = input_len if len(input_len) == n else input_len * n if len(input_len) == 1 else None
    outs = output_len if len(output_len) == n else output_len * n if len(output_len) == 1 else None
    if ins is None or outs is None:
        raise RidgeplanError("input_len", "give one length per model, or one for all")
    traffic = []
    for k, m in enumerate(model):
        dist = Lengths.from_input(ins[k], outs[k], lengths, trace)
        traffic.append(Traffic(m, rate[k], dist))
    slo = SLO.from_ms(ttft_ms, tpot_ms, attainment)
    request = PlanRequest(tuple(traffic), slo, parse_gpus(gpus), parse_precisions(precisions),
                          tuple(r.strip() for r in roles.split(",") if r.strip()), max_risk, engine=engine,
                          budget_usd_per_hour=budget, power_cap_w=power_cap, objective=objective)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=json) as bar:
        task = bar.add_task("enumerating candidates", total=None)
        result = plan(request, progress=lambda msg: bar.update(task, description=msg))
        frontier = None
        if pareto:
            bar.update(task, description="Pareto frontier")
            frontier = _frontier(request, pareto, pareto_frontier)
    data = result.to_dict()
    if frontier is not None:
        data["pareto"] = frontier
    if json:
        print_json(data)
        return
    _print(result, data)


def _frontier(request, metric: str, pareto_frontier):
    import numpy as np

    if metric not in ("tpot", "ttft"):
        raise RidgeplanError("pareto", f"unknown metric {metric!r}", ["tpot", "ttft"])
    base = request.slo.tpot_s if metric == "tpot" else request.slo.ttft_s
    if base is None:
        raise RidgeplanError("pareto", f"needs a --{metric}-ms target to sweep around")
    targets = list(np.geomspace(base / 3, base * 3, 7))
    return pareto_frontier(request, **({"tpot_targets_s": targets} if metric == "tpot" else {"ttft_targets_s": targets}))


def _print(result, data) -> None:
    if not result.feasible:
        console.print(kv_table("ridgeplan plan: NOT FEASIBLE", [("why", result.explanation)]))
        return
    head = [("fleet", f"{result.gpus} GPUs, ${result.cost_per_hour_usd:,.2f}/h, {result.power_w:,.0f} W"),
            ("cost per million output tokens", f"${result.cost_per_million_tokens_usd():,.3f}"),
            ("binding constraint", result.binding)]
    console.print(kv_table("ridgeplan plan", head))
    table = Table(title="instances")
    for col in ("#", "model", "role", "instances", "GPU x n", "layout", "W/KV", "max batch", "req/s", "TTFT ms",
                "TPOT ms", "util", "SLO"):
        table.add_column(col)
    for k, p in enumerate(data["pools"]):
        fmt = lambda d: " ".join(f"{s} {v * 1e3:,.1f}" for s, v in d.items()) if d else "-"  # noqa: E731
        table.add_row(str(k), p["model"], p["role"], str(p["instances"]), f"{p['gpu']} x {p['gpus_per_instance']}", p["layout"],
                      f"{p['precision']['weights']}/{p['precision']['kv']}", str(p["max_batch"]),
                      f"{p['rate_per_s']:,.2f}", fmt(p["ttft_s"]), fmt(p["tpot_s"]), f"{p['utilization']:.0%}",
                      "ok" if p["meets_slo"] else "MISSED: " + "; ".join(p["failed"]))
    console.print(table)
    if data["pairs"]:
        pairs = Table(title="prefill -> decode pairs (KV hand-off)")
        for col in ("prefill pool", "decode pool", "req/s", "KV transfer mean ms", "group"):
            pairs.add_column(col)
        for q in data["pairs"]:
            pairs.add_row(f"#{q['prefill_pool']} {q['prefill']}", f"#{q['decode_pool']} {q['decode']}",
                          f"{q['rate_per_s']:,.2f}", f"{q['kv_transfer_s']['mean'] * 1e3:,.2f}", q["group"])
        console.print(pairs)
    for p in data["pools"]:
        console.print(f"[bold]{p['gpu']} {p['layout']} {p['role']}[/bold]")
        for engine, cmd in p["launch"].items():
            console.print(f"  {engine}: " + cmd.replace("\n", "\n      "), markup=False)
    for engine, cmd in data.get("router", {}).items():
        console.print(f"router {engine}: " + cmd.replace("\n", "\n    "), markup=False)
    if "pareto" in data:
        t = Table(title="Pareto frontier (cost vs latency target)")
        for col in ("target ms", "cost $/h", "GPUs", "mix"):
            t.add_column(col)
        for pt in data["pareto"]:
            t.add_row(f"{pt['target_s'] * 1e3:,.1f}", "-" if pt["cost_per_hour_usd"] is None else f"{pt['cost_per_hour_usd']:,.2f}",
                      str(pt["gpus"] or "-"), ", ".join(f"{k}: {v}" for k, v in pt["mix"].items()))
        console.print(t)
    for note in data["notes"]:
        console.print(f"  - {note}")
