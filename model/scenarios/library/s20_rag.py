"""Section 20: RAG, prefix and chunk KV reuse, retrieval cost (Cache-Craft, CacheBlend, CacheGen, BatchLLM,
LeanVec)."""

from __future__ import annotations

from model.api import deployment
from model.hardware.db import load_device
from model.operators.memory import kv_bytes_per_token
from model.scenarios.base import CheckOutcome, check, close, pick, scenario
from model.serving.batching import steady_state
from model.techniques.long_context import host_link_bytes_per_s
from model.serving.policy import ENGINES
from model.techniques.rag import (
    fraction_in_other_terms, kv_threshold_bytes_per_s, prefill_s, prefill_time_share, prefix_removed_share, reuse_ttft,
    ship_kv_or_text, throughput_gain_bound, vector_search,
)

VLLM = ENGINES["vllm"]
CHUNKS, CHUNK_TOKENS, QUERY = 6, 512, 64
RECOMPUTE = 0.15  # CacheBlend's selective-recompute share (external, verify)
CACHE_CRAFT_CUT = 0.51  # Cache-Craft: 51% less redundant computation than prefix caching


@check("SEED-A33", "A", "Cache-Craft computes 25% of full; 51% less than prefix caching -> prefix caching computes "
       "0.25 / 0.49 = 51% of full")
def _a33(r):
    return CheckOutcome(close(r["prefix_caching_fraction"], 0.25 / 0.49, 1e-9), r["prefix_caching_fraction"],
                        "0.5102 of full")


@check("SEED-B26", "B", "CacheBlend TTFT 2.2-3.3x and Cache-Craft throughput 1.6x must be <= the planner's bounds: "
       "TTFT gain <= T_pf(S) / max(T_load, T_pf(r S)) (r ~ 15% -> <= 6.7x); throughput <= 1 / (1 - prefill share x "
       "0.51)")
def _b26(r):
    ok = 3.3 <= r["ttft_gain_bound_dram"] and 1.6 <= r["cachecraft_throughput_bound"]
    return CheckOutcome(ok, pick(r, "ttft_gain_bound_dram", "ttft_gain_dram", "ttft_gain_bound_nvme",
                                 "prefill_share", "cachecraft_throughput_bound"),
                        "TTFT bound >= 3.3 (KV in host DRAM); throughput bound >= 1.6",
                        f"Llama-3.1-8B on A100; {CHUNKS} x {CHUNK_TOKENS}-token chunks + {QUERY}-token query; r = "
                        f"{RECOMPUTE}; prefill share of a RAG workload of 2,600 in / 100 out at the engine's maximum "
                        "batch")


@scenario("cacheblend-chunk-reuse", ["CacheBlend (001)", "Cache-Craft (000, 004)"], 20,
          f"Llama-3.1-8B (bf16) on one A100 SXM 80GB; a RAG prompt of {CHUNKS} retrieved {CHUNK_TOKENS}-token chunks "
          f"plus a {QUERY}-token query. CacheBlend: chunk KV loaded from host DRAM (PCIe Gen4) or one Gen4 NVMe with "
          f"{RECOMPUTE:.0%} of it recomputed, pipelined with the load, vs full recompute (baseline). Cache-Craft: "
          "51% less recompute than prefix caching, applied to the prefill share of a RAG serving workload (2,600 in / "
          "100 out).",
          [_a33, _b26])
def cacheblend():
    d = deployment("llama-3.1-8b", "a100-sxm-80gb")
    ctx = CHUNKS * CHUNK_TOKENS
    dram = reuse_ttft(d, ctx, QUERY, RECOMPUTE, host_link_bytes_per_s(d))
    nvme = reuse_ttft(d, ctx, QUERY, RECOMPUTE, load_device("nvme-gen4-ssd").memory.bandwidth_bytes_per_s)
    share = prefill_time_share(d, VLLM, 2600, 100)
    return {"ttft_full_s": dram.full_s, "ttft_dram_s": dram.ttft_s, "ttft_gain_dram": dram.gain,
            "ttft_gain_bound_dram": dram.gain_bound, "ttft_gain_nvme": nvme.gain,
            "ttft_gain_bound_nvme": nvme.gain_bound,
            "dram_fast_enough": dram.load_s <= dram.recompute_s, "nvme_fast_enough": nvme.load_s <= nvme.recompute_s,
            "prefill_share": share,
            "cachecraft_throughput_bound": float(throughput_gain_bound(share, CACHE_CRAFT_CUT)),
            "prefix_caching_fraction": fraction_in_other_terms(0.25, CACHE_CRAFT_CUT)}


TEXT_BYTES_PER_TOKEN = 4.0  # UTF-8 text, about 4 bytes per token (assumption)
CONTEXT = 4096


@check("SEED-B36", "B", "KV >> text: ~512 KiB/token (7B MHA FP16) vs a few bytes of text -> ratio >= 1e4; the "
       "ship-KV-vs-recompute link threshold moves with the compression ratio (3.7-4.3x), exact formula")
def _b36(r):
    ratios = r["threshold_ratio"]
    exact = all(close(ratios[str(cr)], r["formula"][str(cr)], 1e-9) for cr in (3.7, 4.3))
    near_cr = all(close(ratios[str(cr)], cr, 1e-3) for cr in (3.7, 4.3))
    ok = r["kv_over_text"] >= 1e4 and exact and near_cr
    return CheckOutcome(ok, {"kv_over_text": r["kv_over_text"], "threshold_ratio": ratios},
                        ">= 1e4; threshold(CR=1) / threshold(CR) = (KV - text) / (KV / CR - text) ~= CR",
                        f"Llama-2-7B fp16 KV, {CONTEXT}-token context, {TEXT_BYTES_PER_TOKEN:g} B of text per token, "
                        "prefill on one A100, codec time 0")


@scenario("cachegen-ship-kv-or-text", ["CacheGen (002)"], 20,
          f"A {CONTEXT}-token context for Llama-2-7B (fp16 KV, 512 KiB/token) held remotely: ship the KV (raw, or "
          "compressed 3.7-4.3x as CacheGen's bitstream) or ship the text and prefill it on one A100 SXM 80GB; the link "
          "bandwidth above which KV wins, and the choice at 1, 10 and 100 Gb/s.",
          [_b36])
def cachegen():
    d = deployment("llama-2-7b", "a100-sxm-80gb")
    kv_tok = kv_bytes_per_token(d.arch)
    kv, text = CONTEXT * kv_tok, CONTEXT * TEXT_BYTES_PER_TOKEN
    t_pf = prefill_s(d, CONTEXT)
    base = kv_threshold_bytes_per_s(kv, text, t_pf)
    ratios, formula = {}, {}
    for cr in (3.7, 4.3):
        ratios[str(cr)] = base / kv_threshold_bytes_per_s(kv, text, t_pf, cr)
        formula[str(cr)] = (kv - text) / (kv / cr - text)
    choice = {f"{g}gbps": ship_kv_or_text(kv, text, g * 1e9 / 8, t_pf, 4.0).best for g in (1, 10, 100)}
    return {"kv_over_text": kv_tok / TEXT_BYTES_PER_TOKEN, "threshold_ratio": ratios, "formula": formula,
            "threshold_raw_gbps": base * 8 / 1e9, "prefill_s": t_pf, "choice_cr4": choice}


SHARED = (0.0, 0.25, 0.5, 0.75)


@check("SEED-C24", "C", "BatchLLM throughput gain <= 1 / (1 - fraction of work removed by prefix sharing); grows with "
       "the shared-prefix fraction")
def _c24(r):
    gains, bounds = r["gain"], r["bound"]
    ok = all(g <= b * (1 + 1e-9) for g, b in zip(gains, bounds)) and all(b2 > b1 for b1, b2 in zip(gains, gains[1:]))
    return CheckOutcome(ok, {"shared": list(SHARED), "gain": gains, "bound": bounds},
                        "gain <= bound at every shared fraction; gain increasing")


@scenario("batchllm-prefix-sharing", ["BatchLLM (001, 002, 004)"], 20,
          "Offline batch job on Llama-3.1-8B (bf16), one A100 SXM 80GB, vLLM at its maximum batch: 2,000-token prompts "
          "(200 out) whose first 0-75% is a prefix shared across the job and computed once (global prefix sharing), "
          "against no sharing; the bound uses the FLOPs the shared prefix removes from a request.",
          [_c24])
def batchllm():
    d = deployment("llama-3.1-8b", "a100-sxm-80gb")
    base = float(steady_state(d, VLLM, 2000, 200, None, 0.0).output_tokens_per_s[0])
    gains, bounds = [], []
    for h in SHARED:
        gains.append(float(steady_state(d, VLLM, 2000, 200, None, h).output_tokens_per_s[0]) / base)
        bounds.append(float(throughput_gain_bound(1.0, prefix_removed_share(d, 2000, 200, h))))
    return {"gain": gains, "bound": bounds}


@scenario("leanvec-search-bandwidth", ["LeanVec (000)"], 20,
          "Graph search over 100M 768-d embeddings on one Xeon 8480+ socket (bandwidth-bound, 1,000 vectors visited "
          "per query): FP16 full vectors vs LeanVec-style 160-d projections at 8 bits with 100 full-precision "
          "re-ranks. QPS and index size. What-if only (no catalogue check).")
def leanvec():
    cpu = load_device("host-xeon-8480")
    full = vector_search(100e6, 768, cpu, bits=16)
    lean = vector_search(100e6, 768, cpu, reduced_dim=160, bits=8, reranked=100)
    return {"qps_fp16": full.queries_per_s, "qps_leanvec": lean.queries_per_s,
            "speedup": lean.queries_per_s / full.queries_per_s, "index_gb_fp16": full.index_bytes / 1e9,
            "index_gb_leanvec": lean.index_bytes / 1e9}
