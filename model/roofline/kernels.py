"""Predicted time of single kernels (GEMM, attention, copy, element-wise), for validation and calibration.

The same efficiency curves and roofline terms as the step evaluator, applied to one kernel described by its
shape, so measured kernel tables can be compared with, and fitted to, the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.operators.formulas import attention_flops_per_pair, gemm_flops, keys_seen_full
from model.precision import number_format
from model.roofline.decode_splits import (
    TRTLLM_GEN_KV_STEP,
    decode_split_blocks,
    fa3_decode_terms,
    fa3_mla_decode_splits,
    trtllm_gen_mla_decode_splits,
    xqa_decode_tiles,
)
from model.roofline.efficiency import DTYPE_CLASSES, Efficiency
from model.roofline.efficiency_forms import (deepgemm_wave_fill, eager_call_s, gemm_k_loop_s, gemm_k_tile_area,
                                             gemm_quant_s, gemm_row_fill, gemm_sustain, sustains)
from model.roofline.kernel import compute_eta, kernel_time, memory_time

PREFILL_TILE_ROWS = 128.0  # query rows per prefill attention CTA (FlashAttention-3 kBlockM at head_dim 128)
KERNELS = ("gemm", "attention", "decode_attention", "copy", "elementwise")
# columns each kernel kind needs in a table
COLUMNS = {
    "gemm": ("m", "n", "k"),
    "attention": ("batch", "heads", "kv_heads", "head_dim", "seq_len"),
    "decode_attention": ("batch", "heads", "kv_heads", "head_dim", "context"),
    "copy": ("bytes",),
    "elementwise": ("bytes",),
}


@dataclass(frozen=True)
class KernelWork:
    flops: np.ndarray
    bytes: np.ndarray
    kind: np.ndarray  # kernel kind per row
    dtype: np.ndarray
    shape_m: np.ndarray  # rows for GEMM efficiency, query rows per KV head for attention
    shape_n: np.ndarray  # output columns for GEMM efficiency, keys per query (KV length) for attention
    shape_k: np.ndarray  # GEMM inner dimension (activation columns the FP8/FP4 quantization reads); attention: head dim
    mla: np.ndarray  # attention rows of MLA kernels (optional table column `mla` = 1)
    block: np.ndarray | None = None  # FP8 GEMM rows of block-scaled kernels (optional column `block_scaled` = 1)
    fallback: np.ndarray | None = None  # decode rows on the per-query-head kernel (decode_fallback)
    qo_bytes: np.ndarray | None = None  # attention rows: the query and output bytes within `bytes`


def kernel_work(table: pd.DataFrame) -> KernelWork:
    """FLOPs, bytes and efficiency-relevant shape of every row of a kernel table."""
    if "kernel" not in table:
        raise RidgeplanError("kernel", "the table needs a 'kernel' column", KERNELS)
    n = len(table)
    flops, nbytes = np.zeros(n), np.zeros(n)
    m_rows, n_cols, k_cols, qo_bytes = np.ones(n), np.ones(n), np.zeros(n), np.zeros(n)
    kinds = table["kernel"].astype(str).to_numpy()
    dtypes = (table["dtype"].astype(str) if "dtype" in table else pd.Series(["bf16"] * n)).to_numpy()
    elem = np.array([number_format(d if d in ("fp8", "int8", "fp32", "fp16", "bf16", "fp4") else "bf16").bytes_per_element
                     for d in dtypes])
    for kind in set(kinds):
        if kind not in KERNELS:
            raise RidgeplanError("kernel", f"unknown kernel kind {kind!r}", KERNELS)
        rows = kinds == kind
        sub = table.loc[rows]
        missing = [c for c in COLUMNS[kind] if c not in sub or sub[c].isna().any()]
        if missing:
            raise RidgeplanError(missing[0], f"is needed for {kind} rows", COLUMNS[kind])
        if kind == "gemm":
            m, nn, k = (sub[c].to_numpy(float) for c in ("m", "n", "k"))
            flops[rows] = gemm_flops(m, nn, k)
            out_bytes = np.where(elem[rows] < 2, 2.0, elem[rows])  # FP8/INT8 GEMMs write 16-bit outputs
            nbytes[rows] = (m * k + k * nn) * elem[rows] + m * nn * out_bytes
            m_rows[rows], n_cols[rows], k_cols[rows] = m, nn, k
        elif kind in ("attention", "decode_attention"):
            b, h, hk, d = (sub[c].to_numpy(float) for c in ("batch", "heads", "kv_heads", "head_dim"))
            k_cols[rows] = d  # (d_qk + d_v) / 2 as formulas.attention_depth: FLOPs per pair are 4 d
            # optional kv_dim: cached elements per token per KV head (default 2*head_dim, K and V; MLA's shared
            # latent cache is one 576-wide vector)
            kv = sub["kv_dim"].fillna(0).to_numpy(float) if "kv_dim" in sub else np.zeros(len(sub))
            kv = np.where(kv > 0, kv, 2 * d)
            if kind == "attention":
                s = sub["seq_len"].to_numpy(float)
                causal = sub["causal"].to_numpy(float) if "causal" in sub else np.ones(len(sub))
                flops[rows] = b * h * attention_flops_per_pair(d, d) * keys_seen_full(s, 0.0, causal)
                nbytes[rows] = b * s * (2 * h * d + hk * kv) * elem[rows]
                qo_bytes[rows] = b * s * 2 * h * d * elem[rows]
                m_rows[rows], n_cols[rows] = s * h / hk, s
            else:
                c = sub["context"].to_numpy(float)
                flops[rows] = b * h * attention_flops_per_pair(d, d) * keys_seen_full(1.0, c - 1, 1.0)
                nbytes[rows] = b * c * hk * kv * elem[rows] + 2 * b * h * d * 2
                qo_bytes[rows] = 2 * b * h * d * 2
                m_rows[rows], n_cols[rows] = h / hk, c
        else:
            size = sub["bytes"].to_numpy(float)
            nbytes[rows] = 2 * size  # read + write
            flops[rows] = 0.0 if kind == "copy" else size / elem[rows]
    mla = (table["mla"].fillna(0).to_numpy(float) > 0) if "mla" in table else np.zeros(n, dtype=bool)
    block = (table["block_scaled"].fillna(0).to_numpy(float) > 0) if "block_scaled" in table else np.zeros(n, bool)
    return KernelWork(flops, nbytes, kinds, dtypes, m_rows, n_cols, k_cols, mla, block, qo_bytes=qo_bytes)


def mla_qo_bytes(w: KernelWork, eff: Efficiency) -> np.ndarray:
    """Bytes of each row at the attention bandwidth, with an MLA kernel's query and output tiles moving at
    Efficiency.mla_qo_mem_scale of its latent stream (counted as bytes / scale; 1 = the same, no change)."""
    if w.qo_bytes is None or not w.mla.any() or np.all(np.asarray(eff.mla_qo_mem_scale) == 1.0):
        return w.bytes
    return w.bytes + np.where(w.mla, w.qo_bytes * (1.0 / eff.mla_qo_mem_scale - 1.0), 0.0)


def mla_split_work(w: KernelWork, table: pd.DataFrame, eff: Efficiency,
                   sms: float) -> tuple[KernelWork, np.ndarray, np.ndarray]:
    """MLA decode rows split by FlashAttention-3's rule (Efficiency.mla_fa3_split = 1) and their splits: each split CTA
    loads the query tile again and writes fp32 partial outputs plus a log-sum-exp per (head, split), which the combine
    kernel reads back (query bytes x (S - 1) + 2 x S x heads x (4 d_v + 4) per sequence; added to the query and output
    bytes). d_v = 2 head_dim - kv_dim (the table's head_dim is (d_qk + d_v) / 2 with d_qk = kv_dim). Also the key
    blocks each CTA walks in sequence, wave after wave: ceil(b m S / SMs) x ceil(n / S) (Efficiency.mla_block_s)."""
    n = len(table)
    rows = w.mla & (w.kind == "decode_attention")
    splits, chain = np.ones(n), np.zeros(n)
    if eff.mla_trtllm_gen_split and sms and rows.any():
        b, h, hk, c = (table.loc[rows, col].to_numpy(float) for col in ("batch", "heads", "kv_heads", "context"))
        k, ctas = trtllm_gen_mla_decode_splits(b, h, hk, c, sms)
        splits[rows] = k
        chain[rows] = np.ceil(ctas / sms) * np.ceil(np.ceil(c / TRTLLM_GEN_KV_STEP) / k)
        return w, splits, chain
    if not eff.mla_fa3_split or not sms or not rows.any() or not eff.mla_block:
        return w, splits, chain
    sub = table.loc[rows]
    b, h, hk, c, d = (sub[col].to_numpy(float) for col in ("batch", "heads", "kv_heads", "context", "head_dim"))
    kv = sub["kv_dim"].fillna(0).to_numpy(float) if "kv_dim" in sub else np.zeros(len(sub))
    d_qk = np.where(kv > 0, kv, d)
    d_v = 2 * d - d_qk
    s = fa3_mla_decode_splits(b, h, hk, c, eff.mla_block, sms)
    extra = np.where(s > 1, b * h * ((s - 1) * d_qk * 2 + 2 * s * (4 * d_v + 4)), 0.0)
    nbytes, qo = w.bytes.copy(), w.qo_bytes.copy()
    nbytes[rows] += extra
    qo[rows] += extra
    splits[rows] = s
    m_blocks, n_blocks = np.ceil(h / hk / eff.mla_block), np.ceil(c / eff.mla_block)
    chain[rows] = np.ceil(b * hk * m_blocks * s / sms) * np.ceil(n_blocks / s)
    return replace(w, bytes=nbytes, qo_bytes=qo), splits, chain


def decode_fallback(w: KernelWork, table: pd.DataFrame, eff: Efficiency, sms: float = 0.0) -> KernelWork:
    """Decode attention rows that leave the grouped kernel (Efficiency.decode_group_limit > 0: group size above it, or
    plain MHA) run one query head per CTA: one query row per tile, and every query head reads its KV head's cache
    (KV bytes x group size; the query and output bytes are unchanged)."""
    n = len(table)
    fallback = np.zeros(n, dtype=bool)
    if eff.decode_group_limit > 0 and (w.kind == "decode_attention").any():
        rows = w.kind == "decode_attention"
        group = np.ones(n)
        group[rows] = table.loc[rows, "heads"].to_numpy(float) / table.loc[rows, "kv_heads"].to_numpy(float)
        fallback = rows & ~w.mla & ((group > eff.decode_group_limit) | (group == 1))
        if eff.decode_group_min_fill > 0 and sms:  # too few CTAs for the grouped kernel: the engine skips it
            ctas = np.ones(n)
            ctas[rows] = (table.loc[rows, "batch"].to_numpy(float) * table.loc[rows, "kv_heads"].to_numpy(float)
                          * np.maximum(1.0, np.floor((table.loc[rows, "context"].to_numpy(float) - 1)
                                                     / eff.decode_split_tokens)))
            fallback = fallback | (rows & ~w.mla & (ctas < eff.decode_group_min_fill * sms))
    if not fallback.any():
        return replace(w, fallback=fallback)
    b, h, d = (table.loc[fallback, c].to_numpy(float) for c in ("batch", "heads", "head_dim"))
    qo_bytes = 2 * b * h * d * 2
    nbytes, m_rows = w.bytes.copy(), w.shape_m.copy()
    nbytes[fallback] = (w.bytes[fallback] - qo_bytes) * group[fallback] + qo_bytes
    m_rows[fallback] = 1.0
    return replace(w, bytes=nbytes, shape_m=m_rows, fallback=fallback)


def tiled_heads(eff: Efficiency) -> str:
    """The table column that counts a prefill call's tiled heads: KV heads (the query group packed into one tile)
    or query heads (Efficiency.prefill_head_tiles)."""
    return "heads" if eff.prefill_head_tiles else "kv_heads"


def prefill_head_tiles(w: KernelWork, table: pd.DataFrame, eff: Efficiency) -> KernelWork:
    """GQA/MHA prefill rows on a kernel that tiles every query head apart (Efficiency.prefill_head_tiles): a tile's
    query rows are the sequence's tokens, not the tokens times the query group."""
    rows = (w.kind == "attention") & ~w.mla
    if not eff.prefill_head_tiles or not rows.any():
        return w
    m_rows = w.shape_m.copy()
    m_rows[rows] = table.loc[rows, "seq_len"].to_numpy(float)
    return replace(w, shape_m=m_rows)


def unfused_kv_store(table: pd.DataFrame, w: KernelWork) -> np.ndarray:
    """GQA/MHA attention rows whose value heads are narrower than their key heads (the row's v_head_dim, absent or
    NaN = head_dim): their new keys and values go to the cache without the fused store
    (Efficiency.kv_store_unfused_s)."""
    if "v_head_dim" not in table or "head_dim" not in table:
        return np.zeros(len(table), dtype=bool)
    head_dim = table["head_dim"].to_numpy(float)
    v_head_dim = table["v_head_dim"].to_numpy(float)
    narrower = np.isfinite(v_head_dim) & (v_head_dim < head_dim)
    return narrower & np.isin(w.kind, ("attention", "decode_attention")) & ~w.mla


def kv_store_bytes(table: pd.DataFrame, w: KernelWork, eff: Efficiency) -> np.ndarray:
    """Bytes the engine's KV-cache store kernel moves per GQA/MHA attention row (Efficiency.kv_store_kernel): the
    call's new keys and values (a prefill's tokens, a decode's one token per sequence) read and written, 2 x tokens x
    KV heads x cached elements per KV head (kv_dim, default K and V: 2 x head_dim) x bytes per element; 0 elsewhere."""
    out = np.zeros(len(table))
    rows = np.isin(w.kind, ("attention", "decode_attention")) & ~w.mla
    if not eff.kv_store_kernel or not rows.any():
        return out
    sub = table.loc[rows]
    b, hk, d = (sub[c].to_numpy(float) for c in ("batch", "kv_heads", "head_dim"))
    tokens = np.where(w.kind[rows] == "attention", sub["seq_len"].to_numpy(float) if "seq_len" in sub else 0.0, 1.0)
    kv = sub["kv_dim"].fillna(0).to_numpy(float) if "kv_dim" in sub else np.zeros(len(sub))
    kv = np.where(kv > 0, kv, 2 * d)
    sizes = {x: number_format(x if x in ("fp8", "fp16", "bf16", "fp32") else "bf16").bytes_per_element
             for x in set(w.dtype[rows])}
    elem = np.array([sizes[x] for x in w.dtype[rows]])
    out[rows] = 2 * b * tokens * hk * kv * elem
    return out


def value_slices(table: pd.DataFrame, rows: np.ndarray, eff: Efficiency) -> np.ndarray:
    """CTAs per head of each prefill row's value head (Efficiency.prefill_v_slice_dim; 1 = the whole head)."""
    if not eff.prefill_v_slice_dim or not rows.any():
        return np.ones(int(rows.sum()))
    return np.maximum(1.0, np.ceil(table.loc[rows, "head_dim"].to_numpy(float) / eff.prefill_v_slice_dim))


def prefill_value_slices(w: KernelWork, table: pd.DataFrame, eff: Efficiency) -> KernelWork:
    """GQA/MHA prefill rows whose value head is split over CTAs that each recompute Q.K^T: FLOPs per pair
    2 d x slices + 2 d in place of 4 d."""
    rows = (w.kind == "attention") & ~w.mla
    slices = value_slices(table, rows, eff)
    if not rows.any() or np.all(slices == 1):
        return w
    flops = w.flops.copy()
    flops[rows] = w.flops[rows] * (slices + 1) / 2
    return replace(w, flops=flops)


def mla_blocks(w: KernelWork, table: pd.DataFrame, eff: Efficiency) -> KernelWork:
    """MLA attention rows as their kernels run them (Efficiency.mla_block = B > 0): whole blocks of B query rows by B
    keys. A prefill sequence of s tokens runs ceil(s/B) query blocks, block i over i + 1 key blocks when causal (the
    diagonal block in full), so it computes B^2 n(n+1)/2 (query, key) pairs, not s(s+1)/2; query rows per KV head and
    keys are padded to whole blocks, and a decode call's context to whole key blocks."""
    rows = w.mla & np.isin(w.kind, ("attention", "decode_attention"))
    block = float(eff.mla_block)
    if block <= 0 or not rows.any():
        return w
    flops, m_rows, n_cols = w.flops.copy(), w.shape_m.copy(), w.shape_n.copy()
    sub = table.loc[rows]
    b, h, d = (sub[c].to_numpy(float) for c in ("batch", "heads", "head_dim"))
    per_pair = b * h * attention_flops_per_pair(d, d)
    prefill = w.kind[rows] == "attention"
    keys = np.where(prefill, sub["seq_len"].to_numpy(float) if "seq_len" in sub else 0.0,
                    sub["context"].to_numpy(float) if "context" in sub else 0.0)
    blocks = np.ceil(keys / block)
    causal = sub["causal"].to_numpy(float) if "causal" in sub else np.ones(len(sub))
    pairs = np.where(prefill, block**2 * (causal * blocks * (blocks + 1) / 2 + (1 - causal) * blocks**2),
                     blocks * block)
    flops[rows] = per_pair * pairs
    m_rows[rows] = np.ceil(w.shape_m[rows] / block) * block
    n_cols[rows] = blocks * block
    return replace(w, flops=flops, shape_m=m_rows, shape_n=n_cols)


def gemm_terms(w: KernelWork, rows: np.ndarray, dtype: str, block: bool, device: Device, eff: Efficiency,
               sms: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(peak FLOP/s, compute efficiency, activation-quantization seconds, k-loop seconds) of the GEMM rows `rows` of
    one dtype and scaling (per-tensor or block-scaled FP8)."""
    peak = device.peak(dtype)
    m, n_cols, k = w.shape_m[rows], w.shape_n[rows], w.shape_k[rows]
    eta = compute_eta("gemm", m, n_cols, eff, gemm_max=eff.gemm_max(dtype, block), tile=eff.gemm_tile(dtype, block))
    eta = eta * gemm_sustain(w.flops[rows], peak, eff, sustains(dtype))
    quant_s = gemm_quant_s(m, k, eff.gemm_quant(dtype, block), device.memory.bandwidth_bytes_per_s, eff)
    k_loop = gemm_k_loop_s(k, eff, eff.gemm_k_scale(dtype, block), eff.gemm_k_split_of(dtype))
    if eff.gemm_waves_8b and sms and eff.block8(dtype, block):  # DeepGEMM: padded tiles in whole waves
        eta = eta * deepgemm_wave_fill(m, n_cols, sms)
    if not eff.block8(dtype, block) and DTYPE_CLASSES.get(dtype) == "8":  # per-tensor FP8: its dispatch's tile
        k_loop = k_loop * gemm_k_tile_area(m, eff.gemm_k_tile_8)
        if eff.gemm_row_pad_8:  # and its compute on whole row tiles
            eta = eta * gemm_row_fill(m, eff.gemm_k_tile_8)
    return peak, eta, quant_s, k_loop


def longest_tile(w: KernelWork, table: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The longest prefill tile of each row in mean tiles: under a causal mask query tile i of n (PREFILL_TILE_ROWS
    rows each) attends i + 1 key tiles, so the last tile does n of the mean (n + 1) / 2: 2 n / (n + 1); 1 without
    the mask. A call on one CTA per tile (no KV split) ends no sooner than that tile."""
    n = np.ceil(w.shape_m[rows] / PREFILL_TILE_ROWS)
    causal = table.loc[rows, "causal"].to_numpy(float) if "causal" in table else np.ones(int(rows.sum()))
    return np.where(causal > 0, 2 * n / (n + 1), 1.0)


def attention_call_terms(w: KernelWork, table: pd.DataFrame, eff: Efficiency, sms: float, eta: np.ndarray,
                         mla_splits: np.ndarray, fa3_splits: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(compute efficiency, per-call floor seconds, per-work-item compute seconds, speed of the kernel that runs)
    of every row, with the attention kernels' own terms: the generic kernel past the flash kernels' head dimensions,
    prefill and decode call floors (MLA's own, split merges, the unfused KV store), decode work items and prefill
    tiles in whole waves. Zero-cost (1, 0) for other rows."""
    n = len(table)
    # head dimensions past the engine's flash kernels run a generic kernel at attention_wide_scale of their speed
    wide_dim = np.select([w.kind == "attention", w.kind == "decode_attention"],
                         [eff.attention_wide_head_dim, eff.decode_wide_head_dim], 0.0)
    generic = (eff.attention_generic_head_dim > 0) & np.isin(w.kind, ("attention", "decode_attention")) \
        & (table["head_dim"].to_numpy(float) == eff.attention_generic_head_dim if "head_dim" in table else False)
    wide = ~w.mla & (((wide_dim > 0) & (w.shape_k > wide_dim)) | generic)
    speed = np.where(wide, eff.attention_wide_scale, 1.0)
    eta = eta * speed
    decode_floor_s = np.where(w.mla & (eff.mla_decode_floor_s > 0), eff.mla_decode_floor_s,
                              eff.decode_attention_floor_s)
    prefill_floor_s = np.where(w.mla & (eff.mla_prefill_floor_s > 0), eff.mla_prefill_floor_s, eff.attention_floor_s)
    # a grouped GQA/MHA decode call's work items (Efficiency.decode_item_s): one per (sequence, KV head); the
    # per-query-head fallback kernel's CTAs at their own cost (decode_fallback_item_s)
    decode = (w.kind == "decode_attention") & ~w.mla
    grouped = decode & ~w.fallback
    item_s = np.zeros(n)
    if eff.decode_item_s and grouped.any():
        item_s[grouped] = eff.decode_item_s * (table.loc[grouped, "batch"].to_numpy(float)
                                               * table.loc[grouped, "kv_heads"].to_numpy(float))
    fallback = decode & w.fallback if w.fallback is not None else np.zeros(n, dtype=bool)
    if eff.decode_fallback_item_s and fallback.any():  # the fallback kernel's CTAs: one per (sequence, query head)
        item_s[fallback] = eff.decode_fallback_item_s * (table.loc[fallback, "batch"].to_numpy(float)
                                                         * table.loc[fallback, "heads"].to_numpy(float))
    # prefill calls on the engine's decode path (prefill_decode_tokens) pay the decode floor and no prefill tiles
    as_decode = (w.kind == "attention") & ~w.mla & (w.shape_n <= eff.prefill_decode_tokens)  # n = query tokens
    prefill = (w.kind == "attention") & ~w.mla & ~as_decode
    tiles = np.zeros(n)  # w.shape_m: query rows per tiled head (the GQA-packed group or not)
    if prefill.any():
        tiles[prefill] = (table.loc[prefill, "batch"].to_numpy(float)
                          * table.loc[prefill, tiled_heads(eff)].to_numpy(float)
                          * np.ceil(w.shape_m[prefill] / PREFILL_TILE_ROWS) * value_slices(table, prefill, eff))
    if eff.prefill_tile_s and prefill.any():
        item_s[prefill] = eff.prefill_tile_s * tiles[prefill]
    if eff.prefill_tile_waves and sms and prefill.any():  # whole waves of tiles: idle SMs slow the compute
        waves = tiles[prefill] / sms
        eta[prefill] = eta[prefill] * waves / np.maximum(np.ceil(waves), longest_tile(w, table, prefill))
    if eff.decode_split_s and decode.any():  # split-KV calls merge their partial results (decode_split_s)
        blocks = np.ones(n)
        blocks[decode] = decode_split_blocks(*(table.loc[decode, c].to_numpy(float)
                                               for c in ("batch", "kv_heads", "context")), eff, sms)
        if fa3_splits is not None:  # FA3 decode rows split by FA3's own rule (fa3_decode_terms; 0 = other rows)
            blocks = np.where(fa3_splits > 0, fa3_splits, blocks)
        decode_floor_s = decode_floor_s + np.where(blocks > 1, eff.decode_split_s, 0.0)
    decode_floor_s = decode_floor_s + np.where(mla_splits > 1, eff.mla_split_s, 0.0)  # the split's reduction
    call_floor_s = np.select([as_decode, w.kind == "attention", w.kind == "decode_attention"],
                             [eff.decode_attention_floor_s, prefill_floor_s, decode_floor_s], 0.0)
    if eff.kv_store_unfused_s:  # K and V of unequal widths: the engine writes them to the cache apart, once per call
        call_floor_s = call_floor_s + np.where(unfused_kv_store(table, w), eff.kv_store_unfused_s, 0.0)
    return eta, call_floor_s, item_s, speed


def bench_l2_saving_s(table: pd.DataFrame, eff: Efficiency) -> np.ndarray | float:
    """Seconds of fixed time a row's benchmark saved by finding its operands in a warm L2 (table column
    `bench_l2_share`, model.calibration.bench_cache): share x Efficiency.bench_l2_floor_s, the HBM latency its
    first loads and last stores would have waited on, never more than the kernel floor it is part of. 0 without the
    column or the term."""
    if not eff.bench_l2_floor_s or "bench_l2_share" not in table:
        return 0.0
    return table["bench_l2_share"].fillna(0).to_numpy(float) * min(eff.bench_l2_floor_s, eff.kernel_floor_s)


def predict_kernels(table: pd.DataFrame, device: Device, eff: Efficiency) -> np.ndarray:
    """Predicted seconds for each row of a kernel table on `device` with efficiency `eff`."""
    sms = float(device.on_chip.compute_units or 0) if device.on_chip is not None else 0.0
    w = decode_fallback(kernel_work(table), table, eff, sms)
    w = mla_blocks(prefill_value_slices(prefill_head_tiles(w, table, eff), table, eff), table, eff)
    w, mla_splits, mla_chain = mla_split_work(w, table, eff, sms)
    decode_chain, decode_ctas, qo_tiles, fa3_splits = fa3_decode_terms(w, table, eff, sms)
    qo_tiles = qo_tiles + xqa_decode_tiles(w, table, eff, sms)
    n = len(table)
    peak, eta, extra, k_loop = np.ones(n), np.ones(n), np.zeros(n), np.zeros(n)
    # vectorized per (kind, dtype, block-scaled): tables can be large
    for kind, dtype, block in sorted(set(zip(w.kind, w.dtype, w.block.tolist()))):
        rows = (w.kind == kind) & (w.dtype == dtype) & (w.block == block)
        if kind == "gemm":
            peak[rows], eta[rows], extra[rows], k_loop[rows] = gemm_terms(w, rows, dtype, block, device, eff, sms)
        elif kind in ("attention", "decode_attention"):
            peak[rows] = device.peak(dtype if dtype in device.peak_flop_per_s else "bf16")
            eta[rows] = compute_eta("attention", w.shape_m[rows], w.shape_n[rows], eff, depth=w.shape_k[rows],
                                    mla=w.mla[rows])
        else:
            peak[rows] = device.vector_flop_per_s
            eta[rows] = compute_eta("elementwise", None, None, eff)
    eta, call_floor_s, item_s, speed = attention_call_terms(w, table, eff, sms, eta, mla_splits, fa3_splits)
    item_s = item_s * decode_ctas + eff.decode_item_tile_s * qo_tiles  # FA3 decode: per CTA, with its Q/O tiles
    kt = kernel_time(w.flops, mla_qo_bytes(w, eff), peak_flop_per_s=peak, eta_compute=eta,
                     bandwidth_bytes_per_s=device.memory.bandwidth_bytes_per_s, eff=eff, extra_floor_s=extra,
                     extra_busy_s=k_loop + eff.mla_block_s * mla_chain + eff.decode_block_s * decode_chain,
                     extra_compute_s=item_s,
                     eta_memory_scale=np.where(np.isin(w.kind, ("attention", "decode_attention")),
                                               eff.attention_mem_scale * np.where(w.mla, eff.mla_mem_scale, 1.0)
                                               * np.where(w.fallback, eff.decode_fallback_mem_scale, 1.0) * speed,
                                               np.where(w.kind == "gemm", eff.gemm_mem_scale(w.shape_m), 1.0)),
                     roofline_p=np.where(np.isin(w.kind, ("attention", "decode_attention")), eff.attention_p(w.mla),
                                         eff.roofline_p))
    # one kernel's own floor, plus attention's per-call preparation and an FP8/FP4 GEMM's activation quantization
    # (single-kernel timings pay both every call; inside a step engines prepare attention once per step and fuse
    # the quantization, except where evaluator.ExecContext.dense_quant says the engine does not)
    store_bytes = kv_store_bytes(table, w, eff)  # the engine's KV-cache store kernel, serial before the attention
    if store_bytes.any():
        bw = device.memory.bandwidth_bytes_per_s
        call_floor_s = call_floor_s + memory_time(store_bytes, bandwidth_bytes_per_s=bw, eff=eff).busy_s
    time_s = kt.time_s + call_floor_s - bench_l2_saving_s(table, eff)
    if eff.gemm_eager_8b and eff.gemm_host_s_8b > 0 and eff.gemm_max_8b > 0:
        # block-scaled FP8 rows the engine's tables timed eagerly: paced by the host or the GPU, the slower
        eight = np.isin(w.dtype, [d for d in set(w.dtype) if DTYPE_CLASSES.get(d) == "8"])
        eager = (w.kind == "gemm") & np.asarray(w.block, dtype=bool) & eight
        time_s = np.where(eager, eager_call_s(time_s, eff.gemm_host_s_8b), time_s)
    return time_s


def achieved(table: pd.DataFrame, seconds: np.ndarray) -> pd.DataFrame:
    """Achieved FLOP/s and bytes/s of each row for a given time (measured or predicted)."""
    w = kernel_work(table)
    return pd.DataFrame({"flop_per_s": w.flops / seconds, "bytes_per_s": w.bytes / seconds})
