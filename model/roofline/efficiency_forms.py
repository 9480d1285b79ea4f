"""The efficiency forms: how far below peak a kernel of a given shape and size runs (GEMM rows, columns, k loop,
sustained clock, tile waves, activation quantization; attention; streaming), shared by the step evaluator, the
single-kernel predictions and the calibration fit. Their parameters are the fields of `Efficiency`
(model.roofline.efficiency); docs/calibration.md has each form with its source.
"""

from __future__ import annotations

import numpy as np

from model.roofline.efficiency import DTYPE_CLASSES


# --- the efficiency curves (used by the evaluator, the kernel predictions and the calibration fit) --------

def saturation(x, half):
    """x / (x + half): 0 for tiny sizes, approaching 1 for large ones."""
    return x / (x + half)


def tile_fill(m, tile) -> object:
    """Share of a tensor-core tile's rows that carry real tokens when m is below one tile: m / max(m, tile).

    (Rounding larger m up to whole tiles would add wave-quantisation steps that engines smooth out by padding
    batches to CUDA-graph sizes; only the small-m regime, where a one-token GEMM pays for a full tile, matters.)"""
    m = np.asarray(m, dtype=float)
    return np.where(m > 0, m / np.maximum(m, tile), 1.0)


def gemm_eta(m, n, gemm_max, eff, tile=None, gemv=True) -> object:
    """Fraction of the dense peak a GEMM with m rows (tokens) and n output columns reaches; `tile`: rows of the
    dtype's smallest tile (Efficiency.gemm_tile; default gemm_tile_m); `gemv` False: never the GEMV path (grouped MoE
    expert GEMMs, which the kernel tables do not time)."""
    tile = eff.gemm_tile_m if tile is None else tile
    wide = saturation(n, eff.gemm_n_half)
    # the GEMV path (Efficiency.gemv): no tile and no row half-point. The row half-point ramps over the rows the
    # kernel runs, a padded tile's included: a GEMM of fewer rows than one tile runs that whole tile, so it takes
    # the time of a full tile, never longer (at m/(m + gemm_m_half) its time would grow as 1/m below the tile)
    m = np.asarray(m, dtype=float)
    rows = np.where(m > 0, np.maximum(m, tile), m)
    tiled = gemm_max * tile_fill(m, tile) * saturation(rows, eff.gemm_m_half) * wide
    return np.where(eff.gemv(m) & np.asarray(gemv, dtype=bool), gemm_max * wide, tiled)


def sustains(dtype: str) -> float:
    """1 where GEMMs of `dtype` slow to the sustained clock (Efficiency.gemm_sustain: 16-bit GEMMs; the FP8/FP4 tables
    keep their ceiling past 1 ms), else 0."""
    return 1.0 if DTYPE_CLASSES.get(dtype, "16") == "16" else 0.0


def gemm_sustain(flops, peak_flop_per_s, eff, applies=1.0) -> object:
    """Factor on a GEMM's compute efficiency for the rate long kernels sustain: 1 / (1 + gemm_sustain_drop * x/(x +
    gemm_sustain_s)), x = flops / peak_flop_per_s (one kernel's seconds at the peak); `applies` 0: no such slowing
    (`sustains` of the GEMM's dtype); exactly 1 where gemm_sustain_drop = 0."""
    flops = np.asarray(flops, dtype=float)
    drop = np.asarray(eff.gemm_sustain_drop, dtype=float) * np.asarray(applies, dtype=float)
    if not np.any(drop > 0):
        return np.ones_like(flops)
    x = flops / np.asarray(peak_flop_per_s, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(x > 0, x / (x + eff.gemm_sustain_s), 0.0)
    return 1.0 / (1.0 + drop * share)


def deepgemm_wave_fill(m, n, sms) -> object:
    """Share of the SMs' tile slots that carry real output in DeepGEMM's SM90 normal GEMM (Efficiency.gemm_waves_8b):
    m n / (waves x sms x block_m x block_n) for the (block_m, block_n) its heuristic picks (deep_gemm
    csrc/jit_kernels/heuristics/common.hpp get_best_config and sm90.hpp, 0f5f266, 2026-01): block_m in 64, 128,
    256 (then 16 where m <= 16, 32 where m <= 32), block_n in 16..128 step 16 and 144, 160, 192 (1D2D kernel), not both
    above 128; the fewest waves ceil(tiles / sms) first, then the fullest last wave, then on a tie the smaller
    block_n at the same block_m, the smaller block_m at the same block_n, or the larger block_n no wider than n with
    a block_m no taller than m. 1 where sms = 0."""
    m, n = np.broadcast_arrays(np.asarray(m, dtype=float), np.asarray(n, dtype=float))
    if not sms:
        return np.ones_like(m)
    waves, util, best_m, best_n = (np.zeros_like(m) for _ in range(4))
    for block_m in (64, 128, 256, 16, 32):  # the source's order: ties keep the earlier pick
        for block_n in [*range(16, 129, 16), 144, 160, 192]:
            if block_m > 128 and block_n > 128:
                continue
            tiles = np.ceil(m / block_m) * np.ceil(n / block_n)
            w = np.ceil(tiles / sms)
            last = np.where(tiles % sms == 0, sms, tiles % sms)
            tie = (w == waves) & (last == util) & (((block_m == best_m) & (block_n < best_n))
                                                   | ((block_n == best_n) & (block_m < best_m))
                                                   | ((block_m != best_m) & (block_n > best_n) & (block_n <= n)
                                                      & (block_m <= m)))
            better = (waves == 0) | (w < waves) | ((w == waves) & (last > util)) | tie
            better &= (block_m >= 64) | (m <= block_m)  # the 16- and 32-row blocks only for m up to them
            waves, util = np.where(better, w, waves), np.where(better, last, util)
            best_m, best_n = np.where(better, block_m, best_m), np.where(better, block_n, best_n)
    return np.where(m * n > 0, m * n / (waves * sms * best_m * best_n), 1.0)


def gemm_k_tile_area(m, tile_rows) -> object:
    """Area of the output tile a GEMM of m rows runs relative to the dispatch's smallest (Efficiency.gemm_k_tile_8 =
    `tile_rows` t): 1 for m <= t, 2 for m <= 2t, 4 above (t x t, t x 2t, 2t x 2t tiles); 1 everywhere where t = 0."""
    m = np.asarray(m, dtype=float)
    if not np.any(np.asarray(tile_rows) > 0):
        return np.ones_like(m)
    return np.select([m <= tile_rows, m <= 2 * tile_rows], [1.0, 2.0], 4.0)


def eager_call_s(kernels_s, host_s) -> object:
    """Seconds per call of a loop of eagerly issued calls (no CUDA graph): the host issues the next call while the GPU
    runs this one, so the slower of the two paces the loop, max(host_s, kernels_s) (Efficiency.gemm_host_s_8b);
    kernels_s unchanged where host_s = 0."""
    return np.maximum(np.asarray(kernels_s, dtype=float), np.asarray(host_s, dtype=float))


def gemm_row_fill(m, tile_rows) -> object:
    """Share of the padded rows that carry tokens where a GEMM of m rows runs whole row tiles past its first
    (Efficiency.gemm_row_pad_8): m / (ceil(m/u) u), u = t rows for m <= 2t, 2t for m <= 16t, 4t above (2t-row tiles in
    clusters of two), t = `tile_rows`; 1 for m <= u (the tile fill covers a GEMM of one tile) and where t = 0."""
    m = np.asarray(m, dtype=float)
    if not np.any(np.asarray(tile_rows) > 0):
        return np.ones_like(m)
    unit = np.select([m <= 2 * tile_rows, m <= 16 * tile_rows], [tile_rows, 2 * tile_rows], 4 * tile_rows)
    return np.where(m > unit, m / (np.ceil(m / unit) * unit), 1.0)


def gemm_k_loop_s(k, eff, scale=1.0, split=None) -> object:
    """Seconds of one output tile's serial loop over k (a lower bound on a GEMM's busy time): gemm_k_s per element
    of k, up to gemm_k_split elements where the library splits k (0: no split), times `scale`
    (Efficiency.gemm_k_scale of the GEMM's dtype)."""
    k = np.asarray(k, dtype=float)
    split = np.asarray(eff.gemm_k_split if split is None else split, dtype=float)
    return np.where(split > 0, np.minimum(k, split), k) * eff.gemm_k_s * np.asarray(scale, dtype=float)


def gemm_quant_s(m, k, quant, bandwidth_bytes_per_s, eff) -> object:
    """Seconds of the activation-quantization kernel before an FP8/FP4 GEMM of m x k activations, `quant` =
    Efficiency.gemm_quant (fixed s, bytes per element, s per row): the fixed time, plus the bytes of every element
    at the streaming ceiling, plus the per-row time; 0 where the GEMM has no rows."""
    quant_s, quant_bytes, quant_row_s = quant
    m, k = np.asarray(m, dtype=float), np.asarray(k, dtype=float)
    stream = quant_bytes * m * k / (np.asarray(bandwidth_bytes_per_s, dtype=float) * eff.mem_max)
    return np.where(m > 0, quant_s + stream + quant_row_s * m, 0.0)


def combine_roofline(compute_s, memory_s, p) -> object:
    """(t_c^p + t_m^p)^(1/p): the roofline with a soft corner (p = inf is the hard max)."""
    c, m = np.asarray(compute_s, dtype=float), np.asarray(memory_s, dtype=float)
    p = np.asarray(p, dtype=float)
    hi = np.maximum(c, m)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        soft = hi * ((c / np.where(hi > 0, hi, 1)) ** p + (m / np.where(hi > 0, hi, 1)) ** p) ** (1 / p)
    return np.where(np.isfinite(p) & (hi > 0), soft, hi)


def attention_eta(query_rows, top, eff, kv_len=None, head_dim=None, d_half=None, kv_half=None,
                  q_half=None) -> object:
    """Fraction of peak an attention kernel reaches with `query_rows` queries per KV head (GQA packing) over
    `kv_len` keys per query and `head_dim` (formulas.attention_depth) per head (None or 0: a kernel whose KV length
    or head dimension is not known, e.g. linear attention, has no such term); `d_half` defaults to
    attention_d_half, `kv_half` to attention_kv_half, `q_half` to attention_q_half."""
    eta = top * saturation(query_rows, eff.attention_q_half if q_half is None else q_half)
    d_half = eff.attention_d_half if d_half is None else d_half
    kv_half = eff.attention_kv_half if kv_half is None else kv_half
    with np.errstate(divide="ignore", invalid="ignore"):
        for size, half in ((kv_len, kv_half), (head_dim, d_half)):
            if size is not None:
                size = np.asarray(size, dtype=float)
                eta = eta * np.where(size > 0, saturation(size, half), 1.0)
    return eta


def memory_eta(nbytes, eff) -> object:
    """Fraction of peak bandwidth a kernel moving `nbytes` reaches."""
    return eff.mem_max * saturation(nbytes, eff.mem_bytes_half)
