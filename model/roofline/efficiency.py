"""How far below peak real kernels run: efficiency as a function of shape and size, plus latency floors.

A pure roofline is 1.5-3x optimistic on real engines. Each device architecture class gets one set of
parameters (documented with sources in docs/efficiency_sources.md); a device file's `[efficiency]` table or a fitted
calibration file overrides them: `hardware_db/calibration/<id>.toml` (`ridgeplan calibrate fit`, your own GPU), or,
when an engine is named, `<id>.<engine>.toml` and the class file `_class-<arch>.<engine>.toml` fitted to NVIDIA's
public kernel tables (`ridgeplan calibrate import`, docs/calibration.md).

This module holds the parameters (`Efficiency`); the functions of the forms below are in
model.roofline.efficiency_forms, the class defaults and the calibration-file pick-up in model.roofline.efficiency_sets.

The forms, all saturating in size so that big kernels approach a ceiling and small ones fall far below it:
- GEMM compute:     eta_c = gemm_max[dtype] * m/max(m, tile[dtype]) * M/(M + gemm_m_half) * n/(n + gemm_n_half),
                    M = max(m, tile[dtype]) (tensor cores work on tiles of `gemm_tile_m` rows, FP8 `gemm_tile_m_8`,
                    FP4 `gemm_tile_m_4`: a one-token GEMM pays for a full tile, and takes no longer than one)
- GEMM k loop:      busy >= min(k, gemm_k_split) * gemm_k_s   (one output tile's serial loop over k; past
                    gemm_k_split elements the GEMM library splits k over more CTAs, so the loop stops growing;
                    gemm_k_split = 0: no split, the hand-set classes; FP8/FP4 GEMMs x gemm_k_scale_8/4)
- Long GEMMs:       eta_c / (1 + gemm_sustain_drop * x/(x + gemm_sustain_s)), x = flops/peak (seconds of one
                    kernel): the largest 16-bit GEMMs of some engines' tables run below the mid-size ceiling
                    (sustained clock or library choice; 0 = none, the hand-set classes)
- Warm-L2 tables:   - bench_l2_share * bench_l2_floor_s on kernel-table GEMM rows whose benchmark re-read its
                    operands from L2 (model.calibration.bench_cache; a property of the measurement, never a step)
- FP8/FP4 GEMMs:    + gemm_quant_s[dtype] + gemm_quant_row_s[dtype] * m + gemm_quant_bytes[dtype] * m * k /
                    (bandwidth * mem_max): the
                    activation quantization that kernel tables time with every FP8/FP4 GEMM call (0 in the hand-set
                    classes but Blackwell FP4); single-kernel predictions add it, steps only for dense GEMMs whose
                    engine runs it as a kernel of its own (step_quant_*: vLLM NVFP4); others fuse it into the norm
                    or activation kernel before the GEMM
- attention:        eta_a = attention_max * q/(q + attention_q_half) * L/(L + attention_kv_half)
                            * d/(d + attention_d_half)
                    (q = query rows per KV head, L = KV length the queries run over, d = head dimension, the
                    operator's k: softmax work per score is fixed, MMA work grows with d; attention_kv_half = 0 and
                    attention_d_half = 0 in the
                    hand-set classes: no KV-length term. In time this is a per-query-tile start-up cost: at short
                    L the compute time tends to FLOPs/L * attention_kv_half / (peak * ceiling), not to 0)
                    MLA attention: eta_a * mla_attention_scale, with attention_d_half * mla_d_half_scale,
                    attention_kv_half * mla_kv_half_scale and attention_q_half * mla_q_half_scale
- memory traffic:   eta_m = mem_max * bytes/(bytes + mem_bytes_half); attention kernels * attention_mem_scale
- every kernel:     + kernel_floor_s (launch and ramp, CUDA graphs assumed); a single attention call timed on its
                    own + attention_floor_s, a decode attention call + decode_attention_floor_s (its per-call
                    preparation, done once per step in an engine)
- every collective: + collective_base_s on top of its alpha-beta time (in-switch all-reduce at nvls_bus_efficiency
                    where > 0), and its own launch floor collective_floor_s (0 = kernel_floor_s); where
                    custom_ar_bus_efficiency > 0 an all-reduce runs the engine's custom one-shot/two-shot kernel by
                    its size rule (ar_*_below_<n>) and NCCL, nccl_base_s later, above it
- weight-only GEMMs (W4A16, W8A16) run their compute at (1 - dequant_penalty) of the 16-bit efficiency.
- a kernel's compute and memory terms combine as (t_c^p + t_m^p)^(1/p) with p = roofline_p: kernels near the
  ridge overlap their loads and math imperfectly (measured GEMMs at the crossover take ~1.3-1.6x max(t_c, t_m));
  p = 2 reproduces that corner and leaves clearly bound kernels within a few percent of max(t_c, t_m).
  Attention kernels use attention_roofline_p where set (warp-specialized kernels overlap better; 0 = roofline_p),
  MLA kernels mla_roofline_p.
- GEMV path:        GEMMs of m <= gemv_m_limit rows: eta_c = gemm_max[dtype] * n/(n + gemm_n_half) (no tile, no row
                    half-point) and the memory ceiling x gemv_mem_scale, where gemv_mem_scale > 0 (0: the hand-set
                    classes, one curve)
- MLA:              KV reads at attention_mem_scale x mla_mem_scale; a decode call timed on its own pays
                    mla_decode_floor_s (0 = decode_attention_floor_s), a prefill call mla_prefill_floor_s
                    (0 = attention_floor_s) and moves its query and output bytes at
                    mla_qo_mem_scale of that bandwidth; where mla_fa3_split = 1, a decode call split by
                    FlashAttention-3's rule also moves its split CTAs' query loads and fp32 partials there, and
                    takes at least mla_block_s per key block its CTAs walk in sequence
- decode fallback:  where decode_group_limit > 0 (TensorRT-LLM on Ampere/Hopper: 32), decode calls with more query heads
                    per KV head, or plain MHA, read the KV once per query head with one query row per tile, at
                    decode_fallback_mem_scale of the attention bandwidth (single-kernel predictions)
                    (and, where decode_group_min_fill > 0, calls whose XQA CTAs fill too few SMs)
- attention work:   a grouped decode call's compute term + decode_item_s per (sequence, KV head) work item (per CTA
                    under decode_fa3_split, + decode_item_tile_s per query/output tile under it or decode_xqa_tile;
                    a fallback call's + decode_fallback_item_s per (sequence, query head)), a
                    prefill call's + prefill_tile_s per (sequence, KV head, 128 packed query rows) tile; a decode
                    call that splits its KV (decode_splits.decode_split_blocks, where decode_split_tokens > 0) +
                    decode_split_s, calls with narrower value heads than key heads + kv_store_unfused_s; head
                    dimensions above attention/decode_wide_head_dim at attention_wide_scale of
                    the speed (and attention_generic_head_dim alike); prefills of <= prefill_decode_tokens tokens
                    pay the decode floor; prefill_head_tiles tiles each query head apart, prefill_tile_waves runs the
                    tiles in whole waves of the SMs (a call of fewer waves than its longest causal tile ends with
                    that tile), prefill_v_slice_dim splits wide value heads over CTAs, kv_store_kernel adds the
                    engine's KV-cache store kernel (the call's new K and V read and written at the copy bandwidth)
                    (all single-kernel predictions; 0 = none of these in the hand-set classes)
"""

from __future__ import annotations


import numpy as np
from dataclasses import dataclass, fields, replace

from model.errors import RidgeplanError

DTYPE_CLASSES = {"fp32": "32", "tf32": "32", "fp64": "32", "bf16": "16", "fp16": "16", "fp16_acc16": "16",
                 "fp8": "8", "int8": "8", "fp6": "4", "fp4": "4", "int4": "4"}


def moe_kernel_class(dtype: str, weight_only: bool) -> str:
    """The class of grouped MoE kernels experts computing at `dtype` run (Efficiency.moe_gemm_scale_*): `wo` for
    weight-only experts (W4A16 Marlin-style, dequantized in the kernel), else 16 (16- and 32-bit), 8 or 4."""
    cls = DTYPE_CLASSES.get(dtype, "16")
    return "wo" if weight_only else ("16" if cls == "32" else cls)


@dataclass(frozen=True)
class Efficiency:
    gemm_max_16: float  # large BF16/FP16 GEMM, fraction of dense peak
    gemm_max_8: float  # large FP8/INT8 GEMM
    gemm_max_4: float  # large FP4/INT4 GEMM
    gemm_max_32: float  # FP32/TF32 GEMM
    gemm_m_half: float  # GEMM rows (tokens) at which compute efficiency is half of its max
    gemm_n_half: float  # GEMM output width at half efficiency (narrow tensor-parallel shards)
    attention_max: float  # prefill (flash) attention, fraction of peak
    attention_q_half: float  # query tokens per sequence at half of attention_max
    linear_attention_max: float  # chunked linear-attention kernels, fraction of peak
    mem_max: float  # large streaming transfers, fraction of peak memory bandwidth
    mem_bytes_half: float  # transfer size at half of mem_max
    vector_max: float  # element-wise work, fraction of the FP32 vector peak
    kernel_floor_s: float  # added to every kernel
    dequant_penalty: float  # compute-efficiency loss of weight-only quantized GEMMs
    step_overhead_s: float  # per forward step: scheduler, input prep, sampling launch (engine, not GPU)
    collective_base_s: float  # fixed software latency of one collective call (NCCL base latency)
    gemm_tile_m: float = 16.0  # rows of the smallest tensor-core tile (mma m16n8k16); 1 on CPUs
    roofline_p: float = 2.0  # how compute and memory time combine: 2 = soft corner, inf = max()
    # extra fixed time of one attention call as the kernel tables time it (metadata, split scheduling: 8-14 us);
    # engines prepare that once per step for all layers, so single-kernel predictions add it and steps do not
    attention_floor_s: float = 0.0
    # the same for a decode (generation) attention call, a kernel of its own (split-KV with a reduction pass, paged
    # block tables) whose preparation differs from the prefill kernel's; single-kernel predictions only, as above
    decode_attention_floor_s: float = 0.0
    scale_up_bus_efficiency: float = 0.0  # achieved/nominal scale-up bandwidth of collectives; 0 = the link file's
    # keys per query (KV length) at which attention reaches half its ceiling: flash kernels pay a per-(query tile,
    # head) start-up and, for decode, a per-sequence split/reduce cost that only long KV rows amortise; 0 = no term
    attention_kv_half: float = 0.0
    # head dimension at which attention reaches half its ceiling: per score element a flash kernel does 4 x head_dim
    # tensor-core FLOPs but a fixed amount of softmax work (max, exp, rescale) on the slower vector/SFU units, so
    # time ~ scores x (4 d / tensor peak + c): eta ~ d / (d + attention_d_half); 0 = no such term
    attention_d_half: float = 0.0
    # MLA attention (DeepSeek's latent KV: one 576-wide latent shared by every head, 192-wide queries against
    # 128-wide values) runs kernels of its own (FlashMLA, FlashInfer/CUTLASS MLA) whose ceiling is this share of
    # attention_max; 1 = the same as other attention (the hand-set classes)
    mla_attention_scale: float = 1.0
    # and their head-dimension half-point is this multiple of attention_d_half (their softmax and rescale work per
    # score differs: one latent shared by all heads, 512-wide values); 1 = the same
    mla_d_half_scale: float = 1.0
    # and their KV-length half-point is this multiple of attention_kv_half: their per-(query tile, head) start-up
    # and split cost differs from the GQA kernels' (TensorRT-LLM on H200: expanded MLA prefill reaches half its
    # ceiling near 600 keys and absorbed MLA decode pays ~0.23 us per 128-head sequence, where the fitted GQA
    # curve's half-point is 1,300 keys); 1 = the same (the hand-set classes, where attention_kv_half = 0 anyway)
    mla_kv_half_scale: float = 1.0
    # and their query-row half-point is this multiple of attention_q_half: absorbed MLA packs every head of a token
    # into the query tile (64 rows per tile in FlashMLA and FA3's 512-wide-value kernels), so 64 and 128 heads fill
    # whole tiles; SGLang on H200 runs 128-head decode at batch 16-64 over 128k keys at ~60% of peak, the same
    # fraction as its 32k-token prefill, where the GQA curve's half-point (48 rows) predicted 73% of that at 128
    # heads and 57% at 64; 1 = the same (the hand-set classes)
    mla_q_half_scale: float = 1.0
    # the KV-cache reads of attention kernels reach this share of the streaming ceiling mem_max: a paged cache is
    # gathered block by block through a block table, not streamed contiguously as a copy is; 1 = mem_max
    attention_mem_scale: float = 1.0
    # FP8/INT8 and FP4 GEMMs run larger tiles than 16-bit ones (a one-token FP8 GEMM pays for up to 64-128 rows),
    # and an engine's FP8/FP4 linear layer first quantizes its activations: a separate kernel with a fixed time
    # plus `gemm_quant_bytes_*` bytes moved per activation element (m x k) at the streaming bandwidth
    # seconds per element of k in one output tile's serial main loop: a GEMM cannot finish before one tile has run
    # over all of k (what binds narrow, deep GEMMs: n = 32, k = 7168 takes twice its roofline); 0 = no such bound
    gemm_k_s: float = 0.0
    # elements of k beyond which the serial loop stops growing: for deep, narrow GEMMs (few output tiles, far fewer
    # than SMs) cuBLAS/CUTLASS split k over CTAs (split-K, stream-K) with a reduction, so one tile's serial loop is
    # about this many elements whatever k is (H100 vLLM BF16 tables: n = 32-512, m < 200: 2.6 us at k <= 128, rising
    # ~1.1 ns per k to ~6 us at k ~ 3k, then flat to k = 16k); 0 = never split (the hand-set classes)
    gemm_k_split: float = 0.0
    # that loop's time per element of k in FP8/INT8 and FP4 GEMMs, relative to 16-bit ones: their kernels step
    # through k in deeper tiles (an FP8 k tile holds 128 elements in the bytes of a 16-bit tile's 64) with their own
    # pipelines and split-K choices; 1 = the 16-bit loop (the hand-set classes, where gemm_k_s = 0 anyway)
    gemm_k_scale_8: float = 1.0
    # the k split of FP8/INT8 and FP4 GEMMs, in place of gemm_k_split (0 = gemm_k_split): the CUTLASS scaled_mm
    # kernels of vLLM and SGLang and the NVFP4 kernels run no split-K, so a narrow GEMM's loop keeps growing with k
    # where cuBLAS BF16 splits it (vLLM H200, m = 1, n = 128: k = 16384 -> 65536 takes 5.8 -> 10.1 us in BF16, 15.8
    # -> 51.2 us in FP8; TensorRT-LLM B200 NVFP4 35.8 -> 127.1 us). Single-kernel predictions only: a model step's
    # GEMMs keep gemm_k_split
    gemm_k_split_8: float = 0.0
    gemm_k_split_4: float = 0.0
    gemm_k_scale_4: float = 1.0
    gemm_tile_m_8: float = 16.0
    gemm_tile_m_4: float = 16.0
    gemm_quant_s_8: float = 0.0
    gemm_quant_s_4: float = 0.0
    gemm_quant_bytes_8: float = 0.0
    gemm_quant_bytes_4: float = 0.0
    # 1 where the engine runs that activation quantization as its own kernel inside a model step (vLLM's NVFP4
    # linear layers), 0 where it is fused into the norm or activation kernel before the GEMM; set per engine by
    # model.engines.step_quant_flags
    step_quant_8: float = 0.0
    step_quant_4: float = 0.0
    # seconds per activation row (token) of that quantization: dynamic per-token scaling runs one thread block per
    # row (a max-reduction over k, then the scaled write), so its time grows with the rows even when k is small
    # (vLLM's CUTLASS FP8 call on H100: ~8 ns per row, 37 us at m = 4096, n = 1024, k = 128 against 6 us in BF16)
    gemm_quant_row_s_8: float = 0.0
    gemm_quant_row_s_4: float = 0.0
    # block-scaled FP8 GEMMs (DeepSeek-style 1x128 activation / 128x128 weight scales: DeepGEMM, CUTLASS blockwise,
    # TensorRT-LLM's fp8_block_scaling_gemm) are other kernels than per-tensor FP8 (cuBLASLt / CUTLASS scaled_mm): the
    # activations are quantized per 128-element group in one pass (per-tensor dynamic scaling needs a global amax
    # first: TensorRT-LLM H200, m = 1, n = 4096, k = 1024: 13.1 us per-tensor, 5.6 us block-scaled, 4.9 us BF16),
    # and the main loop applies a scale per 128-deep k block on the CUDA cores. Their ceiling, tile rows (0 =
    # gemm_tile_m_8), k loop scale (0 = gemm_k_scale_8) and quantization call (fixed, bytes per element, per row);
    # gemm_max_8b = 0 (the hand-set classes): no such set, block-scaled kernels take every per-tensor term.
    # Single-kernel predictions of rows the tables mark block-scaled (column `block_scaled`) only: a model step's
    # FP8 GEMMs keep the per-tensor terms
    gemm_max_8b: float = 0.0
    gemm_tile_m_8b: float = 0.0
    # long GEMMs run below the ceiling of mid-size ones in some engines' tables (median BF16 TFLOP/s of GEMMs with m, n,
    # k >= 2048, 0.3-1 ms -> past 10 ms: SGLang H100 763 -> 701, H200 755 -> 674, B200 1531 -> 1344, a step near 1 ms;
    # TensorRT-LLM H200 783 -> 687, B200 1511 -> 1274, past 3 ms), not in vLLM's (H200 786 -> 801, rising). All three
    # time torch/cuBLAS linear layers the same way (aiconfigurator collector benchmark_with_power, 3 warm-ups, 6
    # runs), so the cause is not the GPU alone: the sustained clock under the power limit, or the library's choice
    # for the largest shapes. The time grows by gemm_sustain_drop x x/(x + gemm_sustain_s), x = the kernel's FLOPs
    # at the dense peak in seconds (Efficiency.gemm_sustain), fitted per engine, and kept only where the fitted rows
    # identify it (importer.PARSIMONY). 16-bit GEMMs only (the FP8 tables keep their ceiling past 1 ms: H200 vLLM FP8
    # within 4% of it where BF16 falls 6-17%); steps and single kernels; 0 = none (the hand-set classes)
    gemm_sustain_drop: float = 0.0
    gemm_sustain_s: float = 0.0
    # a property of the kernel tables' measurement, not of a GPU in a model step: the fixed time a GEMM table's call
    # saves where its benchmark re-read its operands from a warm L2 (its buffers reused call after call; the share
    # of its bytes so read, model.calibration.bench_cache) instead of waiting on HBM for its first loads and last
    # stores, so kernel_floor_s is the floor of a cold call. Single-kernel predictions of rows with a
    # `bench_l2_share` column only (the importer's table rows); a model step streams its weights from HBM and never
    # uses it. 0 = none
    bench_l2_floor_s: float = 0.0
    # rows of the smallest tile of the engine's per-tensor FP8 GEMM dispatch (an engine kernel fact; 0 = one tile for
    # every m): vLLM's CUTLASS scaled_mm on Hopper runs 64x64 tiles for m <= 64, 64x128 for m <= 128 and 128x128 above
    # (csrc/quantization/cutlass_w8a8/c3x/scaled_mm_sm90_fp8_dispatch.cuh: sm90_fp8_config_M64, _M128, _default), so
    # one output tile's serial k loop does 1, 2 and 4 times the MMA work per k step (Efficiency.gemm_k_tile_area;
    # H200 vLLM, n = 128, k = 65536: 53 us at m <= 64, 97 at 65-128, 174-198 at 129-256). Single-kernel predictions
    # of per-tensor FP8 rows only, like gemm_k_split_8
    gemm_k_tile_8: float = 0.0
    # 1 = the per-tensor FP8 kernel's compute runs whole row tiles of that dispatch (an engine kernel fact: SGLang on
    # Hopper, sgl-kernel fp8_gemm_kernel.cu sm90_fp8_dispatch_shape): rows padded to t = gemm_k_tile_8 up to 2t rows,
    # to 2t (the 128-row tile) up to 16t, and to 4t above, where its 128-row tiles run in 2 x 1 clusters
    # (Efficiency.gemm_row_fill; the tables' rows of m = 1 mod 256 ran 10-25% over the model, multiples of 256 not).
    # Single-kernel predictions of per-tensor FP8 rows only; 0 = none (the hand-set classes)
    gemm_row_pad_8: float = 0.0
    gemm_k_scale_8b: float = 0.0
    gemm_quant_s_8b: float = 0.0
    gemm_quant_bytes_8b: float = 0.0
    gemm_quant_row_s_8b: float = 0.0
    # 1 = block-scaled FP8 GEMMs run DeepGEMM's SM90 kernel (an engine kernel fact: SGLang on Hopper, kernel_source
    # sglang_deepgemm_gemm_nt_f8f8bf16): it launches one CTA per SM and picks (block_m, block_n) per shape by the
    # fewest waves of ceil(m/block_m) x ceil(n/block_n) tiles over the SMs, then the fullest last wave
    # (Efficiency.deepgemm_wave_fill), so the compute runs padded tiles in whole waves: eta_c x m n / (waves x SMs x
    # block_m x block_n). Single-kernel predictions of block-scaled rows (gemm_max_8b > 0) only; needs the SM count;
    # 0 = none (the hand-set classes)
    gemm_waves_8b: float = 0.0
    # 1 = the engine's tables time block-scaled FP8 layers eagerly (a table fact: aiconfigurator collector/vllm/
    # collect_gemm.py, use_cuda_graph=gemm_type != "fp8_block"), so a loop of calls runs at the slower of the host's
    # time to issue one call (gemm_host_s_8b, fitted) and the GPU's time for its kernels: max(host, kernels).
    # Single-kernel predictions of block-scaled rows only (steps run CUDA graphs); 0 = none (the hand-set classes)
    gemm_eager_8b: float = 0.0
    gemm_host_s_8b: float = 0.0
    # 1 where the engine's MoE layer quantizes the experts' activations in kernels of their own (vLLM's and SGLang's
    # Triton MoE for FP8): the graph's `experts_quant` operator (symbol q_e)
    step_expert_quant_8: float = 0.0
    step_expert_quant_4: float = 0.0
    # achieved/nominal scale-up bandwidth of an all-reduce reduced inside the switch (NVLink SHARP, NCCL's NVLS
    # algorithm on NVSwitch 3+: each rank moves (N+1)/N x M per direction instead of a ring's 2(N-1)/N x M);
    # 0 = no in-switch reduction (the hand-set classes), so "auto" never picks it
    nvls_bus_efficiency: float = 0.0
    # MoE experts run grouped GEMM kernels (vLLM/SGLang fused_moe Triton or FlashInfer TRT-LLM MoE, TensorRT-LLM
    # CUTLASS MoE, DeepGEMM, Marlin MoE for W4A16), not the dense GEMMs the gemm_max ceilings were measured on: their
    # compute ceiling is this share of the dense ceiling of their dtype, per expert kernel class (16-bit, FP8, FP4,
    # and `wo`: weight-only W4A16/W8A16 experts, dequantized inside the kernel), and their weight and activation
    # traffic streams at moe_mem_scale_* of mem_max (per-expert tiles, scale-factor loads, token gathers). 1 = the
    # dense GEMM (neutral); fitted per class to NVIDIA's MoE layer tables (model.calibration.moe_rows)
    moe_gemm_scale_16: float = 1.0
    moe_gemm_scale_8: float = 1.0
    moe_gemm_scale_4: float = 1.0
    moe_gemm_scale_wo: float = 1.0
    moe_mem_scale_16: float = 1.0
    moe_mem_scale_8: float = 1.0
    moe_mem_scale_4: float = 1.0
    moe_mem_scale_wo: float = 1.0
    # its start-up time: NVLS sets up multicast objects and runs two switch round trips, so it wins only large
    # messages (NCCL's tuner has a far larger base latency for NVLS than for ring or tree)
    nvls_latency_s: float = 0.0
    # the launch floor of one collective kernel, in place of kernel_floor_s: an engine's custom all-reduce is a
    # small kernel that starts and ends faster than a GEMM (2.2-2.5 us for a 2-GPU 1 kB all-reduce under SGLang
    # and TensorRT-LLM on H100, where a GEMM's fitted floor is 3 us); 0 = kernel_floor_s
    collective_floor_s: float = 0.0
    # how an attention kernel's compute and memory terms combine, in place of roofline_p: FlashAttention-3, FlashMLA
    # and TensorRT-LLM's MLA/XQA kernels are warp-specialized (producer warps stream K/V with TMA while consumer warps
    # run the MMAs), so near the ridge they overlap loads and math better than a GEMM (TensorRT-LLM MLA decode on
    # H100, 64 -> 128 heads at batch 64 and 128k context: 3.13 -> 3.57 ms, the hard max of the two terms, where the
    # GEMM-fitted corner p = 1.6 predicts 1.5x the memory time); 0 = roofline_p (the hand-set classes)
    attention_roofline_p: float = 0.0
    # the same for MLA kernels (FlashMLA, TensorRT-LLM's and FlashInfer's MLA): absorbed MLA decode sits at the ridge
    # (every head reads the one 576-wide latent), where the corner decides the time; 0 = attention_roofline_p
    mla_roofline_p: float = 0.0
    # MLA kernels read their latent cache at this multiple of attention_mem_scale: one contiguous 576-wide latent per
    # token shared by every head, against per-head K and V pages (TensorRT-LLM MLA decode on H100 at 64 heads, batch
    # 64, 128k context reads 9.7 GB in 3.13 ms: 92% of nominal bandwidth, where its GQA decode kernel reaches 74%);
    # 1 = as other attention (the hand-set classes)
    mla_mem_scale: float = 1.0
    # an MLA kernel's query and output tiles move at this share of its latent-read bandwidth (single-kernel
    # predictions): 512-576-wide heads leave room for one CTA per SM, which loads its query tile before the KV loop
    # and stores its output after it, outside the TMA pipeline that streams the latent. The tables show ~1 ns per
    # (query token, head) wherever no latent is read (H200: absorbed SGLang prefill of 16-128 tokens, decode at batch
    # 1,024 over 2 keys), i.e. 2,176 query + output bytes at ~45% of nominal bandwidth, while long-context decode
    # streams the latent at ~90%; 1 = the same (the hand-set classes)
    mla_qo_mem_scale: float = 1.0
    # MLA kernels compute whole blocks of this many query rows by as many keys (single-kernel predictions;
    # kernels.mla_blocks): a prefill of s tokens pays ceil(s/B) query blocks over whole key blocks, the causal
    # diagonal in full. TensorRT-LLM's expanded MLA prefill takes the same time for 1 to 32 tokens per sequence
    # (H200, batch 256, 128 heads: 845 us at 1 token, 1,048 us at 32; B200: 728 and 869 us), where a count of
    # s(s+1)/2 pairs falls 500-fold; 0 = no blocks (the hand-set classes)
    mla_block: float = 0.0
    # the per-call floor of an MLA decode call timed on its own, in place of decode_attention_floor_s: MLA decode runs
    # split-KV over the one latent with a metadata pass and a combine kernel (FlashMLA's get_mla_metadata and
    # combine; TensorRT-LLM's MLA generation alike), other preparation than a GQA decode kernel (TensorRT-LLM H100: a
    # batch-1 MLA decode call takes 14-16 us at any context up to 1k keys); 0 = decode_attention_floor_s
    mla_decode_floor_s: float = 0.0
    # the same for an MLA prefill call, in place of attention_floor_s: TensorRT-LLM's MLA context call runs its RoPE
    # and latent-cache append kernel before the attention kernel (attentionOp.cpp: invokeMLARopeContext where a GQA
    # call runs invokeQKVPreprocessing), SGLang's writes the latent cache first, other
    # preparation than a GQA prefill call (TensorRT-LLM H100: one one-token sequence takes 15.8-16.2 us, where the
    # GQA prefill floor plus the kernel floor gave 19); 0 = attention_floor_s
    mla_prefill_floor_s: float = 0.0
    # where 1, MLA decode calls split each sequence's latent over CTAs by FlashAttention-3's rule (SGLang's fa3 MLA
    # backend on Hopper: the latent as a 64-wide rope head with 512-wide values, 64 x 64 tiles;
    # decode_splits.fa3_mla_decode_splits): each split CTA loads the query tile and writes fp32 partial outputs that a
    # combine kernel reads back (hopper/flash_fwd_combine); those bytes move with the query and output tiles
    # (mla_qo_mem_scale; single-kernel predictions); 0 = no split (the hand-set classes). The combine call's own
    # launch is mla_split_s below
    mla_fa3_split: float = 0.0
    # and each of its CTAs walks its share of key blocks in sequence (ceil(key blocks / splits), wave after wave):
    # with 512-wide values one CTA fills an SM and a page size of 1 gathers the latent row by row (FA3's paged
    # non-TMA loads), so a call with few CTAs is bound by that chain, not by bandwidth (SGLang H200, one sequence,
    # 64 heads: 12.5 us at 64 keys, 14 at 128, 17 at 256, the bytes adding < 0.2 us): mla_block_s per block, a hard
    # max with the roofline time; 0 = no such term
    mla_block_s: float = 0.0
    # where 1, MLA decode calls pick TensorRT-LLM's trtllm-gen MLA generation kernel and its KV split by the engine's
    # rule (Blackwell; decode_splits.trtllm_gen_mla_decode_splits: the low-latency kernel of 16 heads per CTA splits a
    # sequence's KV over up to SMs / head CTAs, the high-throughput kernel does not); its CTAs walk their key tiles of
    # 128 in sequence (mla_block_s, as above); 0 = no such rule (the hand-set classes)
    mla_trtllm_gen_split: float = 0.0
    # a split MLA decode call (either rule above) pays this once to reduce its partial results (FA3's combine kernel;
    # trtllm-gen's reduction in a cluster's shared memory or through global memory): single-kernel predictions; 0 =
    # none (B200 TensorRT-LLM, where its split calls ran 13-60% over the smooth curve: 4.6 us)
    mla_split_s: float = 0.0
    # query heads per KV head above which an engine's decode attention leaves its grouped kernel for a per-query-head
    # kernel, which also runs plain MHA (one query head per KV head): TensorRT-LLM's XQA kernels take head groups of
    # at most 32 and never vanilla MHA (cpp/tensorrt_llm/kernels/decoderMaskedMultiheadAttention/decoderXQAImplJIT/
    # kernelUtils.cpp: supportConfigCommon, supportConfigQGMMA/HMMA: head_grp_size * beam_width > 32 -> false), so
    # those calls run the masked multi-head attention kernel: one CTA per query head, reading its KV head's cache once
    # per query head (repeats partly from L2); 0 = every group size runs the grouped kernel (the hand-set classes).
    # Single-kernel predictions only: the step graph carries query rows per KV head, not the group size alone
    decode_group_limit: float = 0.0
    # and below this share of the SMs filled by the grouped kernel's CTAs the engine runs the fallback kernel too:
    # XQA runs only where (batch x KV heads x multi-block count) x kEnableMinBlockFactor (4) >= the SM count, with a
    # multi-block count of history / kMinHistoryTokensPerBlock (128) (decoderXQAConstants.h; decoderXQARunner.cpp
    # DecoderXQARunner::shouldUse / mayHavePerfGain): 0.25 with decode_split_tokens 128; 0 = no such rule
    decode_group_min_fill: float = 0.0
    decode_split_tokens: float = 0.0
    # a decode call that splits each sequence's KV over several CTAs (TensorRT-LLM's multi-block mode: history /
    # decode_split_tokens blocks, at most round(sqrt(8 x that)), cut to 8 waves of the SMs and to 6,000 sub-sequences;
    # decoderXQAImplCommon.h computeMultiBlockCount) pays this once per call: the partial results go through global
    # memory and a last CTA per sequence merges them (TensorRT-LLM H200, one sequence and KV head: 8 us at 2-128
    # keys, 16 us from 1k keys on, where the KV read adds under 1 us); 0 = no such term. Applies where
    # decode_split_tokens > 0 (single-kernel predictions)
    decode_split_s: float = 0.0
    # where 1, GQA/MHA decode calls run FlashAttention-3 with a paged KV cache of page size 1 (SGLang's fa3 backend on
    # Hopper): each CTA owns (sequence, KV head, kBlockM packed query rows, split) and walks its keys in blocks of
    # kBlockN by the head dimension (hopper/tile_size.h tile_size_fwd_sm90 with paged_kv_non_TMA: 128 keys up to
    # head_dim 128, 96 to 192, 80 above), split by FA3's rule (decode_splits.fa3_decode_splits); with one CTA per
    # SM and the keys gathered row by row, a call with few CTAs is bound by that chain of blocks (SGLang H200, one
    # sequence on 1-4 KV heads: head_dim 256 11 us at 64 keys, 13 at 128, 17 at 256; head_dim 128 9, 9, 11):
    # decode_block_s per block, a hard max with the roofline time, like mla_block_s; FA3's split count also decides
    # which calls pay decode_split_s; 0 = no such rule (the hand-set classes)
    decode_fa3_split: float = 0.0
    decode_block_s: float = 0.0
    # and each of those CTAs is a work item (decode_item_s) that also moves its query and output tiles, kBlockM x
    # (d_qk + d_v) with the query group padded to kBlockM rows: decode_item_tile_s per 128 x 256 tile (a CTA at
    # head_dim 128) on top of decode_item_s (SGLang H200, 4,096 CTAs at 2 keys: 85, 97, 145 us at head_dim 64, 128,
    # 256, ~1.5 us per CTA-wave plus one growing with the tile); 0 = no such term
    decode_item_tile_s: float = 0.0
    # where 1, TensorRT-LLM's XQA decode CTAs (one per sequence, KV head and multi-block sub-sequence) pay
    # decode_item_tile_s for their query/output tiles too: the group's rows padded to 16, head_dim wide
    # (decode_splits.xqa_decode_tiles; TensorRT-LLM H200, 16,384 (sequence, KV head) items at 2 keys: 530, 600 and
    # 848 us at head_dim 64, 128, 256); 0 = no such rule
    decode_xqa_tile: float = 0.0
    # per-CTA cost of TensorRT-LLM's per-query-head fallback kernel (masked multi-head attention: grid of
    # (query heads, sequences, multi-block)): at short contexts its time follows the CTAs whatever the head dimension
    # (TensorRT-LLM H200, 16,384 (sequence, query head) CTAs at 2 keys: 156-186 us at head_dim 64-256; 131,072:
    # 1.18-1.29 ms); 0 = no such term (single-kernel predictions)
    decode_fallback_item_s: float = 0.0
    # an attention call whose value heads are narrower than its key heads pays this once per call for writing the new
    # keys and values into the cache without the fused store kernel: SGLang's KV pool runs its store_cache JIT kernel
    # only when K and V share a row width and otherwise writes k_cache[loc] = k, v_cache[loc] = v as two PyTorch index
    # writes (python/sglang/srt/mem_cache/memory_pool.py _set_kv_buffer_impl, same_kv_dim); the tables time the
    # layer with that write (aiconfigurator collector/sglang/collect_attn.py). The rows say which calls: a row's
    # v_head_dim (model.calibration.tables; absent = head_dim). 0 = no such term (single-kernel predictions)
    kv_store_unfused_s: float = 0.0
    # the waves of the SMs up to which the split count is cut: TensorRT-LLM's kTargetWaveFactor 8; FlashAttention's
    # num_splits_heuristic splits only below 0.8 of one wave of CTAs, FlashInfer's decode planner only below its grid
    # of resident CTAs, both taken as 1 wave for vLLM and SGLang (engine facts, with 128-key blocks)
    decode_split_waves: float = 8.0
    # that per-query-head kernel's KV-read bandwidth relative to attention_mem_scale (above 1 where the L2 cache serves
    # the group's repeated reads)
    decode_fallback_mem_scale: float = 1.0
    # issue time per work item of a GQA/MHA decode attention call, spread over the GPU: the kernels run one CTA (or
    # split-KV chunk set) per (sequence, KV head) -- TensorRT-LLM's XQA grid is (sub-sequences, KV heads, batch),
    # its per-query-head fallback (masked MHA) one per (sequence, query head), FlashInfer's decode one per (sequence,
    # KV-head tile) -- and each pays a fixed prologue and epilogue (query load, page-table walk, softmax finalize,
    # output write) whatever its context (TensorRT-LLM H200, 8,192 (sequence, KV head) items at 2-128 keys: 267-296
    # us, at 4 keys 16,384 items: 613 us, flat in context and group size). Added to the compute term; single-kernel
    # predictions, like decode_attention_floor_s; 0 = no such term (the hand-set classes)
    decode_item_s: float = 0.0
    # the same for a prefill attention call, per work tile: (sequence, KV head, 128 query rows of the GQA-packed
    # group), the CTA of FlashAttention-3 / FlashInfer prefill (kBlockM = 128 at head_dim 128); at short sequences
    # over many sequences the tiles, not the FLOPs, set the time (vLLM B200, 16-token prefills over 256-8,192
    # (sequence, KV head) pairs: 1.5-5.8x the fitted curve's prediction without this term); 0 = no such term
    prefill_tile_s: float = 0.0
    # head dimensions above this leave the engine's FlashAttention/FlashInfer prefill kernels (both compiled for head
    # dimensions up to 256) for a generic one, which runs at attention_wide_scale of their speed (compute and KV
    # reads); decode calls above decode_wide_head_dim alike. Engine facts: vLLM both 256, SGLang prefill 256 (its
    # decode tables at head_dim 512 sit on the curve); 0 = every head dimension on the one kernel (the hand-set
    # classes)
    attention_wide_head_dim: float = 0.0
    decode_wide_head_dim: float = 0.0
    attention_wide_scale: float = 1.0
    # a head dimension the engine runs on that generic kernel in both phases whatever the flash limit (engine fact,
    # 0 = none): SGLang 0.5.14 on Blackwell runs MiMo-V2's QK192/V128 attention only on Triton (its trtllm_mha
    # kernel fails on the asymmetric V, FlashInfer rejects the 128-wide V pool: aiconfigurator collector
    # cases/models/MiMoV2FlashForCausalLM_cases.yaml; the B200 tables' head_dim 192 rows are all kernel_source triton)
    attention_generic_head_dim: float = 0.0
    # 1 = the engine's prefill kernel gives every query head tiles of its own (query rows per tile = the sequence's
    # tokens, prefill tiles per (sequence, query head)) instead of packing a KV head's query group into one tile:
    # TensorRT-LLM's trtllm-gen context kernels (run by FlashInfer for vLLM on Blackwell) lay Q out as [tokens, heads,
    # head_dim] and group heads only in generation kernels (flashinfer include/flashinfer/trtllm/fmha/fmhaKernels.cuh:
    # numHeadsPerCta = mGroupsHeadsQ ? min(numHeadsQPerKv, stepQ) : 1; kernelParams.h makeTmaShapeStrideQ: packed QKV
    # never groups heads); TensorRT-LLM's fmha_v2 context kernels on Hopper alike (warpspec/dma.h: a tile per query
    # head). 0 = packed (FlashAttention's and FlashInfer's PackGQA, the hand-set classes); single-kernel predictions,
    # like prefill_tile_s
    prefill_head_tiles: float = 0.0
    # 1 = a prefill call's tiles run in whole waves of one tile per SM: its compute takes ceil(tiles / SMs) waves of
    # the busiest tile, so a call of fewer tiles than SMs, or a last partial wave, leaves SMs idle (the compute term
    # grows by ceil(w) / w, w = tiles / SMs); every CTA of FlashAttention and trtllm-gen context kernels owns one
    # (sequence, head, 128 query rows) tile (trtllm-gen's persistent scheduler hands them out one per SM); needs the
    # device's SM count. Under a causal mask the tiles are unequal (query tile i of n attends i + 1 key tiles) and a
    # context kernel does not split a tile's keys over CTAs (flashinfer csrc/trtllm_fmha_kernel_launcher.cu: context
    # mMultiCtasKvMode = false), so a call ends no sooner than its last tile, 2n / (n + 1) of the mean one: the
    # compute term grows by max(ceil(w), 2n / (n + 1)) / w. 0 = the tiles spread evenly (the hand-set classes);
    # single-kernel predictions, like prefill_tile_s
    prefill_tile_waves: float = 0.0
    # 1 = the engine's attention call (as its kernel tables time it) stores the call's new keys and values in the
    # paged KV cache with a copy kernel of its own before the attention kernel: the new K and V read and written
    # (2 x tokens x KV heads x cached elements per KV head x bytes), at the size-dependent copy bandwidth, added to
    # the call (vLLM 0.24 `do_kv_cache_update` / reshape_and_cache_flash outside `forward` where the backend's forward
    # does not include it; SGLang's `set_kv_buffer` in `forward_extend` / `forward_decode`). An MHA call stores
    # group-size times a GQA call's bytes at the same FLOPs. Steps count the write in the operator graph
    # (kv_write_bytes); 0 = no store (the hand-set classes); single-kernel predictions
    kv_store_kernel: float = 0.0
    # the widest value slice one prefill CTA holds (engine fact, 0 = the whole head): trtllm-gen's context kernels
    # split a value head wider than 256 over ceil(d_v / 256) CTAs, each recomputing the full Q.K^T for its slice
    # (flashinfer include/flashinfer/trtllm/fmha/fmhaKernels.cuh: headDimPerCtaV = 256 for headDimV > 256 in
    # context kernels, numCtasY = numCtasForAllHeadsQ * headDimV / headDimPerCtaV), so a (query, key) pair costs
    # 2 d (QK) x slices + 2 d (PV): 1.5x the FLOPs at head_dim 512, and the tiles multiply by the slices
    prefill_v_slice_dim: float = 0.0
    # prefill calls of at most this many query tokens per sequence run the engine's decode path and pay its call
    # floor (decode_attention_floor_s) in place of attention_floor_s: vLLM's metadata builders count requests of
    # query length <= 1 as decodes (vllm/v1/attention/backends/utils.py split_decodes_and_prefills, decode_threshold
    # 1); its tables' one-token prefills take 9-12 us, 15-40% under the prefill floor; they pay no prefill tiles
    # (prefill_tile_s). 0 = none (engine fact)
    prefill_decode_tokens: float = 0.0
    # GEMMs of at most gemv_m_limit rows (decode at small batch) run GEMV-style kernels (cuBLAS/CUTLASS swap operands
    # or split k so the weight matrix streams across every SM, with no tensor-core tile in the row direction): their
    # compute has no tile or row half-point term, and their weight stream reaches gemv_mem_scale of the streaming
    # ceiling; 0 = no such path (the hand-set classes: one curve, where a one-token GEMM pays a full tile). Without it
    # the fitted row half-point had to serve both GEMVs and small-tile GEMMs
    gemv_mem_scale: float = 0.0
    gemv_m_limit: float = 16.0
    # the engine's custom all-reduce (CUDA-IPC one-shot and two-shot kernels, model.roofline.collectives): achieved/
    # nominal scale-up bandwidth of its peer loads and stores (0 = not modelled, the hand-set classes: an all-reduce
    # takes the fastest of ring, tree, one-shot and in-switch) and the two-shot kernel's extra start-up (its second
    # barrier and the reduce-scatter hand-off); fitted to the all-reduce tables
    custom_ar_bus_efficiency: float = 0.0
    custom_ar_two_shot_s: float = 0.0
    # with that kernel modelled, NCCL's extra start-up over it (NCCL's base latency: channels, proxy, protocol
    # set-up; the NCCL tables take 6-16 us for a 512-byte all-reduce on 2-8 H100s where the custom kernel takes 3-5)
    nccl_base_s: float = 0.0
    # the engine's size rule for that kernel (set from its source, model.engines.custom_all_reduce_limits, never
    # fitted): messages below ar_one_shot_below_<n> bytes run one-shot, below ar_custom_below_<n> two-shot, larger
    # ones NCCL, for groups of up to 2, 4 and 8 ranks; 0 = no custom kernel for that group size
    ar_one_shot_below_2: float = 0.0
    ar_one_shot_below_4: float = 0.0
    ar_one_shot_below_8: float = 0.0
    ar_custom_below_2: float = 0.0
    ar_custom_below_4: float = 0.0
    ar_custom_below_8: float = 0.0
    source: str = ""

    def custom_all_reduce_limits(self) -> tuple[tuple[float, float, float], ...]:
        """The engine's custom all-reduce size rule as collectives.Tier.custom_limits: (ranks, one-shot below,
        custom below) for 2, 4 and 8 ranks."""
        return tuple((float(r), float(getattr(self, f"ar_one_shot_below_{r}")),
                      float(getattr(self, f"ar_custom_below_{r}"))) for r in (2, 4, 8))

    def gemv(self, m):
        """True for GEMM rows counts that take the GEMV path (gemv_mem_scale > 0 and 0 < m <= gemv_m_limit)."""
        m = np.asarray(m, dtype=float)
        return (np.asarray(self.gemv_mem_scale) > 0) & (m > 0) & (m <= self.gemv_m_limit)

    def gemm_mem_scale(self, m):
        """The memory-ceiling scale of GEMMs with m rows: gemv_mem_scale on the GEMV path, else 1."""
        return np.where(self.gemv(m), self.gemv_mem_scale, 1.0)

    def attention_p(self, mla=False):
        """The roofline corner exponent of attention kernels: attention_roofline_p where set (> 0), else roofline_p;
        MLA kernels (`mla`, per kernel) mla_roofline_p where set."""
        # np.where, not `if`: a stacked planner context holds one value per candidate
        p = np.where(np.asarray(self.attention_roofline_p) > 0, self.attention_roofline_p, self.roofline_p)
        return np.where(np.asarray(mla, dtype=bool) & (np.asarray(self.mla_roofline_p) > 0), self.mla_roofline_p, p)

    def collective_floor(self):
        """Launch floor of one collective kernel: collective_floor_s where set (> 0), else kernel_floor_s."""
        return np.where(np.asarray(self.collective_floor_s) > 0, self.collective_floor_s, self.kernel_floor_s)

    def block8(self, dtype: str, block: bool) -> bool:
        """True where a GEMM of this dtype runs a block-scaled FP8 kernel (`block`) with terms of its own
        (gemm_max_8b > 0); elsewhere it takes the per-tensor terms."""
        return bool(block) and DTYPE_CLASSES.get(dtype) == "8" and self.gemm_max_8b > 0

    def gemm_max(self, dtype: str, block: bool = False) -> float:
        """The ceiling of this dtype's GEMMs; `block`: a block-scaled FP8 kernel (gemm_max_8b where set)."""
        if self.block8(dtype, block):
            return self.gemm_max_8b
        return getattr(self, f"gemm_max_{DTYPE_CLASSES.get(dtype, '16')}")

    def gemm_tile(self, dtype: str, block: bool = False) -> float:
        """Rows of the smallest tensor-core tile of this dtype's GEMMs (gemm_tile_m for 16- and 32-bit); `block`: a
        block-scaled FP8 kernel (gemm_tile_m_8b where set)."""
        cls = DTYPE_CLASSES.get(dtype, "16")
        if self.block8(dtype, block) and self.gemm_tile_m_8b > 0:
            return self.gemm_tile_m_8b
        return getattr(self, f"gemm_tile_m_{cls}") if cls in ("8", "4") else self.gemm_tile_m

    def gemm_k_scale(self, dtype: str, block: bool = False) -> float:
        """The k loop's time per element for this dtype's GEMMs relative to 16-bit ones (1 for 16- and 32-bit);
        `block`: a block-scaled FP8 kernel (gemm_k_scale_8b where set)."""
        cls = DTYPE_CLASSES.get(dtype, "16")
        if self.block8(dtype, block) and self.gemm_k_scale_8b > 0:
            return self.gemm_k_scale_8b
        return getattr(self, f"gemm_k_scale_{cls}") if cls in ("8", "4") else 1.0

    def gemm_k_split_of(self, dtype: str) -> float:
        """Elements of k past which this dtype's GEMM kernels split k: gemm_k_split_8/4 for FP8/INT8 and FP4 where
        set (> 0), else gemm_k_split."""
        cls = DTYPE_CLASSES.get(dtype, "16")
        own = getattr(self, f"gemm_k_split_{cls}") if cls in ("8", "4") else 0.0
        return own if own > 0 else self.gemm_k_split

    def gemm_quant(self, dtype: str, block: bool = False) -> tuple[float, float, float]:
        """(fixed seconds, bytes per activation element, seconds per activation row) of the activation quantization
        before a GEMM of this dtype: FP8/INT8 and FP4 only, (0, 0, 0) otherwise; `block`: the per-group quantization
        of a block-scaled FP8 kernel (the _8b terms)."""
        cls = DTYPE_CLASSES.get(dtype, "16")
        if cls not in ("8", "4"):
            return 0.0, 0.0, 0.0
        if self.block8(dtype, block):
            return self.gemm_quant_s_8b, self.gemm_quant_bytes_8b, self.gemm_quant_row_s_8b
        return tuple(getattr(self, f"gemm_quant_{p}_{cls}") for p in ("s", "bytes", "row_s"))

    def step_quant(self, dtype: str) -> tuple[float, float, float]:
        """gemm_quant where a step pays it (the engine runs the quantization as its own kernel), else (0, 0, 0)."""
        on = getattr(self, f"step_quant_{DTYPE_CLASSES.get(dtype, '16')}", 0.0)
        return tuple(v * on for v in self.gemm_quant(dtype))

    def step_expert_quant(self, dtype: str) -> float:
        """1 where the engine's MoE layer quantizes experts of this dtype in kernels of their own, else 0."""
        return float(getattr(self, f"step_expert_quant_{DTYPE_CLASSES.get(dtype, '16')}", 0.0))

    def moe_scales(self, dtype: str, weight_only: bool) -> tuple[float, float]:
        """(compute, memory) scale of the grouped expert GEMMs of this dtype relative to dense GEMMs."""
        cls = moe_kernel_class(dtype, weight_only)
        return getattr(self, f"moe_gemm_scale_{cls}"), getattr(self, f"moe_mem_scale_{cls}")

    def with_overrides(self, values: dict[str, float], source: str) -> Efficiency:
        known = {f.name for f in fields(self)} - {"source"}
        unknown = set(values) - known
        if unknown:
            raise RidgeplanError(f"efficiency.{sorted(unknown)[0]}", "unknown efficiency parameter", sorted(known))
        for name, value in values.items():
            if not isinstance(value, (int, float)) or value < 0:
                raise RidgeplanError(f"efficiency.{name}", f"must be a number >= 0, got {value!r}")
            if name.endswith("_max") or name.startswith("gemm_max") or name == "dequant_penalty":
                if value > 1:
                    raise RidgeplanError(f"efficiency.{name}", f"is a fraction of peak and must be <= 1, got {value}")
        return replace(self, **values, source=f"{self.source}; {source}" if self.source else source)
