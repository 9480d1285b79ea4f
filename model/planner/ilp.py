"""The fleet integer program: how many instances of each configuration, and which traffic slices they serve.

    minimise   sum_c n_c * cost_c                              (or GPUs, or power; or maximise served traffic)
    C1  every slice is served once:     sum_{c agg} x[s,c] + z_s = 1   (z_s = 1: the slice is disaggregated)
    C2  a disaggregated slice needs both pools:  sum_{c pre} p[s,c] = z_s,  sum_{c dec} q[s,c] = z_s
    C3  load fits the instances:        sum_s rate_s * share[s,c] / capacity[c,s] <= n_c   for every c
    C4  availability per GPU type:      sum_{c on g} n_c * gpus_c <= available_g
    C5  budget:                         sum_c n_c * cost_c <= budget
    C6  power:                          sum_c n_c * gpus_c * tdp_c <= power_cap
Domains: n_c integer >= 0; shares in [0, 1] (binary when slices may not split); z_s binary.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pulp

from model.planner.candidates import Candidate
from model.planner.request import PlanRequest, Slice


@dataclass(frozen=True)
class IlpSolution:
    status: str  # Optimal | Infeasible | ...
    counts: np.ndarray  # (C,) instances of each candidate
    share: np.ndarray  # (S, C) fraction of each slice routed to each candidate
    objective: float
    tight: tuple[str, ...]  # limits that bind at the optimum (availability:<gpu>, budget, power)


@contextmanager
def quiet_stdout():
    """Silence solver banners written straight to file descriptor 1 (they would corrupt --json output)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def solve(prob: pulp.LpProblem) -> None:
    with quiet_stdout():
        prob.solve(solver())


def solver() -> pulp.LpSolver:
    """HiGHS when installed (pip install highspy, or ridgeplan[highs]), else CBC (ships with PuLP)."""
    available = pulp.listSolvers(onlyAvailable=True)
    if "HiGHS" in available:
        return pulp.getSolver("HiGHS", msg=False)
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=60)


def solve_fleet(request: PlanRequest, cands: list[Candidate], slices: list[Slice], capacity: np.ndarray,
                relax: frozenset[str] = frozenset()) -> IlpSolution:
    """Solve the fleet problem. `capacity[c, s]`: requests/s candidate c carries of slice s's bucket.
    `relax` drops limits by name ('availability', 'budget', 'power') to diagnose infeasibility."""
    maximise = request.objective == "goodput"
    prob = pulp.LpProblem("fleet", pulp.LpMaximize if maximise else pulp.LpMinimize)
    cat = pulp.LpContinuous if request.split_slices else pulp.LpBinary
    n_c, n_s = len(cands), len(slices)
    usable = capacity > 0
    n = {c: pulp.LpVariable(f"n_{c}", lowBound=0, cat=pulp.LpInteger) for c in range(n_c) if usable[c].any()}
    share = {(s, c): pulp.LpVariable(f"x_{s}_{c}", 0, 1, cat=cat)
             for s in range(n_s) for c in n if usable[c, s] and cands[c].model == slices[s].model}
    roles = {c: cands[c].role for c in n}
    disagg_ok = {s: any(roles[c] == "prefill" for (ss, c) in share if ss == s)
                 and any(roles[c] == "decode" for (ss, c) in share if ss == s) for s in range(n_s)}
    z = {s: pulp.LpVariable(f"z_{s}", cat=pulp.LpBinary) for s in range(n_s) if disagg_ok[s]}
    served = {}
    for s in range(n_s):
        agg = [share[s, c] for c in n if (s, c) in share and roles[c] == "aggregated"]
        served[s] = pulp.lpSum(agg) + (z[s] if s in z else 0)
        if maximise:
            prob += served[s] <= 1, f"C1_slice_{s}_served_at_most_once"
        else:
            prob += served[s] == 1, f"C1_slice_{s}_served_once"
        if s in z:
            prob += pulp.lpSum(share[s, c] for c in n if (s, c) in share and roles[c] == "prefill") == z[s], f"C2_prefill_{s}"
            prob += pulp.lpSum(share[s, c] for c in n if (s, c) in share and roles[c] == "decode") == z[s], f"C2_decode_{s}"
        else:
            for c in n:
                if (s, c) in share and roles[c] != "aggregated":
                    prob += share[s, c] == 0, f"C2_no_pool_pair_{s}_{c}"
    for c in n:
        load = pulp.lpSum(slices[s].rate_per_s / capacity[c, s] * share[s, c] for s in range(n_s) if (s, c) in share)
        prob += load <= n[c], f"C3_load_fits_instances_{c}"
    gpus_of = {c: cands[c].gpus for c in n}
    limits: dict[str, tuple[str, pulp.LpConstraint]] = {}
    if "availability" not in relax:
        for k, opt in enumerate(request.gpus):
            if opt.available is not None:
                con = pulp.lpSum(n[c] * gpus_of[c] for c in n if cands[c].gpu == opt.gpu) <= opt.available
                prob += con, f"C4_availability_{k}"
                limits[f"C4_availability_{k}"] = (f"availability of {opt.gpu} ({opt.available} GPUs)", con)
    cost = pulp.lpSum(n[c] * cands[c].cost_per_hour for c in n)
    power = pulp.lpSum(n[c] * cands[c].power_w for c in n)
    if request.budget_usd_per_hour is not None and "budget" not in relax:
        con = cost <= request.budget_usd_per_hour
        prob += con, "C5_budget"
        limits["C5_budget"] = (f"budget (${request.budget_usd_per_hour:,.2f}/h)", con)
    if request.power_cap_w is not None and "power" not in relax:
        con = power <= request.power_cap_w
        prob += con, "C6_power"
        limits["C6_power"] = (f"power cap ({request.power_cap_w:,.0f} W)", con)
    if maximise:
        prob += pulp.lpSum(slices[s].rate_per_s * served[s] for s in range(n_s)) - 1e-6 * cost
    else:
        prob += {"cost": cost, "gpus": pulp.lpSum(n[c] * gpus_of[c] for c in n), "power": power}[request.objective]
    if not n:
        return IlpSolution("Infeasible", np.zeros(n_c), np.zeros((n_s, n_c)), float("nan"), ())
    solve(prob)
    status = pulp.LpStatus[prob.status]
    counts = np.zeros(n_c)
    sh = np.zeros((n_s, n_c))
    if status == "Optimal":
        for c, v in n.items():
            counts[c] = round(v.value() or 0)
        for (s, c), v in share.items():
            sh[s, c] = max(0.0, v.value() or 0.0)
    tight = []
    if status == "Optimal":
        for name, (label, con) in limits.items():
            slack = -con.value()  # <= constraints: value() is lhs - rhs
            if slack <= 1e-6 * max(1.0, abs(con.constant)) or (name.startswith("C5") and slack < min(c.cost_per_hour for c in cands)):
                tight.append(label)
    obj = pulp.value(prob.objective) if status == "Optimal" else float("nan")
    return IlpSolution(status, counts, sh, float(obj) if obj is not None else float("nan"), tuple(tight))
