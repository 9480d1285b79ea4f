"""`ridgeplan calibrate import`: fit ridgeplan's efficiency parameters to the public kernel tables, per GPU and
engine, with honest held-out errors, and derive per-class defaults with a leave-one-GPU-out check.

The analytical model stays the predictor: the fit (`model.calibration.fit.fit_efficiency`, scipy least squares
on the log time ratio) moves the parameters of its formulas (GEMM ceilings per dtype and the m/n half-points,
FP8/FP4 tile heights and activation-quantization cost: fixed, per element and per row; attention ceiling and its
query-rows, KV-length and head-dimension half-points, its KV-read bandwidth and MLA kernels' own ceiling and
head-dimension half-point; memory ceiling and half-size; kernel, prefill and decode attention and collective
floors; scale-up bus efficiency). The tables themselves are never shipped.

Held-out splits, per op family (shapes ordered by their work: FLOPs, bytes or message bytes):
- extrapolation: the smallest and the largest `EDGE` share of the shapes (at least one each);
- interpolation: every `K`-th of the remaining shapes.
Only the rest is fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from model.calibration.bench_cache import bench_l2_share
from model.calibration.fit import FitResult, fit_efficiency
from model.calibration.tables import EngineTables, TableSource, engine_rows
from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.roofline.efficiency import Efficiency
from model.roofline.efficiency_sets import efficiency_for

LARGE_GEMM_S = 100e-6  # the error of kernels at least this long is also reported on its own (held_out_error_long);
# every stage fits all shapes: the FP8/FP4 quantization call and the attention KV-length term model the short ones
K = 5  # every K-th shape held out (interpolation)
EDGE = 0.05  # smallest and largest share of shapes held out (extrapolation)
MAX_ROWS_PER_FAMILY = 600  # evenly spaced over the size order: enough to pin the curves, fast to fit
SPLITS = ("fit", "interpolation", "extrapolation")
CLASSES = {"hopper": ("h100-sxm", "h200"), "blackwell": ("b200", "b300", "gb200", "gb300")}
# parameters averaged across a class in log space (sizes and latencies); the others arithmetically
_LOG_PARAMS = ("gemm_m_half", "gemm_n_half", "attention_q_half", "attention_kv_half", "attention_d_half",
               "mla_d_half_scale", "mla_kv_half_scale", "mla_q_half_scale", "mla_decode_floor_s",
               "mla_prefill_floor_s", "mla_block_s", "mla_split_s", "decode_item_s", "prefill_tile_s", "decode_split_s",
               "decode_block_s", "decode_item_tile_s", "decode_fallback_item_s", "kv_store_unfused_s", "mem_bytes_half",
               "kernel_floor_s", "attention_floor_s", "decode_attention_floor_s", "collective_base_s",
               "collective_floor_s", "nvls_latency_s", "custom_ar_two_shot_s", "nccl_base_s",
               "gemm_k_s", "gemm_k_split", "gemm_k_split_8", "gemm_k_split_4", "gemm_k_scale_8", "gemm_k_scale_4",
               "gemm_quant_s_8", "gemm_quant_s_4",
               "gemm_quant_row_s_8", "gemm_quant_row_s_4",
               "gemm_tile_m_8", "gemm_tile_m_4", "gemm_tile_m_8b", "gemm_k_scale_8b", "gemm_quant_s_8b",
               "gemm_quant_row_s_8b", "gemm_host_s_8b", "gemm_sustain_s", "bench_l2_floor_s")


# the fit runs in stages, each on the families that inform its parameters, in order: a stage's parameters are
# fixed for the later ones (so FP8 GEMMs with their quantization overhead cannot bend the BF16 curve, nor
# attention the memory ceiling); the shared floors and memory ceiling come from BF16 GEMMs and copies
STAGES = (
    (("gemm_bf16", "copy"), ("gemm_max_16", "gemm_m_half", "gemm_n_half", "gemm_k_s", "gemm_k_split", "mem_max",
                             "mem_bytes_half", "kernel_floor_s", "roofline_p", "gemv_mem_scale", "gemm_sustain_drop",
                             "gemm_sustain_s", "bench_l2_floor_s")),
    # FP8/FP4: their own ceiling, tile scale of the half-points and the activation-quantization call
    # (FP8: per-tensor and block-scaled kernels, each with its own set, by the row's `block_scaled`: the table's
    # gemm_dtype fp8 or fp8_block of the faster kernel per shape)
    (("gemm_fp8",), ("gemm_max_8", "gemm_tile_m_8", "gemm_quant_s_8", "gemm_quant_bytes_8", "gemm_quant_row_s_8",
                     "gemm_k_scale_8", "gemm_k_split_8", "gemm_max_8b", "gemm_tile_m_8b", "gemm_k_scale_8b",
                     "gemm_quant_s_8b", "gemm_quant_bytes_8b", "gemm_quant_row_s_8b", "gemm_host_s_8b")),
    (("gemm_fp4",), ("gemm_max_4", "gemm_tile_m_4", "gemm_quant_s_4", "gemm_quant_bytes_4", "gemm_quant_row_s_4",
                     "gemm_k_scale_4", "gemm_k_split_4")),
    # one attention curve for prefill and decode: ceiling, query rows, KV length and head dimension half-points,
    # call floors, KV-read bandwidth
    (("attention_decode", "attention_prefill"),
     ("attention_floor_s", "decode_attention_floor_s", "attention_q_half", "attention_kv_half", "attention_d_half",
      "attention_max", "attention_mem_scale", "attention_roofline_p", "decode_fallback_mem_scale",
      "decode_item_s", "prefill_tile_s", "attention_wide_scale", "decode_split_s", "kv_store_unfused_s",
      "decode_block_s", "decode_item_tile_s", "decode_fallback_item_s")),
    # MLA kernels: their own ceiling relative to that curve (they cannot bend the curve of the other kernels)
    (("mla_decode", "mla_prefill"), ("mla_attention_scale", "mla_d_half_scale", "mla_kv_half_scale", "mla_q_half_scale",
                                     "mla_roofline_p", "mla_mem_scale", "mla_qo_mem_scale", "mla_decode_floor_s",
                                     "mla_prefill_floor_s", "mla_block_s", "mla_split_s")),
    # all-reduce: the ring/tree/one-shot bandwidth, the in-switch (NVLS) bandwidth, the collective kernel's floor,
    # and the engine's custom one-shot/two-shot kernels (where its size rule is set: custom_all_reduce_limits)
    (("all_reduce",), ("collective_base_s", "scale_up_bus_efficiency", "nvls_bus_efficiency", "nvls_latency_s",
                       "collective_floor_s", "custom_ar_bus_efficiency", "custom_ar_two_shot_s", "nccl_base_s")),
    # whole MoE layers (model.calibration.moe_rows): the grouped expert kernels' compute and memory shares of the
    # dense GEMM and streaming ceilings fitted above, one stage per expert kernel class (each class's parameters
    # move only its own rows; fitted jointly, a class whose rows sit far off the start was pushed the wrong way)
    *((("moe_" + c,), (f"moe_gemm_scale_{c}", f"moe_mem_scale_{c}")) for c in ("16", "8", "4", "wo")),
)


# where a stage starts the parameters the hand-set classes leave at "no such term" (a start at zero sits where the
# log-time loss is flat in them): an FP8 tile of 64 rows, a 2 us quantization call moving 3 bytes per element
# (read 2, write 1) and 1 ns per row, a 1k-key and a 32-wide head-dimension attention half-point, a 0.3 ns step of
# the k loop
STAGE_START = {"gemm_tile_m_8": 64.0, "gemm_tile_m_4": 64.0, "gemm_quant_s_8": 2e-6, "gemm_quant_s_4": 2e-6,
               "gemm_quant_bytes_8": 3.0, "gemm_quant_bytes_4": 2.5, "gemm_quant_row_s_8": 1e-9,
               "gemm_quant_row_s_4": 1e-9,
               "attention_kv_half": 1000.0, "attention_d_half": 32.0, "gemm_k_s": 1e-9, "gemm_k_split": 3072.0,
               "gemm_sustain_drop": 0.1, "gemm_sustain_s": 1e-3, "bench_l2_floor_s": 0.3e-6,
               "nvls_bus_efficiency": 0.6, "nvls_latency_s": 20e-6, "collective_floor_s": 2e-6,
               "custom_ar_bus_efficiency": 0.5, "custom_ar_two_shot_s": 2e-6, "nccl_base_s": 4e-6,
               # grouped MoE kernels: from half the dense ceilings
               **{f"moe_{kind}_scale_{c}": 0.5 for kind in ("gemm", "mem") for c in ("16", "8", "4", "wo")},
               "attention_roofline_p": 4.0, "mla_roofline_p": 4.0,
               "gemv_mem_scale": 1.0, "mla_decode_floor_s": 10e-6, "mla_prefill_floor_s": 10e-6,
               "decode_item_s": 5e-9, "prefill_tile_s": 5e-9, "decode_split_s": 3e-6,
               "kv_store_unfused_s": 3e-6, "mla_block_s": 1e-6, "mla_split_s": 3e-6, "decode_block_s": 1e-6,
               "decode_item_tile_s": 5e-9, "decode_fallback_item_s": 5e-9,
               # block-scaled FP8: from the per-tensor start (a ceiling of 0.7, the 16-bit k loop, the same call)
               "gemm_k_split_8": 3072.0, "gemm_k_split_4": 3072.0, "gemm_max_8b": 0.7, "gemm_tile_m_8b": 64.0,
               "gemm_k_scale_8b": 1.0, "gemm_quant_s_8b": 2e-6,
               "gemm_quant_bytes_8b": 3.0, "gemm_quant_row_s_8b": 1e-9,
               # an eagerly timed call's host time: from 50 us (vLLM's block-scaled FP8 tables: 55 us and more on
               # Hopper, 150 us and more on B200)
               "gemm_host_s_8b": 50e-6}


# half-points the staged fit drops (sets to 0, no such term) where the rows do not identify them: removing one raises
# the stage's loss by at most PARSIMONY_LOSS (importer._parsimonious). Not the eager host time (gemm_host_s_8b): it is
# the collector's method (a fact), and the alternative the loss cannot tell from it on the fit rows is a ~110 us
# quantization call, which no quantization kernel takes (on B200 vLLM dropping it took the held-out FP8
# extrapolation from 6.6% to 11.5%)
PARSIMONY = ("gemm_m_half", "gemm_n_half", "gemm_sustain_drop")
# parameters that mean nothing once a PARSIMONY term is 0, zeroed with it (the long-GEMM fall's size scale)
_PARSIMONY_WITH = {"gemm_sustain_drop": ("gemm_sustain_s",)}
PARSIMONY_LOSS = 0.01


# engine kernel facts the tables are fitted with, set from the engine's source rather than fitted: TensorRT-LLM's XQA
# decode kernels on Ampere and Hopper take at most 32 query heads per KV head and never plain MHA
# (cpp/tensorrt_llm/kernels/decoderMaskedMultiheadAttention/decoderXQAImplJIT/kernelUtils.cpp: supportConfigCommon
# rejects vanilla MHA, supportConfigQGMMA/HMMA reject head_grp_size * beam_width > 32); other calls run the masked
# multi-head attention kernel (Efficiency.decode_group_limit). Blackwell runs its trtllm-gen kernels first. XQA also
# runs only where its CTAs fill a quarter of the SMs and splits long histories into blocks of 128 keys
# (decoderXQAConstants.h kEnableMinBlockFactor, kMinHistoryTokensPerBlock; decoderXQAImplCommon.h
# computeMultiBlockCount). vLLM's and SGLang's FlashAttention/FlashInfer kernels stop at head dimension 256; above it
# (the tables' head_dim 512) a generic kernel runs (SGLang's decode tables at 512 stay on the curve: prefill only).
# Their split-KV decode (FlashAttention's num_splits_heuristic, FlashInfer's decode planner) splits only below about
# one wave of CTAs, then merges the partial results like XQA's multi-block mode (Efficiency.decode_split_waves).
# vLLM runs one-token prefills on its decode path (Efficiency.prefill_decode_tokens). SGLang 0.5.14 on Blackwell
# runs head dimension 192 (MiMo-V2's QK192/V128) on its Triton kernel only, both phases
# (Efficiency.attention_generic_head_dim: aiconfigurator collector/cases/models/MiMoV2FlashForCausalLM_cases.yaml,
# sglang_backends 100: triton).
# MLA kernels compute blocks of 64 query rows by 64 keys (Efficiency.mla_block; FlashMLA csrc/kernels/config.h:
# BLOCK_SIZE_M = 64, PAGE_BLOCK_SIZE = 64, which TensorRT-LLM's getFlashMlaNumSmParts and get_mla_metadata repeat);
# a block size is a step function of the loss, so it is set, not fitted. The tables agree: TensorRT-LLM's expanded
# prefill takes about the same time for 1 to 32 tokens per sequence on H200 and B200.
# SGLang's MLA decode on Hopper runs FlashAttention-3 (aiconfigurator collector/sglang/collect_mla.py: SM90 -> "fa3",
# page size 1; FA3 hopper/tile_size.h: 64 x 64 tiles for 512-wide values), which splits each sequence's latent by
# its own rule (hopper/heuristics.h num_splits_heuristic, flash_prepare_scheduler.cu's dynamic split;
# Efficiency.mla_fa3_split). The tables agree: at 1-16 sequences over 512-16k keys, where FA3 splits, SGLang's H100
# MLA decode runs 25-35% slower than the smooth curve fitted without the split.
MLA_BLOCK = {"mla_block": 64.0}
_FA3_MLA = {"mla_fa3_split": 1.0}
# Its GQA/MHA decode runs FlashAttention-3 too (collector sglang/collect_attn.py: SM90 -> "fa3", page size 1), whose
# CTAs walk key blocks of 128, 96 or 80 keys by head dimension (hopper/tile_size.h, paged non-TMA loads) split by the
# same rule (Efficiency.decode_fa3_split). The tables agree: at head_dim 256 a call steps up at every 80 keys until
# FA3 splits (one sequence on 8 KV heads: 11, 13, 17 us at 64, 128, 256 keys; 14 at 512, where it splits).
_FA3_DECODE = {"decode_fa3_split": 1.0}
# TensorRT-LLM on Blackwell picks its trtllm-gen MLA generation kernel and KV split by its own rule (fmhaKernels.h;
# Efficiency.mla_trtllm_gen_split). The tables agree: where that rule splits a sequence's KV, B200 MLA decode ran
# 13% (reduced in a cluster) to 60% (through global memory) over the smooth curve fitted without it.
_TRTLLM_GEN_MLA = {"mla_trtllm_gen_split": 1.0}
# XQA's CTAs load the group's query rows padded to 16 and write as many output rows (cpp/kernels/xqa/mha.cu warpTile.y;
# Efficiency.decode_xqa_tile): the tables' per-CTA cost grows with the head dimension.
_XQA = {"decode_group_limit": 32.0, "decode_group_min_fill": 0.25, "decode_split_tokens": 128.0,
        "decode_xqa_tile": 1.0}
_SPLIT = {"decode_split_tokens": 128.0, "decode_split_waves": 1.0}
# vLLM and SGLang store the call's new K and V in the paged cache with a kernel of their own, which their attention
# tables time with the call (Efficiency.kv_store_kernel): vLLM 0.24's collector runs `do_kv_cache_update`
# (reshape_and_cache_flash) before `forward` where the backend's forward does not include it, SGLang's layer call
# runs `set_kv_buffer` (collector vllm/collect_attn.py, sglang/collect_attn.py)
_KV_STORE = {"kv_store_kernel": 1.0}
_FLASH = {"vllm": {"attention_wide_head_dim": 256.0, "decode_wide_head_dim": 256.0, "prefill_decode_tokens": 1.0,
                   **_SPLIT, **_KV_STORE},
          "sglang": {"attention_wide_head_dim": 256.0, **_SPLIT, **_KV_STORE}}
# per-tensor FP8 GEMM tiles by rows (Efficiency.gemm_k_tile_8): vLLM's CUTLASS scaled_mm on Hopper picks 64x64,
# 64x128 and 128x128 tiles at m <= 64, <= 128 and above (scaled_mm_sm90_fp8_dispatch.cuh); SGLang's sgl-kernel
# fp8_scaled_mm (kernel_source sglang_sgl_kernel_fp8_scaled_mm) steps at the same rows in its tables (H200, n = 128,
# k = 65536: 48 us at m = 64, 68-92 at 65-128, 208 at 129). Blackwell's dispatch differs and is not modelled.
_FP8_TILE = {"gemm_k_tile_8": 64.0}
# SGLang's fp8_scaled_mm also pads its compute to whole row tiles (Efficiency.gemm_row_pad_8): sgl-kernel
# fp8_gemm_kernel.cu sm90_fp8_dispatch_shape runs 128-row tiles, in 2 x 1 clusters above 1024 rows. The tables agree:
# per-tensor rows of m = 1 mod 256 ran 10% (H200, 1-4k rows) to 25% (H100, 256-1024) over the model, multiples of 256
# did not. vLLM's rows showed a gap of half that, which this rule over-corrects: SGLang only
_FP8_ROWS = {"gemm_row_pad_8": 1.0}
# On Blackwell both run TensorRT-LLM's trtllm-gen kernels: SGLang's default backend there is trtllm_mha (collector
# sglang/collect_attn.py, after SGLang server_args._get_default_attn_backend; head dimensions to 512, the B200 tables'
# head_dim 512 rows, so no generic kernel past 256, but its head_dim 192 rows run Triton), vLLM's FlashInfer backend
# runs trtllm-gen prefill (the B200 tables' vllm_flashinfer_trtllmprefill rows); their context kernels tile every
# query head apart (Efficiency.prefill_head_tiles) in whole waves (prefill_tile_waves) and split value heads past 256
# over CTAs (prefill_v_slice_dim: SGLang only, where no generic kernel takes head_dim 512; for vLLM the fit kept the
# generic one)
_TRTLLM_GEN_PREFILL = {"prefill_head_tiles": 1.0, "prefill_tile_waves": 1.0}
# SGLang's block-scaled FP8 GEMM on Hopper is DeepGEMM's SM90 kernel (kernel_source sglang_deepgemm_gemm_nt_f8f8bf16),
# which picks its block per shape by waves over the SMs (Efficiency.gemm_waves_8b); vLLM's block-scaled rows mix
# DeepGEMM, CUTLASS and FlashInfer kernels, and Blackwell runs DeepGEMM's SM100 heuristic (not modelled)
_DEEPGEMM_WAVES = {"gemm_waves_8b": 1.0}
# TensorRT-LLM's context FMHA on Hopper (fmha_v2's warp-specialized kernels) also tiles every query head apart: a
# tile is one (sequence, query head) pair's 2 x STEP_Q query rows, its K/V loaded for head bidh / h_q_per_kv
# (cpp/kernels/fmha_v2/src/fmha/warpspec/dma.h: bidh = tile_id % params.h, load_kv(bidh / params.h_q_per_kv, ...))
_FMHA_V2_PREFILL = {"prefill_head_tiles": 1.0}
# vLLM's collector times its block-scaled FP8 layers without CUDA graphs (aiconfigurator collector/vllm/collect_gemm.py:
# use_cuda_graph=gemm_type != "fp8_block"; the other dtypes and engines replay graphs), so the host's time to issue a
# call paces the loop where the kernels are shorter (Efficiency.gemm_eager_8b): the tables' fp8_block rows sit on a
# floor of 55-60 us on H100/H200 and 150-190 us on B200 for any small shape
_EAGER_8B = {"gemm_eager_8b": 1.0}
KERNEL_FACTS = {
    ("trtllm", "ampere"): _XQA,
    ("trtllm", "hopper"): {**_XQA, **MLA_BLOCK, **_FMHA_V2_PREFILL},
    ("trtllm", "blackwell"): {**MLA_BLOCK, **_TRTLLM_GEN_MLA},
    ("vllm", "ampere"): _FLASH["vllm"],
    ("vllm", "hopper"): {**_FLASH["vllm"], **_FP8_TILE, **_EAGER_8B},
    ("vllm", "blackwell"): {**_FLASH["vllm"], **_TRTLLM_GEN_PREFILL, **_EAGER_8B},
    ("sglang", "ampere"): _FLASH["sglang"],
    ("sglang", "hopper"): {**_FLASH["sglang"], **MLA_BLOCK, **_FA3_MLA, **_FA3_DECODE, **_FP8_TILE, **_FP8_ROWS,
                           **_DEEPGEMM_WAVES},
    ("sglang", "blackwell"): {**_FLASH["sglang"], **MLA_BLOCK, **_TRTLLM_GEN_PREFILL, "attention_wide_head_dim": 0.0,
                              "attention_generic_head_dim": 192.0, "prefill_v_slice_dim": 256.0},
}


def sample(rows: pd.DataFrame, per_family: int = MAX_ROWS_PER_FAMILY) -> pd.DataFrame:
    """At most `per_family` rows of each family, evenly spaced over its size order (deterministic)."""
    parts = []
    for _, g in rows.groupby("family", sort=True):
        g = g.sort_values(["size", "measured_s"], kind="stable")
        if len(g) > per_family:
            g = g.iloc[np.unique(np.linspace(0, len(g) - 1, per_family).round().astype(int))]
        parts.append(g)
    return pd.concat(parts, ignore_index=True)


def split_labels(rows: pd.DataFrame, k: int = K, edge: float = EDGE) -> np.ndarray:
    """fit / interpolation / extrapolation per row (see the module docstring)."""
    labels = np.full(len(rows), "fit", dtype=object)
    for _, g in rows.groupby("family", sort=False):
        order = g.sort_values(["size", "measured_s"], kind="stable").index.to_numpy()
        n = len(order)
        if n < 3:
            continue
        cut = max(1, int(round(edge * n)))
        labels[order[:cut]] = labels[order[n - cut:]] = "extrapolation"
        middle = order[cut:n - cut]
        labels[middle[k - 1::k]] = "interpolation"
    return labels


def family_errors(rows: pd.DataFrame) -> pd.DataFrame:
    """Median |predicted/measured - 1| per family and split, before (hand-set defaults) and after the fit."""
    out = []
    for (family, split), g in rows.groupby(["family", "split"]):
        long = g[g["measured_s"] >= LARGE_GEMM_S]
        out.append({"family": family, "split": split, "rows": len(g),
                    "median_before": float(np.median(np.abs(g["before"] / g["measured_s"] - 1))),
                    "median_after": float(np.median(np.abs(g["after"] / g["measured_s"] - 1))),
                    "long_rows": len(long),  # kernels of at least 100 us
                    "median_after_long": float(np.median(np.abs(long["after"] / long["measured_s"] - 1)))
                    if len(long) else float("nan")})
    return pd.DataFrame(out)


@dataclass(frozen=True)
class DeviceFit:
    device: Device
    engine: str
    tables: EngineTables
    result: FitResult
    errors: pd.DataFrame  # family x split

    @property
    def params(self) -> dict[str, float]:
        return self.result.params


def fit_engine(source: TableSource, gpu: str, device: Device, engine: str) -> DeviceFit | None:
    """Fit one GPU and engine (None when the tables have nothing for that engine)."""
    tables = engine_rows(source, gpu, engine)
    if not len(tables.rows):
        return None
    rows = tables.rows
    # copies that fit in L2 twice over run from cache (the benchmark reuses its buffers); a model step streams
    # its tensors from HBM, so only HBM-sized copies inform the memory ceiling
    l2 = (device.on_chip.l2_bytes if device.on_chip and device.on_chip.l2_bytes else 50e6)
    rows = rows[(rows["family"] != "copy") | (rows["size"] * 2 > 2 * l2)]
    rows = rows[(rows["kernel"] != "gemm") | rows["dtype"].isin(list(device.peak_flop_per_s))]
    rows = moe_rows_physical(rows, device)
    # the share of each GEMM row's bytes its benchmark re-read from a warm L2 (a property of the measurement)
    rows = rows.assign(bench_l2_share=bench_l2_share(rows, engine, l2))
    from model.engines import custom_all_reduce_limits

    facts = {**KERNEL_FACTS.get((engine, device.arch), {}), **custom_all_reduce_limits(engine, device.arch)}
    result = fit_rows(sample(rows).reset_index(drop=True), device, facts=facts)
    return DeviceFit(device, engine, tables, result, family_errors(result.rows))


def scale_up_bus_efficiency(device: Device) -> float:
    """The bus efficiency of the device's scale-up link file (0.8 where it has none)."""
    from model.hardware.db import get_link

    return float(get_link(device.scale_up.link).bus_efficiency) if device.scale_up else 0.8


def moe_rows_physical(rows: pd.DataFrame, device: Device) -> pd.DataFrame:
    """Rows less MoE layers on a tensor-core path the device lacks, and those measured faster than reading their
    touched experts' weights at the nominal HBM bandwidth (their synthetic routing touched fewer distinct experts
    than the token count implies; model.calibration.moe_rows)."""
    moe = (rows["kernel"] == "moe").to_numpy()
    if not moe.any():
        return rows
    from model.calibration.moe_rows import moe_predictor, weight_read_s

    part = rows[moe].reset_index(drop=True)
    ok = np.isfinite(moe_predictor(part, device)(efficiency_for(device, calibration=False)))
    ok &= part["measured_s"].to_numpy(float) >= weight_read_s(part, device)
    keep = np.ones(len(rows), dtype=bool)
    keep[np.flatnonzero(moe)] = ok
    return rows[keep]


def stage_parameters(names, rows: pd.DataFrame, eff: Efficiency) -> list[str]:
    """The stage's parameters less those its rows (one stage's families) cannot inform with the engine facts in
    `eff`: terms of kernels, dtypes, head dimensions or rules that none of the rows runs."""
    names = [n for n in names if not n.endswith("_4") or "fp4" in set(rows["dtype"])]
    if "block_scaled" not in rows or not (rows["block_scaled"].fillna(0) > 0).any():
        names = [n for n in names if not n.endswith("_8b")]
    if "head_dim" not in rows or rows["head_dim"].nunique() < 2:  # one head dim: no d term to see
        names = [n for n in names if n != "attention_d_half"]
    if "bench_l2_share" not in rows or not (rows["bench_l2_share"].fillna(0) > 0).any():
        names = [n for n in names if n != "bench_l2_floor_s"]  # no row read from a warm L2
    if not eff.decode_group_limit:  # no per-query-head decode kernel: nothing to scale
        names = [n for n in names if n not in ("decode_fallback_mem_scale", "decode_fallback_item_s")]
    if not any(c for _, _, c in eff.custom_all_reduce_limits()):  # no engine size rule: no custom kernel form
        names = [n for n in names if not n.startswith("custom_ar_") and n != "nccl_base_s"]
    if not eff.gemm_eager_8b:  # the tables were timed in CUDA graphs: no host time shows
        names = [n for n in names if n != "gemm_host_s_8b"]
    if not eff.decode_split_tokens:  # no split rule: nothing marks the split calls
        names = [n for n in names if n != "decode_split_s"]
    if "v_head_dim" not in rows or not (rows["v_head_dim"] < rows["head_dim"]).any():
        names = [n for n in names if n != "kv_store_unfused_s"]  # no row writes K and V apart
    if not eff.decode_fa3_split:  # no FA3 decode rule: no key-block chain
        names = [n for n in names if n != "decode_block_s"]
    if not (eff.decode_fa3_split or eff.decode_xqa_tile):  # nor CTA tiles counted
        names = [n for n in names if n != "decode_item_tile_s"]
    if not (eff.mla_fa3_split or eff.mla_trtllm_gen_split):  # the same for MLA decode
        names = [n for n in names if n not in ("mla_block_s", "mla_split_s")]
    wide = max(eff.attention_wide_head_dim, eff.decode_wide_head_dim)
    generic = eff.attention_generic_head_dim
    if "head_dim" not in rows or not ((wide and (rows["head_dim"] > wide).any())
                                      or (generic and (rows["head_dim"] == generic).any())):
        names = [n for n in names if n != "attention_wide_scale"]  # no generic kernel
    return names


def fit_rows(rows: pd.DataFrame, device: Device, start: Efficiency | None = None,
             facts: dict[str, float] | None = None) -> FitResult:
    """The staged fit (STAGES) of rows with `family`, `size` and `measured_s`, held-out splits by split_labels;
    `facts`: engine kernel facts (KERNEL_FACTS) set before the fit and written with the fitted parameters."""
    labels = split_labels(rows)
    start = start or efficiency_for(device, calibration=False)
    facts = dict(facts or {})
    eff, fitted, idle = replace(start, **facts), dict(facts), []
    for families, names in STAGES:
        part = rows["family"].isin(families).to_numpy()
        if not part.any() or (labels[part] == "fit").sum() < 3:
            continue
        names = stage_parameters(names, rows[part], eff)
        eff = replace(eff, **{n: STAGE_START[n] for n in names if n in STAGE_START})
        if "scale_up_bus_efficiency" in names and not eff.scale_up_bus_efficiency:
            # 0 stands for the link file's bus efficiency: start there, not at the bound (from 0.05 the B200 vLLM
            # fit stopped at 0.2, the in-switch form carrying every large message)
            eff = replace(eff, scale_up_bus_efficiency=scale_up_bus_efficiency(device))
        stage = fit_efficiency(rows[part].reset_index(drop=True), device, eff, params=names, split=labels[part],
                               loss="soft_l1")
        stage = _parsimonious(stage, rows[part].reset_index(drop=True), device, eff, names, labels[part])
        eff, idle = stage.after, idle + list(stage.unconstrained)
        fitted.update(stage.params)
    from model.calibration.fit import predictor

    predict = predictor(rows, device)
    out = rows.assign(split=labels, before=predict(start), after=predict(eff))
    return FitResult(device, start, eff, fitted, pd.DataFrame(), out, tuple(sorted(set(idle) - set(fitted))))


def fit_loss(rows: pd.DataFrame) -> float:
    """The staged fit's loss on its fitted rows (soft_l1 of the log time ratio at the 5% scale fit_efficiency uses)."""
    fit = rows[rows["split"] == "fit"]
    z = np.log(fit["after"].to_numpy(float) / fit["measured_s"].to_numpy(float)) / 0.05
    return float(np.sum(2 * (np.sqrt(1 + z**2) - 1)))


def _parsimonious(stage: FitResult, rows: pd.DataFrame, device: Device, start: Efficiency, names: list[str],
                  labels: np.ndarray) -> FitResult:
    """The stage's fit with every half-point of PARSIMONY (and the long-GEMM fall) the rows do not identify set to 0
    (no such term).

    A half-point whose removal (0, the others refitted) raises the stage's loss by at most PARSIMONY_LOSS is not
    identified by the tables: in the GEMM stage the row and column half-points trade against the ceiling and the
    roofline corner (small-m GEMMs are memory-bound, so the compute curve below ~200 rows hides behind the stream).
    B300 under SGLang fitted gemm_m_half 90 and gemm_n_half 145 where B200's nearly equal tables gave 14 and 40;
    with both at 0 the B300 loss rises 0.6% and its held-out BF16 errors fall (10.9/14.4% -> 8.5/13.2%)."""
    live = [n for n in PARSIMONY if stage.params.get(n, 0) > 0]
    # all at once first, then the two half-points together (they trade against each other), then each alone
    halves = [n for n in live if n.endswith("_half")]
    groups = [g for g in (live, halves) if len(g) > 1]
    for drop in [g for i, g in enumerate(groups) if g not in groups[:i]] + [[n] for n in live]:
        if any(stage.params[n] == 0 for n in drop):
            continue
        drop = drop + [w for n in drop for w in _PARSIMONY_WITH.get(n, ())]
        kept = [n for n in names if n in stage.params and n not in drop]
        trial = fit_efficiency(rows, device, replace(stage.after, **{n: 0.0 for n in drop}), params=kept,
                               split=labels, loss="soft_l1")
        if fit_loss(trial.rows) <= fit_loss(stage.rows) * (1 + PARSIMONY_LOSS):
            # every parameter of the stage keeps its value (those the trial found idle were fitted before)
            stage = replace(trial, params={n: float(getattr(trial.after, n)) for n in stage.params})
    return stage


def predict_with(fit: DeviceFit, eff: Efficiency) -> pd.DataFrame:
    """The fit's rows predicted with another efficiency set (leave-one-GPU-out)."""
    from model.calibration.fit import predictor

    rows = fit.result.rows.copy()
    rows["after"] = predictor(rows, fit.device)(eff)
    return rows


def class_parameters(fits: list[DeviceFit]) -> dict[str, float]:
    """Per-class defaults: the mean of the devices' fitted parameters (geometric for sizes and latencies)."""
    names = sorted({n for f in fits for n in f.params})
    out = {}
    for n in names:
        values = np.array([f.params[n] for f in fits if n in f.params], dtype=float)
        out[n] = float(np.exp(np.mean(np.log(np.maximum(values, 1e-30))))) if n in _LOG_PARAMS else float(values.mean())
    return out


def leave_one_out(fits: list[DeviceFit]) -> pd.DataFrame:
    """For each device of a class: class parameters from the others, error on all of that device's rows."""
    out = []
    for f in fits:
        others = [o for o in fits if o is not f]
        if not others:
            continue
        params = {n: v for n, v in class_parameters(others).items()}
        eff = efficiency_for(f.device, calibration=False).with_overrides(params, "class fit of the others")
        rows = predict_with(f, eff)
        for family, g in rows.groupby("family"):
            out.append({"device": f.device.id, "engine": f.engine, "family": family, "rows": len(g),
                        "median_own_fit": float(np.median(np.abs(f.result.rows.loc[g.index, "after"]
                                                                  / g["measured_s"] - 1))),
                        "median_leave_one_out": float(np.median(np.abs(g["after"] / g["measured_s"] - 1)))})
    return pd.DataFrame(out)


def check_source(path) -> TableSource:
    source = TableSource(path)
    if not set(source.gpus()):
        raise RidgeplanError("path", "no GPU folders in the tables")
    return source
