"""Continuous batching details: piggybacked decode cost and padding waste.

- Marginal cost of a decode token piggybacked on a prefill chunk: (T(chunk + B decodes) - T(chunk)) / B. On a
  compute-bound chunk the weights are read anyway, so a decode adds about (2 P_act + attention) / F +
  KV_req(S) / BW. The same token in a decode-only batch costs T(B decodes) / B, which at small B is dominated
  by reading all the weights: (W_b + sum KV) / (B BW).
- Padding: a static batch of prompts padded to the longest runs B max S_i tokens through the linear layers
  instead of sum S_i (factor B max S_i / sum S_i), and B max S_i^2 instead of sum S_i^2 through attention.
  Packing (block-diagonal masks, per-prompt positions) removes the waste.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError
from model.serving.batching import iteration_cost
from model.serving.deployment import Deployment


@dataclass(frozen=True)
class PiggybackCost:
    decode_only_per_token_s: np.ndarray  # T(B decodes) / B
    piggyback_per_token_s: np.ndarray  # (T(chunk + B decodes) - T(chunk)) / B

    @property
    def ratio(self) -> np.ndarray:
        return self.decode_only_per_token_s / self.piggyback_per_token_s


def piggyback_cost(d: Deployment, decode_seqs, context, chunk_tokens: float) -> PiggybackCost:
    """Per-token cost of `decode_seqs` decodes at `context` cached tokens alone vs riding along one prefill chunk
    of `chunk_tokens` (a fresh prompt's first chunk). Arguments broadcast as numpy arrays."""
    b, s = np.broadcast_arrays(np.asarray(decode_seqs, dtype=float), np.asarray(context, dtype=float))
    if np.any(b < 1):
        raise RidgeplanError("decode_seqs", "needs at least one decoding sequence")
    alone = iteration_cost(d, b, s, 0.0, 0.0, 0.0).time_s
    chunk = iteration_cost(d, 0.0, 0.0, chunk_tokens, 1.0, 0.0).time_s
    mixed = iteration_cost(d, b, s, chunk_tokens, 1.0, 0.0).time_s
    return PiggybackCost(alone / b, (mixed - chunk) / b)


def padding_factor(lengths, kind: str = "linear") -> float:
    """Work of a padded batch over the packed work: B max S / sum S (linear ops) or B max S^2 / sum S^2 (attention)."""
    s = np.asarray(lengths, dtype=float)
    if s.ndim != 1 or s.size == 0 or np.any(s < 1):
        raise RidgeplanError("lengths", "needs a non-empty list of prompt lengths >= 1")
    if kind == "linear":
        return float(s.size * s.max() / s.sum())
    if kind == "attention":
        return float(s.size * s.max() ** 2 / (s**2).sum())
    raise RidgeplanError("kind", f"unknown padding kind {kind!r}", ["linear", "attention"])


@dataclass(frozen=True)
class PrefillPacking:
    padded_s: float  # B prompts padded to the longest, one step
    packed_s: float  # one packed sequence: linear layers over sum S, attention block-diagonal per prompt
    padded_kv_bytes: float  # KV written by the padded batch (padding slots included)
    packed_kv_bytes: float


def packed_vs_padded_prefill(d: Deployment, lengths) -> PrefillPacking:
    """Prefill of a batch of prompts of `lengths` padded vs packed (block-diagonal attention), on one replica."""
    s = np.asarray(lengths, dtype=float)
    padding_factor(s)  # validates
    padded = d.step(float(s.size), float(s.max()), 0.0)
    per_seq = d.per_sequence_ops
    counts = d.counts.sum(axis=0)
    _, _, lin = d.op_seconds(1.0, float(s.sum()), 0.0, n_logit=float(s.size))
    _, _, att = d.op_seconds(1.0, s, 0.0)
    packed = float(counts[~per_seq] @ lin[~per_seq, 0] + counts[per_seq] @ att[per_seq].sum(axis=1))
    packed += d.eff.step_overhead_s
    ops_pad = padded.ops
    ops_seq = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": s, "C": 0.0})
    return PrefillPacking(float(padded.time_s[0]), packed,
                          float(counts @ ops_pad.kv_write_bytes[:, 0]),
                          float((counts @ ops_seq.kv_write_bytes).sum()))


def tbt_goodput(op, tbt_slo_s: float) -> float:
    """Highest request rate (per replica) on an operating-point grid (`model.serving.estimate.operating_points`)
    whose p99 time between tokens meets `tbt_slo_s` under Poisson arrivals: once prompts arrive in more than 1%
    of iterations, p99 TBT is the iteration that carries a prompt's prefill (its whole prefill step when
    prefills run on their own, one chunk when they are chunked)."""
    from model.serving.estimate import latency_at

    best = 0.0
    for k, rate in enumerate(op.rates):
        lat = latency_at(op, k, float(rate), True, (0.99,))
        if lat.tbt_p99_s <= tbt_slo_s:
            best = max(best, float(rate))
    return best
