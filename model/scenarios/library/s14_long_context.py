"""Section 14: long-context capacity (the four metrics, pooled KV across instances, low-rank K + offloaded V)."""

from __future__ import annotations

import numpy as np

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.operators.memory import kv_bytes_per_token, kv_cache_bytes
from model.scenarios.base import CheckOutcome, check, close, pick, scenario, within
from model.techniques.long_context import long_context_metrics, low_rank_offload, merge_traffic_ratio, pooled_context
from model.techniques.phases import at_peak
from model.serving.policy import ENGINES, EnginePolicy

VLLM = ENGINES["vllm"]
A11_MODELS = {"llama-2-7b": 524_288, "yi-34b": 245_760, "llama-3.1-405b": 516_096, "qwen2.5-72b": 327_680,
              "deepseek-v3": 70_272}


@check("SEED-A11", "A", "KV bytes per token at 2 B: Llama-2-7B 524,288; Yi-34B 245,760; LLaMA-3.1-405B 516,096; "
       "Qwen2.5-72B 327,680; DeepSeek-V3 MLA 61 x (512 + 64) x 2 = 70,272")
def _a11(r):
    got = r["kv_bytes_per_token"]
    ok = all(close(got[m], v, 1e-9) for m, v in A11_MODELS.items())
    return CheckOutcome(ok, got, ", ".join(f"{m} {v:,}" for m, v in A11_MODELS.items()))


@check("SEED-A13", "A", "Yi-34B: KV 50K = 12.29 GB, 4K = 1.01 GB; KV(1M)/KV(4K) = 244")
def _a13(r):
    ok = close(r["yi_kv_50k_gb"], 12.29) and close(r["yi_kv_4k_gb"], 1.01) and close(r["kv_1m_over_4k"], 244)
    return CheckOutcome(ok, pick(r, "yi_kv_50k_gb", "yi_kv_4k_gb", "kv_1m_over_4k"),
                        "12.29 GB, 1.01 GB, 244",
                        "bf16 KV; 50K = 50,000 and 1M = 1,000,000 tokens; 4K = 4,096")


@check("SEED-B01", "B", "Yi-34B on one A100-80GB at theoretical peak: prefill 4K 0.89 s, 50K 14.1 s; decode 250 "
       "tokens 8.5 s (4K) / 9.8 s (50K), ratio 1.153 (absolutes +-10%, ratios +-5%)",
       known_gap="the third-party 14.1 s counts attention as L S^2 d FLOPs (half of the causal 2 L S^2 d, a quarter "
                 "of the square 4 L S^2 d); with the planner's causal convention the 50K prefill is ~17.9 s, as the "
                 "catalogue itself notes (17.8 s). The 4K prefill and both decode figures and their ratio are inside "
                 "their bands")
def _b01(r):
    p4, p50, d4, d50 = r["peak_prefill_4k_s"], r["peak_prefill_50k_s"], r["peak_decode_4k_s"], r["peak_decode_50k_s"]
    ok = (within(p4, 0.89 * 0.9, 0.89 * 1.1) and within(p50, 14.1 * 0.9, 14.1 * 1.1)
          and within(d4, 8.5 * 0.9, 8.5 * 1.1) and within(d50, 9.8 * 0.9, 9.8 * 1.1)
          and within(d50 / d4, 1.153 * 0.95, 1.153 * 1.05))
    return CheckOutcome(ok, {"prefill_4k": p4, "prefill_50k": p50, "decode_4k": d4, "decode_50k": d50,
                             "decode_ratio": d50 / d4},
                        "0.80-0.98 s, 12.7-15.5 s, 7.65-9.35 s, 8.82-10.78 s, ratio 1.095-1.211",
                        "Yi-34B bf16 (68.8 GB weights) on one A100-80GB at 100% of peak (312 TFLOP/s, 2.039 TB/s), "
                        "causal attention FLOPs, batch 1")


@scenario("long-context-four-metrics", ["Challenges in Deploying Long-Context Transformers (001, 002, 003)"], 14,
          "Yi-34B (bf16, 68.8 GB) on one A100 SXM 80GB at 4K and 50K context: KV per token from the public configs, "
          "the four metrics (prefill, concurrency, decode step, context switch over PCIe) with the planner's "
          "efficiency and vLLM memory accounting, and the theoretical-peak prefill and 250-token decode the "
          "analysis quotes (100% of peak, no overheads). Break-even compression for 1M as cheap as 4K.",
          [_a11, _a13, _b01])
def long_context():
    out = {"kv_bytes_per_token": {m: kv_bytes_per_token(load_architecture(m)) for m in A11_MODELS}}
    yi = load_architecture("yi-34b")
    kv = {c: float(np.ravel(kv_cache_bytes(yi, c))[0]) for c in (4096, 50_000, 1_000_000)}
    out.update({"yi_kv_4k_gb": kv[4096] / 1e9, "yi_kv_50k_gb": kv[50_000] / 1e9,
                "kv_1m_over_4k": kv[1_000_000] / kv[4096]})
    d = deployment("yi-34b", "a100-sxm-80gb")
    peak = at_peak(d)
    for ctx, tag in ((4096, "4k"), (50_000, "50k")):
        out[f"peak_prefill_{tag}_s"] = float(peak.step(1, ctx, 0).time_s[0])
        out[f"peak_decode_{tag}_s"] = float(peak.step(1, 1, ctx + np.arange(250.0)).time_s.sum())
        m = long_context_metrics(d, VLLM, ctx)
        out[f"metrics_{tag}"] = {"prefill_s": m.prefill_s, "concurrency": m.concurrency,
                                 "decode_step_s": m.decode_step_s, "context_switch_s": m.context_switch_s}
    return out


@check("SEED-B25", "B", "Infinite-LLM: 2-19x longer contexts on 32 A100 in 2-32 instances; pooled free memory / "
       "per-instance free memory; merge traffic per token << KV moved")
def _b25(r):
    m = r["multiplier"]
    ok = close(m["2"], 2.0) and m["32"] >= 19 and r["merge_over_kv"] < 0.01
    return CheckOutcome(ok, {"multiplier_by_instances": m, "merge_over_kv_moved": r["merge_over_kv"]},
                        "2 instances: 2x; 32 instances: >= 19x (the planner's pooled bound contains the 2-19x range); "
                        "merge traffic < 1% of the KV it replaces",
                        "lenders idle (every free pool lent); remote shard of 1,000 tokens for the merge ratio")


@scenario("infinite-llm-pooled-kv", ["Infinite-LLM (000)"], 14,
          "Llama-2-7B (bf16) on 32 A100 SXM 80GB split into 2, 4, 8, 16 or 32 instances (TP up to 8, PP for the "
          "rest), vLLM memory accounting. Longest context of one request in its own instance vs with DistAttention "
          "borrowing the free KV pools of the other instances (upper bound: lenders idle); merge traffic of the "
          "partial attention results vs moving the KV.",
          [_b25])
def infinite_llm():
    mult = {}
    for n in (2, 4, 8, 16, 32):
        gpus = 32 // n
        tp = min(gpus, 8)
        d = deployment("llama-2-7b", "a100-sxm-80gb", tp=tp, pp=gpus // tp)
        mult[str(n)] = pooled_context(d, VLLM, n).multiplier
    d1 = deployment("llama-2-7b", "a100-sxm-80gb")
    return {"multiplier": mult, "own_context_tokens_1gpu": pooled_context(d1, VLLM, 1).own_tokens,
            "merge_over_kv": merge_traffic_ratio(d1, 1000)}


# ShadowKV's own framework allocates the KV statically from all device memory (no vLLM 10% reserve).
STATIC = EnginePolicy("static-hf", memory_fraction=1.0, cuda_graph_bytes=0.0)
SHADOW = dict(rank=160, chunk_tokens=8, budget_share=0.0156, outlier_share=0.003, reuse=0.6)


@check("SEED-B10", "B", "ShadowKV: 6x batch, 3.04x throughput on an A100 (Llama-3.1-8B, 122K) | batch >= 5x; "
       "throughput +-30%")
def _b10(r):
    ok = r["batch_multiplier"] >= 5 and within(r["throughput_gain"], 3.04 * 0.7, 3.04 * 1.3)
    return CheckOutcome(ok, pick(r, "batch_full", "batch_shadowkv", "batch_multiplier", "throughput_gain",
                                 "tokens_per_s_full", "tokens_per_s_shadowkv"),
                        "batch multiplier >= 5; throughput gain 2.13-3.95x",
                        "rank 160 pre-RoPE keys, 8-token chunk landmarks, 1.56% sparse budget, 0.3% outliers, 60% of "
                        "the selected V reused from the previous step (ShadowKV's stated cache saving), PCIe Gen4 x16")


@scenario("shadowkv-low-rank-keys", ["ShadowKV (003)"], 14,
          "Llama-3.1-8B (bf16) on one A100 SXM 80GB at a 122K context, KV allocated statically from all device "
          "memory. Baseline: full attention at the largest batch whose KV fits. ShadowKV: rank-160 pre-RoPE keys "
          "and 8-token landmarks on the GPU, values in host DRAM, 1.56% sparse budget rebuilt per step with the V "
          "fetch over PCIe overlapped with the K rebuild, 60% of the selected V reused from the previous step.",
          [_b10])
def shadowkv():
    d = deployment("llama-3.1-8b", "a100-sxm-80gb")
    ctx = 122_000
    r = low_rank_offload(d, STATIC, ctx, SHADOW["rank"], SHADOW["chunk_tokens"], int(SHADOW["budget_share"] * ctx),
                         int(SHADOW["outlier_share"] * ctx), SHADOW["reuse"])
    return {"batch_full": r.max_batch_full, "batch_shadowkv": r.max_batch, "batch_multiplier": r.batch_multiplier,
            "throughput_gain": r.throughput_gain, "tokens_per_s_full": r.max_batch_full / r.full_step_s,
            "tokens_per_s_shadowkv": r.max_batch / r.step_s, "fetch_s": r.fetch_s, "step_s": r.step_s,
            "resident_bytes_per_sequence": r.resident_bytes_per_sequence}
