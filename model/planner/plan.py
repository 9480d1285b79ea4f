"""Plan a fleet: candidates -> SLO capacities -> integer program -> independent re-check -> a plan to deploy.

Every plan is re-checked with the serving model proper (`model.serving.estimate` for aggregated instances, the
disaggregated pool model for prefill/decode pools) on the traffic the ILP routed to each configuration; an
instance count that fails its re-check is raised until it passes (said in the plan's notes), and then the
integer program is solved again with that configuration's capacity derated accordingly, keeping the better of
the re-checked plans (a raise can make the first optimum worse than another fleet). An infeasible request gets
the constraint that cannot be met and the nearest feasible relaxation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from model.errors import RidgeplanError
from model.planner.candidates import Candidate, capacities, enumerate_candidates
from model.planner.commands import launch_commands
from model.planner.ilp import IlpSolution, solve_fleet
from model.planner.request import PlanRequest, Slice, buckets, slices
from model.serving.estimate import SLO, estimate
from model.serving.policy import engine_policy
from model.serving.workload import Lengths, Workload

MAX_RECHECK_ROUNDS = 6
MAX_RESOLVES = 2  # re-solves after a re-check raised instances


@dataclass(frozen=True)
class Pool:
    """Instances of one configuration and the traffic routed to them."""

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

    @property
    def rate_per_s(self) -> float:
        return float(sum(self.routed.values()))

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        d = c.deployment
        return {"model": c.model, "gpu": c.gpu, "role": c.role, "instances": self.instances,
                "gpus_per_instance": c.gpus, "layout": d.layout.label(),
                "precision": {"weights": d.precision.weights, "kv": d.precision.kv, "activations": d.resolved.activations},
                "max_batch": self.max_batch, "rate_per_s": self.rate_per_s,
                "cost_per_hour_usd": self.instances * c.cost_per_hour,
                "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "utilization": self.utilization,
                "meets_slo": self.meets_slo, "launch": launch_commands(c, self.max_batch)}


@dataclass(frozen=True)
class Plan:
    request: PlanRequest
    feasible: bool
    pools: tuple[Pool, ...] = ()
    explanation: str = ""
    binding: str = ""
    candidates_evaluated: int = 0
    notes: tuple[str, ...] = ()

    @property
    def gpus(self) -> int:
        return sum(p.instances * p.candidate.gpus for p in self.pools)

    @property
    def cost_per_hour_usd(self) -> float:
        return float(sum(p.instances * p.candidate.cost_per_hour for p in self.pools))

    @property
    def power_w(self) -> float:
        return float(sum(p.instances * p.candidate.power_w for p in self.pools))

    def output_tokens_per_s(self) -> float:
        return float(sum(t.rate_per_s * t.lengths.mean_output for t in self.request.traffic))

    def cost_per_million_tokens_usd(self) -> float | None:
        tok = self.output_tokens_per_s()
        return self.cost_per_hour_usd / (tok * 3600) * 1e6 if tok > 0 and self.feasible else None

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "feasible": self.feasible, "explanation": self.explanation, "binding_constraint": self.binding,
            "objective": r.objective, "slo": {"ttft_s": r.slo.ttft_s, "tpot_s": r.slo.tpot_s, "attainment": r.slo.attainment},
            "traffic": [{"model": t.model, "rate_per_s": t.rate_per_s, "lengths": t.lengths.describe()} for t in r.traffic],
            "gpus": self.gpus, "cost_per_hour_usd": self.cost_per_hour_usd if self.feasible else None,
            "cost_per_million_output_tokens_usd": self.cost_per_million_tokens_usd(), "power_w": self.power_w,
            "pools": [p.to_dict() for p in self.pools], "candidates_evaluated": self.candidates_evaluated,
            "notes": list(self.notes),
        }


def plan(request: PlanRequest, progress: Callable[[str], None] | None = None) -> Plan:
    """The cheapest (or otherwise optimal) fleet serving `request` within its SLO."""
    cands, dropped = enumerate_candidates(request, progress)
    if not cands:
        return Plan(request, False, explanation="no configuration could be built: " + "; ".join(dropped[:5]))
    sl = slices(request)
    cap_cs, info = _capacity_matrix(request, cands, sl, progress)
    keep = undominated(request, cands, cap_cs)
    sol = solve_fleet(request, cands, sl, np.where(keep[:, None], cap_cs, 0.0))
    if sol.status != "Optimal" or (request.objective == "goodput" and sol.counts.sum() == 0):
        return Plan(request, False, explanation=_explain(request, cands, sl, cap_cs, info),
                    candidates_evaluated=len(cands))
    cap = np.where(keep[:, None], cap_cs, 0.0)
    pools, adjusted, resolved = _solve_and_recheck(request, cands, sl, cap, sol, info)
    binding = ", ".join(sol.tight) if sol.tight else "SLO capacity (cost-driven; no availability, budget or power limit binds)"
    notes = [f"{len(cands)} candidate configurations evaluated ({len(dropped)} dropped: unsupported or invalid)",
             f"traffic split into {len(sl)} slices over request-size buckets",
             engine_policy(request.engine).describe(), *adjusted, *resolved]
    return Plan(request, True, tuple(pools), binding=binding, candidates_evaluated=len(cands), notes=tuple(notes))


def objective_value(request: PlanRequest, pools) -> float:
    """What the request minimises, for a fleet of pools (goodput plans are not compared: nan)."""
    if request.objective == "gpus":
        return float(sum(p.instances * p.candidate.gpus for p in pools))
    if request.objective == "power":
        return float(sum(p.instances * p.candidate.power_w for p in pools))
    if request.objective == "cost":
        return float(sum(p.instances * p.candidate.cost_per_hour for p in pools))
    return float("nan")


def _solve_and_recheck(request: PlanRequest, cands, sl, cap: np.ndarray, sol: IlpSolution, info):
    """Re-check the ILP's fleet; when the re-check had to raise a configuration's instances (its capacity was
    optimistic for the traffic mix routed to it), derate that capacity by the ratio and solve again, keeping
    the re-checked fleet with the best objective."""
    index = {id(c): k for k, c in enumerate(cands)}
    pools = _pools(request, cands, sl, sol, info)
    best, best_notes = _recheck(request, pools)
    resolved: list[str] = []
    if request.objective == "goodput":
        return best, best_notes, resolved
    cap = cap.copy()
    for _ in range(MAX_RESOLVES):
        raised = [(before, after) for before, after in zip(pools, best) if after.instances > before.instances]
        if not raised:
            break
        for before, after in raised:
            cap[index[id(before.candidate)]] *= before.instances / after.instances
        sol = solve_fleet(request, cands, sl, cap)
        if sol.status != "Optimal":
            break
        pools = _pools(request, cands, sl, sol, info)
        checked, notes = _recheck(request, pools)
        if objective_value(request, checked) < objective_value(request, best) - 1e-9:
            resolved = [f"re-solved with the raised configurations' capacity derated: {request.objective} "
                        f"{objective_value(request, best):,.2f} -> {objective_value(request, checked):,.2f}"]
            best, best_notes = checked, notes
        else:
            break
    return best, best_notes, resolved


def undominated(request: PlanRequest, cands: list[Candidate], cap: np.ndarray) -> np.ndarray:
    """Candidates no other candidate beats: c is dropped when some c' of the same model and role carries at
    least as much of every slice at no more cost, GPUs and power (and on the same GPU type when availability
    limits exist). Dropping them cannot change the optimum, and it shrinks the integer program."""
    n = len(cands)
    keep = np.ones(n, dtype=bool)
    limited = any(o.available is not None for o in request.gpus)
    cost = np.array([c.cost_per_hour for c in cands])
    gpus = np.array([c.gpus for c in cands], dtype=float)
    power = np.array([c.power_w for c in cands])
    useful = cap.max(axis=1) > 0
    keep &= useful
    groups: dict[tuple, list[int]] = {}
    for k, c in enumerate(cands):
        if useful[k]:
            groups.setdefault((c.model, c.role, c.gpu if limited else ""), []).append(k)
    for rows in groups.values():
        r = np.array(rows)
        sub = cap[r]
        better_cap = (sub[:, None, :] >= sub[None, :, :]).all(axis=2)  # [i, j]: i carries at least j's load
        cheaper = (cost[r][:, None] <= cost[r][None, :]) & (gpus[r][:, None] <= gpus[r][None, :]) \
            & (power[r][:, None] <= power[r][None, :])
        strictly = (sub[:, None, :] > sub[None, :, :]).any(axis=2) | (cost[r][:, None] < cost[r][None, :])
        dominates = better_cap & cheaper & (strictly | (np.arange(r.size)[:, None] < np.arange(r.size)[None, :]))
        np.fill_diagonal(dominates, False)
        keep[r[dominates.any(axis=0)]] = False
    return keep


def _capacity_matrix(request: PlanRequest, cands: list[Candidate], sl: list[Slice], progress):
    """capacity[c, s] for every candidate and slice, plus per-bucket details for explanations."""
    cap = np.zeros((len(cands), len(sl)))
    info = {}
    for t in request.traffic:
        rows = [k for k, c in enumerate(cands) if c.model == t.model]
        bi, bo, _ = buckets(t.lengths, request.max_buckets)
        caps = capacities([cands[k] for k in rows], bi, bo, request)
        info[t.model] = (rows, bi, bo, caps)
        for j, s in enumerate(sl):
            if s.model == t.model:
                cap[rows, j] = caps.rate_per_s[:, s.bucket]
        if progress:
            progress(f"capacities for {t.model}")
    return cap, info


def _pools(request: PlanRequest, cands, sl, sol: IlpSolution, info) -> list[Pool]:
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
        pools.append(Pool(cand, int(sol.counts[c]), routed, lengths, max(batch, 1), placement=request.kv_placement))
    return pools


def _recheck(request: PlanRequest, pools: list[Pool]) -> tuple[list[Pool], list[str]]:
    """Re-evaluate every pool with the full serving model; add instances until it meets the SLO."""
    out, notes = [], []
    slo, policy = request.slo, engine_policy(request.engine)
    a = slo.attainment
    for pool in pools:
        n = pool.instances
        for _ in range(MAX_RECHECK_ROUNDS):
            checked = _check(pool, n, slo, policy)
            if checked.meets_slo:
                break
            n += 1
        if n != pool.instances:
            notes.append(f"{pool.candidate.label()}: raised from {pool.instances} to {n} instances after the serving "
                         f"model's re-check (p{int(a * 100)} TTFT/TPOT)")
        out.append(checked)
    return out, notes


def request_placement(pool: Pool) -> str:
    return pool.placement


def _check(pool: Pool, n: int, slo: SLO, policy) -> Pool:
    c = pool.candidate
    d = c.deployment
    key = f"p{int(slo.attainment * 100)}"
    per_instance = pool.rate_per_s / n
    if c.role == "aggregated":
        est = estimate(d, Workload(pool.lengths, rate_per_s=per_instance), policy,
                       percentiles=(0.5, slo.attainment, 0.99))
        lat = est.latency
        ttft = {f"p{int(p * 100)}": v for p, v in lat.ttft_s.items()}
        tpot = {f"p{int(p * 100)}": v for p, v in lat.tpot_s.items()}
        util = float(est.state.concurrency[0] / max(est.max_concurrency, 1))
        ok = est.sustainable and (slo.ttft_s is None or ttft[key] <= slo.ttft_s * 1.001) and \
            (slo.tpot_s is None or tpot[key] <= slo.tpot_s * 1.001)
    else:
        from model.serving.disagg import DisaggPlan, decode_pool, prefill_pool

        pools = DisaggPlan(d, n, d, n, placement=request_placement(pool))
        work = Workload(pool.lengths, rate_per_s=pool.rate_per_s)
        if c.role == "prefill":
            st = prefill_pool(pools, work, policy, pool.rate_per_s, (0.5, slo.attainment, 0.99))
            ttft = {f"p{int(p * 100)}": v for p, v in st.ttft_s.items()}
            tpot = {}
            util = st.utilization
            ok = st.stable and (slo.ttft_s is None or ttft[key] <= slo.ttft_s * 1.001)
        else:
            st = decode_pool(pools, work, policy, pool.rate_per_s)
            ttft, tpot = {}, {key: st.tpot_s}
            util = pool.rate_per_s / st.capacity_per_s
            ok = st.stable and (slo.tpot_s is None or st.tpot_s <= slo.tpot_s * 1.001)
    return replace(pool, instances=n, ttft_s=ttft, tpot_s=tpot, utilization=float(util), meets_slo=bool(ok))


def _explain(request: PlanRequest, cands, sl, cap, info) -> str:
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

        def covered(b: int) -> bool:
            return bool(served[role == "aggregated", b].any()
                        or (served[role == "prefill", b].any() and served[role == "decode", b].any()))

        uncovered = [b for b in range(bi.size) if not covered(b)]
        if uncovered:
            b = uncovered[0]
            fits = caps.fits[:, b]
            size = f"{bi[b]:,.0f}-token prompts / {bo[b]:,.0f}-token outputs"
            ttft_roles = (role == "aggregated") | (role == "prefill")
            tpot_roles = (role == "aggregated") | (role == "decode")
            best_ttft = np.where(fits & ttft_roles, caps.min_ttft_s[:, b], np.inf)
            best_tpot = np.where(fits & tpot_roles, caps.min_tpot_s[:, b], np.inf)
            k_t, k_p = int(np.argmin(best_ttft)), int(np.argmin(best_tpot))
            if slo.ttft_s is not None and best_ttft[k_t] > slo.ttft_s:
                return (f"TTFT: no configuration meets TTFT <= {slo.ttft_s * 1e3:,.0f} ms for {size}; "
                        f"TTFT >= {best_ttft[k_t] * 1e3:,.0f} ms is feasible with {cands[rows[k_t]].label()}")
            if slo.tpot_s is not None and best_tpot[k_p] > slo.tpot_s:
                return (f"TPOT: no configuration meets TPOT <= {slo.tpot_s * 1e3:,.1f} ms for {size}; "
                        f"TPOT >= {best_tpot[k_p] * 1e3:,.1f} ms is feasible with {cands[rows[k_p]].label()}")
            return f"SLO: no configuration meets both targets together for {size} at the SLO percentile"
    for limit in ("availability", "budget", "power"):
        relaxed = solve_fleet(request, cands, sl, cap, relax=frozenset({limit}))
        if relaxed.status == "Optimal" and relaxed.counts.sum() > 0:
            need = {}
            for c in np.flatnonzero(relaxed.counts):
                need[cands[c].gpu] = need.get(cands[c].gpu, 0) + int(relaxed.counts[c]) * cands[c].gpus
            cost = float(sum(relaxed.counts[c] * cands[c].cost_per_hour for c in range(len(cands))))
            what = ", ".join(f"{v} x {k}" for k, v in need.items())
            if limit == "availability":
                return f"availability: the cheapest feasible fleet needs {what}, more than the GPUs available"
            if limit == "budget":
                return (f"budget: the cheapest feasible fleet costs ${cost:,.2f}/h ({what}), above the "
                        f"${request.budget_usd_per_hour:,.2f}/h budget")
            power = float(sum(relaxed.counts[c] * cands[c].power_w for c in range(len(cands))))
            return f"power: the cheapest feasible fleet draws {power:,.0f} W ({what}), above the {request.power_cap_w:,.0f} W cap"
    return "no feasible fleet: the combination of limits cannot be met (relaxing any single limit does not help)"


def pareto_frontier(request: PlanRequest, tpot_targets_s: list[float] | None = None,
                    ttft_targets_s: list[float] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Cost of the optimal plan as the latency target tightens: one re-solve per target, data for a chart.

    A plan that meets a target meets every looser one, so each point is the best plan found at its target or
    at a tighter one (`solved_at_s` says which; ties go to the point's own plan): the frontier never rises as
    the target loosens. `progress(done, total)` is called after each re-solve (a face's progress bar)."""
    if (tpot_targets_s is None) == (ttft_targets_s is None):
        raise RidgeplanError("pareto", "give TPOT targets or TTFT targets (one of the two)")
    targets = [float(t) for t in (tpot_targets_s or ttft_targets_s)]
    best: tuple[float, Plan] | None = None
    by_target: dict[float, tuple[float, Plan]] = {}
    for done, target in enumerate(sorted(set(targets)), 1):
        slo = replace(request.slo, tpot_s=target) if tpot_targets_s else replace(request.slo, ttft_s=target)
        p = plan(replace(request, slo=slo))
        if progress is not None:
            progress(done, len(set(targets)))
        if request.objective == "goodput":  # served traffic is maximised, not a cost: nothing to carry
            by_target[target] = (target, p)
            continue
        value = objective_value(request, p.pools)
        if p.feasible and (best is None or value <= objective_value(request, best[1].pools) + 1e-9):
            best = (target, p)
        by_target[target] = best if best is not None else (target, p)
    points = []
    for target in targets:
        solved_at, p = by_target[target]
        points.append({"target_s": target, "metric": "tpot" if tpot_targets_s else "ttft",
                       "feasible": p.feasible, "cost_per_hour_usd": p.cost_per_hour_usd if p.feasible else None,
                       "gpus": p.gpus if p.feasible else None, "solved_at_s": solved_at,
                       "mix": _mix(p)})
    return points


def _mix(p: Plan) -> dict[str, int]:
    """GPUs per 'gpu role' (pools of one GPU type and role but different layouts or precisions add up)."""
    mix: dict[str, int] = {}
    for pl in p.pools:
        key = f"{pl.candidate.gpu} {pl.candidate.role}"
        mix[key] = mix.get(key, 0) + pl.instances * pl.candidate.gpus
    return mix
