"""Long-context capacity.

- The four metrics of a context of S tokens: prefill time (quadratic in S through attention); concurrency
  N_conc = floor((M - W_b - A_work) / KV_req(S)); decode step (W_b + N KV_req(S)) / BW; context switch
  KV_req(S) / beta_PCIe.
- Pooled KV across instances (DistAttention): a request may keep its KV in its own pool and in the free pools
  of the other n - 1 instances; with a share f of each lender's pool free, S_max = S_own (1 + (n - 1) f).
  Remote shards return partial attention (output, max, sum): about n_h (d_h + 2) b bytes per token per layer
  per remote shard, instead of moving 2 n_kv d_h b bytes per remote token per layer.
- Low-rank keys on the GPU and values on the host (ShadowKV): the GPU keeps per token L r b bytes of low-rank
  pre-RoPE keys plus chunk landmarks L n_kv d_h b / chunk and a few outlier tokens in full; per sequence it
  keeps the r x (n_kv d_h) projections and the reconstructed working set of K_b tokens. Each decode step scans
  the landmarks, rebuilds K for the K_b selected tokens (2 K_b r n_kv d_h FLOPs per layer) and fetches their V
  over PCIe (K_b L n_kv d_h b bytes, less the share already on the GPU from the previous step), the fetch
  overlapped with the rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.operators.memory import kv_bytes_per_token
from model.serving.batching import kv_capacity
from model.serving.deployment import Deployment
from model.serving.policy import EnginePolicy
from model.roofline.kernel import gemm_time, memory_time


def _softmax(d: Deployment):
    for g in d.arch.groups:
        if g.attention.kind == "softmax":
            return g.attention
    raise RidgeplanError("model", f"{d.arch.name} has no softmax attention layers")


def host_link_bytes_per_s(d: Deployment) -> float:
    from model.hardware.db import get_link

    if d.device.host_link is None:
        raise RidgeplanError("host_link", f"{d.device.name} has no host link in its hardware file")
    return d.device.host_link.bandwidth_bytes_per_s_per_direction * get_link(d.device.host_link.link).bus_efficiency


@dataclass(frozen=True)
class LongContextMetrics:
    context: int
    prefill_s: float
    kv_bytes_per_sequence: float  # per GPU
    concurrency: int  # sequences of this context whose KV fits
    decode_step_s: float  # one decode step with `concurrency` sequences (1 if none fit)
    context_switch_s: float  # one sequence's KV over the host link


def long_context_metrics(d: Deployment, policy: EnginePolicy, context: int) -> LongContextMetrics:
    require_positive("context", context, integer=True)
    cap = kv_capacity(d, policy, context)
    n = int(cap.max_sequences[0])
    kv = float(cap.kv_bytes_per_sequence[0])
    prefill = float(d.step(1, context, 0).time_s[0])
    step = float(d.step(max(n, 1), 1, context - 1).time_s[0])
    return LongContextMetrics(context, prefill, kv, n, step, kv / host_link_bytes_per_s(d))


def max_context_tokens(d: Deployment, policy: EnginePolicy) -> float:
    """Tokens of one sequence whose KV fits the deployment's own KV pool (per GPU pool / per-GPU KV per token)."""
    probe = 65_536
    cap = kv_capacity(d, policy, probe)
    per_token = float(cap.kv_bytes_per_sequence[0]) / probe
    return max(float(cap.kv_pool_bytes[0]), 0.0) / per_token


@dataclass(frozen=True)
class PooledContext:
    own_tokens: float  # longest context in the request's own instance
    pooled_tokens: float  # with the lenders' free pools
    instances: int
    lend_fraction: float

    @property
    def multiplier(self) -> float:
        return self.pooled_tokens / self.own_tokens


def pooled_context(d: Deployment, policy: EnginePolicy, instances: int, lend_fraction: float = 1.0) -> PooledContext:
    """Longest context when `instances` identical instances pool their KV memory, each lender sparing
    `lend_fraction` of its pool."""
    require_positive("instances", instances, integer=True)
    if not 0 <= lend_fraction <= 1:
        raise RidgeplanError("lend_fraction", f"must be in [0, 1], got {lend_fraction}")
    own = max_context_tokens(d, policy)
    return PooledContext(own, own * (1 + (instances - 1) * lend_fraction), instances, lend_fraction)


def merge_traffic_ratio(d: Deployment, remote_tokens: float) -> float:
    """Bytes a remote shard returns per query token per layer (partial output + max + sum, n_h (d_h + 2) b)
    over the KV bytes of its `remote_tokens` tokens that moving the KV instead would cost (2 n_kv d_h b each)."""
    a = _softmax(d)
    b = d.symbols()["b_a"]
    merge = a.num_heads * (a.v_head_dim + 2) * b
    moved = remote_tokens * a.kv_width * d.symbols()["b_kv"]
    return merge / moved


# ---------------------------------------------------------------------------------------------------------
# low-rank keys on the GPU, values on the host

@dataclass(frozen=True)
class LowRankOffload:
    context: int
    full_bytes_per_sequence: float  # full K and V on the GPU
    resident_bytes_per_sequence: float  # low-rank K + landmarks + outliers + projections + working set
    max_batch_full: int
    max_batch: int
    step_s: float  # decode step at max_batch
    full_step_s: float  # full-attention decode step at max_batch_full
    fetch_s: float  # V fetch over PCIe per step (after cache reuse)
    rebuild_s: float  # K reconstruction per step
    landmark_s: float  # landmark scan per step

    @property
    def batch_multiplier(self) -> float:
        return self.max_batch / max(self.max_batch_full, 1)

    @property
    def throughput_gain(self) -> float:
        return (self.max_batch / self.step_s) / (self.max_batch_full / self.full_step_s)


def low_rank_offload(d: Deployment, policy: EnginePolicy, context: int, rank: int, chunk_tokens: int,
                     budget_tokens: int, outlier_tokens: int = 0, reuse: float = 0.0,
                     pcie_bytes_per_s: float | None = None) -> LowRankOffload:
    """Batch and decode step of low-rank-K / offloaded-V decoding against full attention at `context` tokens
    (single GPU). `reuse`: share of the selected tokens' V already on the GPU from the previous step."""
    for name, v in (("context", context), ("rank", rank), ("chunk_tokens", chunk_tokens),
                    ("budget_tokens", budget_tokens)):
        require_positive(name, v, integer=True)
    if d.layout.gpus_per_replica != 1:
        raise RidgeplanError("layout", "the low-rank offload model is for one GPU per replica")
    if not 0 <= reuse < 1:
        raise RidgeplanError("reuse", f"must be in [0, 1), got {reuse}")
    a = _softmax(d)
    layers = d.arch.num_layers
    b = d.symbols()["b_kv"]
    kv_dim = a.num_kv_heads * a.head_dim
    full_tok = kv_bytes_per_token(d.arch, b_kv=b)
    per_token = layers * rank * b + layers * kv_dim * b / chunk_tokens
    per_seq_fixed = (layers * rank * kv_dim * b  # the per-sequence projection back to n_kv d_h
                     + (outlier_tokens + budget_tokens) * full_tok)  # outliers in full + rebuilt working set
    resident = context * per_token + per_seq_fixed
    cap = kv_capacity(d, policy, context)
    pool = float(cap.kv_pool_bytes[0])
    full = float(cap.kv_bytes_per_sequence[0])
    n_full = int(cap.max_sequences[0])
    n = int(max(np.floor(pool / resident), 0))
    if n < 1 or n_full < 1:
        raise RidgeplanError("memory", "no sequence fits at this context")
    # a step: weights and attention over the K_b selected tokens, plus the landmark scan, the rebuild and the fetch
    base = float(d.step(n, 1, budget_tokens + outlier_tokens).time_s[0])
    landmarks = n * context / chunk_tokens * layers * kv_dim * b
    landmark_s = float(memory_time(landmarks / layers, bandwidth_bytes_per_s=d.device.memory.bandwidth_bytes_per_s,
                                   eff=d.eff, kernels=0.0).busy_s) * layers  # the scan rides in the attention kernel
    # per layer, rebuilding the selected K/V: (n x K_b tokens) @ (rank x kv_dim) on the attention path
    rebuild_s = layers * float(gemm_time(n * budget_tokens, kv_dim, rank, device=d.device,
                                         dtype=d.resolved.attention_dtype, eff=d.eff, bytes_per_weight=b).time_s)
    pcie = pcie_bytes_per_s if pcie_bytes_per_s is not None else host_link_bytes_per_s(d)
    fetch_s = n * (1 - reuse) * budget_tokens * layers * a.num_kv_heads * a.v_head_dim * b / pcie
    step = base + landmark_s + max(rebuild_s, fetch_s)
    full_step = float(d.step(n_full, 1, context - 1).time_s[0])
    return LowRankOffload(context, full, resident, n_full, n, step, full_step, fetch_s, rebuild_s, landmark_s)
