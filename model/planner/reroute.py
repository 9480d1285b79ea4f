"""The re-check loop: solve the fleet program, check every pool of its answer, lower what fails, solve again.

The program fills each configuration to its per-bucket SLO capacity. Every pool of its answer is then checked
(`model.planner.check.check_pool`: the engine simulator at the SLO percentile for aggregated pools) at the rate
routed to it. When a pool fails, the loop does not buy more of it: it lowers that configuration's capacity for
the buckets it was given to what the check sustains for that mix (model.planner.check.sustained_rate), and
solves routing and counts again, until every pool passes. Each visited fleet that passed (including, as a
fallback, the failing fleet with instances added until it passes, within the limits) is returned.

What keeps it fast without weakening the check:
- only the pools of the program's answers are checked, never the other candidates;
- the program is pruned each round to the candidates no multiple of another beats, and to the pair groups no
  other group beats on both sides (model.planner.prune, exact); a candidate pruned because of a faster one comes
  back when that one's capacity is lowered;
- a verdict is remembered for the rest of the plan (`memoized`: the simulator is deterministic, fixed seed), and a
  simulated one for the process (model.planner.check.simulator_check), with each deployment's cost table;
- a loop stops as soon as the program's own optimum reaches the best fleet that already passed (`bound`):
  capacities only fall, so no later round can be cheaper;
- a fallback fleet is only built (checked) when it could still be the cheapest;
- the rate a failing pool sustains is searched by regula falsi on the checked latencies, not blind bisection.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from model.planner.candidates import Candidate
from model.planner.check import sustained_rate
from model.planner.ilp import IlpSolution, solve_fleet
from model.planner.prune import undominated
from model.planner.request import PlanRequest, Slice
from model.serving.workload import Lengths

MAX_ROUNDS = 12  # re-solves of the re-route loop
MAX_RAISE = 6  # instances added to a failing pool for the fallback fleet


@dataclass(frozen=True)
class Pool:
    """Instances of one configuration and the traffic routed to them. Latencies are keyed by their statistic
    ('p50', 'p90', 'p99' or 'mean'; see model.planner.check)."""

    candidate: Candidate
    instances: int
    routed: dict[int, float]  # bucket -> requests/s
    lengths: Lengths
    max_batch: int
    ttft_s: dict[str, float] = field(default_factory=dict)
    tpot_s: dict[str, float] = field(default_factory=dict)
    utilization: float = 0.0
    meets_slo: bool = True
    placement: str = "across_nodes"  # where this pool's KV hand-offs travel (disaggregated pools)
    failed: tuple[str, ...] = ()  # what the check found, when it did not pass

    @property
    def rate_per_s(self) -> float:
        return float(sum(self.routed.values()))

    def to_dict(self) -> dict[str, Any]:
        from model.planner.commands import launch_commands

        c = self.candidate
        d = c.deployment
        return {"model": c.model, "gpu": c.gpu, "role": c.role, "instances": self.instances,
                "gpus_per_instance": c.gpus, "layout": d.layout.label(),
                "precision": {"weights": d.precision.weights, "kv": d.precision.kv, "activations": d.resolved.activations},
                "max_batch": self.max_batch, "rate_per_s": self.rate_per_s,
                "cost_per_hour_usd": self.instances * c.cost_per_hour,
                "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "utilization": self.utilization,
                "meets_slo": self.meets_slo, "failed": list(self.failed), "launch": launch_commands(c, self.max_batch)}


@dataclass(frozen=True)
class Fleet:
    """One fleet the re-check loop visited."""

    sol: IlpSolution
    pools: tuple[Pool, ...]
    value: float
    passed: bool
    how: str  # 'solved' (the program's routing), 'raised' (failing pools given more instances) or 'one type'


def objective_value(request: PlanRequest, pools) -> float:
    """The objective of a fleet (lower is better; the goodput objective counts served traffic negatively)."""
    if request.objective == "gpus":
        return float(sum(p.instances * p.candidate.gpus for p in pools))
    if request.objective == "power":
        return float(sum(p.instances * p.candidate.power_w for p in pools))
    if request.objective == "cost":
        return float(sum(p.instances * p.candidate.cost_per_hour for p in pools))
    served = sum(p.rate_per_s for p in pools if p.candidate.role in ("aggregated", "prefill"))
    return -float(served) + 1e-6 * float(sum(p.instances * p.candidate.cost_per_hour for p in pools))


def within_limits(request: PlanRequest, pools) -> bool:
    """Availability, budget and power of a fleet (the fallback fleet adds instances: it must stay inside)."""
    for opt in request.gpus:
        used = sum(p.instances * p.candidate.gpus for p in pools if p.candidate.gpu == opt.gpu)
        if opt.available is not None and used > opt.available:
            return False
    cost = sum(p.instances * p.candidate.cost_per_hour for p in pools)
    power = sum(p.instances * p.candidate.power_w for p in pools)
    return not ((request.budget_usd_per_hour is not None and cost > request.budget_usd_per_hour * (1 + 1e-9))
                or (request.power_cap_w is not None and power > request.power_cap_w * (1 + 1e-9)))


def memoized(check):
    """`check`, remembering its verdicts for one plan: the same configuration, routed mix and per-instance rate is
    checked once (the bisections, the fallback fleet and the one-type loops ask again; the simulator is
    deterministic, so the remembered verdict is the one a new run would give)."""
    seen: dict[tuple, Any] = {}

    def run(candidate, lengths: Lengths, rate_per_s: float, request):
        key = (id(candidate), float(rate_per_s), lengths.input_len.tobytes(), lengths.output_len.tobytes(),
               lengths.weight.tobytes())
        if key not in seen:
            seen[key] = check(candidate, lengths, rate_per_s, request)
        return seen[key]

    return run


def reroute(request: PlanRequest, cands: list[Candidate], sl: list[Slice], cap: np.ndarray, info, check,
            bound: float = np.inf) -> list[Fleet]:
    """Solve, check every pool, lower the failing (configuration, bucket) capacities to what the check sustains
    for the mix routed there, and solve again, until every pool passes (or MAX_ROUNDS). `cap` holds every
    candidate (pruning is redone each round). Capacities only fall, so each round's program is a restriction of
    the last one and its optimum never falls: the loop stops before checking a fleet whose objective is not
    below `bound` (the best fleet known to pass). Then the fallback fleets (`_fallbacks`). Returns every fleet
    checked, in order."""
    cap = cap.copy()
    visited: list[Fleet] = []
    for round_ in range(MAX_ROUNDS):
        keep = undominated(request, cands, cap)
        sol = solve_fleet(request, cands, sl, np.where(keep[:, None], cap, 0.0))
        if sol.status != "Optimal" or (request.objective == "goodput" and sol.counts.sum() == 0):
            break
        routed = pools_of(request, cands, sl, sol, info)
        if objective_value(request, routed) >= bound - 1e-9:
            break
        pools = tuple(_check(p, p.instances, request, check) for p in routed)
        passed = all(p.meets_slo for p in pools)
        visited.append(Fleet(sol, pools, objective_value(request, pools), passed, "solved"))
        if passed or round_ == MAX_ROUNDS - 1:  # (a last round's lowered capacities would never be used)
            break
        for p in pools:
            if not p.meets_slo:
                _lower(request, cands, sl, cap, p, check)
    return visited + _fallbacks(request, visited, bound, check)


def _fallbacks(request: PlanRequest, visited: list[Fleet], bound: float, check) -> list[Fleet]:
    """The failing fleets given more instances until they pass (`_raise`), cheapest first and only while they can
    still beat the best passing fleet: a raised fleet costs at least its fleet with one more instance per
    failing pool, so one that cannot win is not checked."""
    best = min([bound, *(f.value for f in visited if f.passed)])
    out = []
    floors = [(objective_value(request, [replace(p, instances=p.instances + (not p.meets_slo)) for p in f.pools]), k)
              for k, f in enumerate(visited) if not f.passed]
    for floor, k in sorted(floors):
        if floor >= best - 1e-9:
            break
        raised = _raise(request, visited[k].pools, check)
        if raised is not None:
            out.append(Fleet(visited[k].sol, raised, objective_value(request, raised), True, "raised"))
            best = min(best, out[-1].value)
    return out


def _raise(request: PlanRequest, pools, check) -> tuple[Pool, ...] | None:
    """The fallback: failing pools given more instances (same routing) until they pass, within the limits."""
    out = []
    for p in pools:
        q = p
        for extra in range(1, MAX_RAISE + 1):
            if q.meets_slo:
                break
            q = _check(p, p.instances + extra, request, check)
        if not q.meets_slo:
            return None
        out.append(q)
    return tuple(out) if within_limits(request, out) else None


def _lower(request, cands, sl, cap, pool: Pool, check) -> None:
    """Lower the capacity of the pool's configuration for the buckets routed to it, so that the program's load
    for this mix reaches one instance exactly at the per-instance rate the check sustains."""
    c = next(k for k, cand in enumerate(cands) if cand is pool.candidate)
    cols = [s for s, slc in enumerate(sl) if slc.model == pool.candidate.model and slc.bucket in pool.routed]
    lam = pool.rate_per_s / pool.instances
    sustained = sustained_rate(check, pool.candidate, pool.lengths, lam, request, failing=pool)
    weights = np.array([pool.routed[b] for b in sorted(pool.routed)]) / pool.rate_per_s
    by_bucket = {sl[s].bucket: cap[c, s] for s in cols}
    load_per_request = float(sum(w / by_bucket[b] for w, b in zip(weights, sorted(pool.routed))))
    factor = min(sustained * load_per_request, 0.98)  # at least 2% lower: the loop always makes progress
    cap[c, cols] = cap[c, cols] * factor if factor > 1e-3 else 0.0


def _check(pool: Pool, n: int, request: PlanRequest, check) -> Pool:
    r = check(pool.candidate, pool.lengths, pool.rate_per_s / n, request)
    return replace(pool, instances=n, ttft_s=dict(r.ttft_s), tpot_s=dict(r.tpot_s), utilization=float(r.utilization),
                   meets_slo=bool(r.ok), failed=tuple(r.why))


def pools_of(request: PlanRequest, cands, sl, sol: IlpSolution, info) -> list[Pool]:
    """The program's answer as pools: each configuration with instances, the rate routed per bucket and the
    routed mix as lengths (not yet checked)."""
    pools = []
    for c in np.flatnonzero(sol.counts > 0):
        cand = cands[c]
        routed: dict[int, float] = {}
        for s, slc in enumerate(sl):
            if sol.share[s, c] > 1e-9:
                routed[slc.bucket] = routed.get(slc.bucket, 0.0) + slc.rate_per_s * sol.share[s, c]
        if not routed:
            continue
        rows, bi, bo, caps = info[cand.model]
        local = rows.index(c)
        keys = sorted(routed)
        lengths = Lengths(bi[keys], bo[keys], np.array([routed[k] for k in keys]), "routed traffic")
        batch = int(max(caps.batch[local, k] for k in keys))
        if cand.role == "prefill":  # prefill instances batch waiting prompts up to the token budget per step
            batch = int(max(np.floor(_token_budget(request) / max(bi[k], 1.0)) for k in keys))
        pools.append(Pool(cand, int(sol.counts[c]), routed, lengths, max(batch, 1), placement=request.kv_placement))
    return pools


def _token_budget(request: PlanRequest) -> int:
    from model.serving.policy import engine_policy

    return engine_policy(request.engine).max_num_batched_tokens
