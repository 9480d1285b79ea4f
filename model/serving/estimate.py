"""Serving estimates: TTFT/TPOT means and percentiles, throughput per GPU and per user, max concurrency,
goodput under an SLO, memory per GPU and cost, for an engine running continuous batching.

The engine's operating points are computed on a grid of concurrencies (vectorized); a rate maps to the
concurrency that carries it (Little's law), and goodput is the highest rate whose percentiles meet the SLO.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from model.errors import RidgeplanError, require_fraction, require_positive
from model.serving.batching import (IterationCost, SteadyState, _add_offload, decode_only_iteration, iteration_cost,
                                    kv_capacity, steady_state)
from model.serving.deployment import Deployment
from model.serving.policy import EnginePolicy, engine_policy
from model.serving.speculation_offload import Offload, Speculation
from model.serving.queueing import (
    APPROXIMATIONS, mg1_wait_s, mixture_quantile, poisson_quantile, tpot_spread, wait_cdf,
)
from model.serving.workload import Lengths, Workload
from model.serving.workload import mean_decode_context_tokens

PERCENTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class SLO:
    ttft_s: float | None = None
    tpot_s: float | None = None
    attainment: float = 0.9  # the fraction of requests that must meet each target

    def __post_init__(self) -> None:
        for name in ("ttft_s", "tpot_s"):
            v = getattr(self, name)
            if v is not None:
                require_positive(name, v)
        require_fraction("attainment", self.attainment, low_open=True, high_open=True)

    @classmethod
    def from_ms(cls, ttft_ms: float | None = None, tpot_ms: float | None = None, attainment: float = 0.9) -> SLO:
        """An SLO from targets in milliseconds as users type them (0 or None: no target)."""
        return cls(ttft_ms / 1e3 if ttft_ms else None, tpot_ms / 1e3 if tpot_ms else None, attainment)

    @property
    def empty(self) -> bool:
        return self.ttft_s is None and self.tpot_s is None


@dataclass(frozen=True)
class OperatingPoints:
    """Engine operating points on a concurrency grid (arrays over the grid) for one length distribution."""

    lengths: Lengths
    state: SteadyState
    decode_only_s: np.ndarray  # iteration time without prefill work (grid)
    full_chunk_s: np.ndarray  # iteration time when a p99-length prompt's prefill lands in it (grid)
    prefill_latency_s: np.ndarray  # (grid, bins) time from start of prefill to the first token
    prefill_service_s: np.ndarray  # (grid, bins) prefill-server time each prompt occupies
    chunked: bool

    @property
    def rates(self) -> np.ndarray:
        return self.state.requests_per_s


def prefill_terms(d, policy: EnginePolicy, decode_seqs, decode_context, iteration_s, prompt_tokens,
                  prefix_tokens=0.0) -> tuple[np.ndarray, np.ndarray]:
    """(seconds from a prompt's first prefill iteration to its first token, seconds of prefill capacity it
    occupies), vectorized over broadcast arrays.

    Chunked prefill: the prompt rides along the decodes in chunks of the budget left by them, so it needs
    ceil(prompt / room) iterations that each carry its chunk, and occupies prompt / room iterations of the
    engine's prefill capacity. Prefill-prioritising: the prompt runs in its own step (latency), and waiting
    prompts are batched into full-budget steps (service per prompt)."""
    kw = dict(separate_prefill=not policy.chunked_prefill, step_overhead_s=policy.step_overhead_s)
    prompt = np.asarray(prompt_tokens, dtype=float)
    prefix = np.asarray(prefix_tokens, dtype=float)
    budget = float(policy.max_num_batched_tokens)
    if policy.chunked_prefill:
        room = np.maximum(budget - np.asarray(decode_seqs, dtype=float), 1.0)
        chunk = np.minimum(prompt, room)
        with_chunk = iteration_cost(d, decode_seqs, decode_context, chunk, 1.0,
                                    prefix + np.maximum(prompt - chunk, 0) / 2, **kw).time_s
        return np.ceil(prompt / room) * with_chunk, prompt * np.asarray(iteration_s, dtype=float) / room
    single = iteration_cost(d, 0.0, 0.0, prompt, 1.0, prefix, **kw).time_s
    per_step = np.maximum(np.floor(budget / np.maximum(prompt, 1)), 1)
    batched = iteration_cost(d, 0.0, 0.0, prompt * per_step, per_step, prefix, **kw).time_s
    return single, batched / per_step


def operating_points(d: Deployment, policy: EnginePolicy, lengths: Lengths, concurrency=None,
                     prefix_hit_rate: float = 0.0, points: int = 40, speculation: Speculation | None = None,
                     offload: Offload | None = None) -> OperatingPoints:
    """Steady states at `concurrency` (array) or on a log grid from 1 to the engine's cap."""
    i_mean, o_mean = lengths.mean_input, lengths.mean_output
    tech = dict(speculation=speculation, offload=offload)
    cap_state = steady_state(d, policy, i_mean, o_mean, None, prefix_hit_rate, **tech)
    cap = float(cap_state.concurrency[0])
    if cap < 1:
        raise RidgeplanError("memory", "no sequence fits in the KV pool of this deployment")
    grid = (np.unique(np.round(np.geomspace(1, cap, points))) if concurrency is None
            else np.atleast_1d(np.asarray(concurrency, dtype=float)))
    state = steady_state(d, policy, i_mean, o_mean, grid, prefix_hit_rate, **tech)
    kw = dict(separate_prefill=not policy.chunked_prefill, step_overhead_s=policy.step_overhead_s)
    ctx = float(mean_decode_context_tokens(i_mean, o_mean))
    dec = decode_only_iteration(d, policy, state.decode_seqs, ctx, **tech).time_s
    computed = lengths.input_len * (1 - prefix_hit_rate)  # (bins,)
    g, b = state.decode_seqs.size, computed.size
    latency, service = prefill_terms(d, policy, np.repeat(state.decode_seqs, b), ctx,
                                     np.repeat(state.iteration.time_s, b), np.tile(computed, g),
                                     np.tile(lengths.input_len * prefix_hit_rate, g))
    latency, service = latency.reshape(g, b), service.reshape(g, b)
    p99_prompt = _weighted_quantile(computed, lengths.weight, 0.99)
    if policy.chunked_prefill:
        room = np.maximum(policy.max_num_batched_tokens - state.decode_seqs, 1.0)
        full = iteration_cost(d, state.decode_seqs, ctx, np.minimum(p99_prompt, room), 1.0, 0.0, **kw).time_s
    else:
        full = dec + float(latency[0, np.argmin(np.abs(computed - p99_prompt))])
    if offload is not None:
        latency, full = _offload_in_prefill(d, policy, offload, state.decode_seqs, ctx, computed, latency, full)
    return OperatingPoints(lengths, state, dec, full, np.array(latency), np.array(service), policy.chunked_prefill)


def _offload_in_prefill(d, policy, offload, decode_seqs, ctx, computed, latency, full):
    """Every iteration a prompt's prefill spans also brings the offloaded bytes over the link (weights,
    experts, KV), so TTFT and the TBT p99 iteration cannot fall below the streaming floor."""
    budget = float(policy.max_num_batched_tokens)
    room = np.maximum(budget - decode_seqs, 1.0) if policy.chunked_prefill else np.full_like(decode_seqs, budget)
    zero = IterationCost(np.zeros(decode_seqs.size), 0.0, 0.0, 0.0, 0.0)
    t_off = np.asarray(_add_offload(d, policy, zero, offload, decode_seqs, ctx, decode_seqs + room).transfer_s,
                       dtype=float) * np.ones(decode_seqs.size)
    chunks = np.ceil(computed[None, :] / room[:, None]) if policy.chunked_prefill else np.ones((room.size, computed.size))
    floor = chunks * t_off[:, None]
    full_it = IterationCost(np.asarray(full, dtype=float), 0.0, 0.0, 0.0, 0.0)
    full = _add_offload(d, policy, full_it, offload, decode_seqs, ctx, decode_seqs + room).time_s
    latency = np.maximum(latency, floor) if offload.overlap else latency + floor
    return latency, full


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, p: float) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][min(np.searchsorted(cum, p), len(values) - 1)])


@dataclass(frozen=True)
class Latency:
    """Latency distribution at one operating point (seconds)."""

    rate_per_s: float
    ttft_mean_s: float
    tpot_mean_s: float
    ttft_s: dict[float, float]
    tpot_s: dict[float, float]
    tbt_p99_s: float
    prefill_utilization: float


def latency_at(op: OperatingPoints, k: int, rate_per_s: float, open_loop: bool,
               percentiles=PERCENTILES) -> Latency:
    """Latency percentiles at grid point k when requests arrive at `rate_per_s`."""
    w = op.lengths.weight
    gain = op.state.tokens_per_iteration  # tokens a sequence gains per iteration (speculation)
    t_it = float(op.state.iteration.time_s[k])
    t_dec = float(op.decode_only_s[k]) / gain  # per output token
    lat = op.prefill_latency_s[k]
    service = op.prefill_service_s[k]
    lam = rate_per_s
    if open_loop:
        es, es2 = float(w @ service), float(w @ service**2)
        rho = lam * es
        wq = float(mg1_wait_s(lam, es, es2))
    else:
        rho, wq = lam * float(w @ service), 0.0
    # an open-loop request also waits on average half an iteration for the next iteration boundary; in a
    # closed loop a client sends its next request when the previous one completes, at a boundary
    align = 0.5 * t_it if open_loop else 0.0

    def ttft_cdf(v: np.ndarray) -> np.ndarray:
        return wait_cdf(v - lat - align, rho, wq) if wq > 0 else (v >= lat + align).astype(float)

    o_dec = np.maximum(op.lengths.output_len - 1, 1)
    arrivals, per = tpot_spread(lam, t_it, t_dec, gain, o_dec)
    per_arrival = float(per)

    def tpot_cdf(v: np.ndarray) -> np.ndarray:
        from model.serving.queueing import poisson_cdf

        k_allowed = np.floor(np.maximum(v - t_dec, 0) * o_dec / max(per_arrival, 1e-15))
        return np.where(v >= t_dec, poisson_cdf(k_allowed, arrivals), 0.0) if per_arrival > 0 else (v >= t_dec).astype(float)

    hi_ttft = float(np.max(lat)) + align + (50 * wq / max(rho, 1e-9) if np.isfinite(wq) else 0) + 1.0
    ttft = {p: (mixture_quantile(p, w, ttft_cdf, hi_ttft) if np.isfinite(wq) else float("inf")) for p in percentiles}
    tpot_hi = t_dec + float(np.max(poisson_quantile(0.9999, arrivals) * per_arrival / o_dec)) + 1e-6
    tpot = {p: mixture_quantile(p, w, tpot_cdf, tpot_hi) for p in percentiles}
    ttft_mean = float(w @ lat) + align + wq
    tpot_mean = t_dec + float(w @ (arrivals * per_arrival / o_dec))
    stall = 1 - np.exp(-lam * t_it) if lam > 0 else 0.0  # an iteration carries new prefill work
    tbt_p99 = float(op.full_chunk_s[k]) if stall > 0.01 else float(op.decode_only_s[k])
    return Latency(rate_per_s, ttft_mean, tpot_mean, ttft, tpot, tbt_p99, float(rho))


def _meets(lat: Latency, slo: SLO) -> bool:
    a = slo.attainment
    ok = True
    if slo.ttft_s is not None:
        ok &= _quantile(lat.ttft_s, a) <= slo.ttft_s
    if slo.tpot_s is not None:
        ok &= _quantile(lat.tpot_s, a) <= slo.tpot_s
    return bool(ok)


def _quantile(table: dict[float, float], p: float) -> float:
    if p in table:
        return table[p]
    keys = sorted(table)
    return table[min(keys, key=lambda q: abs(q - p))]


def closed_loop_queue_wait_s(clients, cap, requests_per_s):
    """Clients beyond the engine's cap wait in its queue: by Little's law each request waits
    (clients - cap) / throughput before it is admitted (zero at or below the cap)."""
    return np.maximum(np.asarray(clients, dtype=float) - cap, 0.0) / np.maximum(requests_per_s, 1e-12)


def goodput(op: OperatingPoints, slo: SLO) -> tuple[float, int | None]:
    """Highest request rate (per replica) on the grid whose TTFT and TPOT at the SLO attainment meet the targets."""
    best, best_k = 0.0, None
    for k, rate in enumerate(op.rates):
        lat = latency_at(op, k, float(rate), open_loop=True, percentiles=(slo.attainment,))
        if _meets(lat, slo) and rate > best:
            best, best_k = float(rate), k
    return best, best_k


@dataclass(frozen=True)
class ServingEstimate:
    deployment: Deployment
    policy: EnginePolicy
    workload: Workload
    slo: SLO
    fits: bool
    memory: dict[str, float]
    max_concurrency: float
    concurrency_limit: str
    state: SteadyState | None = None
    point: int = 0
    latency: Latency | None = None
    goodput_requests_per_s: float | None = None
    sustainable: bool = True
    assumptions: tuple[str, ...] = field(default=())

    @property
    def replicas(self) -> int:
        return self.deployment.layout.batch_ranks

    @property
    def gpus(self) -> int:
        return self.deployment.layout.gpus

    @property
    def output_tokens_per_s(self) -> float | None:
        """Whole deployment (all replicas)."""
        if self.state is None:
            return None
        return float(self.state.output_tokens_per_s[self.point]) * self.replicas

    @property
    def requests_per_s(self) -> float | None:
        return None if self.state is None else float(self.state.requests_per_s[self.point]) * self.replicas

    @property
    def output_tokens_per_s_per_gpu(self) -> float | None:
        t = self.output_tokens_per_s
        return None if t is None else t / self.gpus

    def cost_per_million_tokens_usd(self) -> float | None:
        price = self.deployment.device.price
        t = self.output_tokens_per_s
        if price is None or not t:
            return None
        return price.usd_per_hour * self.gpus / (t * 3600) * 1e6

    def to_dict(self) -> dict[str, Any]:
        d = self.deployment
        out: dict[str, Any] = {
            "model": d.arch.name, "gpu": d.device.id, "layout": d.layout.label(), "gpus": self.gpus,
            "precision": {"weights": d.precision.weights, "activations": d.resolved.activations, "kv": d.precision.kv},
            "engine": self.policy.name, "workload": {"lengths": self.workload.lengths.describe(),
                                                     "mode": self.workload.mode,
                                                     "concurrency": self.workload.concurrency,
                                                     "rate_per_s": self.workload.rate_per_s},
            "fits": self.fits, "memory_per_gpu": self.memory,
            "max_concurrency_per_replica": self.max_concurrency, "concurrency_limited_by": self.concurrency_limit,
        }
        if self.fits and self.state is not None and self.latency is not None:
            s, k, lat = self.state, self.point, self.latency
            out.update({
                "sustainable": self.sustainable,
                "concurrency_per_replica": float(s.concurrency[k]),
                # an overloaded queue grows without bound: its TTFT is null with the reason, never inf
                "ttft_mean_s": _bounded(lat.ttft_mean_s), "tpot_mean_s": lat.tpot_mean_s,
                "ttft_percentiles_s": {f"p{int(p * 100)}": _bounded(v) for p, v in lat.ttft_s.items()},
                "tpot_percentiles_s": {f"p{int(p * 100)}": v for p, v in lat.tpot_s.items()},
                "tbt_p99_s": lat.tbt_p99_s, "prefill_utilization": lat.prefill_utilization,
                "iteration_s": float(s.iteration.time_s[k]),
                "preempted_fraction": float(np.asarray(s.preempted_fraction).ravel()[k]) if np.ndim(s.preempted_fraction) else 0.0,
                "requests_per_s": self.requests_per_s,
                "output_tokens_per_s": self.output_tokens_per_s,
                "output_tokens_per_s_per_gpu": self.output_tokens_per_s_per_gpu,
                "output_tokens_per_s_per_user": 1.0 / lat.tpot_mean_s if lat.tpot_mean_s > 0 else None,
                "cost_per_million_output_tokens_usd": self.cost_per_million_tokens_usd(),
                "breakdown_s": {"linear_layers": float(s.iteration.linear_s[k]),
                                "decode_attention": float(s.iteration.decode_attention_s[k]),
                                "prefill_attention": float(s.iteration.prefill_attention_s[k]),
                                "overhead_and_handoffs": float(s.iteration.overhead_s[k])},
            })
            if not self.sustainable:
                out["ttft_unbounded_reason"] = (
                    f"the offered {self.workload.rate_per_s:g} requests/s exceed the most this deployment sustains "
                    f"({float(self.state.requests_per_s[-1]) * self.replicas:.4g} requests/s): the queue, and "
                    "TTFT, grow without bound")
            if not self.slo.empty:
                out["slo"] = {"ttft_s": self.slo.ttft_s, "tpot_s": self.slo.tpot_s, "attainment": self.slo.attainment}
                out["goodput_requests_per_s"] = (None if self.goodput_requests_per_s is None
                                                 else self.goodput_requests_per_s * self.replicas)
        out["assumptions"] = list(self.assumptions)
        return out


def _bounded(seconds: float) -> float | None:
    return float(seconds) if np.isfinite(seconds) else None


def estimate(d: Deployment, workload: Workload, policy: EnginePolicy | str = "vllm", slo: SLO | None = None,
             percentiles=PERCENTILES, speculation: Speculation | None = None,
             offload: Offload | None = None) -> ServingEstimate:
    """Serve `workload` on every replica of `d` with `policy`; rates and throughput are for all replicas."""
    for name, value, kind in (("deployment", d, Deployment), ("workload", workload, Workload),
                              ("slo", slo if slo is not None else SLO(), SLO)):
        if not isinstance(value, kind):
            raise RidgeplanError(name, f"must be a {kind.__name__}, got {type(value).__name__}")
    from model.serving.batching import with_mtp

    d = with_mtp(d, speculation)
    policy = engine_policy(policy)
    slo = slo or SLO()
    lengths = workload.lengths
    tech = dict(speculation=speculation, offload=offload)
    cap = kv_capacity(d, policy, lengths.mean_input + lengths.mean_output / (1 if policy.admission == "max_length" else 2),
                      offload, speculation)
    memory = {"weights_bytes": float(cap.weights_bytes[0]), "activation_bytes": float(cap.activation_bytes[0]),
              # a pool is a size: where the weights alone overflow, it is 0 and the deficit is shortfall_bytes
              "reserved_bytes": cap.reserved_bytes, "kv_pool_bytes": max(0.0, float(cap.kv_pool_bytes[0])),
              "kv_bytes_per_sequence": float(cap.kv_bytes_per_sequence[0]), "capacity_bytes": d.capacity_bytes,
              "usable_bytes": d.capacity_bytes * policy.memory_fraction,
              "shortfall_bytes": max(0.0, -(float(cap.kv_pool_bytes[0]) - float(cap.kv_bytes_per_sequence[0])))}
    from model.serving.quality import accuracy_risk

    notes = (*d.assumptions(), policy.describe(), *APPROXIMATIONS,
             *(t.describe() for t in (speculation, offload) if t is not None),
             *accuracy_risk(d.precision),
             "steady state uses the mean input and output lengths; TTFT and TPOT percentiles use the whole distribution",
             "goodput: both the TTFT and the TPOT percentile at the attainment level meet their targets")
    fits = cap.max_sequences[0] >= 1
    if not fits:
        return ServingEstimate(d, policy, workload, slo, False, memory, 0.0, "kv", assumptions=notes)
    ops = operating_points(d, policy, lengths, prefix_hit_rate=workload.prefix_hit_rate, **tech)
    cap_state = steady_state(d, policy, lengths.mean_input, lengths.mean_output, None, workload.prefix_hit_rate, **tech)
    max_conc, limit = float(cap_state.concurrency[0]), str(cap_state.limit[0])
    good = goodput(ops, slo)[0] if not slo.empty else None
    replicas = d.layout.batch_ranks
    sustainable = True
    if workload.mode == "rate":
        rate = workload.rate_per_s / replicas
        rates = ops.rates
        if rate > rates.max():
            sustainable = False
            point_n = float(ops.state.concurrency[-1])
        else:
            point_n = float(np.interp(rate, rates, ops.state.concurrency))
        exact = operating_points(d, policy, lengths, concurrency=[point_n], prefix_hit_rate=workload.prefix_hit_rate,
                                 **tech)
        lat = latency_at(exact, 0, min(rate, float(exact.rates[0])) if not sustainable else rate, True, percentiles)
        if not sustainable:
            lat = replace(lat, ttft_mean_s=float("inf"), ttft_s={p: float("inf") for p in lat.ttft_s})
        state = exact.state
    else:
        n = workload.concurrency if workload.mode == "concurrency" else max_conc
        exact = operating_points(d, policy, lengths, concurrency=[min(n, max_conc)],
                                 prefix_hit_rate=workload.prefix_hit_rate, **tech)
        lat = latency_at(exact, 0, float(exact.rates[0]), False, percentiles)
        state = exact.state
        if workload.mode == "concurrency" and n > max_conc:
            # the clients beyond the engine's cap wait in its queue: by Little's law each request waits
            # (n - cap) / throughput before it is admitted
            wait = float(closed_loop_queue_wait_s(n, max_conc, float(exact.rates[0])))
            lat = replace(lat, ttft_mean_s=lat.ttft_mean_s + wait, ttft_s={p: v + wait for p, v in lat.ttft_s.items()})
            notes = (*notes, f"asked for {n:g} sequences in flight; only {max_conc:g} fit ({limit}): the rest queue, "
                     f"{wait:.3g} s each by Little's law, added to TTFT")
    if workload.mode == "max":
        notes = (*notes, "offline maximum-throughput run: TTFT excludes the time requests wait in the backlog")
    return ServingEstimate(d, policy, workload, slo, True, memory, max_conc, limit, state, 0, lat, good,
                           sustainable, notes)
