"""MoE expert placement (as in MoETuner): assign experts to GPUs to balance load and keep tokens local.

Given per-expert load (tokens per step) for two consecutive MoE layers and the routing-affinity matrix
A[e, f] (tokens that go from expert e of layer l to expert f of layer l + 1), choose placements
x[e, g] (layer l) and y[f, g] (layer l + 1):

    minimise   L_max + mu * sum_{e,f} A[e, f] * (1 - sum_g w[e, f, g])          (cross-GPU tokens)
    P1  each expert on one GPU:      sum_g x[e, g] = 1,  sum_g y[f, g] = 1
    P2  slots per GPU:               sum_e x[e, g] <= slots,  sum_f y[f, g] <= slots
    P3  balanced load:               sum_e load_l[e] x[e, g] <= L_max,  likewise for layer l + 1
    P4  w marks co-located pairs:    w[e, f, g] <= x[e, g],  w[e, f, g] <= y[f, g]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pulp

from model.errors import RidgeplanError
from model.planner.ilp import quiet_stdout, solver


@dataclass(frozen=True)
class Placement:
    layer_a: np.ndarray  # GPU of each expert of layer l
    layer_b: np.ndarray  # GPU of each expert of layer l + 1
    max_load: float  # tokens on the busiest GPU (the larger of the two layers)
    cross_gpu_tokens: float  # tokens that change GPU between the layers
    imbalance: float  # busiest GPU / mean


def evaluate_placement(load_a, load_b, affinity, a, b, gpus: int) -> Placement:
    la = np.bincount(a, weights=load_a, minlength=gpus)
    lb = np.bincount(b, weights=load_b, minlength=gpus)
    cross = float(affinity[a[:, None] != b[None, :]].sum())
    mx = float(max(la.max(), lb.max()))
    mean = float(max(la.mean(), lb.mean()))
    return Placement(a, b, mx, cross, mx / mean if mean > 0 else 1.0)


def round_robin(experts: int, gpus: int) -> np.ndarray:
    return np.arange(experts) % gpus


def place_experts(load_a, load_b, affinity, gpus: int, slots: int | None = None, traffic_weight: float = 1.0,
                  time_limit_s: float = 30.0) -> Placement:
    """Solve the placement ILP (CBC: model.planner.ilp.solver)."""
    load_a, load_b = np.asarray(load_a, dtype=float), np.asarray(load_b, dtype=float)
    aff = np.asarray(affinity, dtype=float)
    e_a, e_b = load_a.size, load_b.size
    if aff.shape != (e_a, e_b):
        raise RidgeplanError("affinity", f"must be {e_a} x {e_b}, got {aff.shape}")
    if gpus < 1 or e_a % gpus or e_b % gpus:
        raise RidgeplanError("gpus", f"must divide the expert counts ({e_a}, {e_b})", [g for g in range(1, e_a + 1) if e_a % g == 0])
    slots = slots or e_a // gpus
    if slots * gpus < max(e_a, e_b):
        raise RidgeplanError("slots", f"{slots} slots x {gpus} GPUs cannot hold {max(e_a, e_b)} experts")
    prob = pulp.LpProblem("expert_placement", pulp.LpMinimize)
    x = pulp.LpVariable.dicts("x", (range(e_a), range(gpus)), cat=pulp.LpBinary)
    y = pulp.LpVariable.dicts("y", (range(e_b), range(gpus)), cat=pulp.LpBinary)
    pairs = [(e, f) for e in range(e_a) for f in range(e_b) if aff[e, f] > 0]
    w = pulp.LpVariable.dicts("w", (range(len(pairs)), range(gpus)), lowBound=0, upBound=1)
    lmax = pulp.LpVariable("L_max", lowBound=0)
    scale = max(float(aff.sum()), 1.0) / max(float(load_a.sum()), 1.0)
    prob += lmax + traffic_weight / scale * pulp.lpSum(aff[e, f] * (1 - pulp.lpSum(w[k][g] for g in range(gpus)))
                                                      for k, (e, f) in enumerate(pairs))
    for e in range(e_a):
        prob += pulp.lpSum(x[e][g] for g in range(gpus)) == 1, f"P1_layer_a_expert_{e}"
    for f in range(e_b):
        prob += pulp.lpSum(y[f][g] for g in range(gpus)) == 1, f"P1_layer_b_expert_{f}"
    for g in range(gpus):
        prob += pulp.lpSum(x[e][g] for e in range(e_a)) <= slots, f"P2_slots_a_{g}"
        prob += pulp.lpSum(y[f][g] for f in range(e_b)) <= slots, f"P2_slots_b_{g}"
        prob += pulp.lpSum(load_a[e] * x[e][g] for e in range(e_a)) <= lmax, f"P3_load_a_{g}"
        prob += pulp.lpSum(load_b[f] * y[f][g] for f in range(e_b)) <= lmax, f"P3_load_b_{g}"
        for k, (e, f) in enumerate(pairs):
            prob += w[k][g] <= x[e][g], f"P4_a_{k}_{g}"
            prob += w[k][g] <= y[f][g], f"P4_b_{k}_{g}"
    s = solver()
    if hasattr(s, "timeLimit"):
        s.timeLimit = time_limit_s
    with quiet_stdout():
        prob.solve(s)
    status = pulp.LpStatus[prob.status]
    has_solution = all(sum((x[e][g].value() or 0) > 0.5 for g in range(gpus)) == 1 for e in range(e_a)) and \
        all(sum((y[f][g].value() or 0) > 0.5 for g in range(gpus)) == 1 for f in range(e_b))
    if status not in ("Optimal", "Not Solved") or not has_solution:
        raise RidgeplanError("placement", f"the solver stopped ({status}) without a placement; raise time_limit_s "
                             f"(now {time_limit_s} s) or place fewer experts")
    a = np.array([max(range(gpus), key=lambda g: x[e][g].value() or 0) for e in range(e_a)])
    b = np.array([max(range(gpus), key=lambda g: y[f][g].value() or 0) for f in range(e_b)])
    return evaluate_placement(load_a, load_b, aff, a, b, gpus)
