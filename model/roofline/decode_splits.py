"""Decode attention kernels' own split rules and per-CTA work, read from the kernels' sources: TensorRT-LLM's XQA
multi-block count and query tiles, FlashAttention-3's split heuristics and paged tiles (SGLang on Hopper, GQA and
MLA), trtllm-gen's MLA generation kernel choice (Blackwell). Used by model.roofline.kernels (single-kernel
predictions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from model.roofline.efficiency import Efficiency

if TYPE_CHECKING:
    from model.roofline.kernels import KernelWork

XQA_MAX_SUB_SEQ = 6000.0  # TensorRT-LLM's multi-block workspace bound (decoderXQAConstants.h getXqaMaxNumSubSeq)


def decode_split_blocks(batch, kv_heads, context, eff: Efficiency, sms: float) -> np.ndarray:
    """CTAs per (sequence, KV head) of a split-KV decode call: TensorRT-LLM's computeMultiBlockCount
    (decoderXQAImplCommon.h) with history = context - 1 and Efficiency.decode_split_tokens per block; 1 where
    decode_split_tokens is 0 or the SM count is unknown."""
    batch, kv_heads, context = (np.asarray(x, dtype=float) for x in (batch, kv_heads, context))
    if not eff.decode_split_tokens or not sms:
        return np.ones(np.broadcast(batch, kv_heads, context).shape)
    blocks = np.floor((context - 1) / eff.decode_split_tokens)
    blocks = np.maximum(np.minimum(blocks, np.round(np.sqrt(blocks * 8.0))), 1.0)
    adjust = batch * kv_heads * blocks / sms / eff.decode_split_waves
    blocks = np.maximum(np.where(adjust > 1, np.floor(blocks / np.where(adjust > 1, adjust, 1.0)), blocks), 1.0)
    return np.maximum(np.minimum(blocks, np.floor(XQA_MAX_SUB_SEQ / batch)), 1.0)


FA3_MAX_SPLITS = 128  # hopper/flash_api.cpp get_num_splits: num_splits_heuristic(..., max_splits = 128)
FA3_DYNAMIC_MAX_BATCH = 992  # hopper/flash_prepare_scheduler.cu: batches per prepare CTA; beyond one CTA, no split


def fa3_static_splits(m_blocks: int, n_blocks: int, sms: int) -> int:
    """FlashAttention-3's num_splits_heuristic (hopper/heuristics.h) for a varlen call, which counts one sequence
    (get_num_splits: total_mblocks = 1 x KV heads x m blocks where the split is dynamic): no split where the m blocks
    nearly fill the SMs or the KV has <= 4 blocks; else the fewest splits within 85% of the best wave efficiency."""
    if m_blocks >= 0.8 * sms or n_blocks <= 4:  # (the L2-overflow split needs >= 2 x SMs query blocks)
        return 1
    waves = m_blocks * np.arange(1, min(FA3_MAX_SPLITS, sms, n_blocks) + 1) / sms
    eff = waves / np.ceil(waves)
    return int(np.argmax(eff >= 0.85 * eff.max())) + 1


def fa3_mla_decode_splits(batch, heads, kv_heads, context, block: float, sms: float) -> np.ndarray:
    """Splits per sequence of FlashAttention-3 MLA decode (SGLang's fa3 backend: one query token, the latent as one
    KV head, query heads packed into tiles of `block` rows, keys in blocks of `block`): fa3_decode_splits."""
    return fa3_decode_splits(batch, heads, kv_heads, context, block, block, sms)


def fa3_decode_splits(batch, heads, kv_heads, context, block_m, block_n, sms: float) -> np.ndarray:
    """Splits per sequence of a FlashAttention-3 decode call (one query token, the query group packed into tiles of
    `block_m` rows, keys in blocks of `block_n`): the static bound (fa3_static_splits) cut by the dynamic rule of
    flash_prepare_scheduler.cu (prepare_varlen_num_blocks_kernel): blocks_per_sm = ceil(batch x m x n x 1.1 x KV
    heads / SMs), splits = ceil(n / blocks_per_sm); 1 above 992 sequences."""
    out = []
    for b, h, hk, c, bm, bn in zip(*np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype=float))
                                                          for x in (batch, heads, kv_heads, context, block_m,
                                                                    block_n)))):
        m, n = int(np.ceil(h / hk / bm)), int(np.ceil(c / bn))
        static = fa3_static_splits(int(hk) * m, n, int(sms))
        if b > FA3_DYNAMIC_MAX_BATCH or static == 1:
            out.append(1.0)
            continue
        per_sm = np.ceil(b * m * n * 1.1 * hk / sms)
        out.append(float(max(min(np.ceil(n / per_sm), static), 1)))
    return np.array(out)


def fa3_paged_tile(head_dim) -> tuple[np.ndarray, np.ndarray]:
    """(kBlockM, kBlockN) of FlashAttention-3's SM90 forward kernel for 16-bit inputs on a paged KV cache it cannot
    load by TMA (page size 1, SGLang's fa3 backend), not local (hopper/tile_size.h tile_size_fwd_sm90,
    paged_kv_non_TMA): 192 x 128 up to head_dim 96, 128 x 128 to 128, 128 x 96 to 192, 128 x 80 above."""
    d = np.asarray(head_dim, dtype=float)
    return (np.where(d <= 96, 192.0, 128.0),
            np.select([d <= 128, d <= 192], [128.0, 96.0], 80.0))


def value_head_dim(table: pd.DataFrame, rows: np.ndarray, head_dim: np.ndarray) -> np.ndarray:
    """The value head width of the selected rows: the table's v_head_dim where given (> 0), else the key head's."""
    if "v_head_dim" not in table:
        return head_dim
    d_v = table.loc[rows, "v_head_dim"].fillna(0).to_numpy(float)
    return np.where(d_v > 0, d_v, head_dim)


FA3_MAX_HEAD_DIM = 256.0  # FA3's compiled head dimensions stop at 256 (wider heads run another kernel)
FA3_UNIT_TILE = 128.0 * 128.0 * 256.0  # kBlockM x kBlockN x (d_qk + d_v) of a 128 x 128 block at head_dim 128
FA3_UNIT_QO_TILE = 128.0 * 256.0  # kBlockM x (d_qk + d_v): the query and output tiles of a CTA at head_dim 128


def fa3_decode_terms(w: KernelWork, table: pd.DataFrame, eff: Efficiency,
                     sms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(key-block chain, CTAs per work item, query/output tiles, splits) of GQA/MHA FlashAttention-3 decode rows
    (Efficiency.decode_fa3_split = 1; other rows: 0, 1, 0, 0). A call runs batch x KV heads x m x S CTAs, m =
    ceil(group / kBlockM) packed query tiles, S = fa3_decode_splits splits; each walks ceil(n / S) of the n =
    ceil(context / kBlockN) key blocks in sequence (fa3_paged_tile), wave after wave: ceil(CTAs / SMs) x ceil(n / S)
    blocks, each weighted by its padded tile's work kBlockM x kBlockN x (d_qk + d_v) against a 128 x 128 block at
    head_dim 128 (Efficiency.decode_block_s per unit). Each CTA moves a kBlockM x (d_qk + d_v) query/output tile,
    counted against that of a CTA at head_dim 128 (Efficiency.decode_item_tile_s per unit)."""
    n_rows = len(table)
    chain = np.zeros(n_rows)
    ctas, qo_tiles, splits = np.ones(n_rows), np.zeros(n_rows), np.zeros(n_rows)
    if not eff.decode_fa3_split or not sms or "head_dim" not in table:
        return chain, ctas, qo_tiles, splits
    fallback = w.fallback if w.fallback is not None else np.zeros(n_rows, dtype=bool)
    rows = (w.kind == "decode_attention") & ~w.mla & ~fallback \
        & (table["head_dim"].to_numpy(float) <= FA3_MAX_HEAD_DIM)
    if not rows.any():
        return chain, ctas, qo_tiles, splits
    b, h, hk, c, d = (table.loc[rows, col].to_numpy(float)
                      for col in ("batch", "heads", "kv_heads", "context", "head_dim"))
    block_m, block_n = fa3_paged_tile(d)
    s = fa3_decode_splits(b, h, hk, c, block_m, block_n, sms)
    m_blocks, n_blocks = np.ceil(h / hk / block_m), np.ceil(c / block_n)
    d_v = value_head_dim(table, rows, d)  # narrower value heads shrink the P.V half of a tile
    tile = block_m * block_n * (d + d_v) / FA3_UNIT_TILE
    chain[rows] = np.ceil(b * hk * m_blocks * s / sms) * np.ceil(n_blocks / s) * tile
    ctas[rows] = m_blocks * s
    qo_tiles[rows] = b * hk * m_blocks * s * block_m * (d + d_v) / FA3_UNIT_QO_TILE
    splits[rows] = s
    return chain, ctas, qo_tiles, splits


XQA_UNIT_QO_TILE = 16.0 * 256.0  # rows x (d_qk + d_v) of an XQA CTA's query/output tile: <= 16 heads at head_dim 128


def xqa_decode_tiles(w: KernelWork, table: pd.DataFrame, eff: Efficiency, sms: float) -> np.ndarray:
    """Query/output tiles of TensorRT-LLM's XQA decode CTAs (Efficiency.decode_xqa_tile = 1; 0 for other rows): one CTA
    per (sequence, KV head, sub-sequence of its multi-block split: decode_split_blocks) loads the group's query rows,
    padded to whole MMA tiles of 16 (cpp/kernels/xqa/mha.cu: warpTile.y = roundUp(headGrpSize x beamWidth, 16)), and
    writes as many output rows, head_dim wide each; counted against a 16-row tile at head_dim 128."""
    tiles = np.zeros(len(table))
    fallback = w.fallback if w.fallback is not None else np.zeros(len(table), dtype=bool)
    rows = (w.kind == "decode_attention") & ~w.mla & ~fallback
    if not eff.decode_xqa_tile or not rows.any():
        return tiles
    b, h, hk, c, d = (table.loc[rows, col].to_numpy(float)
                      for col in ("batch", "heads", "kv_heads", "context", "head_dim"))
    d_v = value_head_dim(table, rows, d)
    blocks = decode_split_blocks(b, hk, c, eff, sms)
    tiles[rows] = b * hk * blocks * np.ceil(h / hk / 16.0) * 16.0 * (d + d_v) / XQA_UNIT_QO_TILE
    return tiles


TRTLLM_GEN_KV_STEP = 128.0  # keys per KV tile of trtllm-gen's MLA generation kernels (tileSizeKv; 64 only by env)


def trtllm_gen_mla_decode_splits(batch, heads, kv_heads, context, sms: float) -> tuple[np.ndarray, np.ndarray]:
    """KV CTAs per sequence and CTAs in all of TensorRT-LLM's
    trtllm-gen MLA generation kernels on Blackwell (cpp/tensorrt_llm/kernels/trtllmGenKernels/fmha/fmhaKernels.h,
    hashFromRunnerParams and computeNumCtas). The low-latency kernel (16 query heads per CTA) runs where heads per KV
    head <= 32 or batch x ceil(heads/16) x 2 <= SMs and splits each sequence's KV over
    k = min(ceil(context/128), max(1, SMs // (batch x head CTAs))) CTAs; where that leaves half the SMs (a quarter, or
    batch 1: all) idle, it also splits the 512-wide values over 2 (4) CTAs and recomputes k; the k partial results
    then reduce in a cluster's shared memory (k <= 16, batch > 1) or through global memory. The high-throughput kernel
    (64 heads per CTA; 128 heads on a 2-CTA pair) does not split."""
    b, h, hk, c = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (batch, heads, kv_heads, context)))
    group = h / hk
    low = (group <= 32) | (b * np.ceil(group / 16) * 2 <= sms)
    keys = np.ceil(c / TRTLLM_GEN_KV_STEP)
    y = np.ceil(group / 16) * hk
    k = np.minimum(keys, np.maximum(1.0, np.floor(sms / (y * b))))
    total = b * y * k
    corr = np.where(b == 1, 1.0, 2.0)
    dv_split = np.where(k <= 1, 1.0, np.where(total * 2 * corr <= sms, 4.0, np.where(total * corr <= sms, 2.0, 1.0)))
    y = y * dv_split
    k = np.where(dv_split > 1, np.minimum(keys, np.maximum(1.0, np.floor(sms / (y * b)))), k)
    k = np.where(low, k, 1.0)
    ctas = np.where(low, b * y * k, b * hk * np.ceil(group / 64))
    return k, ctas
