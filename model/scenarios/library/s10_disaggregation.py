"""Section 10: disaggregated prefill and decode (DistServe, Splitwise; Nexus's intra-GPU split)."""

from __future__ import annotations

from model.api import deployment
from model.planner import GpuOption, PlanRequest, Traffic, plan
from model.scenarios.base import CheckOutcome, check, pick, scenario
from model.serving.disagg import DisaggPlan, disaggregated, kv_transfer_s
from model.serving.estimate import SLO, estimate
from model.serving.policy import ENGINES
from model.serving.workload import Lengths, Workload

SLOS = {"loose": SLO(1.0, 0.030), "medium": SLO(0.6, 0.020), "tight": SLO(0.4, 0.015)}
POOL_SHAPES = ((1, 1), (1, 2), (2, 1), (1, 3), (2, 3), (3, 2))


@check("SEED-C01", "C", "under tight TTFT + TPOT SLOs the best disaggregated goodput per GPU beats colocated; the gap "
       "widens as SLOs tighten; the KV hand-off inside a node is much smaller than TTFT")
def _c01(r):
    ratios = [r[f"ratio_{k}"] for k in ("loose", "medium", "tight")]
    ok = ratios[0] > 1 and ratios[0] <= ratios[1] <= ratios[2] and r["kv_handoff_s"] < 0.05 * SLOS["tight"].ttft_s
    return CheckOutcome(ok, {"disagg/colocated per GPU": ratios, "kv_handoff_s": r["kv_handoff_s"]},
                        "ratio > 1 and non-decreasing as SLOs tighten; hand-off < 5% of TTFT")


@scenario("distserve-goodput-per-gpu", ["DistServe (000-004)"], 10,
          "Llama-3.1-8B on H100s, 1,500-token prompts and 250-token outputs, p90 attainment. Colocated baseline: a "
          "prefill-prioritising engine (vLLM as DistServe compared against), one GPU per instance. Disaggregated: "
          "P prefill + D decode single-GPU instances in one node (KV over NVLink), best P:D up to 5 GPUs. Goodput per "
          "GPU at three SLO pairs (loose 1 s / 30 ms, medium 0.6 s / 20 ms, tight 0.4 s / 15 ms).",
          [_c01])
def distserve():
    d = deployment("llama-3.1-8b", "h100-sxm")
    work = Workload(Lengths.fixed(1500, 250), rate_per_s=1.0)
    baseline = ENGINES["vllm"].with_(chunked_prefill=False)
    out = {}
    for name, slo in SLOS.items():
        colocated = estimate(d, work, baseline, slo).goodput_requests_per_s
        best = max(disaggregated(DisaggPlan(d, p, d, q, placement="same_node"), work, baseline, slo)
                   .goodput_requests_per_s / (p + q) for p, q in POOL_SHAPES)
        out[f"colocated_{name}_per_gpu"] = colocated
        out[f"disaggregated_{name}_per_gpu"] = best
        out[f"ratio_{name}"] = best / colocated if colocated > 0 else float("inf")
    out["kv_handoff_s"] = float(kv_transfer_s(DisaggPlan(d, 1, d, 1, placement="same_node"), 1500))
    return out


@check("SEED-C06", "C", "with per-phase GPU types throughput per $ (and per W) >= homogeneous; decode prefers the "
       "cheaper or lower-power type")
def _c06(r):
    ok = (r["cost_mixed"] <= r["cost_homogeneous"] + 1e-9 and r["power_mixed"] <= r["power_homogeneous"] + 1e-9
          and r["decode_gpu"] in ("a100-sxm-80gb",))
    return CheckOutcome(ok, pick(r, "cost_mixed", "cost_homogeneous", "power_mixed", "power_homogeneous",
                                 "decode_gpu"), "mixed <= homogeneous; decode on the A100")


@scenario("splitwise-phase-gpu-types", ["Splitwise (004)"], 10,
          "Llama-3.1-70B at 8 requests/s, 1,500-token prompts, 300-token outputs, SLO 2 s TTFT / 50 ms TPOT at p90, "
          "disaggregated pools only. Candidates: H100 SXM ($3.00/h, 700 W) and A100 SXM 80GB ($1.30/h, 400 W), "
          "FP8/BF16 weights; cheapest and lowest-power fleets. Baseline: the same plans restricted to H100s.",
          [_c06])
def splitwise():
    traffic = (Traffic("llama-3.1-70b", 8.0, Lengths.fixed(1500, 300)),)
    common = dict(roles=("prefill", "decode"), precisions=(("fp8", "fp8"), ("bf16", "bf16")), pipeline_depths=(1,))
    both = (GpuOption("h100-sxm"), GpuOption("a100-sxm-80gb"))
    mixed = plan(PlanRequest(traffic, SLO(2.0, 0.05), both, **common))
    homog = plan(PlanRequest(traffic, SLO(2.0, 0.05), both[:1], **common))
    # Splitwise designs for cost and for power separately: the power-optimal fleets are compared on watts
    mixed_w = plan(PlanRequest(traffic, SLO(2.0, 0.05), both, objective="power", **common))
    homog_w = plan(PlanRequest(traffic, SLO(2.0, 0.05), both[:1], objective="power", **common))
    decode = [p for p in mixed.pools if p.candidate.role == "decode"]
    return {"cost_mixed": mixed.cost_per_hour_usd, "cost_homogeneous": homog.cost_per_hour_usd,
            "power_mixed": mixed_w.power_w, "power_homogeneous": homog_w.power_w,
            "decode_gpu": decode[0].candidate.gpu if decode else "",
            "mixed_pools": [f"{p.instances} x {p.candidate.label()}" for p in mixed.pools]}


NOT_EXPRESSIBLE = {
    "Nexus (001)": ("intra-GPU disaggregation needs an SM-partition model (prefill on a share f of the SMs with a "
                    "saturating speed-up g(f), decode on the rest with the leftover bandwidth), which the roofline "
                    "evaluator does not have: it runs one kernel stream per GPU",
                    "per-stream SM shares and shared-bandwidth contention in model/roofline"),
}
