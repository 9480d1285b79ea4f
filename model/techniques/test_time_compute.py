"""Test-time compute accounting.

- FLOPs matching: N samples of T tokens from a model of P_s parameters cost N 2 P_s T FLOPs; one sample from a
  model of P_L costs 2 P_L T, so at equal generated tokens N = P_L / P_s. Amortising pre-training (6 P D for D
  training tokens) over Q queries changes it to N = (6 P_L D_L / Q + 2 P_L T - 6 P_s D_s / Q) / (2 P_s T).
- Memory-aware cost per generated token (Kinetics' eFLOPs): 2 P_act + attention FLOPs + I (W_b / B + S KV_tok),
  with I = F / BW the device's ridge point, so bytes are charged at the FLOPs they could have bought. A sparse
  attention budget reads min(S, budget) tokens of KV. A sequence's KV equals the weights at
  S* = W_b / KV_tok, far shorter for small models.
- Parallel streams over shared weights (ParScale): P streams decode like a batch of P sequences: weights read
  once, FLOPs and KV x P. ParScale's law equates P streams with N (k ln P + 1) parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.operators.memory import kv_bytes_per_token
from model.serving.deployment import Deployment
from model.techniques.phases import model_weight_bytes


def flops_matched_samples(params_small: float, params_large: float, tokens: float | None = None, *,
                          pretrain_tokens_small: float = 0.0, pretrain_tokens_large: float = 0.0,
                          queries: float = 1.0) -> float:
    """Samples from the small model that cost the FLOPs of one sample from the large one (equal tokens).
    Inference only (no pre-training tokens): P_L / P_s. With pre-training amortised over `queries`
    queries of `tokens` generated tokens each: see the module doc."""
    require_positive("params_small", params_small)
    require_positive("params_large", params_large)
    if not pretrain_tokens_small and not pretrain_tokens_large:
        return params_large / params_small
    if tokens is None:
        raise RidgeplanError("tokens", "the pre-training rule needs the tokens generated per query")
    require_positive("queries", queries)
    large = 6 * params_large * pretrain_tokens_large / queries + 2 * params_large * tokens
    small_fixed = 6 * params_small * pretrain_tokens_small / queries
    return (large - small_fixed) / (2 * params_small * tokens)


def kv_weight_crossover_tokens(d: Deployment) -> float:
    """Context at which one sequence's KV cache equals the model's weight bytes: W_b / KV_tok."""
    kv = kv_bytes_per_token(d.arch, b_kv=d.symbols()["b_kv"])
    return model_weight_bytes(d) / kv


@dataclass(frozen=True)
class EffectiveFlops:
    compute_flops: float  # 2 P_act + attention, per generated token
    memory_flops: float  # I x bytes per generated token
    dense_memory_flops: float  # the weights' share of memory_flops

    @property
    def total(self) -> float:
        return self.compute_flops + self.memory_flops


def effective_flops(d: Deployment, context: float, batch: float = 1.0,
                    kv_budget: float | None = None) -> EffectiveFlops:
    """Kinetics-style cost of one generated token at `context` cached tokens in a batch of `batch` sequences;
    `kv_budget` caps the tokens attention reads (sparse attention). FLOPs and bytes come from the operator
    graph (weights shared by the batch), I = dense peak / bandwidth of the deployment's device."""
    require_positive("batch", batch)
    seen = float(context) if kv_budget is None else min(float(context), float(kv_budget))
    ops = d.graph.evaluate({**d.symbols(), "B": float(batch), "T": 1.0, "C": seen})
    counts = d.counts.sum(axis=0)
    flops = float(counts @ ops.flops[:, 0]) / batch
    weights = float(counts @ ops.weight_bytes[:, 0]) / batch
    other = float(counts @ (ops.act_bytes[:, 0] + ops.kv_read_bytes[:, 0] + ops.kv_write_bytes[:, 0])) / batch
    ridge = d.device.peak(d.resolved.dense_dtype) / d.device.memory.bandwidth_bytes_per_s
    return EffectiveFlops(flops, ridge * (weights + other), ridge * weights)


def parscale_equivalent_params(params: float, streams: int, k: float) -> float:
    """Parameters a dense model needs to match P parallel streams: N (k ln P + 1)."""
    require_positive("streams", streams, integer=True)
    return params * (k * math.log(streams) + 1)


@dataclass(frozen=True)
class StreamsCost:
    step_s: np.ndarray  # one decode step: `batch` requests x `streams` streams
    kv_bytes: np.ndarray  # KV of the batch (x streams)


def parallel_streams(d: Deployment, streams: int, batch, context) -> StreamsCost:
    """P streams per request over shared weights: a decode step runs batch x P sequences."""
    require_positive("streams", streams, integer=True)
    b = np.asarray(batch, dtype=float) * streams
    st = d.step(b, 1, context)
    return StreamsCost(st.time_s, st.memory.kv_cache_bytes)
