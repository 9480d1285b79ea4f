"""Section 17: power and energy (POLCA), with the power model of `model.techniques.power`."""

from __future__ import annotations

import numpy as np

from model.api import deployment
from model.scenarios.base import CheckOutcome, check, close, pick, scenario
from model.techniques.power import (
    oversubscription_gain,
    phase_power,
    planned_fraction_for_gain,
    power_range_w,
    servers_within_budget,
    step_power,
)
from model.training import estimate_training

CAPS_W = (630, 560, 490, 420)  # 90%, 80%, 70%, 60% of the H100's 700 W


@check("SEED-A37", "A", "30% more servers <=> planned power per server <= 1/1.3 = 76.9% of provisioned")
def _a37(r):
    ok = close(r["planned_fraction_for_30pct"], 0.769, 0.01) and close(r["gain_at_planned_fraction"], 0.30, 1e-9)
    return CheckOutcome(ok, pick(r, "planned_fraction_for_30pct", "gain_at_planned_fraction",
                                 "servers_nameplate", "servers_planned"), "76.9%",
                        f"the power model's inference draw (steady mix of prefill and decode) is "
                        f"{r['inference_power_fraction_of_tdp']:.0%} of TDP per GPU")


@check("SEED-C26", "C", "A power cap slows prefill and training more than decode")
def _c26(r):
    s = r["slowdown"]
    ok = all(s["prefill"][c] >= s["decode"][c] - 1e-9 and s["training"][c] >= s["decode"][c] - 1e-9 for c in CAPS_W)
    tight = CAPS_W[-1]
    ok = ok and s["prefill"][tight] > s["decode"][tight] and s["training"][tight] > s["decode"][tight]
    return CheckOutcome(ok, s, "slowdown(prefill), slowdown(training) >= slowdown(decode) at every cap, > at 60% of TDP",
                        "clock under a cap from P_dyn ~ f^3 (DVFS); compute-bound time x 1/f, memory-bound unchanged; "
                        "memory streaming assumed to draw half the dynamic power range")


@scenario("polca-power-capping", ["POLCA (001, 003)"], 17,
          "Llama-3.1-8B (BF16) served one replica per GPU on DGX H100 servers (700 W TDP, 70 W idle per GPU) and "
          "trained on one (DP 8, 4,096-token sequences, 64 per step). Power per phase from the roofline's binding "
          "resource: prefill of 2 x 2,048-token prompts, decode of 64 sequences at 2,048 cached tokens, a training "
          "step. Caps of 90-60% of TDP: the clock falls until the draw meets the cap and compute-bound work "
          "stretches. Oversubscription: a 1 MW budget of 8-GPU servers planned at nameplate vs at 76.9% of it. "
          "(For Llama-3.1-70B at TP 8 the model puts prefill at only about 60% of TDP, because it draws no "
          "dynamic power during the exposed all-reduces: the power of collectives is not modelled.)",
          [_a37, _c26])
def polca():
    d = deployment("llama-3.1-8b", "h100-sxm")
    idle, tdp = power_range_w(d.device)
    out = {"idle_w": idle, "tdp_w": tdp, "planned_fraction_for_30pct": float(planned_fraction_for_gain(0.30))}
    out["gain_at_planned_fraction"] = float(oversubscription_gain(1.0, 1 / 1.3))
    server_w = 8 * tdp
    out["servers_nameplate"] = int(servers_within_budget(1e6, server_w))
    out["servers_planned"] = int(servers_within_budget(1e6, server_w * out["planned_fraction_for_30pct"]))
    train = estimate_training("llama-3.1-8b", "h100-sxm", 8, node="dgx-h100", seq_len=4096, global_batch=64)
    b = train.breakdown_s
    phases = {"prefill": lambda cap: step_power(d, 2, 2048, 0, cap_w=cap),
              "decode": lambda cap: step_power(d, 64, 1, 2048, cap_w=cap),
              "training": lambda cap: phase_power(d.device, b["compute_s"], b["optimizer_s"], train.step_time_s,
                                                  tokens=64 * 4096, gpus=8, cap_w=cap)}
    out["power_w"] = {k: float(np.ravel(fn(None).power_w)[0]) for k, fn in phases.items()}
    out["slowdown"] = {k: {cap: float(np.ravel(fn(cap).slowdown)[0]) for cap in CAPS_W} for k, fn in phases.items()}
    pre, dec = phases["prefill"](None), phases["decode"](None)
    # a steady serving mix of 2,048-in / 2,048-out requests: one prefill step of 2 prompts per 64 decode steps of 64
    # sequences (2 requests start and 2 finish every 64 steps)
    mix_energy = float(pre.power_w[0] * pre.time_s[0] + 64 * dec.power_w[0] * dec.time_s[0])
    out["inference_power_fraction_of_tdp"] = mix_energy / float(pre.time_s[0] + 64 * dec.time_s[0]) / tdp
    out["energy_j_per_token"] = {"prefill": float(pre.energy_j_per_token[0]), "decode": float(dec.energy_j_per_token[0])}
    big = deployment("llama-3.1-70b", "h100-sxm", tp=8, node="dgx-h100")
    out["power_w_70b_tp8"] = {"prefill": float(step_power(big, 2, 2048, 0).power_w[0]),
                              "decode": float(step_power(big, 64, 1, 2048).power_w[0])}
    return out
