"""The planner's re-check of one pool: does one instance of a candidate, given its bucket mix at a rate, meet the SLO?

`check_pool(candidate, lengths, rate_per_s, request) -> PoolCheck` is the one function the re-check loop calls
(model.planner.plan looks it up here at call time). It is `simulator_check`: aggregated instances through the
engine simulator (model.serving.simulator.run.simulate_pool) at the SLO percentile of 1,000 simulated requests;
prefill and decode pools through `serving_check`, the serving model (prefill_pool / decode_pool). `plan(check=...)`
takes any other function of the same signature. `sustained_rate` finds the highest rate a check passes (the
re-route loop lowers a failing configuration's capacity to it).

The rate is per instance: a pool of n instances behind a balancer carries rate / n on each.
Every latency is keyed by the statistic it is: 'p50', 'p90', 'p99' (quantiles of the request distribution) or
'mean' (a decode pool's TPOT: the decode-only iteration time at the concurrency that carries the rate, interpolated
on its concurrency grid, is the same for every sequence in the iteration; no per-request spread is modelled).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from model.lru import LRU
from model.serving.workload import Lengths, Workload

TOLERANCE = 1.001  # a latency within 0.1% of its target passes (the capacities are bisected to that precision)


@dataclass(frozen=True)
class PoolCheck:
    """(ttft_s, tpot_s, ok) of one instance at a rate; unpacks as that triple."""

    ttft_s: dict[str, float]
    tpot_s: dict[str, float]
    ok: bool
    utilization: float = 0.0
    why: tuple[str, ...] = field(default=())

    def __iter__(self):
        return iter((self.ttft_s, self.tpot_s, self.ok))


def _key(attainment: float) -> str:
    return f"p{round(attainment * 100):d}"


def serving_check(candidate, lengths: Lengths, rate_per_s: float, request) -> PoolCheck:
    """The serving model's verdict on one instance of `candidate` serving `lengths` at `rate_per_s`."""
    from model.planner.pairs import link_class
    from model.serving.disagg import DisaggPlan, decode_pool, prefill_pool
    from model.serving.estimate import estimate
    from model.serving.policy import engine_policy

    slo, policy, d = request.slo, engine_policy(request.engine), candidate.deployment
    a, key = slo.attainment, _key(slo.attainment)
    qs = tuple(sorted({0.5, a, 0.99}))
    why: list[str] = []
    if candidate.role == "aggregated":
        est = estimate(d, Workload(lengths, rate_per_s=rate_per_s), policy, percentiles=qs)
        if not est.fits:
            return PoolCheck({}, {}, False, 1.0, ("does not fit in memory",))
        lat = est.latency
        ttft = {_key(p): v for p, v in lat.ttft_s.items()} | {"mean": lat.ttft_mean_s}
        tpot = {_key(p): v for p, v in lat.tpot_s.items()} | {"mean": lat.tpot_mean_s}
        util = float(est.state.concurrency[0] / max(est.max_concurrency, 1))
        if not est.sustainable:
            why.append("rate above the instance's maximum throughput")
        ttft_v, tpot_v = ttft[key], tpot[key]
    else:
        where = "same_node" if link_class(candidate, request.kv_placement).startswith("node:") else request.kv_placement
        pools = DisaggPlan(d, 1, d, 1, placement=where)
        work = Workload(lengths, rate_per_s=rate_per_s)
        if candidate.role == "prefill":
            st = prefill_pool(pools, work, policy, rate_per_s, qs)
            ttft = {_key(p): v for p, v in st.ttft_s.items()} | {"mean": st.ttft_mean_s}
            tpot = {}
            util = st.utilization
            if not st.stable:
                why.append("prefill queue unstable (utilisation >= 1)")
            ttft_v, tpot_v = ttft[key], None
        else:
            st = decode_pool(pools, work, policy, rate_per_s)
            ttft, tpot = {}, {"mean": st.tpot_s}
            util = rate_per_s * d.layout.dp / st.capacity_per_s if st.capacity_per_s > 0 else 1.0
            if not st.stable:
                why.append("rate above the decode instance's capacity")
            ttft_v, tpot_v = None, st.tpot_s
    if slo.ttft_s is not None and ttft_v is not None and not ttft_v <= slo.ttft_s * TOLERANCE:
        why.append(f"TTFT {key} {ttft_v * 1e3:,.0f} ms > {slo.ttft_s * 1e3:,.0f} ms")
    if slo.tpot_s is not None and tpot_v is not None and not tpot_v <= slo.tpot_s * TOLERANCE:
        label = "mean" if candidate.role == "decode" else key
        why.append(f"TPOT {label} {tpot_v * 1e3:,.1f} ms > {slo.tpot_s * 1e3:,.1f} ms")
    return PoolCheck(ttft, tpot, not why, float(util), tuple(why))


REMEMBERED_DEPLOYMENTS = 64  # device/layout/engine groups whose simulator cost tables and verdicts are remembered
REMEMBERED_VARIANTS = 4  # deployments per group that differ by value (precision, efficiency), oldest forgotten first
REMEMBERED_VERDICTS = 256  # per deployment, oldest forgotten first
# (device, layout, engine policy) -> [(deployment, tables, verdicts)]: deployments are compared by value (they are
# not hashable), so each group keeps a short list
_memory: LRU[tuple, list] = LRU(REMEMBERED_DEPLOYMENTS)


def _remembered(d, policy) -> tuple[dict, dict]:
    """The cost tables and verdicts remembered for deployment `d` under `policy` (compared by value: the planner
    rebuilds its deployments for every plan). Least recently used groups are forgotten first."""
    entries = _memory.get((d.device.name, d.layout, policy)) or []
    hit = next((e for e in entries if e[0] is d or e[0] == d), None) or (d, {}, {})
    rest = [e for e in entries if e is not hit]
    _memory.put((d.device.name, d.layout, policy), [*rest, hit][-REMEMBERED_VARIANTS:])
    return hit[1], hit[2]


def simulator_check(candidate, lengths: Lengths, rate_per_s: float, request, num_requests: int = 1000) -> PoolCheck:
    """One aggregated instance through the engine simulator (`simulate_pool` of model.serving.simulator) at the
    SLO percentile of its `num_requests` simulated requests (Poisson arrivals, fixed seed: deterministic).
    Prefill and decode pools keep `serving_check`: the simulator runs a disaggregated pair as a whole
    (simulate_disagg), and one pool's check has no partner.
    Being deterministic, a verdict is remembered per process (`_remembered`: same deployment and engine policy,
    mix, rate, SLO and request count; re-planning with another budget, price or availability asks again), and so
    is each deployment's iteration-cost table (the re-route loop simulates one deployment at several rates)."""
    if candidate.role != "aggregated":
        return serving_check(candidate, lengths, rate_per_s, request)
    from model.serving.policy import engine_policy

    tables, verdicts = _remembered(candidate.deployment, engine_policy(request.engine))
    key = (float(rate_per_s), lengths.input_len.tobytes(), lengths.output_len.tobytes(), lengths.weight.tobytes(),
           request.slo, num_requests)
    if key not in verdicts:
        verdicts[key] = _simulated(candidate, lengths, rate_per_s, request, num_requests, tables)
        if len(verdicts) > REMEMBERED_VERDICTS:
            del verdicts[next(iter(verdicts))]
    return verdicts[key]


def _simulated(candidate, lengths: Lengths, rate_per_s: float, request, num_requests: int, tables: dict) -> PoolCheck:
    import numpy as np

    from model.errors import RidgeplanError
    from model.serving.simulator.run import simulate_pool

    slo, key = request.slo, _key(request.slo.attainment)
    # the deployment's batch, step cost and KV pool are one attention-DP rank's (model.placement.layout): the engines
    # spread an instance's requests over its ranks (and replicas), so one rank is simulated at its share of the rate
    # (a Poisson stream split at random stays Poisson; round-robin would be smoother: this errs on the safe side)
    ranks = candidate.deployment.layout.batch_ranks
    try:
        run = simulate_pool(candidate.deployment, lengths, rate_per_s / ranks, request.engine,
                            num_requests=num_requests, tables=tables)
    except RidgeplanError as err:  # does not fit, or the budget cannot hold a prompt
        return PoolCheck({}, {}, False, 1.0, (err.one_line(),))
    qs = sorted({0.5, slo.attainment, 0.99})
    ttft = {_key(q): float(np.quantile(run.ttft_s, q)) for q in qs} | {"mean": float(np.mean(run.ttft_s))}
    tp = run.tpot_s
    tpot = ({_key(q): float(np.quantile(tp, q)) for q in qs} | {"mean": float(np.mean(tp))}) if tp.size else {}
    why = []
    if slo.ttft_s is not None and not ttft[key] <= slo.ttft_s * TOLERANCE:
        why.append(f"TTFT {key} {ttft[key] * 1e3:,.0f} ms > {slo.ttft_s * 1e3:,.0f} ms (simulated)")
    if slo.tpot_s is not None and tpot and not tpot[key] <= slo.tpot_s * TOLERANCE:
        why.append(f"TPOT {key} {tpot[key] * 1e3:,.1f} ms > {slo.tpot_s * 1e3:,.1f} ms (simulated)")
    util = min(rate_per_s / ranks / max(run.requests_per_s, 1e-12), 1.0)
    return PoolCheck(ttft, tpot, not why, float(util), tuple(why))


CheckFn = Callable[..., PoolCheck]

# The re-check the planner uses: the engine simulator at the SLO percentile (aggregated pools; prefill and decode
# pools keep the serving model, see simulator_check).
check_pool: CheckFn = simulator_check


def excess(r, request, role: str) -> float | None:
    """How far a verdict's checked statistics are over their targets: the largest value / target (above 1 fails);
    None when the verdict carries no number for one of them (does not fit, unbounded)."""
    slo, key = request.slo, _key(request.slo.attainment)
    ratios = []
    if slo.ttft_s is not None and role != "decode":
        ratios.append(r.ttft_s.get(key, math.nan) / slo.ttft_s)
    if slo.tpot_s is not None and role != "prefill":
        ratios.append(r.tpot_s.get(key, r.tpot_s.get("mean", math.nan)) / slo.tpot_s)
    worst = max(ratios, default=math.nan)
    return worst if math.isfinite(worst) and worst > 0 else None


def sustained_rate(check: CheckFn, candidate, lengths: Lengths, rate_hi: float, request, steps: int = 6,
                   failing=None) -> float:
    """Largest per-instance rate in [0, rate_hi] that `check` passes, to within rate_hi / 64 or `steps` probes;
    0 when even a trickle (rate_hi / 1000) fails. Latencies grow with the rate, so the passing rates are an
    interval from 0 (a passing probe vouches for every lower rate, the trickle included: it is only checked when
    no probe passed). The search keeps a bracket [passing, failing] and probes where the slack 1 / excess (see
    `excess`), which falls about linearly with the rate as a queue fills, reaches 1 (regula falsi); with no
    passing probe yet, on the line through the two lowest failing ones, or at rate_hi / sqrt(excess there) for
    the first; a bisection step when that stalls (two or three probes on one side) or a verdict has no number.
    It stops at a passing probe when that line puts the boundary within rate_hi / 64 of it. `failing`: the
    check's verdict at rate_hi (not asked again)."""
    role = candidate.role

    def slack(r):
        e = excess(r, request, role) if r is not None else None
        return 1 / e if e else None

    lo, hi, s_lo, s_hi = 0.0, rate_hi, None, slack(failing)
    below: tuple[float, float] | None = None  # the failing probe before the lowest one (for extrapolation)
    same_side, last = 0, None  # probes in a row that moved the same end of the bracket
    for _ in range(steps):
        width = hi - lo
        if width <= rate_hi / 64:
            break
        x = lo + width / 2
        if s_hi is not None and s_hi < 1:
            if s_lo is not None and s_lo > s_hi and same_side < 2:
                x = lo + width * (s_lo - 1) / (s_lo - s_hi)
            elif lo == 0 and below is not None and below[1] < s_hi and same_side < 3:
                x = hi - (1 - s_hi) * (below[0] - hi) / (s_hi - below[1])  # the line through the two lowest fails
            elif lo == 0 and below is None:
                x = hi * s_hi**0.5
            x = min(max(x, lo + 0.05 * width), hi - 0.05 * width)
        r = check(candidate, lengths, x, request)
        passed = bool(r.ok)
        same_side, last = (same_side + 1 if passed == last else 1), passed
        if passed:
            lo, s_lo = x, slack(r)
            if s_lo is not None and s_hi is not None and s_lo > s_hi and \
                    (hi - lo) * (s_lo - 1) / (s_lo - s_hi) <= rate_hi / 64:
                break  # the line through the bracket's ends puts the boundary within the precision of this pass
        else:
            below = (hi, s_hi) if s_hi is not None else None
            hi, s_hi = x, slack(r)
    if lo == 0:
        trickle = rate_hi * 1e-3
        return trickle if check(candidate, lengths, trickle, request).ok else 0.0
    return lo
