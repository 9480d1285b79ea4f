"""Collective communication cost: the alpha-beta model over one or two link tiers, vectorized.

N ranks, M bytes per rank (the size of the tensor each rank holds), alpha = per-step latency, beta = achievable
bandwidth per direction (nominal x bus efficiency):
- ring all-reduce:      2(N-1)*alpha + 2(N-1)/N * M/beta
- tree all-reduce:      2*log2(N)*alpha + 2*M/beta            (double binary tree: latency-optimal)
- one-shot all-reduce:  alpha + (N-1)*M/beta                    (each rank reads all peers; switch fabrics)
- in-switch all-reduce: alpha_sw + (N+1)/N * M/beta_switch         (NVLS: the NVSwitch reduces; each rank sends M and
                                                                 receives M/N in the reduce phase, sends M/N and
                                                                 receives M in the multicast phase; only a tier
                                                                 whose switch_reduce_bytes_per_s > 0)
- star all-reduce:      2*alpha + (N-1)*M/beta_hub              (hub gathers and broadcasts)
- all-gather / reduce-scatter / all-to-all: (N-1)*alpha + (N-1)/N * M/beta
- direct all-to-all:    alpha + (N-1)/N * M/beta                (every peer written at once: DeepEP low-latency
                                                                 kernels, NVLink/IBGDA puts, one latency)
- p2p:                  alpha + M/beta
- an engine's custom all-reduce (CUDA-IPC kernels of vLLM, SGLang and TensorRT-LLM; only a tier with
  custom_bytes_per_s > 0): one-shot alpha + (N-1)*M/beta_c (each rank moves every peer's whole buffer),
  two-shot 2*alpha + alpha_2 + 2(N-1)/N * M/beta_c (reduce-scatter, then all-gather of the reduced shards,
  a barrier between), picked by the engine's message-size rule (`custom_limits`), and NCCL (the fastest of
  ring, tree and in-switch) above its largest size
Several tiers (ranks spread over nodes): `hierarchical_time` (each tier runs the single-tier collective on the
share of the message left by the faster tiers; an all-to-all reaches each tier's peers over that tier's link,
the tiers running concurrently); a flat ring over the slowest tier competes for all-reduce. "auto" takes the
fastest algorithm (in-switch reduction included where the tier has it), as NCCL's tuner does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError

ALGORITHMS = ("auto", "ring", "tree", "one_shot", "star", "switch", "hierarchical", "direct", "fastest")
KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p")


@dataclass(frozen=True)
class Tier:
    """One link tier as seen by one rank: achievable bytes/s per direction and per-step latency (s)."""

    bandwidth_bytes_per_s: np.ndarray | float
    latency_s: np.ndarray | float
    # achievable bytes/s per direction of an all-reduce reduced inside the switch (NVLink SHARP / NVLS on
    # NVSwitch 3+); 0 = the switch does not reduce (the hand-set default), so "auto" never picks it
    switch_reduce_bytes_per_s: np.ndarray | float = 0.0
    switch_reduce_latency_s: np.ndarray | float = 0.0  # its start-up (multicast objects, switch round trips)
    # the engine's custom all-reduce kernels: achievable bytes/s per direction of their peer loads/stores (0 = none,
    # the hand-set default: "auto" is the fastest of the NCCL-style algorithms and one-shot), the two-shot
    # kernel's extra start-up (its second barrier), and the engine's size rule: ((ranks, one_shot_below_bytes,
    # custom_below_bytes), ...) by increasing ranks; a group takes the first entry with ranks >= its size
    custom_bytes_per_s: np.ndarray | float = 0.0
    custom_two_shot_latency_s: np.ndarray | float = 0.0
    custom_limits: tuple[tuple[float, float, float], ...] = ()
    # with a custom kernel modelled, NCCL's own start-up on top (its tuner's base latency, src/graph/tuning.cc
    # baseLat: proxy, channels and protocol set-up the engine's small kernel does not pay)
    nccl_base_latency_s: np.ndarray | float = 0.0


def _ring_ar(m, n, t: Tier):
    return 2 * (n - 1) * t.latency_s + 2 * (n - 1) / n * m / t.bandwidth_bytes_per_s


def _tree_ar(m, n, t: Tier):
    return 2 * np.log2(np.maximum(n, 1)) * t.latency_s + 2 * m / t.bandwidth_bytes_per_s


def _one_shot_ar(m, n, t: Tier):
    return t.latency_s + (n - 1) * m / t.bandwidth_bytes_per_s


def _switch_ar(m, n, t: Tier):
    bw = np.asarray(t.switch_reduce_bytes_per_s, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bw > 0, t.switch_reduce_latency_s + (n + 1) / n * m / bw, np.inf)


def custom_limits_for(n, limits) -> tuple[np.ndarray, np.ndarray]:
    """(one-shot below, custom kernel below) bytes for groups of n ranks: the first rule entry with ranks >= n
    (0, 0: no custom kernel, as above the largest entry)."""
    n = np.asarray(n, dtype=float)
    fits = [n <= r for r, _, _ in limits]
    one = np.select(fits, [np.full(n.shape, o) for _, o, _ in limits], 0.0) if limits else np.zeros(n.shape)
    top = np.select(fits, [np.full(n.shape, c) for _, _, c in limits], 0.0) if limits else np.zeros(n.shape)
    return one, top


def stack_tiers(tiers) -> Tier:
    """One Tier whose fields are arrays over `tiers` (the planner's stacked candidates); size rules are stacked per
    group size of any of them (each tier's rule evaluated at that size)."""
    def pick(name):
        return np.asarray([getattr(t, name) for t in tiers], dtype=float)

    def rule(r):
        at = [custom_limits_for(np.array([r], dtype=float), t.custom_limits) for t in tiers]
        return r, np.array([float(one[0]) for one, _ in at]), np.array([float(below[0]) for _, below in at])

    ranks = sorted({r for t in tiers for r, _, _ in t.custom_limits})
    return Tier(pick("bandwidth_bytes_per_s"), pick("latency_s"), pick("switch_reduce_bytes_per_s"),
                pick("switch_reduce_latency_s"), pick("custom_bytes_per_s"), pick("custom_two_shot_latency_s"),
                tuple(rule(r) for r in ranks), pick("nccl_base_latency_s"))


def take_tier(t: Tier, idx: np.ndarray) -> Tier:
    """A stacked Tier (`stack_tiers`; scalar fields stay as they are) at entries idx."""
    def take(v):
        v = np.asarray(v, dtype=float)
        return v[idx] if v.ndim else v

    return Tier(take(t.bandwidth_bytes_per_s), take(t.latency_s), take(t.switch_reduce_bytes_per_s),
                take(t.switch_reduce_latency_s), take(t.custom_bytes_per_s), take(t.custom_two_shot_latency_s),
                tuple((r, take(o), take(c)) for r, o, c in t.custom_limits), take(t.nccl_base_latency_s))


def _custom_ar(m, n, t: Tier):
    """The engine's custom all-reduce by its size rule: one-shot, two-shot, or inf where the engine hands the
    message to NCCL (and where the tier has no custom kernel)."""
    bw = np.asarray(t.custom_bytes_per_s, dtype=float)
    one_below, below = custom_limits_for(n, t.custom_limits)
    with np.errstate(divide="ignore", invalid="ignore"):
        one = t.latency_s + (n - 1) * m / bw
        two = 2 * t.latency_s + t.custom_two_shot_latency_s + 2 * (n - 1) / n * m / bw
        return np.where((bw > 0) & (m < below), np.where(m < one_below, one, two), np.inf)


def _star_ar(m, n, t: Tier):
    return 2 * t.latency_s + (n - 1) * m / t.bandwidth_bytes_per_s


def _gather_like(m, n, t: Tier):
    return (n - 1) * t.latency_s + (n - 1) / n * m / t.bandwidth_bytes_per_s


_SINGLE_TIER_AR = {"ring": _ring_ar, "tree": _tree_ar, "one_shot": _one_shot_ar, "star": _star_ar,
                   "switch": _switch_ar}


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
    if algorithm in ("auto", "hierarchical", "direct", "fastest"):
        fastest = np.minimum.reduce([f(m, n, tier) for f in (_ring_ar, _tree_ar, _one_shot_ar, _switch_ar)])
        has_custom = np.asarray(tier.custom_bytes_per_s, dtype=float) > 0
        if not np.any(has_custom):  # no engine kernel modelled: the fastest algorithm
            return fastest
        # the engine runs its custom kernel by its size rule and NCCL above it; "fastest" is the faster of that and
        # NCCL at every size (what a table keeping the faster of the engine's call and NCCL's measures)
        nccl = np.minimum.reduce([f(m, n, tier) for f in (_ring_ar, _tree_ar, _switch_ar)]) + tier.nccl_base_latency_s
        custom = _custom_ar(m, n, tier)
        engine = np.minimum(custom, nccl) if algorithm == "fastest" else np.where(np.isfinite(custom), custom, nccl)
        return np.where(has_custom, engine, fastest)
    return _SINGLE_TIER_AR[algorithm](m, n, tier)


def _two_tier(kind, m, n, local, intra: Tier, inter: Tier, algorithm: str):
    nodes = np.maximum(n / np.maximum(local, 1), 1)
    if kind == "p2p":
        return inter.latency_s + m / inter.bandwidth_bytes_per_s
    hier = hierarchical_time(kind, m, [local, nodes], [intra, inter], direct=algorithm == "direct")
    if kind == "all_reduce" and algorithm not in ("hierarchical", "direct"):
        auto = algorithm in ("auto", "fastest")
        flat = _SINGLE_TIER_AR["ring" if auto else algorithm](m, n, inter)
        return np.minimum(hier, flat) if auto else flat
    return hier


def hierarchical_time(kind: str, message_bytes, fanouts, tiers, *, direct: bool = False) -> np.ndarray:
    """A collective over a group spread across nested tiers (the one multi-tier formula; two tiers above, N levels
    in `model.placement.topology`). `fanouts[i]`: the group's members at level i per member at level i - 1
    (Π = group size); `tiers[i]`: that level's link.

    all_reduce: a reduce-scatter up through the inner tiers, an all-reduce (the fastest of ring, tree and one-shot)
    of M / Π_{j<top} k_j over the outermost tier the group spans, and an all-gather back down; all_gather /
    reduce_scatter: tier i works on M / Π_{j<i} k_j; the tiers run one after another.
    all_to_all: each rank sends M/n to every peer; the peers first reached at tier i take that tier's link, each
    message paying its latency (shared by the ranks of the lower domain, which send together), and the tiers run
    concurrently (the slowest one sets the time). `direct`: every peer is written at once (DeepEP low-latency
    kernels), so each tier pays one latency.
    """
    m = np.asarray(message_bytes, dtype=float)
    ks = [np.asarray(k, dtype=float) for k in fanouts]
    if kind == "all_to_all":
        n = np.prod(ks, axis=0)
        worst = np.zeros(np.broadcast_shapes(m.shape, n.shape))
        reached = np.ones_like(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            for tier, k in zip(tiers, ks):
                peers = reached * k - reached
                # the `reached` ranks of a lower domain share the start-up of messages to a new tier's peers
                # (their sends go out together), so each rank pays peers / reached latencies there
                start = tier.latency_s if direct else peers * tier.latency_s / reached
                t = start + peers * m / n / tier.bandwidth_bytes_per_s
                worst = np.maximum(worst, np.where(peers > 0, t, 0.0))
                reached = reached * k
        return np.where(n > 1, worst, 0.0)
    if kind not in ("all_reduce", "all_gather", "reduce_scatter"):
        raise RidgeplanError("collective", f"{kind!r} has no hierarchical form", ["all_reduce", "all_gather",
                                                                                  "reduce_scatter", "all_to_all"])
    total, share = 0.0, m
    spans = [k > 1 for k in ks]
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, (tier, k) in enumerate(zip(tiers, ks)):
            if kind == "all_reduce":
                # below the outermost tier the group spans: reduce-scatter on the way up and all-gather on the way
                # back (each rank then all-reduces only its 1/k shard further out); the outermost one all-reduces
                top = spans[i] & ~np.any(spans[i + 1:], axis=0) if i + 1 < len(ks) else spans[i]
                step = np.where(top, _single_tier("all_reduce", share, k, tier, "auto"), 2 * _gather_like(share, k, tier))
            else:
                step = _single_tier(kind, share, k, tier, "auto")
            total = total + np.where(spans[i] & (share > 0), step, 0.0)
            share = share / k
    return np.asarray(total)


def dominant_term(kind: str, message_bytes: float, ranks: float, tier: Tier) -> str:
    """'latency' or 'bandwidth': which alpha-beta term dominates a single-tier ring collective."""
    n = float(ranks)
    steps = 2 * (n - 1) if kind == "all_reduce" else (n - 1)
    volume = (2 if kind == "all_reduce" else 1) * (n - 1) / n * float(message_bytes)
    return "latency" if steps * float(tier.latency_s) > volume / float(tier.bandwidth_bytes_per_s) else "bandwidth"
