"""Closed-form attention costs the operator graph does not carry: dynamic top-k attention
with a hierarchical selection (HiP), and the HBM traffic of IO-aware (Flash) attention as a function of SRAM.

Conventions follow model.operators.formulas: one (query, key) pair costs 2 d_qk (QK^T) + 2 d_v (AV) FLOPs per
head; scoring a key alone costs 2 d_qk.

Hierarchical top-k (HiP-style): the T keys are split into k chunks; each of ceil(log2(T / k)) rounds halves every
kept chunk, scores one representative key per half (2k scores) and keeps the best k. A query then attends to the
k selected keys:
    FLOPs per query and head = 2 d_qk * 2k * ceil(log2(T / k)) + (2 d_qk + 2 d_v) * k
so dense / top-k ~ T / (k (1 + log2(T / k))), i.e. it grows about as T / (k log T). The KV cache still holds all T
keys (only reads shrink).

IO-aware attention (FlashAttention, and its lower bound): with M elements of on-chip SRAM per tile, HBM traffic
is Theta(N^2 d^2 / M) elements per head for M >= d^2; FLOPs are 4 N^2 d, so the intensity is about 4 M / d FLOP
per element (4 M / (d b) per byte). Attention is compute-bound when that exceeds the ridge F / BW.
"""

from __future__ import annotations

import numpy as np

from model.errors import RidgeplanError


def pair_flops(d_qk: int, d_v: int | None = None) -> float:
    """FLOPs of one (query, key) pair of one head: QK^T plus AV."""
    return 2.0 * d_qk + 2.0 * (d_qk if d_v is None else d_v)


def selection_rounds(context, k) -> np.ndarray:
    """Halving rounds of a hierarchical top-k over `context` keys: ceil(log2(T / k)), 0 when T <= k."""
    t = np.asarray(context, dtype=float)
    return np.where(t > k, np.ceil(np.log2(np.maximum(t, k) / k)), 0.0)


def dense_attention_flops(context, heads: int, d_qk: int, d_v: int | None = None) -> np.ndarray:
    """FLOPs of one query attending to `context` keys (all heads)."""
    return heads * pair_flops(d_qk, d_v) * np.asarray(context, dtype=float)


def topk_attention_flops(context, k: int, heads: int, d_qk: int, d_v: int | None = None) -> np.ndarray:
    """FLOPs of one query under hierarchical top-k attention: 2k representative scores per round plus attention
    over min(k, T) keys (all heads)."""
    if k < 1:
        raise RidgeplanError("k", f"must be >= 1, got {k}")
    t = np.asarray(context, dtype=float)
    select = 2.0 * d_qk * 2 * k * selection_rounds(t, k)
    attend = pair_flops(d_qk, d_v) * np.minimum(t, k)
    return heads * (select + attend)


def flash_attention_hbm_elements(seq_len, head_dim: int, sram_elements: float) -> np.ndarray:
    """HBM elements moved per head by IO-aware attention over N tokens: N^2 d^2 / M (valid for M >= d^2)."""
    if sram_elements < head_dim ** 2:
        raise RidgeplanError("sram_elements", f"the N^2 d^2 / M bound needs M >= d^2 = {head_dim ** 2}")
    n = np.asarray(seq_len, dtype=float)
    return n * n * head_dim ** 2 / sram_elements


def flash_attention_intensity(head_dim: int, sram_bytes: float, bytes_per_element: float = 2.0) -> float:
    """FLOP per HBM byte of IO-aware attention: 4 N^2 d / (N^2 d^2 / M) / b = 4 M / (d b), M in elements."""
    m = sram_bytes / bytes_per_element
    if m < head_dim ** 2:
        raise RidgeplanError("sram_bytes", f"{sram_bytes:.0f} B holds fewer than d^2 = {head_dim ** 2} elements")
    return 4.0 * m / head_dim / bytes_per_element
