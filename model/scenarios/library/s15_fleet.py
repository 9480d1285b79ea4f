"""Section 15: heterogeneous fleet and cost ILP (Melange)."""

from __future__ import annotations

import numpy as np

from model.planner import GpuOption, PlanRequest, Traffic, plan
from model.scenarios.base import CheckOutcome, check, pick, scenario
from model.serving.estimate import SLO
from model.serving.workload import Lengths

# The GPU-hour prices Melange used (AWS on-demand for L4 and A10G, cloud list prices for A100-80GB and H100):
# external, verify against the paper before relying on them. Relative prices drive the result.
PRICES = {"h100-sxm": 7.516, "a100-sxm-80gb": 3.67, "l4": 0.70, "a10g": 1.01}
GPUS = tuple(PRICES)


def _request(lengths: Lengths, slo: SLO, gpus=GPUS) -> PlanRequest:
    return PlanRequest((Traffic("llama-2-7b", 30.0, lengths),), slo, tuple(GpuOption(g, PRICES[g]) for g in gpus),
                       precisions=(("bf16", "bf16"),), roles=("aggregated",), pipeline_depths=(1,),
                       gpus_per_instance=(1, 2))


@check("SEED-C05", "C", "heterogeneous ILP cost <= best single type; small requests with loose SLOs pick cheap GPUs, "
       "large requests with tight SLOs pick high-end GPUs")
def _c05(r):
    ok = (r["cost_mixed"] <= r["best_single_cost"] + 1e-9 and r["short_loose_high_end_share"] < 0.5
          and r["long_tight_high_end_share"] > 0.5)
    return CheckOutcome(ok, pick(r, "cost_mixed", "best_single_cost", "short_loose_high_end_share",
                                 "long_tight_high_end_share"),
                        "mixed <= single; short/loose mostly on L4/A10G; long/tight mostly on A100/H100")


@scenario("melange-gpu-mix", ["Mélange (002, 003)"], 15,
          "Llama-2-7B (bf16) at 30 requests/s over H100, A100, L4 and A10G at the prices of the Melange paper; a mix "
          "of 70% short (200 in / 100 out) and 30% long (3,500 in / 400 out: inside the model's 4,096-token "
          "context) requests at a 5 s / 100 ms SLO, "
          "against the cheapest single-type fleet; then short requests alone at a loose SLO and long requests "
          "alone at a tight one.",
          [_c05])
def melange():
    mix = Lengths(np.array([200.0, 3500.0]), np.array([100.0, 400.0]), np.array([0.7, 0.3]))
    loose = SLO(5.0, 0.1)
    mixed = plan(_request(mix, loose))
    singles = [plan(_request(mix, loose, (g,))) for g in GPUS]
    costs = [p.cost_per_hour_usd for p in singles if p.feasible]
    short = plan(_request(Lengths.fixed(200, 100), SLO(5.0, 0.1)))
    long = plan(_request(Lengths.fixed(3500, 400), SLO(0.6, 0.02)))

    def high_end_share(p) -> float:
        total = sum(x.instances * x.candidate.gpus for x in p.pools)
        high = sum(x.instances * x.candidate.gpus for x in p.pools if x.candidate.gpu in ("h100-sxm", "a100-sxm-80gb"))
        return high / total if total else float("nan")

    return {"cost_mixed": mixed.cost_per_hour_usd, "best_single_cost": min(costs) if costs else float("inf"),
            "single_costs": {g: (p.cost_per_hour_usd if p.feasible else None) for g, p in zip(GPUS, singles)},
            "mixed_fleet": [f"{x.instances} x {x.candidate.label()}" for x in mixed.pools],
            "short_loose_high_end_share": high_end_share(short), "long_tight_high_end_share": high_end_share(long)}
