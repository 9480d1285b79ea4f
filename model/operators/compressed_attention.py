"""DeepSeek-V4 hybrid attention and manifold-constrained hyper-connections (mHC), following the Hugging Face
implementation (transformers models/deepseek_v4) and the DeepSeek-V4 report's CSA/HCA description.

One layer (per tensor-parallel rank; query heads split by tp, the single shared K=V head, the compressors and the
indexer replicated):
- queries: q_a (d -> q_lora, norm) and q_b (q_lora -> H x D); one key/value vector of D per position (kv_proj);
- a sliding window of the last W raw positions (every layer);
- compress ratio m > 0: a compressor pools every m tokens into one entry of D (softmax-gated sum); CSA (m = 4)
  projects 2D per token (overlapping windows of 2m) and runs a lightning indexer at index_dim that keeps the top-k
  entries per query; HCA (m = 128) projects D per token and every entry is attended;
- per-head sinks; output: grouped low-rank o_a (g groups of H D / g -> o_lora) then o_b (g o_lora -> d).
A query at position p attends to min(p, W) window keys plus floor(p / m) entries (HCA) or min(floor(p / m), k)
(CSA); each (query, key) pair costs 2D (scores) + 2D (values) FLOPs, as K = V.
"""

from __future__ import annotations

import sympy as sp

from model.architecture.blocks import Attention
from model.operators.formulas import (
    ZERO,
    N,
    Operator,
    attention_depth,
    elementwise,
    gemm,
    heads_per_rank,
    keys_read,
    keys_seen,
)
from model.operators.symbols import B, C, T, b_a, b_kv, tp

MIX_FLOPS_PER_ELEMENT = 4  # pooling: gate add, softmax and weighted sum per projected element


def _compressed_entries_seen(m: int) -> sp.Expr:
    """Sum over the T new queries of a sequence of the compressed entries each one may see: query i (1..T) at
    position C + i sees floor((C + i) / m), taken as (C + i) / m (the floor costs under one entry per query)."""
    return (T * C + T * (T + 1) / 2) / m


def _compressor(name: str, d: int, width: int, m: int, overlap: bool) -> list[Operator]:
    """kv_proj and gate_proj (d -> c x width, c = 2 with overlapping windows), the pooling, and the norm."""
    c = 2 if overlap else 1
    return [
        gemm(f"{name}_proj", N, sp.Integer(2 * c * width), d, replicated=True,
             description=f"compressor kv and gate projections ({c} x {width} each, replicated)"),
        elementwise(f"{name}_pool", N * c * width, reads=2, flops_per_element=MIX_FLOPS_PER_ELEMENT,
                    params=sp.Integer(m * c * width + width),
                    description=f"softmax-gated pooling of every {m} tokens into one entry, position bias, norm"),
    ]


def compressed_attention_block(a: Attention, d: int) -> list[Operator]:
    H, D, m, W = a.num_heads, a.head_dim, a.compress_ratio or 0, a.window
    h = heads_per_rank(H)
    q_rank = a.q_lora_rank or 0
    ops = [
        gemm("q_a_proj", N, sp.Integer(q_rank), d, replicated=True, description="query down-projection (replicated)"),
        elementwise("q_a_norm", N * q_rank, params=sp.Integer(q_rank)),
        gemm("q_b_proj", N, h * D, sp.Integer(q_rank), full_params=sp.Integer(q_rank * H * D),
             description="query up-projection (column-parallel over heads)"),
        elementwise("q_b_norm", N * h * D, description="unweighted RMSNorm of each query head"),
        gemm("kv_proj", N, sp.Integer(D), d, replicated=True, description="the single shared key/value (K = V)"),
        elementwise("kv_norm", N * D, params=sp.Integer(D)),
        elementwise("rotary", N * (h + 1) * a.qk_rope_head_dim, flops_per_element=3,
                    description="interleaved RoPE on the rope slice of queries and the key"),
    ]
    seen = keys_seen(W)
    read = keys_read(W)
    kv_write = N
    cache = sp.Min(C + T, W) if W else C + T
    entries = ZERO
    if m:
        csa = bool(a.sparse_topk)
        ops += _compressor("compressor", d, D, m, overlap=csa)
        entries = (C + T) / m
        if csa:
            k = sp.Integer(a.sparse_topk)
            hi, di = a.indexer_heads, a.indexer_dim
            ops += _compressor("indexer_compressor", d, di, m, overlap=True)
            ops += [
                gemm("indexer_q_proj", N, sp.Integer(hi * di), sp.Integer(q_rank), replicated=True,
                     description="indexer query projection from the query latent"),
                gemm("indexer_weights_proj", N, sp.Integer(hi), d, replicated=True, description="per-head weights"),
                Operator(
                    name="indexer", kind="attention", weight_role="none", tags=("per_sequence",),
                    flops=B * hi * 2 * di * _compressed_entries_seen(m) + N * entries * 2,
                    act_bytes=N * (hi * di + hi) * b_a,
                    kv_read_bytes=B * entries * di * b_kv,
                    kv_write_bytes=N / m * di * b_kv,
                    cache_bytes=B * entries * di * b_kv,
                    m=T * hi,
                    n=entries,
                    k=attention_depth(di, 0),  # scores only: 2 * di FLOPs per pair
                    description=f"indexer scores every compressed entry, keeps the top {a.sparse_topk} per query",
                ),
            ]
            seen = seen + sp.Min(_compressed_entries_seen(m), T * k)
            read = read + sp.Min(entries, T * k)
        else:
            seen = seen + _compressed_entries_seen(m)
            read = read + entries
        kv_write = N + N / m
        cache = cache + entries
    kind = "CSA: top-k by the indexer" if a.sparse_topk else "HCA: all of them"
    ops.append(Operator(
        name="attention", kind="attention", weight_role="none", tags=("per_sequence",),
        flops=B * h * 4 * D * seen,
        act_bytes=N * h * 2 * D * b_a,
        kv_read_bytes=B * read * D * b_kv,
        kv_write_bytes=kv_write * D * b_kv,
        cache_bytes=B * cache * D * b_kv,
        m=T * h,  # every head shares the one K = V head
        n=read,  # KV length the queries run over
        k=sp.Integer(D),  # head dimension (4 * D FLOPs per pair)
        params=h, active_params=sp.Integer(H),
        description=f"shared-KV MQA over a {W}-token window" + (f" plus 1/{m} compressed entries ({kind})" if m else ""),
    ))
    g, r = a.o_groups, a.o_lora_rank
    ops += [
        gemm("o_a_proj", N, sp.Integer(g * r) / tp, sp.Integer(H * D // g),
             full_params=sp.Integer(H * D * r), description=f"grouped low-rank output: {g} groups of H D / {g} -> {r}"),
        gemm("o_b_proj", N, sp.Integer(d), sp.Integer(g * r) / tp,
             full_params=sp.Integer(g * r * d), description="mix of the groups to the hidden size (row-parallel)"),
    ]
    return ops


def hyper_connection(name: str, d: int, streams: int) -> Operator:
    """One mHC module: norm and project the n x d streams to (2 + n) n weights (pre, post, comb; Sinkhorn on comb),
    collapse the streams into the block input and, after the block, expand and mix them back."""
    n = streams
    mix = (2 + n) * n
    return elementwise(
        name, N * n * d, reads=2, writes=1, flops_per_element=2 * mix + 2 * n + 2,
        params=sp.Integer(mix * n * d + mix + 3),
        description=f"hyper-connection over {n} residual streams (pre/post/comb weights, Sinkhorn-normalised)",
    )
