"""Sweeps of the serving model as tidy tables (one row per scenario), for notebooks, the app and reports.

Each sweep evaluates the same quantities as `estimate` / `disaggregated` at one point, vectorized over the swept
axis where the model allows (steady states and operating points take concurrency arrays), and adds what a
comparison needs next to them: cost per million output tokens, and what bounds the decode step (compute,
memory, network or per-kernel latency) with its arithmetic intensity against the device's ridge point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from model.errors import RidgeplanError
from model.roofline.evaluator import BOUNDS
from model.serving.batching import kv_capacity, steady_state
from model.serving.deployment import Deployment, StepResult
from model.serving.disagg import DisaggPlan, disaggregated
from model.serving.estimate import PERCENTILES, SLO, latency_at, operating_points
from model.serving.policy import EnginePolicy, engine_policy
from model.serving.speculation_offload import Offload, Speculation
from model.serving.workload import Lengths, Workload
from model.serving.workload import charged_context_tokens, mean_decode_context_tokens  # noqa: F401  (re-exported)


def _pct(p: float) -> str:
    return f"p{round(p * 100):d}"


def admitted_context_tokens(policy: EnginePolicy | str, input_len, output_len) -> np.ndarray:
    """Context each sequence is charged in the KV pool: the full I + O when the engine reserves whole requests
    (admission "max_length"), else the mean I + O / 2 (admit on current length, preempt when full)."""
    return charged_context_tokens(engine_policy(policy).admission, input_len, output_len)


def cost_per_million_tokens_usd(d: Deployment, tokens_per_s_per_replica) -> np.ndarray:
    """Dollars per million tokens when one replica of `d` produces `tokens_per_s_per_replica` (array).

    price x GPUs per replica / (tokens/s x 3600) x 1e6; NaN where the device has no price or nothing is produced."""
    t = np.asarray(tokens_per_s_per_replica, dtype=float)
    price = d.device.price
    if price is None:
        return np.full(t.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = price.usd_per_hour * d.layout.gpus_per_replica / (t * 3600.0) * 1e6
    return np.where(t > 0, out, np.nan)


def step_bound_seconds(step: StepResult) -> dict[str, np.ndarray]:
    """Seconds of a step's operators by what bounds each (`compute_s`, `memory_s`, `network_s`, `latency_s`), one
    value per scenario: the vectorized form of `breakdown.bound_table` (without hand-offs and overhead)."""
    times = step.times
    counts = step.stage_counts.sum(axis=0)[:, None]
    exposed = counts * (times.time_s - times.comm_overlap * times.network_s)
    bound = np.broadcast_to(times.bound, exposed.shape)
    return {f"{b}_s": np.where(bound == i, exposed, 0.0).sum(axis=0) for i, b in enumerate(BOUNDS)}


def step_intensity_flop_per_byte(step: StepResult) -> np.ndarray:
    """FLOPs per byte of memory traffic of a whole step (all operators and layers), one value per scenario."""
    counts = step.stage_counts.sum(axis=0)
    flops = counts @ step.ops.flops
    nbytes = counts @ step.ops.bytes
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nbytes > 0, flops / nbytes, np.inf)


def ridge_flop_per_byte(d: Deployment) -> float:
    """The device's ridge point on the tensor-core path the deployment's dense GEMMs use."""
    return float(d.device.ridge_flop_per_byte[d.resolved.dense_dtype])


def dominant_bound(seconds: dict[str, np.ndarray]) -> np.ndarray:
    """Name of the largest entry of a `step_bound_seconds` table, per scenario."""
    names = list(seconds)
    stacked = np.stack([np.asarray(seconds[n], dtype=float) for n in names])
    return np.array([n.removesuffix("_s") for n in names])[stacked.argmax(axis=0)]


def crossover(x: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float | None:
    """The first x at which curve `a` reaches curve `b` (a - b goes from < 0 to >= 0), interpolated linearly
    between the two grid points around the change; x[0] when `a` is already at or above `b` there, None when
    it never gets there. NaN points are skipped."""
    x, a, b = (np.asarray(v, dtype=float) for v in (x, a, b))
    if not (x.shape == a.shape == b.shape) or x.ndim != 1:
        raise RidgeplanError("crossover", "x, a and b must be equal-length 1-D sequences")
    ok = ~(np.isnan(x) | np.isnan(a) | np.isnan(b))
    x, diff = x[ok], (a - b)[ok]
    if x.size == 0:
        return None
    if diff[0] >= 0:
        return float(x[0])
    above = np.nonzero(diff >= 0)[0]
    if above.size == 0:
        return None
    j = int(above[0])
    x0, x1, d0, d1 = x[j - 1], x[j], diff[j - 1], diff[j]
    return float(x0 + (x1 - x0) * (-d0) / (d1 - d0))


# ---------------------------------------------------------------------------------------------------------
# closed loop: a fixed number of sequences in flight

def _decode_bounds(d: Deployment, decode_seqs: np.ndarray, context: float, tokens: float) -> dict[str, np.ndarray]:
    step = d.step(np.maximum(decode_seqs, 1.0), tokens, context)
    out = step_bound_seconds(step)
    out["bound"] = dominant_bound(out)
    out["intensity_flop_per_byte"] = step_intensity_flop_per_byte(step)
    return out


def concurrency_sweep(d: Deployment, lengths: Lengths, policy: EnginePolicy | str = "vllm", concurrency=None, *,
                      prefix_hit_rate: float = 0.0, speculation: Speculation | None = None,
                      offload: Offload | None = None, percentiles: Iterable[float] = PERCENTILES,
                      points: int = 24) -> pd.DataFrame:
    """Continuous batching at each concurrency (sequences in flight per replica; None: a log grid from 1 to the
    engine's cap), closed loop as `estimate` with `Workload(lengths, concurrency=n)` computes it.

    Concurrencies above the engine's cap run at the cap (`limited_by` names what capped them). Rates and tokens
    are for all replicas of `d`. When no sequence fits, one row with `fits` False and no latencies."""
    policy = engine_policy(policy)
    pcts = tuple(sorted(set(percentiles)))
    tech = dict(speculation=speculation, offload=offload)
    i_mean, o_mean = lengths.mean_input, lengths.mean_output
    cap_state = steady_state(d, policy, i_mean, o_mean, None, prefix_hit_rate, **tech)
    cap, cap_limit = float(cap_state.concurrency[0]), str(cap_state.limit[0])
    ridge = ridge_flop_per_byte(d)
    if cap < 1:
        return pd.DataFrame([{"concurrency": np.nan, "fits": False, "limited_by": "kv", "max_concurrency": cap,
                              "ridge_flop_per_byte": ridge}])
    asked = (np.unique(np.round(np.geomspace(1, cap, points))) if concurrency is None
             else np.atleast_1d(np.asarray(concurrency, dtype=float)))
    if np.any(asked < 1):
        raise RidgeplanError("concurrency", "every concurrency must be >= 1")
    scheduled = np.minimum(asked, cap)
    ops = operating_points(d, policy, lengths, concurrency=scheduled, prefix_hit_rate=prefix_hit_rate, **tech)
    s = ops.state
    replicas = d.layout.batch_ranks
    rows = []
    for k in range(scheduled.size):
        lat = latency_at(ops, k, float(ops.rates[k]), False, pcts)
        row = {"concurrency": float(asked[k]), "scheduled_concurrency": float(scheduled[k]),
               "limited_by": "asked" if asked[k] <= cap else cap_limit, "fits": True, "max_concurrency": cap,
               "ttft_mean_s": lat.ttft_mean_s, "tpot_mean_s": lat.tpot_mean_s}
        row.update({f"ttft_{_pct(p)}_s": v for p, v in lat.ttft_s.items()})
        row.update({f"tpot_{_pct(p)}_s": v for p, v in lat.tpot_s.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    df["iteration_s"] = s.iteration.time_s
    df["requests_per_s"] = s.requests_per_s * replicas
    df["output_tokens_per_s"] = s.output_tokens_per_s * replicas
    df["output_tokens_per_s_per_gpu"] = s.output_tokens_per_s / d.layout.gpus_per_replica
    df["output_tokens_per_s_per_user"] = 1.0 / df["tpot_mean_s"]
    df["usd_per_million_output_tokens"] = cost_per_million_tokens_usd(d, s.output_tokens_per_s)
    q = float(speculation.k + 1) if speculation else 1.0
    bounds = _decode_bounds(d, s.decode_seqs, float(mean_decode_context_tokens(i_mean, o_mean)), q)
    for name in ("compute_s", "memory_s", "network_s", "latency_s"):
        df[f"decode_{name}"] = bounds[name]
    df["decode_bound"] = bounds["bound"]
    df["decode_intensity_flop_per_byte"] = bounds["intensity_flop_per_byte"]
    df["ridge_flop_per_byte"] = ridge
    return df


def max_concurrency(d: Deployment, policy: EnginePolicy | str, input_len, output_len,
                    offload: Offload | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sequences in flight the engine allows, what caps them) per (input_len, output_len) pair (arrays)."""
    s = steady_state(d, engine_policy(policy), input_len, output_len, None, offload=offload)
    return s.concurrency, s.limit


def smallest_tp(model, gpu, lengths: Lengths, policy: EnginePolicy | str = "vllm", *, min_concurrency: int = 1,
                candidates: Sequence[int] = (1, 2, 4, 8), **deployment_kwargs) -> Deployment:
    """The deployment with the fewest tensor-parallel GPUs (from `candidates`, in order) whose KV pool holds
    `min_concurrency` sequences of the mean context; raises when none does."""
    from model.serving.deployment import deployment

    policy = engine_policy(policy)
    tried = []
    for tp in candidates:
        try:
            d = deployment(model, gpu, tp=tp, **deployment_kwargs)
        except RidgeplanError as err:
            if err.field != "tp":
                raise
            continue
        ctx = admitted_context_tokens(policy, lengths.mean_input, lengths.mean_output)
        if kv_capacity(d, policy, ctx).max_sequences[0] >= min_concurrency:
            return d
        tried.append(tp)
    raise RidgeplanError("tp", f"{min_concurrency} sequences of {lengths.describe()} do not fit with TP in "
                         f"{list(candidates)} on {gpu}", tried)


# ---------------------------------------------------------------------------------------------------------
# open loop: Poisson arrivals at a rate

def meets_slo(ttft_s, tpot_s, slo: SLO) -> np.ndarray:
    """Whether the TTFT and TPOT at the SLO's attainment percentile meet its targets (arrays)."""
    ok = np.ones(np.broadcast(np.asarray(ttft_s), np.asarray(tpot_s)).shape, dtype=bool)
    if slo.ttft_s is not None:
        ok &= np.asarray(ttft_s, dtype=float) <= slo.ttft_s
    if slo.tpot_s is not None:
        ok &= np.asarray(tpot_s, dtype=float) <= slo.tpot_s
    return ok


def _slo_columns(df: pd.DataFrame, slo: SLO | None) -> pd.DataFrame:
    if slo is not None and not slo.empty:
        a = _pct(slo.attainment)
        df["ttft_at_attainment_s"] = df[f"ttft_{a}_s"]
        df["tpot_at_attainment_s"] = df[f"tpot_{a}_s"]
        df["meets_slo"] = meets_slo(df["ttft_at_attainment_s"], df["tpot_at_attainment_s"], slo) & df["sustainable"]
    return df


def rate_sweep(d: Deployment, lengths: Lengths, policy: EnginePolicy | str = "vllm", rates=None,
               slo: SLO | None = None, *, prefix_hit_rate: float = 0.0, speculation: Speculation | None = None,
               offload: Offload | None = None, percentiles: Iterable[float] = PERCENTILES) -> pd.DataFrame:
    """Latency percentiles at each request rate (requests/s over all replicas, Poisson arrivals), as `estimate`
    with `Workload(lengths, rate_per_s=r)` computes them. Rates past the engine's capacity are flagged
    `sustainable` False with infinite TTFT. With an SLO, adds the percentiles at its attainment and `meets_slo`."""
    policy = engine_policy(policy)
    pcts = set(percentiles)
    if slo is not None and not slo.empty:
        pcts.add(slo.attainment)
    pcts = tuple(sorted(pcts))
    tech = dict(speculation=speculation, offload=offload)
    grid = operating_points(d, policy, lengths, prefix_hit_rate=prefix_hit_rate, **tech)
    replicas = d.layout.batch_ranks
    total = np.atleast_1d(np.asarray(rates if rates is not None else grid.rates * replicas, dtype=float))
    if np.any(total <= 0):
        raise RidgeplanError("rate", "every rate must be > 0")
    per = total / replicas
    sustainable = per <= grid.rates.max()
    conc = np.where(sustainable, np.interp(per, grid.rates, grid.state.concurrency), float(grid.state.concurrency[-1]))
    exact = operating_points(d, policy, lengths, concurrency=conc, prefix_hit_rate=prefix_hit_rate, **tech)
    rows = []
    for k in range(total.size):
        ok = bool(sustainable[k])
        lat = latency_at(exact, k, float(per[k]) if ok else min(float(per[k]), float(exact.rates[k])), True, pcts)
        row = {"rate_per_s": float(total[k]), "sustainable": ok, "concurrency_per_replica": float(conc[k]),
               "ttft_mean_s": lat.ttft_mean_s if ok else np.inf, "tpot_mean_s": lat.tpot_mean_s,
               "tbt_p99_s": lat.tbt_p99_s, "prefill_utilization": lat.prefill_utilization}
        row.update({f"ttft_{_pct(p)}_s": (v if ok else np.inf) for p, v in lat.ttft_s.items()})
        row.update({f"tpot_{_pct(p)}_s": v for p, v in lat.tpot_s.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    df["output_tokens_per_s"] = np.where(df["sustainable"], df["rate_per_s"] * lengths.mean_output, np.nan)
    df["gpus"] = d.layout.gpus
    return _slo_columns(df, slo)


def disagg_rate_sweep(plan: DisaggPlan, lengths: Lengths, policy: EnginePolicy | str = "vllm", rates=None,
                      slo: SLO | None = None, *, prefix_hit_rate: float = 0.0,
                      percentiles: Iterable[float] = PERCENTILES) -> pd.DataFrame:
    """`disaggregated` at each request rate (requests/s over the whole plan): TTFT percentiles, TPOT (the decode
    iteration time), KV hand-off and which pool binds. With an SLO, `meets_slo` as in `rate_sweep`."""
    pcts = set(percentiles)
    if slo is not None and not slo.empty:
        pcts.add(slo.attainment)
    pcts = tuple(sorted(pcts))
    if rates is None:
        probe = disaggregated(plan, Workload(lengths, rate_per_s=1.0, prefix_hit_rate=prefix_hit_rate), policy,
                              None, pcts)
        top = min(probe.prefill_capacity_per_s, probe.decode_capacity_per_s)
        rates = np.linspace(top / 24, top, 24)
    rows = []
    for r in np.atleast_1d(np.asarray(rates, dtype=float)):
        e = disaggregated(plan, Workload(lengths, rate_per_s=float(r), prefix_hit_rate=prefix_hit_rate), policy,
                          None, pcts)
        ok = bool(e.sustainable)
        row = {"rate_per_s": float(r), "sustainable": ok, "decode_concurrency_per_instance": e.decode_concurrency,
               "ttft_mean_s": e.ttft_mean_s if ok else np.inf, "tpot_mean_s": e.tpot_s,
               "kv_transfer_s": e.kv_transfer_s, "bottleneck": e.bottleneck,
               "prefill_capacity_per_s": e.prefill_capacity_per_s, "decode_capacity_per_s": e.decode_capacity_per_s}
        row.update({f"ttft_{_pct(p)}_s": (v if ok else np.inf) for p, v in e.ttft_s.items()})
        # a decode instance's iterations carry no prefill work: every request sees the same TPOT
        row.update({f"tpot_{_pct(p)}_s": e.tpot_s for p in pcts})
        rows.append(row)
    df = pd.DataFrame(rows)
    df["output_tokens_per_s"] = np.where(df["sustainable"], df["rate_per_s"] * lengths.mean_output, np.nan)
    df["gpus"] = plan.gpus
    return _slo_columns(df, slo)


def goodput_requests_per_s(sweep: pd.DataFrame, slo: SLO | None = None) -> float:
    """The highest swept rate that meets the SLO (0 when none does): the goodput read off a rate sweep.

    Without `slo`, the sweep's own `meets_slo` column; with one, its targets are checked against the sweep's
    percentiles at the SLO's attainment (so one sweep answers many targets)."""
    if slo is None:
        if "meets_slo" not in sweep:
            raise RidgeplanError("slo", "the sweep was run without an SLO")
        ok = sweep["meets_slo"].to_numpy(bool)
    else:
        a = _pct(slo.attainment)
        if f"ttft_{a}_s" not in sweep or f"tpot_{a}_s" not in sweep:
            raise RidgeplanError("attainment", f"the sweep has no {a} percentiles",
                                 sorted(c[5:-2] for c in sweep if c.startswith("ttft_p")))
        ok = meets_slo(sweep[f"ttft_{a}_s"], sweep[f"tpot_{a}_s"], slo) & sweep["sustainable"].to_numpy(bool)
    rates = sweep["rate_per_s"].to_numpy(float)[ok]
    return float(rates.max()) if rates.size else 0.0


# ---------------------------------------------------------------------------------------------------------
# speculative decoding

def speculation_sweep(d: Deployment, lengths: Lengths, policy: EnginePolicy | str = "vllm", *, alphas, ks,
                      concurrency, draft_model: str | None = None,
                      draft_cost_ratio: float | None = None) -> pd.DataFrame:
    """Steady-state throughput with speculative decoding at every (acceptance rate, draft length, concurrency),
    next to the same engine without it. `speedup` is the ratio of output tokens/s (equivalently of TPOT at a
    fixed concurrency): above 1 speculation pays."""
    policy = engine_policy(policy)
    conc = np.atleast_1d(np.asarray(concurrency, dtype=float))
    i, o = lengths.mean_input, lengths.mean_output
    base = steady_state(d, policy, i, o, conc)
    frames = []
    for alpha in np.atleast_1d(alphas):
        for k in np.atleast_1d(ks):
            spec = Speculation(float(alpha), int(k), draft_model=draft_model, draft_cost_ratio=draft_cost_ratio)
            s = steady_state(d, policy, i, o, conc, speculation=spec)
            frames.append(pd.DataFrame({
                "alpha": float(alpha), "k": int(k), "concurrency": conc,
                "scheduled_concurrency": s.concurrency, "tokens_per_step": spec.tokens_per_step,
                "tpot_s": s.tpot_s, "base_tpot_s": base.tpot_s,
                "output_tokens_per_s": s.output_tokens_per_s * d.layout.batch_ranks,
                "base_output_tokens_per_s": base.output_tokens_per_s * d.layout.batch_ranks,
            }))
    df = pd.concat(frames, ignore_index=True)
    df["speedup"] = df["output_tokens_per_s"] / df["base_output_tokens_per_s"]
    return df
