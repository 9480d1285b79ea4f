"""Sequence/context parallelism: traffic per rank by scheme, and per-sequence SP degrees for mixed lengths.

Traffic one rank receives per layer and pass, for a sequence of S tokens over N ranks at
b bytes per element:
- Ulysses: all-to-alls of Q, K, V before attention and O after it, (N−1)/N · (S/N)·(2·n_h + 2·n_kv)·d_h·b —
  constant when S/N is fixed;
- ring attention: N−1 K/V blocks of (S/N)·2·n_kv·d_h·b — (N−1)/N · 2·S·n_kv·d_h·b, growing with S;
- linear-attention SP (LASP-2): one all-gather of the N ranks' recurrent states, (N−1)·n_h·d_k·d_v·b,
  independent of S.

Per-sequence SP (FlexSP / "heterogeneity-adaptive SP", ByteScale): a batch of sequences of mixed lengths on G
GPUs. A static schedule splits every sequence over one degree (the best one at which the longest sequence fits);
an adaptive one gives each sequence its own degree. Each sequence's time at each degree is the training model's
per-micro-batch work (forward, backward, recomputation, TP and SP communication; `evaluate_candidates`) with
model states ZeRO-3-sharded over all G GPUs, so that the memory left for activations is the same whatever the
degree.
A schedule's time is the fluid (LP-relaxation) bound max(Σ_i n_i·t_i / G, max_i t_i): GPU-seconds spread
over the cluster, and never less than the slowest sequence. The adaptive degrees minimise that bound (over
caps on the slowest sequence, each sequence taking the fewest GPU-seconds under the cap), so the static
schedule is one of the candidates and adaptive <= static holds by construction; the size of the gain is the
model's. The optimizer update and gradient reduction happen once per step in both and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.training.config import Candidates, TrainingSettings
from model.training.step import evaluate_candidates
from model.training.cluster import Cluster

PER_SEQUENCE_TERMS = ("compute_s", "tp_comm_s", "cp_comm_s", "activation_swap_s")


def ulysses_bytes_per_rank(seq_len, sp, heads, kv_heads, head_dim, bytes_per_element=2.0):
    """Bytes one rank receives per layer and pass under Ulysses: (N−1)/N·(S/N)·(2·n_h + 2·n_kv)·d_h·b."""
    s, n = np.asarray(seq_len, float), np.asarray(sp, float)
    return (n - 1) / n * (s / n) * (2.0 * heads + 2.0 * kv_heads) * head_dim * bytes_per_element


def ring_bytes_per_rank(seq_len, sp, kv_heads, head_dim, bytes_per_element=2.0):
    """Bytes one rank receives per layer and pass under ring attention: N−1 blocks of (S/N)·2·n_kv·d_h·b."""
    s, n = np.asarray(seq_len, float), np.asarray(sp, float)
    return (n - 1) * (s / n) * 2.0 * kv_heads * head_dim * bytes_per_element


def linear_state_bytes_per_rank(sp, heads, key_dim, value_dim, bytes_per_element=2.0):
    """Bytes one rank receives per layer and pass under LASP-2: an all-gather of N states of n_h·d_k·d_v."""
    n = np.asarray(sp, float)
    return (n - 1) * heads * key_dim * value_dim * bytes_per_element


@dataclass(frozen=True)
class SequenceSchedule:
    """Static vs per-sequence SP degrees for one batch of sequences (times in seconds per step)."""

    lengths: np.ndarray  # tokens per sequence
    degrees: tuple[int, ...]  # SP degrees considered
    seconds: np.ndarray  # (n_sequences, n_degrees) per-sequence time, inf where it does not fit
    static_degree: int
    static_time_s: float
    adaptive_degrees: np.ndarray  # per sequence
    adaptive_time_s: float
    gpus: int

    @property
    def gain(self) -> float:
        """Static time / adaptive time (>= 1)."""
        return self.static_time_s / self.adaptive_time_s

    def to_dict(self) -> dict[str, object]:
        return {"static_degree": self.static_degree, "static_time_s": self.static_time_s,
                "adaptive_time_s": self.adaptive_time_s, "gain": self.gain,
                "adaptive_degrees": {int(d): int(np.sum(self.adaptive_degrees == d)) for d in self.degrees}}


def _fluid_bound(times: np.ndarray, degrees: np.ndarray, gpus: int) -> float:
    return float(max(np.sum(times * degrees) / gpus, np.max(times)))


def per_sequence_sp(arch: Architecture, cluster: Cluster, lengths, gpus: int, *, degrees=None, tp: int = 1,
                    sp_kind: str = "ring", recompute: str = "full",
                    settings: TrainingSettings | None = None) -> SequenceSchedule:
    """Static and per-sequence SP schedules of one batch of sequences on `gpus` GPUs (see the module docstring).

    `degrees`: SP degrees to consider (default: powers of two up to gpus / tp); lengths must split over each.
    """
    lens = np.asarray(lengths, dtype=float)
    if lens.ndim != 1 or lens.size == 0 or np.any(lens <= 0):
        raise RidgeplanError("lengths", "needs a non-empty list of positive sequence lengths")
    if gpus % tp:
        raise RidgeplanError("gpus", f"{gpus} GPUs do not divide into tp={tp}")
    degs = tuple(int(d) for d in (degrees or [2**k for k in range(16) if 2**k * tp <= gpus]))
    if any(gpus % (d * tp) for d in degs):
        raise RidgeplanError("degrees", f"every SP degree x tp must divide {gpus} GPUs", degs)
    uniq, inverse = np.unique(lens, return_inverse=True)
    grid_len = np.repeat(uniq, len(degs))
    grid_sp = np.tile(np.asarray(degs, dtype=float), len(uniq))
    if np.any(grid_len % grid_sp):
        raise RidgeplanError("lengths", "every sequence length must split evenly over every SP degree", degs)
    dp = gpus / (tp * grid_sp)  # replicas, so that ZeRO-3 shards the states over all GPUs whatever the degree
    cands = Candidates.from_columns(tp=tp, sp=grid_sp, dp=dp, seq_len=grid_len, zero=3, micro_batch=1,
                                    global_batch=dp, recompute=recompute, sp_kind=sp_kind,
                                    sequence_parallel=1 if tp > 1 else 0)
    r = evaluate_candidates(arch, cluster, cands, settings or TrainingSettings())
    t = sum(r.breakdown[k] for k in PER_SEQUENCE_TERMS)
    t = np.where(r.fits, t, np.inf).reshape(len(uniq), len(degs))[inverse]
    d_arr = np.asarray(degs, dtype=float)
    feasible = np.isfinite(t)
    if not np.all(feasible.any(axis=1)):
        longest = float(lens[~feasible.any(axis=1)].max())
        raise RidgeplanError("lengths", f"a {longest:.0f}-token sequence fits at no SP degree in {degs}")
    # static: the best single degree at which every sequence fits
    usable = np.flatnonzero(feasible.all(axis=0))
    if usable.size == 0:
        raise RidgeplanError("degrees", "no single SP degree fits every sequence", degs)
    bounds = [_fluid_bound(t[:, j], np.full(len(lens), d_arr[j]), gpus / tp) for j in usable]
    static_col = int(usable[int(np.argmin(bounds))])
    static = float(min(bounds))
    # adaptive: for each cap on the slowest sequence, the fewest GPU-seconds per sequence under the cap
    gpu_s = np.where(feasible, t * d_arr, np.inf)
    best, best_cols = np.inf, None
    for cap in np.unique(t[feasible]):
        allowed = np.where(t <= cap, gpu_s, np.inf)
        if not np.all(np.isfinite(allowed).any(axis=1)):
            continue
        cols = np.argmin(allowed, axis=1)
        rows = np.arange(len(lens))
        bound = _fluid_bound(t[rows, cols], d_arr[cols], gpus / tp)
        if bound < best:
            best, best_cols = bound, cols
    return SequenceSchedule(lens, degs, t, degs[static_col], static, d_arr[best_cols].astype(int), best, gpus)
