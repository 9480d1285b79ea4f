"""Sequence / context parallelism for long prompts: ring attention and all-to-all (Ulysses) styles.

A prompt of S tokens is split over `cp` ranks (each also `tp`-way tensor parallel as in the deployment).
- Every rank runs the token-parallel layers on S/cp tokens and holds 1/cp of the KV cache.
- Ring attention: per layer, cp - 1 steps each pass a K/V block of 2 (S/cp) n_kv d_h b_kv bytes to the next rank
  while attending to the block in hand; a step's transfer hides behind its block's attention compute, so the
  exposed time per layer is (cp - 1) x max(0, t_block_transfer - t_block_compute). Causal load balance
  (zig-zag) gives every rank 1/cp of the attention FLOPs.
- Ulysses (all-to-all): per layer an all-to-all of Q, K, V (S/cp tokens x (h + 2 h_kv) d_h) before attention and
  one of the output (S/cp x h d_h) after, switching between sequence and head sharding; needs heads divisible by
  cp. Volume per rank is constant when S/cp is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.roofline.collectives import collective_time
from model.serving.deployment import Deployment

STYLES = ("ring", "ulysses")


@dataclass(frozen=True)
class ContextParallelPrefill:
    style: str
    cp: int
    seq_len: int
    compute_s: float  # per rank: token-parallel layers on S/cp tokens plus 1/cp of the attention
    communication_s: float  # all layers, before overlap
    exposed_communication_s: float  # what overlap cannot hide
    bytes_per_rank_per_layer: float  # sent by one rank for one layer
    kv_bytes_per_rank: float

    @property
    def time_s(self) -> float:
        return self.compute_s + self.exposed_communication_s

    @property
    def communication_bound(self) -> bool:
        return self.exposed_communication_s > 0.05 * self.compute_s


def context_parallel_prefill(d: Deployment, seq_len: int, cp: int, style: str = "ring") -> ContextParallelPrefill:
    """Prefill time of one prompt of `seq_len` tokens split over `cp` context-parallel ranks."""
    require_positive("seq_len", seq_len, integer=True)
    require_positive("cp", cp, integer=True)
    if style not in STYLES:
        raise RidgeplanError("cp_style", f"unknown context-parallel style {style!r}", STYLES)
    arch = d.arch
    softmax = [g.attention for g in arch.groups if g.attention.kind in ("softmax", "mla")]
    if not softmax:
        raise RidgeplanError("model", f"{arch.name} has no softmax attention layers to split by context")
    a = softmax[0]
    heads_rank = a.num_heads // d.layout.tp
    if style == "ulysses" and heads_rank % cp:
        raise RidgeplanError("cp", f"Ulysses needs the {heads_rank} heads per TP rank divisible by cp={cp}",
                             [c for c in range(1, heads_rank + 1) if heads_rank % c == 0])
    local = seq_len / cp
    # token-parallel work on S/cp tokens; attention of those queries over the whole prompt (balanced causal)
    ops, times, exposed = d.op_seconds(1.0, local, (seq_len - local) / 2)
    per_seq = d.per_sequence_ops
    counts = d.counts.sum(axis=0)
    compute = float(counts @ exposed[:, 0])
    attention = float(counts[per_seq] @ exposed[per_seq, 0])
    kv_per_token = float(counts[per_seq] @ ops.kv_write_bytes[per_seq, 0]) / local  # all layers, this TP rank
    layers = arch.num_layers
    b_a = d.symbols()["b_a"]
    tier = d.tiers.intra if d.layout.tp * cp <= d.tiers.domain or d.tiers.inter is None else d.tiers.inter
    if style == "ring":
        block = kv_per_token / layers * local  # one layer's K/V block of S/cp tokens
        step_comm = float(collective_time("p2p", block, 2, intra=tier))
        step_compute = attention / layers / cp
        comm = layers * (cp - 1) * step_comm
        exposed_comm = layers * (cp - 1) * max(0.0, step_comm - step_compute)
        sent = (cp - 1) * block
    else:
        hk = max(a.num_kv_heads // d.layout.tp, 1)
        qkv = local * (heads_rank + 2 * hk) * a.head_dim * b_a
        out = local * heads_rank * a.v_head_dim * b_a
        comm = layers * float(collective_time("all_to_all", qkv, cp, intra=tier) + collective_time("all_to_all", out, cp, intra=tier))
        exposed_comm = comm  # the all-to-alls sit between projection and attention: nothing to hide behind
        sent = (qkv + out) * (cp - 1) / cp
    return ContextParallelPrefill(style, cp, seq_len, compute, comm, exposed_comm, sent,
                                  kv_per_token * seq_len / cp)


def ring_hidden_threshold_tokens(d: Deployment, cp: int) -> float:
    """Smallest S/cp for which ring attention's K/V transfer hides behind the block's attention compute
    (found on a doubling grid)."""
    local = 256
    while local < 2**24:
        r = context_parallel_prefill(d, int(local * cp), cp, "ring")
        if r.exposed_communication_s <= 0:
            return float(local)
        local *= 2
    return float("inf")


def sequence_parallel_volume(d: Deployment, seq_len, cp: int) -> np.ndarray:
    """Ulysses bytes sent per rank per layer for prompts of `seq_len` tokens (vectorized)."""
    return np.array([context_parallel_prefill(d, int(s), cp, "ulysses").bytes_per_rank_per_layer
                     for s in np.atleast_1d(seq_len)])
