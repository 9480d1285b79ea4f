"""Mixture-of-Experts pieces the operator graph does not carry: expert-parallel all-to-all
with a local fraction and per-exchange byte widths, the EP-bound decode ceiling, null-expert routing, expert
offload with a cache hit rate, and the cost of an expert placement.

The graph itself models uniform routing (p_local = 1/EP, dispatch and combine at the activation width); the
functions here take the routing locality, the number of exchanges and their widths as inputs:

    bytes sent per GPU per MoE layer = T_gpu * k * d * sum_j(b_j) * (1 - p_local)
    all-to-all time                  = (EP - 1) * alpha + bytes / beta            (per exchange)
    EP-bound time per token          = layers * micro_batches * bytes / beta      (comm hidden behind nothing)
    offloaded MoE step               = T_compute + (1 - h) * bytes_needed / beta_link    (serialized)
                                     = max(T_compute, (1 - h) * bytes_needed / beta_link) (prefetched)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError
from model.roofline.collectives import Tier, collective_time


def all_to_all_bytes(tokens, top_k, hidden, *, exchange_bytes: Sequence[float] = (2.0, 2.0),
                     local_fraction=0.0) -> np.ndarray:
    """Bytes one GPU sends to other GPUs in one MoE layer.

    `tokens`: tokens on the GPU; `top_k`: experts each token visits (routed + any shared expert that is sent);
    `exchange_bytes`: bytes per element of each all-to-all of the layer (dispatch, combine: (2, 2) for BF16 both
    ways, (1, 2) for FP8 dispatch + BF16 combine, one entry for context-coherent EP as in ExFlow);
    `local_fraction`: share of token-expert pairs whose expert sits on the same GPU (1/EP under uniform routing).
    """
    p = np.asarray(local_fraction, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise RidgeplanError("local_fraction", f"must be in [0, 1], got {local_fraction}")
    if not exchange_bytes:
        raise RidgeplanError("exchange_bytes", "needs at least one all-to-all per layer")
    per_pair = np.asarray(tokens, dtype=float) * np.asarray(top_k, dtype=float) * np.asarray(hidden, dtype=float)
    return per_pair * float(sum(exchange_bytes)) * (1 - p)


def all_to_all_s(tokens, top_k, hidden, ep, *, intra: Tier, inter: Tier | None = None, ranks_per_node=None,
                 exchange_bytes: Sequence[float] = (2.0, 2.0), local_fraction=None) -> np.ndarray:
    """Seconds of the all-to-alls of one MoE layer on one GPU of an EP group of `ep` ranks.

    Each exchange is the library's all-to-all (`collective_time`, one or two link tiers) over a message of
    T k d b bytes, whose off-GPU volume (EP - 1)/EP of the message under uniform routing is rescaled to
    (1 - local_fraction) (default: uniform, 1/EP local)."""
    ep_arr = np.asarray(ep, dtype=float)
    p = 1.0 / ep_arr if local_fraction is None else np.asarray(local_fraction, dtype=float)
    uniform_remote = np.where(ep_arr > 1, (ep_arr - 1) / ep_arr, 1.0)
    scale = (1 - p) / uniform_remote
    total = 0.0
    for b in exchange_bytes:
        message = np.asarray(tokens, dtype=float) * top_k * hidden * b * scale
        total = total + collective_time("all_to_all", message, ep_arr, intra=intra, inter=inter,
                                        ranks_per_node=ranks_per_node)
    return np.asarray(total)


@dataclass(frozen=True)
class EPBound:
    """Decode time per token when every MoE layer waits on its all-to-alls (compute fully overlapped)."""

    layer_comm_s: float  # one micro-batch's all-to-alls of one layer
    tpot_s: float
    tokens_per_s: float


def ep_bound_decode(bytes_per_layer: float, bandwidth_bytes_per_s: float, layers: int,
                    micro_batches: int = 2) -> EPBound:
    """The EP-communication floor of decode: with `micro_batches` micro-batches overlapping compute and
    communication (DeepSeek's dual micro-batch), a layer takes micro_batches x the all-to-all time of one."""
    if bandwidth_bytes_per_s <= 0 or layers < 1 or micro_batches < 1:
        raise RidgeplanError("ep_bound", "bandwidth, layers and micro_batches must be positive")
    per = bytes_per_layer / bandwidth_bytes_per_s
    tpot = per * micro_batches * layers
    return EPBound(per, tpot, 1.0 / tpot)


def null_expert_speedup(slot_fraction) -> np.ndarray:
    """Expert-forward throughput gain when only `slot_fraction` (tau) of the top-k slots go to real FFN experts
    and the rest to zero/copy/constant experts of negligible cost (MoE++): 1 / tau."""
    tau = np.asarray(slot_fraction, dtype=float)
    if np.any((tau <= 0) | (tau > 1)):
        raise RidgeplanError("slot_fraction", f"must be in (0, 1], got {slot_fraction}")
    return 1.0 / tau


def slot_fraction_for_speedup(speedup) -> np.ndarray:
    """Inverse of `null_expert_speedup`: the FFN-slot fraction tau a throughput gain implies."""
    s = np.asarray(speedup, dtype=float)
    if np.any(s < 1):
        raise RidgeplanError("speedup", f"must be >= 1, got {speedup}")
    return 1.0 / s


def remote_fraction_for_saving(saving, exchanges_before: int = 2, exchanges_after: int = 1) -> np.ndarray:
    """Off-GPU fraction (relative to the baseline's) needed for a routing-latency saving when the number of
    all-to-alls per layer also drops from `exchanges_before` to `exchanges_after` (ExFlow: 2 -> 1):
    1 - saving = (after / before) x (remote_after / remote_before)."""
    ratio = exchanges_after / exchanges_before
    return (1 - np.asarray(saving, dtype=float)) / ratio


def routing_saving(exchanges_before: int = 2, exchanges_after: int = 1, remote_ratio=1.0) -> np.ndarray:
    """Saving of off-GPU routing bytes when the all-to-alls per layer drop from `exchanges_before` to
    `exchanges_after` and the off-GPU share becomes `remote_ratio` x the baseline's: 1 - (after/before) x ratio."""
    return 1 - exchanges_after / exchanges_before * np.asarray(remote_ratio, dtype=float)


def offloaded_step_s(compute_s, bytes_needed, link_bytes_per_s, hit_rate=0.0, *, prefetch: bool = False) -> np.ndarray:
    """Step time with experts fetched over a link: misses (1 - h) of `bytes_needed` cross it, either after the
    compute that needs them (serialized, load-on-demand) or overlapped with it (prefetched)."""
    h = np.asarray(hit_rate, dtype=float)
    if np.any((h < 0) | (h > 1)):
        raise RidgeplanError("hit_rate", f"must be in [0, 1], got {hit_rate}")
    transfer = (1 - h) * np.asarray(bytes_needed, dtype=float) / link_bytes_per_s
    c = np.asarray(compute_s, dtype=float)
    return np.maximum(c, transfer) if prefetch else c + transfer


@dataclass(frozen=True)
class PlacementCost:
    """One MoE layer's time under an expert placement."""

    expert_s: float  # expert compute on the busiest GPU
    all_to_all_s: float
    local_fraction: float

    @property
    def total_s(self) -> float:
        return self.expert_s + self.all_to_all_s


def placement_cost(placement, affinity_total: float, tokens_per_gpu: float, top_k: int, hidden: int, gpus: int,
                   balanced_expert_s: float, *, intra: Tier, inter: Tier | None = None, ranks_per_node=None,
                   exchange_bytes: Sequence[float] = (2.0, 2.0)) -> PlacementCost:
    """Layer time of a `model.planner.experts.Placement`: the expert compute of a perfectly balanced layer
    (`balanced_expert_s`) times the placement's imbalance, plus the all-to-alls at the placement's local fraction,
    1 - cross-GPU tokens / `affinity_total` (all tokens moving between the two layers' experts)."""
    local = float(np.clip(1 - placement.cross_gpu_tokens / max(float(affinity_total), 1e-9), 0.0, 1.0))
    a2a = float(all_to_all_s(tokens_per_gpu, top_k, hidden, gpus, intra=intra, inter=inter,
                             ranks_per_node=ranks_per_node, exchange_bytes=exchange_bytes, local_fraction=local))
    return PlacementCost(balanced_expert_s * placement.imbalance, a2a, local)


def affinity_placement(affinity, gpus: int, first_layer=None) -> tuple[np.ndarray, np.ndarray]:
    """Place the experts of layer l + 1 given layer l's placement (round-robin by default) so that the tokens
    staying on their GPU, sum A[e, f] [gpu(e) == gpu(f)], are as many as possible with E / gpus experts per GPU.

    With layer l fixed this is a transportation problem, solved exactly as an assignment of layer-(l + 1)
    experts to GPU slots (scipy's linear_sum_assignment). Returns (GPU of each layer-l expert, GPU of each
    layer-(l + 1) expert), the inputs model.planner.experts.evaluate_placement takes."""
    from scipy.optimize import linear_sum_assignment

    aff = np.asarray(affinity, dtype=float)
    e_a, e_b = aff.shape
    if gpus < 1 or e_b % gpus or e_a % gpus:
        raise RidgeplanError("gpus", f"must divide the expert counts ({e_a}, {e_b})")
    a = np.arange(e_a) % gpus if first_layer is None else np.asarray(first_layer, dtype=int)
    # mass from each layer-(l+1) expert's sources that sit on each GPU
    to_gpu = np.stack([aff[a == g].sum(axis=0) for g in range(gpus)], axis=1)  # (e_b, gpus)
    slots = e_b // gpus
    cost = -np.repeat(to_gpu, slots, axis=1)  # (e_b, gpus * slots)
    rows, cols = linear_sum_assignment(cost)
    b = np.empty(e_b, dtype=int)
    b[rows] = cols // slots
    return a, b
