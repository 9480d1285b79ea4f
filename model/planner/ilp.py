"""The fleet integer program: how many instances of each configuration, and which traffic slices they serve.

    minimise   sum_c n_c * cost_c                              (or GPUs, or power; or maximise served traffic)
    C1  every slice is served once:     sum_{c agg} x[s,c] + sum_K y[s,K] = 1   (y[s,K]: share disaggregated
                                        through pair group K, continuous: part of a bucket may be disaggregated)
    C2  a disaggregated share needs a compatible pair:  sum_{c pre in K} x[s,c] = y[s,K] = sum_{c dec in K} x[s,c]
                                        (K: same model, weights and KV format, vendor, and a link: model.planner.pairs)
    C3  load fits the instances:        sum_s rate_s * x[s,c] / capacity[c,s] <= n_c   for every c
    C4  availability per GPU type:      sum_{c on g} n_c * gpus_c <= available_g
    C5  budget:                         sum_c n_c * cost_c <= budget
    C6  power:                          sum_c n_c * gpus_c * tdp_c <= power_cap
Domains: n_c integer >= 0; shares in [0, 1] (whole slices when slices may not split).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pulp

from model.planner.candidates import Candidate
from model.planner.pairs import pair_key
from model.planner.request import PlanRequest, Slice


@dataclass(frozen=True)
class IlpSolution:
    status: str  # Optimal | Infeasible | ...
    counts: np.ndarray  # (C,) instances of each candidate
    share: np.ndarray  # (S, C) fraction of each slice routed to each candidate
    objective: float
    tight: tuple[str, ...]  # limits that bind at the optimum (availability:<gpu>, budget, power)
    pair_share: dict[tuple, np.ndarray] | None = None  # pair group -> (S,) share of each slice disaggregated through it


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


ROOT_CUT_PASSES = 10  # CBC's default on programs this small is 100 root passes (~0.25 s, most of some solves)


def solve(prob: pulp.LpProblem) -> None:
    """Solve a fleet program with CBC, root cut passes capped (a speed setting: the optimum is still proved)."""
    s = solver()
    if ROOT_CUT_PASSES is not None:
        s.options = [*s.options, f"passCuts {ROOT_CUT_PASSES}"]
    with quiet_stdout():
        prob.solve(s)


def solver() -> pulp.LpSolver:
    """CBC (ships with PuLP), whatever else is installed. Not HiGHS: on the README benchmark's first fleet
    program (optimum $4.39/h, CBC; that fleet is feasible under HiGHS too) highspy 1.16.0 reported "Optimal" at
    $7.39/h through PuLP and $4.58/h on the same program read from MPS (its presolve; with presolve off it
    finds $4.39/h in 2.5x CBC's time). highspy 1.8.1 and 1.11.0 found $4.39/h in about CBC's time (~0.5 s: the
    time is branch and bound, not CBC's process start), so there was no speed to gain for that risk."""
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=60)


def _groups(slices: list[Slice], capacity: np.ndarray) -> list[list[int]]:
    """Slices that are interchangeable (same model, lengths, rate and capacity column) form one group: the
    program counts how many of a group's slices each configuration serves instead of choosing each slice, which is
    the same problem without the symmetry that makes branch and bound enumerate equivalent assignments."""
    groups: dict[tuple, list[int]] = {}
    for s, slc in enumerate(slices):
        key = (slc.model, slc.bucket, slc.input_len, slc.output_len, slc.rate_per_s, capacity[:, s].tobytes())
        groups.setdefault(key, []).append(s)
    return list(groups.values())


def solve_fleet(request: PlanRequest, cands: list[Candidate], slices: list[Slice], capacity: np.ndarray,
                relax: frozenset[str] = frozenset()) -> IlpSolution:
    """Solve the fleet problem. `capacity[c, s]`: requests/s candidate c carries of slice s's bucket.
    `relax` drops limits by name ('availability', 'budget', 'power') to diagnose infeasibility.
    Interchangeable slices are counted per group (`_groups`): k[g, c] of group g's m slices go to c, so the
    constraints below are the module docstring's summed over each group's slices."""
    maximise = request.objective == "goodput"
    prob = pulp.LpProblem("fleet", pulp.LpMaximize if maximise else pulp.LpMinimize)
    cat = pulp.LpContinuous if request.split_slices else pulp.LpInteger
    n_c, n_s = len(cands), len(slices)
    groups = _groups(slices, capacity)
    usable = capacity > 0
    n = {c: pulp.LpVariable(f"n_{c}", lowBound=0, cat=pulp.LpInteger) for c in range(n_c) if usable[c].any()}
    k = {(g, c): pulp.LpVariable(f"x_{g}_{c}", 0, len(members), cat=cat)
         for g, members in enumerate(groups) for c in n
         if usable[c, members[0]] and cands[c].model == slices[members[0]].model}
    roles = {c: cands[c].role for c in n}
    key_of = {c: pair_key(cands[c], request.kv_placement) for c in n if roles[c] != "aggregated"}
    y: dict[tuple[int, tuple], pulp.LpVariable] = {}
    members_of: dict[tuple[int, tuple], tuple[list[int], list[int]]] = {}
    for g in range(len(groups)):
        by_key: dict[tuple, tuple[list[int], list[int]]] = {}
        for c in key_of:
            if (g, c) in k:
                by_key.setdefault(key_of[c], ([], []))[0 if roles[c] == "prefill" else 1].append(c)
        for j, (key, (pre, dec)) in enumerate(sorted(by_key.items())):
            if pre and dec:
                y[g, key] = pulp.LpVariable(f"y_{g}_{j}", 0, len(groups[g]), cat=cat)
                members_of[g, key] = (pre, dec)
            else:  # a pool with no compatible partner serves nothing of this group
                for c in pre + dec:
                    prob += k[g, c] == 0, f"C2_no_compatible_partner_{g}_{c}"
    served = {}
    for g, members in enumerate(groups):
        m = len(members)
        agg = [k[g, c] for c in n if (g, c) in k and roles[c] == "aggregated"]
        served[g] = pulp.lpSum(agg) + pulp.lpSum(v for (gg, _), v in y.items() if gg == g)
        if maximise:
            prob += served[g] <= m, f"C1_slices_{g}_served_at_most_once"
        else:
            prob += served[g] == m, f"C1_slices_{g}_served_once"
    for j, ((g, key), var) in enumerate(y.items()):
        pre, dec = members_of[g, key]
        prob += pulp.lpSum(k[g, c] for c in pre) == var, f"C2_prefill_{g}_{j}"
        prob += pulp.lpSum(k[g, c] for c in dec) == var, f"C2_decode_{g}_{j}"
    for c in n:
        load = pulp.lpSum(slices[groups[g][0]].rate_per_s / capacity[c, groups[g][0]] * k[g, c]
                          for g in range(len(groups)) if (g, c) in k)
        prob += load <= n[c], f"C3_load_fits_instances_{c}"
    gpus_of = {c: cands[c].gpus for c in n}
    limits: dict[str, tuple[str, pulp.LpConstraint]] = {}
    if "availability" not in relax:
        for j, opt in enumerate(request.gpus):
            if opt.available is not None:
                con = pulp.lpSum(n[c] * gpus_of[c] for c in n if cands[c].gpu == opt.gpu) <= opt.available
                prob += con, f"C4_availability_{j}"
                limits[f"C4_availability_{j}"] = (f"availability of {opt.gpu} ({opt.available} GPUs)", con)
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
        prob += pulp.lpSum(slices[groups[g][0]].rate_per_s * served[g] for g in range(len(groups))) - 1e-6 * cost
    else:
        prob += {"cost": cost, "gpus": pulp.lpSum(n[c] * gpus_of[c] for c in n), "power": power}[request.objective]
    if not n:
        return IlpSolution("Infeasible", np.zeros(n_c), np.zeros((n_s, n_c)), float("nan"), (), {})
    solve(prob)
    status = pulp.LpStatus[prob.status]
    counts = np.zeros(n_c)
    sh = np.zeros((n_s, n_c))
    pair_share: dict[tuple, np.ndarray] = {}
    if status == "Optimal":
        for c, v in n.items():
            counts[c] = round(v.value() or 0)
        for g, members in enumerate(groups):
            taken = {c: max(0.0, k[g, c].value() or 0.0) for c in n if (g, c) in k}
            flows = {key: (max(0.0, var.value() or 0.0), members_of[gg, key]) for (gg, key), var in y.items() if gg == g}
            _assign(sh, pair_share, n_s, members, taken, roles, flows, request.split_slices)
    tight = []
    if status == "Optimal":
        for name, (label, con) in limits.items():
            slack = -con.value()  # <= constraints: value() is lhs - rhs
            if slack <= 1e-6 * max(1.0, abs(con.constant)) or (name.startswith("C5") and slack < min(c.cost_per_hour for c in cands)):
                tight.append(label)
    obj = pulp.value(prob.objective) if status == "Optimal" else float("nan")
    return IlpSolution(status, counts, sh, float(obj) if obj is not None else float("nan"), tuple(tight), pair_share)


def _assign(share: np.ndarray, pair_share: dict, n_s: int, members: list[int], taken: dict[int, float],
            roles: dict[int, str], flows: dict[tuple, tuple[float, tuple[list[int], list[int]]]], split: bool) -> None:
    """Spread a group's counts back over its slices: with splitting, each slice takes its fraction of every
    count; without, whole slices go to aggregated configurations in turn, and the disaggregated rest go, pair
    group by pair group, to one prefill and one decode configuration of that group each."""
    if split:
        for c, v in taken.items():
            share[members, c] = v / len(members)
        for key, (v, _) in flows.items():
            pair_share.setdefault(key, np.zeros(n_s))[members] = v / len(members)
        return
    j = 0
    for c, v in taken.items():
        if roles[c] == "aggregated":
            for _ in range(round(v)):
                if j < len(members):
                    share[members[j], c] = 1.0
                    j += 1
    for key, (v, (pre, dec)) in flows.items():
        start, stop = j, min(j + round(v), len(members))
        for side in (pre, dec):  # prefill and decode each start at the group's first slice and pair up
            i = start
            for c in side:
                for _ in range(round(taken.get(c, 0.0))):
                    if i < stop:
                        share[members[i], c] = 1.0
                        i += 1
        if stop > start:
            pair_share.setdefault(key, np.zeros(n_s))[members[start:stop]] = 1.0
        j = stop
