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


# Mélange's grid of regimes: request rates (requests/s) x SLOs (TTFT s, TPOT s); the saving is reported per regime
RATES_PER_S = (2.0, 8.0, 30.0)
SLOS = {"loose 5 s / 100 ms": SLO(5.0, 0.1), "tight 1 s / 40 ms": SLO(1.0, 0.04)}
# Mélange reports 9-77% lower cost than the best single GPU type (the low end is the smallest saving it reports)
CLAIM_SAVING = (0.09, 0.77)


def _request(lengths: Lengths, slo: SLO, gpus=GPUS, rate_per_s: float = 30.0) -> PlanRequest:
    return PlanRequest((Traffic("llama-2-7b", rate_per_s, lengths),), slo,
                       tuple(GpuOption(g, PRICES[g]) for g in gpus),
                       precisions=(("bf16", "bf16"),), roles=("aggregated",), pipeline_depths=(1,),
                       gpus_per_instance=(1, 2))


@check("SEED-C05", "C", "the mixed fleet is >= 9% (and <= 77%) cheaper than the best single GPU type in at least one "
       "rate/SLO regime of the grid; small requests with loose SLOs pick cheap GPUs, large requests with tight SLOs "
       "pick high-end GPUs",
       known_gap="Mélange reports 9-77% savings; with every request inside Llama-2-7B's 4,096-token context (long "
       "requests of 3,500 tokens, where the paper's long tail runs past it) and every pool re-checked by the engine "
       "simulator, ridgeplan's best regime saves 6.8% (2/s, loose SLO) and the others 0-5.4%: a mix beats one type "
       "only by bin-packing granularity here. The direction holds: short/loose traffic goes to cheap GPUs and "
       "long/tight traffic to high-end ones")
def _c05(r):
    best = r["best_saving"]
    ok = (best is not None and CLAIM_SAVING[0] <= best <= CLAIM_SAVING[1]
          and r["short_loose_high_end_share"] < 0.5 and r["long_tight_high_end_share"] > 0.5)
    return CheckOutcome(ok, pick(r, "best_saving", "best_regime", "saving_by_regime", "short_loose_high_end_share",
                                 "long_tight_high_end_share"),
                        "saving in [9%, 77%] in at least one regime; short/loose mostly on L4/A10G; long/tight "
                        "mostly on A100/H100",
                        "saving = 1 - mixed cost / cheapest single-type cost, both optimal for the same traffic; "
                        "fleets are whole instances, so at low rates part of the saving is bin-packing granularity")


@scenario("melange-gpu-mix", ["Mélange (002, 003)"], 15,
          "Llama-2-7B (bf16) over H100, A100, L4 and A10G at the prices of the Melange paper; a mix of 70% short "
          "(200 in / 100 out) and 30% long (3,500 in / 400 out: inside the model's 4,096-token context) requests on a grid of 2, 8 and 30 requests/s x a "
          "loose (5 s / 100 ms) and a tight (1 s / 40 ms) SLO, each against the cheapest single-type fleet for the "
          "same regime; then short requests alone at a loose SLO and long requests alone at a tight one (30/s).",
          [_c05])
def melange():
    mix = Lengths(np.array([200.0, 3500.0]), np.array([100.0, 400.0]), np.array([0.7, 0.3]))
    savings, fleets = {}, {}
    for rate in RATES_PER_S:
        for name, slo in SLOS.items():
            regime = f"{rate:g}/s, {name}"
            mixed = plan(_request(mix, slo, rate_per_s=rate))
            costs = [p.cost_per_hour_usd for p in (plan(_request(mix, slo, (g,), rate)) for g in GPUS) if p.feasible]
            savings[regime] = (1 - mixed.cost_per_hour_usd / min(costs)) if mixed.feasible and costs else None
            fleets[regime] = [f"{x.instances} x {x.candidate.label()}" for x in mixed.pools]
    short = plan(_request(Lengths.fixed(200, 100), SLO(5.0, 0.1)))
    long = plan(_request(Lengths.fixed(3500, 400), SLO(0.6, 0.02)))

    def high_end_share(p) -> float:
        total = sum(x.instances * x.candidate.gpus for x in p.pools)
        high = sum(x.instances * x.candidate.gpus for x in p.pools if x.candidate.gpu in ("h100-sxm", "a100-sxm-80gb"))
        return high / total if total else float("nan")

    known = {k: v for k, v in savings.items() if v is not None}
    best_regime = max(known, key=known.get) if known else None
    return {"saving_by_regime": {k: (round(v, 4) if v is not None else None) for k, v in savings.items()},
            "best_saving": known.get(best_regime) if best_regime else None, "best_regime": best_regime,
            "mixed_fleet_by_regime": fleets,
            "short_loose_high_end_share": high_end_share(short), "long_tight_high_end_share": high_end_share(long)}
