"""Disaggregated prefill and decode: separate pools (possibly different GPU types and layouts), the KV
hand-off between them, and rate matching.

- Prefill pool: N_p instances, each an M/G/1 server whose service per prompt is its share of a prefill step
  batched up to the token budget; TTFT = queueing + the prompt's own prefill step + KV transfer.
- KV transfer: the prompt's KV (all layers, the decode pool's KV precision) over the link between the pools:
  NVLink when both pools share a node, else each prefill GPU's scale-out NIC (the prefill instance's GPUs send
  their shards in parallel). With layer-wise streaming only the last layer's share is exposed.
- Decode pool: N_d instances, each decoding with no prefill work in its iterations, so TPOT is the decode
  iteration time at the concurrency that carries its share of the rate (Little's law).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.errors import DoesNotFitError, RidgeplanError, require_positive
from model.operators.memory import kv_bytes_per_token
from model.serving.batching import iteration_cost, kv_capacity
from model.serving.deployment import Deployment
from model.serving.estimate import SLO
from model.serving.policy import EnginePolicy, engine_policy
from model.serving.queueing import mg1_wait_s, wait_quantile_s
from model.serving.workload import Workload
from model.serving.workload import charged_context_tokens, mean_decode_context_tokens

LINK_PLACEMENTS = ("same_node", "across_nodes")


@dataclass(frozen=True)
class DisaggPlan:
    prefill: Deployment
    prefill_instances: int
    decode: Deployment
    decode_instances: int
    placement: str = "across_nodes"  # where the KV hand-off travels
    layerwise_kv_transfer: bool = False

    def __post_init__(self) -> None:
        require_positive("prefill_instances", self.prefill_instances, integer=True)
        require_positive("decode_instances", self.decode_instances, integer=True)
        if self.placement not in LINK_PLACEMENTS:
            raise RidgeplanError("placement", f"unknown placement {self.placement!r}", LINK_PLACEMENTS)
        if self.prefill.arch.name != self.decode.arch.name:
            raise RidgeplanError("decode", "prefill and decode pools must serve the same model")

    @property
    def gpus(self) -> int:
        return (self.prefill_instances * self.prefill.layout.gpus_per_replica
                + self.decode_instances * self.decode.layout.gpus_per_replica)

    def cost_per_hour_usd(self) -> float | None:
        prices = [self.prefill.device.price, self.decode.device.price]
        if any(p is None for p in prices):
            return None
        return (self.prefill_instances * self.prefill.layout.gpus_per_replica * prices[0].usd_per_hour
                + self.decode_instances * self.decode.layout.gpus_per_replica * prices[1].usd_per_hour)


def kv_transfer_s(plan: DisaggPlan, input_len) -> np.ndarray:
    """Seconds to move one prompt's KV from a prefill instance to a decode instance."""
    i = np.asarray(input_len, dtype=float)
    b_kv = plan.decode.symbols()["b_kv"]
    nbytes = i * kv_bytes_per_token(plan.decode.arch, b_kv=b_kv)
    tiers = plan.prefill.tiers
    tier = tiers.intra if plan.placement == "same_node" or tiers.inter is None else tiers.inter
    senders = plan.prefill.layout.gpus_per_replica
    t = tier.latency_s + nbytes / (tier.bandwidth_bytes_per_s * senders)
    if plan.layerwise_kv_transfer:
        t = tier.latency_s + (t - tier.latency_s) / plan.decode.arch.num_layers
    return t


@dataclass(frozen=True)
class DisaggEstimate:
    plan: DisaggPlan
    workload: Workload
    rate_per_s: float
    prefill_capacity_per_s: float
    decode_capacity_per_s: float
    ttft_mean_s: float
    ttft_s: dict[float, float]
    tpot_s: float
    kv_transfer_s: float
    decode_concurrency: float
    sustainable: bool
    goodput_requests_per_s: float | None
    assumptions: tuple[str, ...] = field(default=())

    @property
    def bottleneck(self) -> str:
        return "prefill" if self.prefill_capacity_per_s < self.decode_capacity_per_s else "decode"

    def to_dict(self) -> dict[str, Any]:
        p = self.plan
        o = self.workload.lengths.mean_output
        return {
            "prefill_pool": {"gpu": p.prefill.device.id, "layout": p.prefill.layout.label(),
                             "instances": p.prefill_instances, "capacity_requests_per_s": self.prefill_capacity_per_s},
            "decode_pool": {"gpu": p.decode.device.id, "layout": p.decode.layout.label(),
                            "instances": p.decode_instances, "capacity_requests_per_s": self.decode_capacity_per_s,
                            "concurrency_per_instance": self.decode_concurrency},
            "gpus": p.gpus, "rate_per_s": self.rate_per_s, "sustainable": self.sustainable,
            "bottleneck": self.bottleneck,
            # an overloaded pool's queue grows without bound: TTFT is null with the reason, never inf. An
            # overloaded decode pool counts too: prefilled requests wait for decode slots holding their KV on the
            # prefill instances, which then stall
            "ttft_mean_s": _bounded(self.ttft_mean_s) if self.sustainable else None,
            "ttft_percentiles_s": {f"p{int(q * 100)}": _bounded(v) if self.sustainable else None
                                   for q, v in self.ttft_s.items()},
            **({} if self.sustainable else {"ttft_unbounded_reason": (
                f"the offered {self.rate_per_s:g} requests/s exceed the {self.bottleneck} pool's capacity "
                f"({min(self.prefill_capacity_per_s, self.decode_capacity_per_s):.4g} requests/s): the queue, and "
                "TTFT, grow without bound")}),
            "tpot_s": self.tpot_s, "kv_transfer_s": self.kv_transfer_s,
            "output_tokens_per_s": self.rate_per_s * o if self.sustainable else None,
            "output_tokens_per_s_per_gpu": self.rate_per_s * o / p.gpus if self.sustainable else None,
            "goodput_requests_per_s": self.goodput_requests_per_s,
            "goodput_requests_per_s_per_gpu": (self.goodput_requests_per_s / p.gpus
                                               if self.goodput_requests_per_s is not None else None),
            "cost_per_hour_usd": p.cost_per_hour_usd(),
            "assumptions": list(self.assumptions),
        }


def _prefill_service(plan: DisaggPlan, policy: EnginePolicy, input_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(latency of one prompt's prefill step, per-prompt service time when steps are batched to the budget)."""
    d = plan.prefill
    kw = dict(step_overhead_s=policy.step_overhead_s)
    single = iteration_cost(d, 0.0, 0.0, input_len, 1.0, 0.0, **kw).time_s
    per_step = np.maximum(np.floor(policy.max_num_batched_tokens / np.maximum(input_len, 1)), 1)
    batched = iteration_cost(d, 0.0, 0.0, input_len * per_step, per_step, 0.0, **kw).time_s
    return single, batched / per_step


def _decode_curve(plan: DisaggPlan, policy: EnginePolicy, i_mean: float, o_mean: float, points: int = 48):
    d = plan.decode
    cap = kv_capacity(d, policy, charged_context_tokens(policy.admission, i_mean, o_mean))
    n_max = float(min(cap.max_sequences[0], policy.max_num_seqs))
    if n_max < 1:
        raise RidgeplanError("decode", f"no sequence fits on the decode instance ({d.device.name}, {d.layout.label()})")
    grid = np.unique(np.round(np.geomspace(1, n_max, points)))
    ctx = float(mean_decode_context_tokens(i_mean, o_mean))
    t = iteration_cost(d, grid, ctx, 0.0, 0.0, 0.0, step_overhead_s=policy.step_overhead_s).time_s
    rate = grid / (max(o_mean - 1, 1) * t)
    return grid, t, rate


@dataclass(frozen=True)
class PrefillPoolState:
    capacity_per_s: float
    ttft_mean_s: float
    ttft_s: dict[float, float]
    kv_transfer_s: float
    utilization: float
    stable: bool


@dataclass(frozen=True)
class DecodePoolState:
    capacity_per_s: float
    tpot_s: float
    concurrency: float
    stable: bool


def prefill_pool(plan: DisaggPlan, workload: Workload, policy: EnginePolicy, rate_per_s: float,
                 percentiles=(0.5, 0.9, 0.99)) -> PrefillPoolState:
    """TTFT of the prefill pool at `rate_per_s` (queue + own prefill step + KV hand-off)."""
    lengths = workload.lengths
    w, i = lengths.weight, lengths.input_len * (1 - workload.prefix_hit_rate)
    single, service = _prefill_service(plan, policy, i)
    es, es2 = float(w @ service), float(w @ service**2)
    transfer = kv_transfer_s(plan, lengths.input_len)
    lam_p = rate_per_s / plan.prefill_instances
    rho = lam_p * es
    wq = float(mg1_wait_s(lam_p, es, es2))
    base = float(w @ (single + transfer))
    ttft = {p: float(wait_quantile_s(p, rho, wq)) + base for p in percentiles}
    return PrefillPoolState(plan.prefill_instances / es, wq + base, ttft, float(w @ transfer), float(rho), rho < 1)


def decode_pool(plan: DisaggPlan, workload: Workload, policy: EnginePolicy, rate_per_s: float) -> DecodePoolState:
    """Time per output token of the decode pool at `rate_per_s` (decode-only iterations)."""
    lengths = workload.lengths
    grid, t_dec, dec_rate = _decode_curve(plan, policy, lengths.mean_input, lengths.mean_output)
    lam_d = rate_per_s / plan.decode_instances
    stable = lam_d <= dec_rate.max()
    n = float(np.interp(lam_d, dec_rate, grid)) if stable else float(grid[-1])
    return DecodePoolState(plan.decode_instances * float(dec_rate.max()), float(np.interp(n, grid, t_dec)), n,
                           bool(stable))


def _bounded(seconds: float) -> float | None:
    return float(seconds) if np.isfinite(seconds) else None


def disaggregated(plan: DisaggPlan, workload: Workload, policy: EnginePolicy | str = "vllm", slo: SLO | None = None,
                  percentiles=(0.5, 0.9, 0.99)) -> DisaggEstimate:
    """Serve `workload` (a rate) on the two pools of `plan`."""
    policy = engine_policy(policy)
    slo = slo or SLO()
    if workload.rate_per_s is None:
        raise RidgeplanError("rate", "disaggregated serving needs a request rate (requests/s)")
    longest = float(workload.lengths.input_len.max())
    room = kv_capacity(plan.prefill, policy, longest)
    if room.max_sequences[0] < 1:  # an instance that cannot hold one prompt gets no latency
        short = float(room.kv_bytes_per_sequence[0] - room.kv_pool_bytes[0])
        raise DoesNotFitError("prefill", f"the prefill instance ({plan.prefill.device.name}, "
                              f"{plan.prefill.layout.label()}) does not fit a {longest:,.0f}-token prompt beside "
                              f"its weights: short by {short / 1e9:,.1f} GB per GPU; no latency is reported")
    pre = prefill_pool(plan, workload, policy, workload.rate_per_s, percentiles)
    dec = decode_pool(plan, workload, policy, workload.rate_per_s)
    good = None
    if not slo.empty:
        good = 0.0
        for rate in np.linspace(0, min(pre.capacity_per_s, dec.capacity_per_s), 200)[1:]:
            p = prefill_pool(plan, workload, policy, float(rate), (slo.attainment,))
            q = decode_pool(plan, workload, policy, float(rate))
            if not (p.stable and q.stable):
                break
            if (slo.ttft_s is None or p.ttft_s[slo.attainment] <= slo.ttft_s) and (slo.tpot_s is None or q.tpot_s <= slo.tpot_s):
                good = float(rate)
    notes = (*plan.prefill.assumptions(), policy.describe(),
             f"KV hand-off over the {'scale-up' if plan.placement == 'same_node' else 'scale-out'} link"
             + (" streamed layer by layer" if plan.layerwise_kv_transfer else ", after the prefill completes"),
             "prefill instances: M/G/1 queues with batched prefill steps; decode instances carry no prefill work")
    return DisaggEstimate(plan, workload, workload.rate_per_s, pre.capacity_per_s, dec.capacity_per_s,
                          pre.ttft_mean_s, pre.ttft_s, dec.tpot_s, pre.kv_transfer_s, dec.concurrency,
                          pre.stable and dec.stable, good, notes)
