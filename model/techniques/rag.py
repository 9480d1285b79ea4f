"""Retrieval-augmented prefill: chunk-KV reuse, shipping KV vs text, prefix sharing, vector search (CATALOG
section 20).

- Prefill with reuse: of S context tokens, the KV of the reused ones is loaded and a fraction r of them is
  recomputed (r = 1: full recompute; prefix caching reuses only the leading chunk). Pipelined with loading,
  TTFT ~= max(load, T_pf(r S)) + T_pf(query); the gain over recomputing everything is at most
  T_pf(S) / max(T_load, T_pf(r S)). A tier is fast enough when loading takes no longer than the recompute.
- Throughput: removing a share x of the prefill work, when prefill is a share p of the GPU time, gains at
  most 1 / (1 - p x); a system computing a fraction f of full prefill that is "y less than" another computes
  f / (1 - y) when expressed in the other's terms.
- Ship KV or text over a link of beta bytes/s: TTFT_KV = KV / (CR beta) + t_codec, TTFT_text = text / beta +
  T_pf(S); KV wins above beta* = (KV / CR - text) / (T_pf - t_codec). With text << KV / CR, beta* falls as 1/CR.
- Prefix sharing among n requests with a shared prefix of p tokens saves (n - 1) p KV_tok bytes and
  (n - 1) x the prefix's prefill FLOPs (about 2 P p for the linear layers).
- Vector search: bytes per query ~= n_visit d' bits / 8 + n_rerank d b; QPS ~= eta BW / bytes; index
  N (d' bits / 8 + graph bytes per vector).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.hardware.schema import Device
from model.operators.memory import kv_bytes_per_token
from model.roofline.efficiency_sets import efficiency_for
from model.serving.deployment import Deployment
from model.roofline.kernel import streaming_bytes_per_s
from model.serving.workload import mean_decode_context_tokens


def prefill_s(d: Deployment, tokens: float, context: float = 0.0) -> float:
    """One prompt's prefill of `tokens` new tokens on top of `context` cached ones."""
    return float(d.step(1, max(float(tokens), 1.0), float(context)).time_s[0])


@dataclass(frozen=True)
class ReuseTTFT:
    full_s: float  # recompute every context token and the query
    load_s: float  # reused KV over the tier
    recompute_s: float  # the recomputed share of the reused tokens
    query_s: float  # the query tokens over the whole context

    @property
    def ttft_s(self) -> float:
        return max(self.load_s, self.recompute_s) + self.query_s

    @property
    def gain(self) -> float:
        return self.full_s / self.ttft_s

    @property
    def gain_bound(self) -> float:
        """T_pf(S) / max(T_load, T_pf(r S)): the gain with the query's own prefill left out."""
        return self.full_s / max(self.load_s, self.recompute_s)


def reuse_ttft(d: Deployment, context_tokens: int, query_tokens: int, recompute_fraction: float,
               tier_bytes_per_s: float) -> ReuseTTFT:
    """TTFT of a prompt whose `context_tokens` have cached KV on a tier of `tier_bytes_per_s` (of which a share
    `recompute_fraction` is recomputed on the GPU, pipelined with the load), then `query_tokens` new tokens."""
    require_positive("context_tokens", context_tokens, integer=True)
    require_positive("tier_bytes_per_s", tier_bytes_per_s)
    if not 0 <= recompute_fraction <= 1:
        raise RidgeplanError("recompute_fraction", f"must be in [0, 1], got {recompute_fraction}")
    kv_tok = kv_bytes_per_token(d.arch, b_kv=d.symbols()["b_kv"], tp=d.layout.tp)
    full = prefill_s(d, context_tokens + query_tokens)
    load = (1 - recompute_fraction) * context_tokens * kv_tok / tier_bytes_per_s
    recompute = prefill_s(d, recompute_fraction * context_tokens, (1 - recompute_fraction) * context_tokens) \
        if recompute_fraction > 0 else 0.0
    query = prefill_s(d, query_tokens, context_tokens) if query_tokens > 0 else 0.0
    return ReuseTTFT(full, load, recompute, query)


def fraction_in_other_terms(fraction: float, less_than_other: float) -> float:
    """A system computing `fraction` of full work, `less_than_other` (e.g. 0.51 = 51%) less than another: the
    other computes fraction / (1 - less_than_other) of full."""
    if not 0 <= less_than_other < 1:
        raise RidgeplanError("reduction", f"must be in [0, 1), got {less_than_other}")
    return fraction / (1 - less_than_other)


def throughput_gain_bound(work_share, removed_share) -> np.ndarray:
    """Largest throughput gain from removing `removed_share` of work that is `work_share` of the time."""
    return 1.0 / (1.0 - np.asarray(work_share, dtype=float) * np.asarray(removed_share, dtype=float))


@dataclass(frozen=True)
class ShipChoice:
    kv_s: float  # ship (compressed) KV and decode it
    text_s: float  # ship the text and prefill it
    threshold_bytes_per_s: float  # KV wins above this link bandwidth

    @property
    def best(self) -> str:
        return "kv" if self.kv_s < self.text_s else "text"


def ship_kv_or_text(kv_bytes: float, text_bytes: float, link_bytes_per_s: float, prefill_time_s: float,
                    compression: float = 1.0, codec_s: float = 0.0) -> ShipChoice:
    require_positive("compression", compression)
    require_positive("link_bytes_per_s", link_bytes_per_s)
    kv_s = kv_bytes / (compression * link_bytes_per_s) + codec_s
    text_s = text_bytes / link_bytes_per_s + prefill_time_s
    threshold = kv_threshold_bytes_per_s(kv_bytes, text_bytes, prefill_time_s, compression, codec_s)
    return ShipChoice(kv_s, text_s, threshold)


def kv_threshold_bytes_per_s(kv_bytes: float, text_bytes: float, prefill_time_s: float, compression: float = 1.0,
                             codec_s: float = 0.0) -> float:
    """Link bandwidth above which shipping KV beats shipping text and recomputing (inf if never)."""
    saved = prefill_time_s - codec_s
    extra = kv_bytes / compression - text_bytes
    if extra <= 0:
        return 0.0
    return extra / saved if saved > 0 else float("inf")


@dataclass(frozen=True)
class PrefixSavings:
    kv_bytes: float
    linear_flops: float
    attention_flops: float

    @property
    def flops(self) -> float:
        return self.linear_flops + self.attention_flops


def prefix_sharing_savings(d: Deployment, requests: int, prefix_tokens: int) -> PrefixSavings:
    """What `requests` requests sharing `prefix_tokens` leading tokens save when the prefix is computed and
    stored once: (n - 1) x its KV and its prefill FLOPs (no logits are computed for the prefix)."""
    require_positive("requests", requests, integer=True)
    require_positive("prefix_tokens", prefix_tokens, integer=True)
    ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": float(prefix_tokens), "C": 0.0, "n_logit": 0.0})
    counts = d.counts.sum(axis=0)
    att = d.per_sequence_ops
    n = requests - 1
    kv_tok = kv_bytes_per_token(d.arch, b_kv=d.symbols()["b_kv"], tp=d.layout.tp)
    return PrefixSavings(n * prefix_tokens * kv_tok, n * float(counts[~att] @ ops.flops[~att, 0]),
                         n * float(counts[att] @ ops.flops[att, 0]))


@dataclass(frozen=True)
class VectorSearch:
    bytes_per_query: float
    queries_per_s: float
    index_bytes: float


def vector_search(n_vectors: float, dim: int, device: Device, *, reduced_dim: int | None = None,
                  bits: float = 16.0, visited: int = 1000, reranked: int = 0, rerank_bytes_per_element: float = 2.0,
                  graph_bytes_per_vector: float = 128.0) -> VectorSearch:
    """Bandwidth-bound graph search over `n_vectors` embeddings of `dim` (compressed to `reduced_dim` x `bits`):
    each query visits `visited` compressed vectors and re-ranks `reranked` full-precision ones."""
    require_positive("n_vectors", n_vectors)
    require_positive("dim", dim, integer=True)
    dp = reduced_dim or dim
    per_query = visited * dp * bits / 8 + reranked * dim * rerank_bytes_per_element
    eff = efficiency_for(device)
    qps = float(streaming_bytes_per_s(device.memory.bandwidth_bytes_per_s, eff)) / per_query
    return VectorSearch(per_query, qps, n_vectors * (dp * bits / 8 + graph_bytes_per_vector))


def request_flops(d: Deployment, input_len: int, output_len: int, cached_prefix: int = 0) -> float:
    """FLOPs of one request: its prefill of input_len - cached_prefix tokens on top of the cached prefix, then
    output_len - 1 decode steps (taken at the mean decode context)."""
    require_positive("input_len", input_len, integer=True)
    require_positive("output_len", output_len, integer=True)
    new = max(input_len - cached_prefix, 1)
    prefill = float(d.step(1, new, cached_prefix).ops.total("flops")[0])
    decode = (output_len - 1) * float(d.step(1, 1, float(mean_decode_context_tokens(input_len, output_len))).ops.total("flops")[0])
    return prefill + decode


def prefix_removed_share(d: Deployment, input_len: int, output_len: int, shared_fraction: float) -> float:
    """Share of a request's FLOPs that a shared prefix of `shared_fraction` of the prompt removes."""
    if not 0 <= shared_fraction < 1:
        raise RidgeplanError("shared_fraction", f"must be in [0, 1), got {shared_fraction}")
    full = request_flops(d, input_len, output_len)
    return 1 - request_flops(d, input_len, output_len, int(round(shared_fraction * input_len))) / full


def prefill_time_share(d: Deployment, policy, input_len: float, output_len: float, concurrency=None) -> float:
    """Share of the engine's time spent on prefill work in steady state: 1 - (decode-only iteration with the same
    decodes) / (steady-state iteration)."""
    from model.serving.batching import decode_only_iteration, steady_state

    st = steady_state(d, policy, input_len, output_len, concurrency)
    dec = decode_only_iteration(d, policy, st.decode_seqs, float(mean_decode_context_tokens(input_len, output_len)))
    return float(1 - dec.time_s[0] / st.iteration.time_s[0])
