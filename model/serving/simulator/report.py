"""The simulated run folded into an estimate's output: the same keys as the steady state (ttft_mean_s,
tpot_mean_s, the percentiles, throughput), with `latency_mode` saying which produced them."""

from __future__ import annotations

from typing import Any

from model.serving.simulator.metrics import SimResult

SIM_KEYS = ("ttft_mean_s", "tpot_mean_s", "ttft_percentiles_s", "tpot_percentiles_s", "e2e_mean_s",
            "e2e_percentiles_s", "itl_mean_s", "itl_percentiles_s", "confidence_95", "requests_measured",
            "requests_warmup", "iterations", "preemptions", "max_queue", "max_running")


def merge(steady: dict[str, Any], sim: SimResult, replicas: int = 1) -> dict[str, Any]:
    """`steady` (an estimate's to_dict) with its latency and throughput replaced by the simulated run's.
    The steady-state figures stay under `steady_state` for comparison."""
    s = sim.to_dict()
    out = dict(steady)
    keep = {k: steady[k] for k in ("ttft_mean_s", "tpot_mean_s", "ttft_percentiles_s", "tpot_percentiles_s",
                                   "requests_per_s", "output_tokens_per_s") if k in steady}
    out.update({k: s[k] for k in SIM_KEYS})
    out["requests_per_s"] = s["requests_per_s"] * replicas
    out["output_tokens_per_s"] = s["output_tokens_per_s"] * replicas
    gpus = steady.get("gpus")
    if gpus:
        out["output_tokens_per_s_per_gpu"] = out["output_tokens_per_s"] / gpus
    if s["tpot_mean_s"]:
        out["output_tokens_per_s_per_user"] = 1.0 / s["tpot_mean_s"]
    out["latency_mode"] = "simulation"
    out["simulation"] = {"load": s["load"], "engine": s["engine"]}
    out["steady_state"] = keep
    out["assumptions"] = [*steady.get("assumptions", []), *s["assumptions"]]
    return out
