"""Plan a fleet: candidates -> SLO capacities -> integer program -> re-check and re-route -> a plan to deploy.

The program fills each configuration to its per-bucket SLO capacity; the re-check loop (model.planner.reroute)
checks every pool of its answer (`model.planner.check.check_pool`: the engine simulator at the SLO percentile for
aggregated pools) at the rate routed to it, lowers what fails to what the check sustains and solves again until
every pool passes. Each visited fleet that passed (including, as a fallback, a failing fleet with instances added
until it passes, within the limits) is kept; the answer is the best of them, or of an incumbent plan passed in (a
plan for a smaller GPU offer). When the loop had to re-route, it is also run on each GPU type alone, so that
offering more types is never worse than offering one. A plan none of whose fleets passed is reported not
feasible, with what failed. An infeasible request gets the constraint that cannot be met and the smallest
relaxation that can (model.planner.explain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from model.errors import RidgeplanError
from model.planner.candidates import Candidate, cached_capacities, enumerate_candidates
from model.planner.ilp import IlpSolution
from model.planner.pairs import describe_key, pair_transfer_s
from model.planner.prune import lower_bound, undominated
from model.planner.request import PlanRequest, Slice, buckets, slices
from model.planner.reroute import Fleet, Pool, memoized, objective_value, reroute, within_limits

__all__ = ["Fleet", "Pair", "Plan", "Pool", "check_context", "objective_value", "pareto_frontier", "plan",
           "undominated", "within_limits"]


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
    check = memoized(check)
    usable = _usable_incumbent(request, incumbent)
    bound = objective_value(request, incumbent.pools) if usable else np.inf
    visited = reroute(request, cands, sl, cap_cs, info, check, bound)
    found = min((f.value for f in visited if f.passed), default=np.inf)
    if len(request.gpus) > 1 and visited and found > visited[0].value + 1e-9:
        # the loop had to re-route and ended above the program's first optimum (a lower bound for any fleet): also
        # run it on each GPU type alone (same capacities), so that offering more types is never worse than
        # offering any one of them (their passing fleets are incumbents). A type whose program cannot beat the
        # best passing fleet (its lower bound, model.planner.prune) is skipped; a loop stops once it cannot.
        for opt in request.gpus:
            alone = np.where(np.array([c.gpu == opt.gpu for c in cands])[:, None], cap_cs, 0.0)
            best_so_far = min(found, bound)
            if lower_bound(request, cands, sl, alone) >= best_so_far - 1e-9:
                continue
            more = [replace(f, how="one type") for f in reroute(request, cands, sl, alone, info, check, best_so_far)
                    if f.passed]
            visited += more
            found = min([found, *(f.value for f in more)])
    passing = [f for f in visited if f.passed]
    best = min(passing, key=lambda f: (f.value, f.how != "solved")) if passing else None
    base_notes = [f"{len(cands)} candidate configurations evaluated ({len(dropped)} dropped: unsupported or invalid)",
                  f"traffic split into {len(sl)} slices over request-size buckets", _policy_note(request),
                  ("pools pair only within a compatibility group (model.planner.pairs: same weights and KV format, "
                   "vendor, and a link in hardware_db); no KV format conversion is offered"),
                  ("latencies name their statistic: p50/p90/p99 over requests, or the mean (a decode pool's TPOT: "
                   "decode-only iteration time at the interpolated concurrency)")]
    trace = tuple((f.value, f.passed) for f in visited)
    if usable and (best is None or bound < best.value - 1e-9):
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


def _capacity_matrix(request: PlanRequest, cands: list[Candidate], sl: list[Slice], progress):
    """capacity[c, s] for every candidate and slice, plus per-bucket details for explanations."""
    cap = np.zeros((len(cands), len(sl)))
    info = {}
    for t in request.traffic:
        rows = [k for k, c in enumerate(cands) if c.model == t.model]
        bi, bo, _ = buckets(t.lengths, request.max_buckets)
        caps = cached_capacities([cands[k] for k in rows], bi, bo, request)
        info[t.model] = (rows, bi, bo, caps)
        for j, s in enumerate(sl):
            if s.model == t.model:
                cap[rows, j] = caps.rate_per_s[:, s.bucket]
        if progress:
            progress(f"capacities for {t.model}")
    return cap, info


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
