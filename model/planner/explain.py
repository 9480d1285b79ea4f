"""Why a request is infeasible, and the smallest relaxation that makes it feasible.

Every number suggested here was found by planning again (the whole planner: program and re-check), so a user who
follows it gets a feasible plan:
- memory: the model fits on no candidate;
- TTFT / TPOT: some bucket is met by no configuration; the smallest feasible target is found by bisection on the
  planner between the best zero-load latency (infeasible: capacity is zero there) and a target that plans, and
  reported rounded up to a value that was itself planned feasible;
- availability / budget / power: the limit dropped, the cheapest (for power: the least power) feasible fleet is
  what the limit must allow.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from model.planner.pairs import pair_key

BISECTION_STEPS = 5
DOUBLINGS = 5


def explain(request, cands, sl, cap, info) -> str:
    """Which constraint cannot be met, and the nearest feasible relaxation."""
    slo = request.slo
    for t in request.traffic:
        rows, bi, bo, caps = info[t.model]
        if not caps.fits.any():
            return (f"memory: {t.model} does not fit on any candidate configuration "
                    f"(largest instance tried: {max(request.gpus_per_instance)} GPUs); add larger GPUs or allow "
                    "lower precisions")
        role = np.array([cands[r].role for r in rows])
        served = caps.rate_per_s > 0
        keys = [pair_key(cands[r], request.kv_placement) if cands[r].role != "aggregated" else None for r in rows]
        uncovered = [b for b in range(bi.size) if not _covered(b, role, served, keys)]
        if uncovered:
            b = uncovered[0]
            fits = caps.fits[:, b]
            size = f"{bi[b]:,.0f}-token prompts / {bo[b]:,.0f}-token outputs"
            best_ttft = np.where(fits & (role != "decode"), caps.min_ttft_s[:, b], np.inf)
            best_tpot = np.where(fits & (role != "prefill"), caps.min_tpot_s[:, b], np.inf)
            if served[role == "prefill", b].any() and served[role == "decode", b].any():
                return (f"pairing: prefill and decode configurations each meet the SLO for {size}, but none of them "
                        "can hand KV to the other (same weights and KV format, same vendor, a link in hardware_db); "
                        "allow aggregated instances, one format for both roles, or GPUs with a scale-out NIC")
            k_t, k_p = int(np.argmin(best_ttft)), int(np.argmin(best_tpot))
            if slo.ttft_s is not None and best_ttft[k_t] > slo.ttft_s:
                return _latency(request, "ttft", float(best_ttft[k_t]), size, cands[rows[k_t]].label())
            if slo.tpot_s is not None and best_tpot[k_p] > slo.tpot_s:
                return _latency(request, "tpot", float(best_tpot[k_p]), size, cands[rows[k_p]].label())
            if slo.ttft_s is not None:
                return _latency(request, "ttft", slo.ttft_s, size, "", both=True)
            return f"SLO: no configuration meets both targets together for {size} at the SLO percentile"
    for limit in ("availability", "budget", "power"):
        why = _limit(request, limit)
        if why:
            return why
    return "no feasible fleet: the combination of limits cannot be met (relaxing any single limit does not help)"


def _covered(b: int, role: np.ndarray, served: np.ndarray, keys: list) -> bool:
    """Bucket b is served by an aggregated configuration or by a prefill and a decode one that pair."""
    if served[role == "aggregated", b].any():
        return True
    pre = {keys[k] for k in np.flatnonzero((role == "prefill") & served[:, b])}
    return any(keys[k] in pre for k in np.flatnonzero((role == "decode") & served[:, b]))


def _plan(request):
    from model.planner.plan import plan

    return plan(request, explain=False)


def _with(request, metric: str, target_s: float):
    return replace(request, slo=replace(request.slo, **{f"{metric}_s": target_s}))


def smallest_target_s(request, metric: str, lower_s: float) -> float | None:
    """The smallest `metric` ('ttft' or 'tpot') target that plans feasibly, to the bisection's precision, as a
    value that was planned feasible (rounded up to 1 ms for TTFT, 0.1 ms for TPOT when that also plans)."""
    lo, hi = lower_s, max(lower_s * 1.25, lower_s + 1e-3)
    for _ in range(DOUBLINGS):
        if _plan(_with(request, metric, hi)).feasible:
            break
        lo, hi = hi, hi * 2
    else:
        return None
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        if _plan(_with(request, metric, mid)).feasible:
            hi = mid
        else:
            lo = mid
    unit = 1e-3 if metric == "ttft" else 1e-4
    nice = math.ceil(hi / unit - 1e-9) * unit
    if nice > hi and _plan(_with(request, metric, nice)).feasible:
        return nice
    return hi


def _latency(request, metric: str, lower_s: float, size: str, config: str, both: bool = False) -> str:
    target = getattr(request.slo, f"{metric}_s")
    name = metric.upper()
    scale, digits = (1e3, 0) if metric == "ttft" else (1e3, 1)
    head = (f"{name}: no configuration meets both targets together for {size}" if both else
            f"{name}: no configuration meets {name} <= {target * scale:,.{digits}f} ms for {size} (best at zero load: "
            f"{lower_s * scale:,.{digits + 1}f} ms with {config})")
    found = smallest_target_s(request, metric, lower_s)
    if found is None:
        return f"{head}; no {name} target up to {lower_s * 1.25 * 2 ** DOUBLINGS * scale:,.0f} ms plans feasibly"
    shown = f"{found * scale:,.{digits}f}" if found == round(found * scale, digits) / scale else f"{found * scale:,.4g}"
    return f"{head}; the smallest feasible {name} target is {shown} ms (found by bisection on the planner)"


def _limit(request, limit: str) -> str:
    if limit == "availability":
        if all(g.available is None for g in request.gpus):
            return ""
        relaxed = replace(request, gpus=tuple(replace(g, available=None) for g in request.gpus))
    elif limit == "budget":
        if request.budget_usd_per_hour is None or request.objective == "goodput":
            return ""
        relaxed = replace(request, budget_usd_per_hour=None)
    else:
        if request.power_cap_w is None:
            return ""
        relaxed = replace(request, power_cap_w=None, objective="power" if request.objective != "goodput"
                          else request.objective)
    p = _plan(relaxed)
    if not p.feasible:
        return ""
    need: dict[str, int] = {}
    for pool in p.pools:
        need[pool.candidate.gpu] = need.get(pool.candidate.gpu, 0) + pool.instances * pool.candidate.gpus
    what = ", ".join(f"{v} x {k}" for k, v in need.items())
    if limit == "availability":
        short = [f"{g.gpu}: {need.get(g.gpu, 0)} needed, {g.available} available" for g in request.gpus
                 if g.available is not None and need.get(g.gpu, 0) > g.available]
        return (f"availability: the cheapest feasible fleet needs {what} ({'; '.join(short)}); "
                "raise availability to those counts")
    if limit == "budget":
        need_usd = math.ceil(p.cost_per_hour_usd * 100 - 1e-9) / 100
        return (f"budget: the cheapest feasible fleet costs ${p.cost_per_hour_usd:,.2f}/h ({what}), above the "
                f"${request.budget_usd_per_hour:,.2f}/h budget; the minimum budget is ${need_usd:,.2f}/h")
    need_w = math.ceil(p.power_w - 1e-9)
    return (f"power: the least-power feasible fleet draws {p.power_w:,.0f} W ({what}), above the "
            f"{request.power_cap_w:,.0f} W cap; the minimum power cap is {need_w:,} W")
