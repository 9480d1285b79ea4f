"""Collective communication cost: the alpha-beta model over one or two link tiers, vectorized.

N ranks, M bytes per rank (the size of the tensor each rank holds), alpha = per-step latency, beta = achievable
bandwidth per direction (nominal x bus efficiency):
- ring all-reduce:      2(N-1)*alpha + 2(N-1)/N * M/beta
- tree all-reduce:      2*log2(N)*alpha + 2*M/beta            (double binary tree: latency-optimal)
- one-shot all-reduce:  alpha + (N-1)*M/beta                    (each rank reads all peers; switch fabrics)
- star all-reduce:      2*alpha + (N-1)*M/beta_hub              (hub gathers and broadcasts)
- all-gather / reduce-scatter / all-to-all: (N-1)*alpha + (N-1)/N * M/beta
- direct all-to-all:    alpha + (N-1)/N * M/beta                (every peer written at once: DeepEP low-latency
                                                                 kernels, NVLink/IBGDA puts, one latency)
- p2p:                  alpha + M/beta
Two tiers (ranks spread over nodes): hierarchical all-reduce = intra reduce-scatter + inter all-reduce of
M/n_local + intra all-gather; all-to-all sends (n_local-1)/N of M inside the node and (N-n_local)/N across,
the two tiers running concurrently. "auto" takes the fastest algorithm, as NCCL's tuner does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError

ALGORITHMS = ("auto", "ring", "tree", "one_shot", "star", "hierarchical", "direct")
KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p")


@dataclass(frozen=True)
class Tier:
    """One link tier as seen by one rank: achievable bytes/s per direction and per-step latency (s)."""

    bandwidth_bytes_per_s: np.ndarray | float
    latency_s: np.ndarray | float


def _ring_ar(m, n, t: Tier):
    return 2 * (n - 1) * t.latency_s + 2 * (n - 1) / n * m / t.bandwidth_bytes_per_s


def _tree_ar(m, n, t: Tier):
    return 2 * np.log2(np.maximum(n, 1)) * t.latency_s + 2 * m / t.bandwidth_bytes_per_s


def _one_shot_ar(m, n, t: Tier):
    return t.latency_s + (n - 1) * m / t.bandwidth_bytes_per_s


def _star_ar(m, n, t: Tier):
    return 2 * t.latency_s + (n - 1) * m / t.bandwidth_bytes_per_s


def _gather_like(m, n, t: Tier):
    return (n - 1) * t.latency_s + (n - 1) / n * m / t.bandwidth_bytes_per_s


_SINGLE_TIER_AR = {"ring": _ring_ar, "tree": _tree_ar, "one_shot": _one_shot_ar, "star": _star_ar}


def collective_time(kind: str, message_bytes, ranks, *, intra: Tier, inter: Tier | None = None,
                    ranks_per_node=None, algorithm: str = "auto") -> np.ndarray:
    """Seconds for one collective, vectorized over numpy arrays of messages / group sizes.

    `ranks_per_node`: ranks of the group inside one scale-up domain (defaults to all of them); with fewer than
    `ranks`, the group spans nodes and `inter` is needed.
    """
    if kind not in KINDS:
        raise RidgeplanError("collective", f"unknown collective {kind!r}", KINDS)
    if algorithm not in ALGORITHMS:
        raise RidgeplanError("algorithm", f"unknown collective algorithm {algorithm!r}", ALGORITHMS)
    m = np.asarray(message_bytes, dtype=float)
    n = np.asarray(ranks, dtype=float)
    local = n if ranks_per_node is None else np.minimum(np.asarray(ranks_per_node, dtype=float), n)
    spans_nodes = local < n
    if np.any(spans_nodes) and inter is None:
        raise RidgeplanError("network", "the group spans nodes but no scale-out link was given")
    with np.errstate(divide="ignore", invalid="ignore"):
        single = _single_tier(kind, m, n, intra, algorithm)
        if inter is not None and np.any(spans_nodes):
            multi = _two_tier(kind, m, n, local, intra, inter, algorithm)
            t = np.where(spans_nodes, multi, single)
        else:
            t = single
    return np.where((n <= 1) | (m <= 0), 0.0, t)


def _single_tier(kind, m, n, tier: Tier, algorithm: str):
    if kind == "p2p":
        return tier.latency_s + m / tier.bandwidth_bytes_per_s
    if kind == "all_to_all" and algorithm == "direct":
        return tier.latency_s + (n - 1) / n * m / tier.bandwidth_bytes_per_s
    if kind != "all_reduce":
        return _gather_like(m, n, tier)
    if algorithm in ("auto", "hierarchical", "direct"):
        return np.minimum.reduce([f(m, n, tier) for f in (_ring_ar, _tree_ar, _one_shot_ar)])
    return _SINGLE_TIER_AR[algorithm](m, n, tier)


def _two_tier(kind, m, n, local, intra: Tier, inter: Tier, algorithm: str):
    nodes = np.maximum(n / np.maximum(local, 1), 1)
    if kind == "p2p":
        return inter.latency_s + m / inter.bandwidth_bytes_per_s
    if kind == "all_to_all" and algorithm == "direct":
        inside = intra.latency_s + (local - 1) / n * m / intra.bandwidth_bytes_per_s
        across = inter.latency_s + (n - local) / n * m / inter.bandwidth_bytes_per_s
        return np.maximum(inside, across)
    if kind == "all_to_all":
        inside = (local - 1) * intra.latency_s + (local - 1) / n * m / intra.bandwidth_bytes_per_s
        across = (n - local) * inter.latency_s / np.maximum(local, 1) + (n - local) / n * m / inter.bandwidth_bytes_per_s
        return np.maximum(inside, across)
    if kind in ("all_gather", "reduce_scatter"):
        # across nodes each rank's NIC carries 1/local of the remote nodes' share; then gather inside the node
        across = (nodes - 1) * inter.latency_s + (nodes - 1) / nodes * m / np.maximum(local, 1) / inter.bandwidth_bytes_per_s
        return across + _gather_like(m, local, intra)
    # all-reduce
    hier = (_gather_like(m, local, intra) + _single_tier("all_reduce", m / np.maximum(local, 1), nodes, inter, "auto")
            + _gather_like(m, local, intra))
    if algorithm in ("auto", "hierarchical", "direct"):
        flat_ring = _ring_ar(m, n, Tier(inter.bandwidth_bytes_per_s, inter.latency_s))
        return hier if algorithm == "hierarchical" else np.minimum(hier, flat_ring)
    return _SINGLE_TIER_AR[algorithm](m, n, inter)


def dominant_term(kind: str, message_bytes: float, ranks: float, tier: Tier) -> str:
    """'latency' or 'bandwidth': which alpha-beta term dominates a single-tier ring collective."""
    n = float(ranks)
    steps = 2 * (n - 1) if kind == "all_reduce" else (n - 1)
    volume = (2 if kind == "all_reduce" else 1) * (n - 1) / n * float(message_bytes)
    return "latency" if steps * float(tier.latency_s) > volume / float(tier.bandwidth_bytes_per_s) else "bandwidth"
