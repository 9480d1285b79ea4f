"""Multi-adapter serving, co-serving and many-model hosting.

- LoRA of rank r on a matrix d_in x d_out: r (d_in + d_out) parameters; per token 2 r (d_in + d_out) extra FLOPs
  when unmerged (A then B). Adapters live in host memory and are fetched over the host link on a miss; the
  GPU pool holds weights, KV and the resident adapters.
- Co-serving fine-tuning: an iteration that must finish within the TBT SLO has room for more tokens than the
  inference decodes use; the spare forward tokens go to fine-tuning (a training token costs about 3 forward
  tokens: forward, and backward twice the forward).
- Many-model hosting: switching a model in costs its bytes over the tier -> HBM bandwidth; the footprint of a
  model collection is ceil(sum bytes / node capacity) nodes; the traffic-weighted average active parameters
  sum_i p_i P_i price the blend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.architecture.config import Architecture
from model.errors import RidgeplanError, require_positive
from model.serving.batching import iteration_cost
from model.serving.deployment import Deployment

TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


def lora_shapes(arch: Architecture, targets=("q", "k", "v", "o")) -> list[tuple[int, int, int]]:
    """(d_in, d_out, layers) of every adapted matrix kind, from the architecture."""
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise RidgeplanError("lora_targets", f"unknown target {sorted(unknown)[0]!r}", TARGETS)
    d = arch.hidden_size
    out = []
    for g in arch.groups:
        a, m = g.attention, g.mlp
        layers = g.count
        shapes = {"q": (d, a.num_heads * a.head_dim), "k": (d, a.num_kv_heads * a.head_dim),
                  "v": (d, a.num_kv_heads * a.v_head_dim), "o": (a.num_heads * a.v_head_dim, d)}
        if m.kind == "dense":
            inter = m.intermediate_size
            shapes.update({"up": (d, inter), "down": (inter, d)})
            if m.gated:
                shapes["gate"] = (d, inter)
        for t in targets:
            if t in shapes:
                out.append((*shapes[t], layers))
    return out


def lora_adapter_bytes(arch: Architecture, rank: int, targets=("q", "k", "v", "o"),
                       bytes_per_param: float = 2.0) -> float:
    """Bytes of one LoRA adapter: sum over adapted matrices of r (d_in + d_out) x bytes."""
    require_positive("rank", rank, integer=True)
    return float(sum(rank * (i + o) * n for i, o, n in lora_shapes(arch, targets))) * bytes_per_param


def lora_flops_per_token(arch: Architecture, rank: int, targets=("q", "k", "v", "o")) -> float:
    """Extra FLOPs per token of an unmerged adapter: 2 r (d_in + d_out) per adapted matrix."""
    require_positive("rank", rank, integer=True)
    return float(sum(2 * rank * (i + o) * n for i, o, n in lora_shapes(arch, targets)))


def adapters_on_gpu(free_bytes: float, adapter_bytes: float) -> int:
    """Adapters that fit in `free_bytes` of GPU memory left beside the weights and the KV the load needs."""
    require_positive("adapter_bytes", adapter_bytes)
    return max(int(free_bytes // adapter_bytes), 0)


def fetch_s(nbytes: float, link_bytes_per_s: float) -> float:
    require_positive("link_bytes_per_s", link_bytes_per_s)
    return nbytes / link_bytes_per_s


@dataclass(frozen=True)
class CoServing:
    inference_tokens: float  # decode tokens per iteration
    max_tokens: float  # tokens per iteration that still meet the TBT SLO
    iteration_s: float  # at max_tokens

    @property
    def spare_tokens(self) -> float:
        return max(self.max_tokens - self.inference_tokens, 0.0)

    @property
    def finetune_tokens_per_s(self) -> float:
        """Training tokens per second from the spare forward tokens (a training token ~ 3 forward tokens)."""
        return self.spare_tokens / 3.0 / self.iteration_s if self.iteration_s > 0 else 0.0


def coserving(d: Deployment, decode_seqs: float, context: float, tbt_slo_s: float,
              max_tokens: float = 65536) -> CoServing:
    """Largest number of extra (fine-tuning forward) tokens an iteration of `decode_seqs` decodes can carry
    within `tbt_slo_s`, found by bisection on the iteration cost."""
    require_positive("tbt_slo_s", tbt_slo_s)

    def t(extra: float) -> float:
        return float(iteration_cost(d, decode_seqs, context, extra, 1.0 if extra > 0 else 0.0, 0.0).time_s[0])

    if t(0.0) > tbt_slo_s:
        return CoServing(decode_seqs, decode_seqs, t(0.0))
    lo, hi = 0.0, float(max_tokens)
    if t(hi) <= tbt_slo_s:
        return CoServing(decode_seqs, decode_seqs + hi, t(hi))
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t(mid) <= tbt_slo_s else (lo, mid)
    return CoServing(decode_seqs, decode_seqs + lo, t(lo))


def hosting_footprint(model_bytes, node_capacity_bytes: float) -> int:
    """Nodes needed to hold every model at once: ceil(sum bytes / capacity)."""
    require_positive("node_capacity_bytes", node_capacity_bytes)
    return math.ceil(float(np.sum(model_bytes)) / node_capacity_bytes)


def switch_s(model_bytes, tier_bytes_per_s: float) -> np.ndarray:
    """Seconds to bring a model from a tier into HBM."""
    require_positive("tier_bytes_per_s", tier_bytes_per_s)
    return np.asarray(model_bytes, dtype=float) / tier_bytes_per_s


def blended_active_params(shares, params) -> float:
    """Traffic-weighted average active parameters sum_i p_i P_i (shares normalised to 1)."""
    p = np.asarray(shares, dtype=float)
    if p.sum() <= 0 or np.any(p < 0):
        raise RidgeplanError("shares", "must be >= 0 and not all zero")
    return float((p / p.sum()) @ np.asarray(params, dtype=float))
