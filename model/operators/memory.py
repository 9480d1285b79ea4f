"""Memory per rank: resident weights, KV cache / recurrent state, and activation workspace.

All three come from the operator graph's own quantities (`resident_bytes`, `cache_bytes`, `act_bytes`), so a
weight or a cache line is defined once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from model.architecture.config import Architecture
from model.operators.compiled import OpArrays, compile_graph


@dataclass(frozen=True)
class MemoryArrays:
    """Bytes per rank, one value per scenario."""

    weights_bytes: np.ndarray
    kv_cache_bytes: np.ndarray
    activation_bytes: np.ndarray

    @property
    def total_bytes(self) -> np.ndarray:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes


def memory_per_rank(ops: OpArrays, layer_fraction: np.ndarray | float = 1.0) -> MemoryArrays:
    """Weights and cache of all operators (x their counts), and the step's activation workspace.

    The workspace is the largest single operator's inputs plus outputs plus the residual stream held across it
    (two activations of the hidden size per token): what an engine's profiling pass reserves.
    """
    weights = ops.counts @ ops.resident_bytes
    cache = ops.counts @ ops.cache_bytes
    act = ops.act_bytes.max(axis=0)
    return MemoryArrays(weights_bytes=np.asarray(weights * layer_fraction), kv_cache_bytes=np.asarray(cache * layer_fraction),
                        activation_bytes=np.asarray(act))


def kv_cache_bytes(arch: Architecture, context_tokens, *, batch=1, b_kv=2.0, tp=1, b_state=4.0) -> np.ndarray:
    """KV cache (and recurrent state) bytes per rank for `batch` sequences of `context_tokens` tokens."""
    ctx = np.asarray(context_tokens, dtype=float)
    ops = compile_graph(arch).evaluate(B=batch, T=1, C=np.maximum(ctx - 1, 0), b_kv=b_kv, tp=tp, b_state=b_state)
    return ops.counts @ ops.cache_bytes


def kv_bytes_per_token(arch: Architecture, *, b_kv=2.0, tp=1) -> float:
    """KV bytes one new token adds across all layers (window and linear layers included at short context).
    Remembered per (model, KV width, TP): the planner asks it for every candidate of every traffic shape."""
    return _kv_bytes_per_token(arch, float(b_kv), float(tp))


@lru_cache(maxsize=1024)
def _kv_bytes_per_token(arch: Architecture, b_kv: float, tp: float) -> float:
    ops = compile_graph(arch).evaluate(B=1, T=1, C=0, b_kv=b_kv, tp=tp)
    return float(ops.counts @ ops.kv_write_bytes[:, 0] - _state_writes(ops))


def _state_writes(ops: OpArrays) -> float:
    """Recurrent-state rewrites counted in kv_write_bytes that do not grow with tokens (linear attention)."""
    rows = [i for i, op in enumerate(ops.ops) if op.kind == "linear_attention" or op.name == "short_conv"]
    return float(sum(ops.counts[i] * ops.kv_write_bytes[i, 0] for i in rows))
