"""Plan a fleet: candidates -> SLO capacities -> integer program -> re-check and re-route -> a plan to deploy.

The program fills each configuration to its per-bucket SLO capacity. Every pool of its answer is then re-checked
(`model.planner.check.check_pool`: the serving model today, the engine simulator when switched) at the rate routed
to it. When a pool fails, the planner does not buy more of it: it lowers that configuration's capacity for the
buckets it was given to what the check sustains for that mix, and solves routing and counts again. It stops when
every pool passes. Each visited fleet that passed (including, as a fallback, the failing fleet with instances
added until it passes, within the limits) is kept; the answer is the best of them, or of an incumbent plan
passed in (a plan for a smaller GPU offer). A plan none of whose fleets passed is reported not feasible, with what
failed. An infeasible request gets the constraint that cannot be met and the smallest relaxation that can
(model.planner.explain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from model.errors import RidgeplanError
from model.planner.candidates import Candidate, capacities, enumerate_candidates
from model.planner.ilp import IlpSolution, solve_fleet
from model.planner.pairs import describe_key, pair_transfer_s
from model.planner.request import PlanRequest, Slice, buckets, slices
from model.serving.workload import Lengths

MAX_ROUNDS = 8  # re-solves of the re-route loop
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
class Pair:
    """Prefill pool -> decode pool: the rate routed through the pair and the KV hand-off per prompt."""

    prefill: int  # index into Plan.pools
    decode: int
    rate_per_s: float
    kv_transfer_mean_s: float  # mean over the prompts routed through the pair
    group: str  # the compatibility group (model, formats, vendor, link)

    def to_dict(self, pools) -> dict[str, Any]:
        return {"prefill_pool": self.prefill, "decode_pool": self.decode,
                "prefill": pools[self.prefill].candidate.label(), "decode": pools[self.decode].candidate.label(),
                "rate_per_s": self.rate_per_s, "kv_transfer_s": {"mean": self.kv_transfer_mean_s},
                "group": self.group}


@dataclass(frozen=True)
class Plan:
    request: PlanRequest
    feasible: bool
    pools: tuple[Pool, ...] = ()
    explanation: str = ""
    binding: str = ""
    candidates_evaluated: int = 0
    notes: tuple[str, ...] = ()
    pairs: tuple[Pair, ...] = ()
    visited: tuple[tuple[float, bool], ...] = ()  # (objective, passed) of every fleet the re-check loop visited

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
            "pools": [p.to_dict() for p in self.pools], "pairs": [q.to_dict(self.pools) for q in self.pairs],
            "router": _router(self.pools, self.pairs),
            "recheck": [{"objective": v, "passed": ok} for v, ok in self.visited],
            "candidates_evaluated": self.candidates_evaluated, "notes": list(self.notes),
        }


def _router(pools, pairs) -> dict[str, str]:
    from model.planner.commands import router_commands

    return router_commands(pools, pairs)


@dataclass(frozen=True)
class Fleet:
    """One fleet the re-check loop visited."""

    sol: IlpSolution
    pools: tuple[Pool, ...]
    value: float
    passed: bool
    how: str  # 'solved' (the program's routing), 'raised' (failing pools given more instances) or 'one type'


def _check_fn():
    from model.planner import check

    return check.check_pool  # looked up at call time: switching check.check_pool switches the planner


def plan(request: PlanRequest, progress: Callable[[str], None] | None = None, *, check=None,
         incumbent: Plan | None = None, explain: bool = True) -> Plan:
    """The cheapest (or otherwise optimal) fleet serving `request` within its SLO, every pool of it passing
    `check` (default model.planner.check.check_pool). `incumbent`: a passing plan of the same traffic and SLO on a
    subset of the offered GPUs (a smaller offer); the answer is never worse than it."""
    if not isinstance(request, PlanRequest):
        raise RidgeplanError("request", f"must be a PlanRequest, got {type(request).__name__}")
    check = check or _check_fn()
    check_context(request)
    cands, dropped = enumerate_candidates(request, progress)
    if not cands:
        return Plan(request, False, explanation="no configuration could be built: " + "; ".join(dropped[:5]))
    sl = slices(request)
    cap_cs, info = _capacity_matrix(request, cands, sl, progress)
    keep = undominated(request, cands, cap_cs)
    cap = np.where(keep[:, None], cap_cs, 0.0)
    visited = reroute(request, cands, sl, cap, info, check)
    found = min((f.value for f in visited if f.passed), default=np.inf)
    if len(request.gpus) > 1 and visited and found > visited[0].value + 1e-9:
        # the loop had to re-route and ended above the program's first optimum (a lower bound for any fleet): also
        # run it on each GPU type alone (same capacities), so that offering more types is never worse than
        # offering any one of them (their passing fleets are incumbents)
        for opt in request.gpus:
            alone = np.array([c.gpu == opt.gpu for c in cands])
            visited += [replace(f, how="one type") for f in reroute(request, cands, sl, np.where(alone[:, None], cap, 0.0),
                                                                    info, check) if f.passed]
    passing = [f for f in visited if f.passed]
    best = min(passing, key=lambda f: (f.value, f.how != "solved")) if passing else None
    base_notes = [f"{len(cands)} candidate configurations evaluated ({len(dropped)} dropped: unsupported or invalid)",
                  f"traffic split into {len(sl)} slices over request-size buckets", _policy_note(request),
                  ("pools pair only within a compatibility group (model.planner.pairs: same weights and KV format, "
                   "vendor, and a link in hardware_db); no KV format conversion is offered"),
                  ("latencies name their statistic: p50/p90/p99 over requests, or the mean (a decode pool's TPOT: "
                   "decode-only iteration time at the interpolated concurrency)")]
    trace = tuple((f.value, f.passed) for f in visited)
    if _usable_incumbent(request, incumbent) and (best is None or objective_value(request, incumbent.pools)
                                                   < best.value - 1e-9):
        return replace(incumbent, request=request, candidates_evaluated=len(cands), visited=trace,
                       notes=(*incumbent.notes, ("kept the incumbent (a smaller offer's passing fleet): no fleet "
                                                 "found on this offer passed the re-check at a lower objective")))
    if best is None:
        if not visited:
            why = _explain_fn()(request, cands, sl, cap_cs, info) if explain else "no feasible fleet"
            return Plan(request, False, explanation=why, candidates_evaluated=len(cands), visited=trace)
        last = visited[-1]
        failed = [f"{p.candidate.label()} x{p.instances} at {p.rate_per_s:,.2f} req/s: {'; '.join(p.failed)}"
                  for p in last.pools if not p.meets_slo]
        return Plan(request, False, last.pools, explanation="re-check failed: no visited fleet passed; "
                    + " | ".join(failed), candidates_evaluated=len(cands), notes=tuple(base_notes), visited=trace)
    binding = (", ".join(best.sol.tight) if best.sol.tight
               else "SLO capacity (cost-driven; no availability, budget or power limit binds)")
    notes = [*base_notes, *_loop_notes(request, visited, best)]
    return Plan(request, True, best.pools, binding=binding, candidates_evaluated=len(cands), notes=tuple(notes),
                pairs=_pairs(request, cands, sl, best.sol, best.pools), visited=trace)


def _explain_fn():
    from model.planner.explain import explain

    return explain


def _token_budget(request: PlanRequest) -> int:
    from model.serving.policy import engine_policy

    return engine_policy(request.engine).max_num_batched_tokens


def _policy_note(request: PlanRequest) -> str:
    from model.serving.policy import engine_policy

    return engine_policy(request.engine).describe()


def check_context(request: PlanRequest) -> None:
    """Refuse requests longer than the model's context window (prompt + output of the longest length bin)."""
    from model.architecture.catalogue import load_architecture

    for t in request.traffic:
        limit = load_architecture(t.model).max_position_embeddings
        if not limit:
            continue
        live = t.lengths.weight > 0
        total = (t.lengths.input_len + t.lengths.output_len)[live]
        if total.max() > limit:
            k = int(np.argmax(total))
            raise RidgeplanError("input_len", f"{t.model} has a {limit:,}-token context; requests of "
                                 f"{t.lengths.input_len[live][k]:,.0f} prompt + {t.lengths.output_len[live][k]:,.0f} "
                                 f"output tokens do not fit (lower the lengths or pick a longer-context model)")


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


def _same_traffic(a, b) -> bool:
    """Equal traffic (Lengths hold arrays: compared element by element, not with ==)."""
    return len(a) == len(b) and all(
        x.model == y.model and x.rate_per_s == y.rate_per_s
        and all(np.array_equal(getattr(x.lengths, f), getattr(y.lengths, f)) for f in ("input_len", "output_len", "weight"))
        for x, y in zip(a, b))


def _usable_incumbent(request: PlanRequest, incumbent: Plan | None) -> bool:
    if incumbent is None or not incumbent.feasible:
        return False
    r = incumbent.request
    offered = {g.gpu for g in request.gpus}
    return (_same_traffic(r.traffic, request.traffic) and r.slo == request.slo and r.engine == request.engine
            and r.objective == request.objective and all(p.candidate.gpu in offered for p in incumbent.pools)
            and all(g.price == next(o.price for o in request.gpus if o.gpu == g.gpu) for g in r.gpus
                    if g.gpu in offered)
            and within_limits(request, incumbent.pools))


def reroute(request: PlanRequest, cands: list[Candidate], sl: list[Slice], cap: np.ndarray, info, check) -> list[Fleet]:
    """Solve, check every pool, lower the failing (configuration, bucket) capacities to what the check sustains
    for the mix routed there, and solve again, until every pool passes (or MAX_ROUNDS). Capacities only fall,
    so each round's program is a restriction of the last one. Returns every fleet visited, in order."""
    cap = cap.copy()
    visited: list[Fleet] = []
    for _ in range(MAX_ROUNDS):
        sol = solve_fleet(request, cands, sl, cap)
        if sol.status != "Optimal" or (request.objective == "goodput" and sol.counts.sum() == 0):
            break
        pools = tuple(_check(p, p.instances, request, check) for p in _pools(request, cands, sl, sol, info))
        passed = all(p.meets_slo for p in pools)
        visited.append(Fleet(sol, pools, objective_value(request, pools), passed, "solved"))
        if passed:
            break
        raised = _raise(request, pools, check)
        if raised is not None:
            visited.append(Fleet(sol, raised, objective_value(request, raised), True, "raised"))
        for p in pools:
            if not p.meets_slo:
                _lower(request, cands, sl, cap, info, p, check)
    return visited


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


def _lower(request, cands, sl, cap, info, pool: Pool, check) -> None:
    """Lower the capacity of the pool's configuration for the buckets routed to it, so that the program's load
    for this mix reaches one instance exactly at the per-instance rate the check sustains."""
    c = next(k for k, cand in enumerate(cands) if cand is pool.candidate)
    cols = [s for s, slc in enumerate(sl) if slc.model == pool.candidate.model and slc.bucket in pool.routed]
    lam = pool.rate_per_s / pool.instances
    sustained = sustained_rate(check, pool.candidate, pool.lengths, lam, request)
    weights = np.array([pool.routed[b] for b in sorted(pool.routed)]) / pool.rate_per_s
    by_bucket = {sl[s].bucket: cap[c, s] for s in cols}
    load_per_request = float(sum(w / by_bucket[b] for w, b in zip(weights, sorted(pool.routed))))
    factor = min(sustained * load_per_request, 0.98)  # at least 2% lower: the loop always makes progress
    cap[c, cols] = cap[c, cols] * factor if factor > 1e-3 else 0.0


def sustained_rate(check, candidate, lengths, rate_hi, request) -> float:
    from model.planner.check import sustained_rate as bisect

    return bisect(check, candidate, lengths, rate_hi, request)


def _check(pool: Pool, n: int, request: PlanRequest, check) -> Pool:
    r = check(pool.candidate, pool.lengths, pool.rate_per_s / n, request)
    return replace(pool, instances=n, ttft_s=dict(r.ttft_s), tpot_s=dict(r.tpot_s), utilization=float(r.utilization),
                   meets_slo=bool(r.ok), failed=tuple(r.why))


def _loop_notes(request: PlanRequest, visited: list[Fleet], best: Fleet) -> list[str]:
    if len(visited) == 1:
        return ["every pool of the program's first fleet passed the re-check"]
    first = visited[0]
    fails = sum(1 for f in visited if not f.passed)
    how = {"solved": ("re-routed (failing capacities lowered to what the check sustains, routing and counts "
                      "re-solved)"),
           "raised": "failing pools given more instances (re-routing found nothing cheaper)",
           "one type": "the re-route loop on one GPU type alone found the best passing fleet"}[best.how]
    return [(f"re-check: {fails} visited fleet(s) failed; {request.objective} {first.value:,.2f} (first solve, "
             f"failed) -> {best.value:,.2f}, {how}")]


def _pairs(request: PlanRequest, cands, sl, sol: IlpSolution, pools) -> tuple[Pair, ...]:
    """Rate through each (prefill pool, decode pool) of a pair group: a slice's disaggregated share leaves its
    prefill pools and enters its decode pools in proportion to their shares (any prefill of a group may hand to
    any decode of it)."""
    index = {id(p.candidate): k for k, p in enumerate(pools)}
    rates = np.array([s.rate_per_s for s in sl])
    inputs = np.array([s.input_len for s in sl])
    out = []
    for key, y in (sol.pair_share or {}).items():
        members = [c for c, cand in enumerate(cands) if id(cand) in index and cand.role != "aggregated"
                   and _key(request, cand) == key]
        pre = [c for c in members if cands[c].role == "prefill"]
        dec = [c for c in members if cands[c].role == "decode"]
        for p in pre:
            for d in dec:
                with np.errstate(divide="ignore", invalid="ignore"):
                    flow = np.where(y > 1e-12, rates * sol.share[:, p] * sol.share[:, d] / y, 0.0)
                rate = float(flow.sum())
                if rate <= 1e-9:
                    continue
                t = pair_transfer_s(cands[p], cands[d], inputs, request.kv_placement)
                out.append(Pair(index[id(cands[p])], index[id(cands[d])], rate, float(flow @ t / rate),
                                describe_key(key)))
    return tuple(out)


def _key(request, cand):
    from model.planner.pairs import pair_key

    return pair_key(cand, request.kv_placement)


def undominated(request: PlanRequest, cands: list[Candidate], cap: np.ndarray) -> np.ndarray:
    """Candidates no other candidate beats: c is dropped when some c' of the same model and role (and pair group)
    carries at least as much of every slice at no more cost, GPUs and power (and on the same GPU type when
    availability limits exist). Dropping them cannot change the optimum, and it shrinks the integer program."""
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
            # prefill and decode candidates only stand in for one another inside their pair group: a prefill
            # configuration that pairs with other decode pools is not interchangeable, however fast it is
            pairing = _key(request, c) if c.role != "aggregated" else None
            groups.setdefault((c.model, c.role, c.gpu if limited else "", pairing), []).append(k)
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
        if cand.role == "prefill":  # prefill instances batch waiting prompts up to the token budget per step
            batch = int(max(np.floor(_token_budget(request) / max(bi[k], 1.0)) for k in keys))
        pools.append(Pool(cand, int(sol.counts[c]), routed, lengths, max(batch, 1), placement=request.kv_placement))
    return pools


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
        p = plan(replace(request, slo=slo), explain=False)  # an infeasible point needs no explanation
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
