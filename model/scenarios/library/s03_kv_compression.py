"""Section 3: KV-cache quantization and compression (KIVI, MiKV, CSKV, MatryoshkaKV, HACK)."""

from __future__ import annotations

import dataclasses

from model.api import deployment
from model.precision import NumberFormat, number_format
from model.scenarios.base import CheckOutcome, check, close, pick, scenario, within
from model.serving.batching import kv_capacity, steady_state
from model.techniques.kv_compression import (
    capacity_gain, kv_ratio, kv_saving, kv_share_of_memory, mixed_bits, total_saving, with_kv_bits,
)
from model.serving.policy import ENGINES

VLLM = ENGINES["vllm"]
GB = 1e9


def _per_sequence(d, context: int) -> float:
    """KV bytes of one sequence of `context` tokens on one GPU, as the engine's pool accounts them."""
    return float(kv_capacity(d, VLLM, context).kv_bytes_per_sequence[0])


# ---------------------------------------------------------------------------------------------------------
# CSKV

@check("SEED-A14", "A", "CSKV: rank fraction 0.2 -> 80% KV saving; x 4/16 bits -> 1 - 0.05 = 95% (window -> 0)")
def _a14(r):
    ok = (close(r["formula_rank"], 0.80) and close(r["formula_rank_int4"], 0.95) and close(r["planner_rank"], 0.80)
          and close(r["planner_rank_int4"], 0.95))
    return CheckOutcome(ok, pick(r, "formula_rank", "formula_rank_int4", "planner_rank",
                                 "planner_rank_int4"), "0.80 and 0.95",
                        "planner: Llama-2-7B KV per sequence at 4,096 tokens with kv_rank_fraction 0.2, BF16 and "
                        "int4 (g128, 4.16 bits with scales) KV, no full-precision window")


@scenario("cskv-low-rank-int4", ["CSKV (002)"], 3,
          "Llama-2-7B on one A100-80GB: K/V channels shrunk to 20% of their width (low-rank, up-projection folded into "
          "the query/output projections), then the compressed branch stored in INT4; KV per sequence and the "
          "sequences of 4,096 tokens that fit, against the BF16 cache.",
          [_a14])
def cskv():
    base = deployment("llama-2-7b", "a100-sxm-80gb")
    rank = dataclasses.replace(base, kv_rank_fraction=0.2)
    rank4 = dataclasses.replace(deployment("llama-2-7b", "a100-sxm-80gb", kv="int4"), kv_rank_fraction=0.2)
    full = _per_sequence(base, 4096)
    out = {"formula_rank": float(kv_saving(16, rank_fraction=0.2)),
           "formula_rank_int4": float(kv_saving(4, rank_fraction=0.2)),
           "planner_rank": 1 - _per_sequence(rank, 4096) / full,
           "planner_rank_int4": 1 - _per_sequence(rank4, 4096) / full}
    out["sequences"] = {name: float(kv_capacity(d, VLLM, 4096).max_sequences[0])
                        for name, d in (("bf16", base), ("rank0.2", rank), ("rank0.2+int4", rank4))}
    return out


# ---------------------------------------------------------------------------------------------------------
# MatryoshkaKV

@check("SEED-A16", "A", "MatryoshkaKV: capacity 1/(1 - 0.6) = 2.5x; 1/(1 - 0.75) = 4x")
def _a16(r):
    ok = (close(r["gain_60"], 2.5) and close(r["gain_75"], 4.0) and close(r["planner_bytes_gain_60"], 2.5)
          and close(r["planner_bytes_gain_75"], 4.0) and close(r["planner_seq_gain_60"], 2.5)
          and close(r["planner_seq_gain_75"], 4.0))
    return CheckOutcome(ok, pick(r, "gain_60", "gain_75", "planner_bytes_gain_60", "planner_bytes_gain_75",
                                 "planner_seq_gain_60", "planner_seq_gain_75"), "2.5x and 4x",
                        "planner: Llama-2-7B on an A100-80GB, 1,024-token sequences; K/V projected to 40% and 25% of "
                        "the head dimension (kv_rank_fraction); sequence counts are whole numbers")


@scenario("matryoshkakv-projection", ["MatryoshkaKV (004)"], 3,
          "LLaMA2-7B-base on one A100-80GB with K/V projected onto 40% (60% compression, the average) and 25% (75%, "
          "the extreme) of the feature axis: KV per sequence and how many 1,024-token sequences fit, against the "
          "uncompressed cache.",
          [_a16])
def matryoshka():
    base = deployment("llama-2-7b", "a100-sxm-80gb")
    out = {"gain_60": float(capacity_gain(0.6)), "gain_75": float(capacity_gain(0.75))}
    b_full = _per_sequence(base, 1024)
    n_full = float(kv_capacity(base, VLLM, 1024).max_sequences[0])
    for tag, keep in (("60", 0.4), ("75", 0.25)):
        d = dataclasses.replace(base, kv_rank_fraction=keep)
        out[f"planner_bytes_gain_{tag}"] = b_full / _per_sequence(d, 1024)
        out[f"planner_seq_gain_{tag}"] = float(kv_capacity(d, VLLM, 1024).max_sequences[0]) / n_full
    return out


# ---------------------------------------------------------------------------------------------------------
# HACK

@check("SEED-A17", "A", "HACK: KV share of memory = saving / compression: 0.442/0.70 = 0.631 (VAR-d30); "
       "0.589/0.90 = 0.654 (Infinity-8B)")
def _a17(r):
    ok = close(r["share_var_d30"], 0.631) and close(r["share_infinity_8b"], 0.654) and \
        close(r["round_trip_var_d30"], 0.442) and close(r["round_trip_infinity_8b"], 0.589)
    return CheckOutcome(ok, pick(r, "share_var_d30", "share_infinity_8b"), "0.631 and 0.654",
                        "round trip: the total saving recomputed from the share and the compression")


@scenario("hack-visual-ar-kv", ["HACK, head-aware KV compression for visual AR (001)"], 3,
          "Visual autoregressive image generators (VAR-d30, Infinity-8B; not in the model catalogue): the KV share "
          "of memory implied by HACK's reported savings, and the batch gain on the KV part at 70% and 90% "
          "compression.",
          [_a17])
def hack():
    s1, s2 = float(kv_share_of_memory(0.442, 0.70)), float(kv_share_of_memory(0.589, 0.90))
    return {"share_var_d30": s1, "share_infinity_8b": s2,
            "round_trip_var_d30": float(total_saving(s1, 0.70)),
            "round_trip_infinity_8b": float(total_saving(s2, 0.90)),
            "kv_batch_gain_70": float(capacity_gain(0.70)), "kv_batch_gain_90": float(capacity_gain(0.90))}


# ---------------------------------------------------------------------------------------------------------
# KIVI

KIVI_G128 = NumberFormat("int2-g128", 2, group_size=128, scale_bits=32, compute_dtype="int4",
                         description="2-bit, fp16 scale + fp16 zero per 128 elements")


@check("SEED-A18", "A", "KIVI KV-only ratio 16/2 = 8x; with g = 32 and fp16 scale + zero 16/3 = 5.33x; g = 128 7.1x; "
       "the 4x batch stays below these bounds")
def _a18(r):
    ok = (close(r["ratio_payload"], 8.0) and close(r["ratio_g32"], 16 / 3) and close(r["ratio_g128"], 7.11)
          and 4.0 <= r["ratio_g32"] and r["planner_batch_gain"] <= r["ratio_g32"])
    return CheckOutcome(ok, pick(r, "ratio_payload", "ratio_g32", "ratio_g128", "planner_batch_gain"),
                        "8x, 5.33x, 7.1x; batch gains <= 5.33x",
                        "planner batch gain: Llama-2-7B on an A100-80GB, 4,096-token sequences, KIVI-2 (g32) with a "
                        "128-token fp16 residual window, against an fp16 cache")


@check("SEED-B09", "B", "KIVI: 2.6x less peak memory including weights (+-15%), <= 4x batch; throughput ratio <= the "
       "decode-bytes ratio, and 2.35-3.47x inside it",
       known_gap="the peak-memory ratio is reproduced (2.8x at 4,096-token sequences), but at KIVI's speed workload "
                 "(160 in / 338 out) its 128-token fp16 residual is ~40% of the mean context, so the planner's KV per "
                 "sequence shrinks only ~2x: the batch doubles (356 -> 717 sequences, not 4x) and the memory-bound "
                 "decode-bytes ratio is ~2.0x, below the measured 2.35-3.47x. The measured gain exceeds the bytes "
                 "bound, which points to per-step overheads of KIVI's Hugging Face implementation (throughput that "
                 "tracks batch size), not modelled for an engine with CUDA graphs")
def _b09(r):
    ok = (within(r["peak_memory_ratio"], 2.6 * 0.85, 2.6 * 1.15) and r["batch_gain"] <= 5.34
          and r["throughput_ratio"] <= r["decode_bytes_ratio"] * 1.02 and 3.47 <= r["decode_bytes_ratio"])
    return CheckOutcome(ok, pick(r, "peak_memory_ratio", "batch_gain", "throughput_ratio",
                                 "decode_bytes_ratio"),
                        "peak memory 2.21-2.99x; throughput <= bytes ratio >= 3.47",
                        "Llama-2-7B on one A100-80GB; peak memory at the fp16 cache's largest batch of 4,096-token "
                        "sequences (weights + workspace + KV), KIVI-2 = 2-bit g32 with fp16 scale and zero point and a "
                        "128-token fp16 residual window (KIVI's residual length, external: verify); throughput: "
                        "160 in / 338 out (KIVI's workload, external: verify), each cache at its KV-limited batch")


def _peak(d, batch: int, context: int) -> float:
    cap = kv_capacity(d, VLLM, context)
    return float(cap.weights_bytes[0] + cap.activation_bytes[0] + batch * cap.kv_bytes_per_sequence[0])


@scenario("kivi-2bit-kv", ["KIVI (000)"], 3,
          "Llama-2-7B on one A100-80GB with an fp16 KV cache against KIVI-2 (keys per channel and values per token "
          "in 2 bits, fp16 scale and zero per 32 elements, the most recent 128 tokens in fp16): KV ratios of the "
          "formats, peak memory at equal batch, the batch each allows and the decode throughput that follows.",
          [_a18, _b09])
def kivi():
    fp16 = deployment("llama-2-7b", "a100-sxm-80gb", kv="fp16")
    kivi2 = dataclasses.replace(deployment("llama-2-7b", "a100-sxm-80gb", kv="int2"), kv_residual_tokens=128)
    out = {"ratio_payload": 16 / number_format("int2").bits, "ratio_g32": 16 / number_format("int2").bits_per_element,
           "ratio_g128": 16 / KIVI_G128.bits_per_element}
    n16 = float(kv_capacity(fp16, VLLM, 4096).max_sequences[0])
    nk = float(kv_capacity(kivi2, VLLM, 4096).max_sequences[0])
    out["planner_batch_gain"] = out["batch_gain"] = nk / n16
    out["peak_memory_ratio"] = _peak(fp16, int(n16), 4096) / _peak(kivi2, int(n16), 4096)
    policy = VLLM.with_(max_num_seqs=4096)
    a, b = steady_state(fp16, policy, 160, 338), steady_state(kivi2, policy, 160, 338)
    out["throughput_ratio"] = float(b.output_tokens_per_s[0] / a.output_tokens_per_s[0])
    out["concurrency"] = {"fp16": float(a.concurrency[0]), "kivi2": float(b.concurrency[0])}
    # bytes read per generated token at each one's batch: (weights + batch x KV per sequence) / batch
    ctx = 160 + 338 / 2

    def per_token(d, n):
        cap = kv_capacity(d, VLLM, ctx)
        return float((cap.weights_bytes[0] + n * cap.kv_bytes_per_sequence[0]) / n)

    out["decode_bytes_ratio"] = per_token(fp16, a.concurrency[0]) / per_token(kivi2, b.concurrency[0])
    return out


# ---------------------------------------------------------------------------------------------------------
# MiKV (no numbers to check)

@scenario("mikv-mixed-precision-kv", ['MiKV, "No Token Left Behind" (002)'], 3,
          "Llama-2-7B on one A100-80GB: MiKV keeps the 20% most important tokens' KV in FP16 and the rest in INT2 "
          "(g32, 3 bits with scales) instead of evicting them: average bits per element, sequences of 4,096 tokens "
          "that fit, and the decode step at the fp16 cache's largest batch, against fp16.")
def mikv():
    bits = mixed_bits([0.2, 0.8], [16, number_format("int2").bits_per_element])
    base = deployment("llama-2-7b", "a100-sxm-80gb", kv="fp16")
    mixed = with_kv_bits(base, bits, f"MiKV: 20% of tokens at 16 bits, 80% at INT2 g32 ({bits:.2f} bits on average)")
    n16 = float(kv_capacity(base, VLLM, 4096).max_sequences[0])
    nm = float(kv_capacity(mixed, VLLM, 4096).max_sequences[0])
    return {"bits_per_element": bits, "kv_ratio": float(kv_ratio(bits)), "sequences_fp16": n16, "sequences_mikv": nm,
            "decode_speedup_same_batch": float(base.step(int(n16), 1, 4095).time_s[0]
                                               / mixed.step(int(n16), 1, 4095).time_s[0])}
