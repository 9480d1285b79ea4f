"""Section 2: KV-cache sizing and allocation (vAttention; Insights into DeepSeek-V3: MLA KV and the EP-bound decode)."""

from __future__ import annotations

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.hardware.db import load_device
from model.operators.memory import kv_bytes_per_token
from model.scenarios.base import CheckOutcome, check, close, pick, scenario
from model.techniques.kv_allocation import KERNEL_EFFICIENCY, allocation_capacity, attention_layout_step_s, tokens_per_page
from model.techniques.expert_parallel import all_to_all_bytes, ep_bound_decode
from model.serving.policy import ENGINES

VLLM = ENGINES["vllm"]


@check("SEED-C23", "C", "vAttention: concurrency with paged or demand allocation > static reservation; contiguous "
       "kernels run at eta >= paged")
def _c23(r):
    n = r["sequences"]
    ok = (n["paged_16"] > n["static_32k"] and n["demand_2mb"] > n["static_32k"] and n["demand_64kb"] > n["static_32k"]
          and n["demand_64kb"] >= n["demand_2mb"] and r["eta_contiguous"] >= r["eta_paged"]
          and r["decode_s_contiguous"] <= r["decode_s_paged"])
    return CheckOutcome(ok, {**n, "eta_contiguous": r["eta_contiguous"], "eta_paged": r["eta_paged"],
                             "decode_speedup_contiguous": r["decode_s_paged"] / r["decode_s_contiguous"]},
                        "static < demand (2 MB) <= demand (64 KB) ~ paged; contiguous decode step <= paged",
                        "Llama-3-8B on one A100-80GB, 2,500-token sequences; static reserves max_model_len 32K; "
                        f"a 2 MB page holds {r['tokens_per_2mb_page']} tokens of one layer's K or V, 64 KB "
                        f"{r['tokens_per_64kb_page']}; decode at batch 16 x 16K context with the attention kernel "
                        "efficiency of each layout (model.techniques.kv_allocation.KERNEL_EFFICIENCY, measured data)")


@scenario("vattention-allocators", ["vAttention (001)"], 2,
          "Llama-3-8B on one A100-80GB: how many 2,500-token sequences fit with max-length static reservation "
          "(32K), 16-token paged blocks, and demand-paged virtual memory with 2 MB or 64 KB pages (vAttention); and "
          "the decode step at 16 x 16K with a contiguous FlashAttention kernel against a paged kernel.",
          [_c23])
def vattention():
    d = deployment("llama-3-8b", "a100-sxm-80gb")
    ctx = 2500
    seq = {
        "static_32k": allocation_capacity(d, VLLM, ctx, allocator="static", max_context=32_768),
        "paged_16": allocation_capacity(d, VLLM, ctx, allocator="paged", block_tokens=16),
        "demand_2mb": allocation_capacity(d, VLLM, ctx, allocator="demand", page_bytes=2 * 1024**2),
        "demand_64kb": allocation_capacity(d, VLLM, ctx, allocator="demand", page_bytes=64 * 1024),
    }
    return {"sequences": {k: float(v.max_sequences[0]) for k, v in seq.items()},
            "tokens_per_2mb_page": tokens_per_page(d, 2 * 1024**2),
            "tokens_per_64kb_page": tokens_per_page(d, 64 * 1024),
            "eta_contiguous": KERNEL_EFFICIENCY["contiguous"][0], "eta_paged": KERNEL_EFFICIENCY["paged"][0],
            "decode_s_contiguous": float(attention_layout_step_s(d, 16, 1, 16_383, "contiguous")[0]),
            "decode_s_paged": float(attention_layout_step_s(d, 16, 1, 16_383, "paged")[0])}


@check("SEED-A43", "A", "DeepSeek-V3 EP decode per layer (1 B FP8 dispatch + 2 B BF16 combine) x 32 tokens x 9 "
       "experts x 7,000 / 50 GB/s = 120.96 us; x 2 x 61 layers = 14.76 ms -> 67.8 tok/s (quoted 67); at 900 GB/s "
       "-> 1,220 tok/s "
       "(quoted 1,200)")
def _a43(r):
    ok = (close(r["layer_comm_us_ib"], 120.96) and close(r["tpot_ms_ib"], 14.76) and close(r["tokens_per_s_ib"], 67.8)
          and close(r["tokens_per_s_nvl72"], 1220) and close(r["ib_bandwidth"], 50e9)
          and close(r["nvl72_bandwidth"], 900e9))
    keys = ("layer_comm_us_ib", "tpot_ms_ib", "tokens_per_s_ib", "tokens_per_s_nvl72", "tokens_per_s_ib_config_dims")
    return CheckOutcome(ok, pick(r, *keys),
                        "120.96 us, 14.76 ms, 67.8 tok/s; 1,220 tok/s",
                        "bandwidths from hardware_db (h800 scale-out ib-ndr 50 GB/s, gb200 NVLink 5 900 GB/s); the "
                        "config's own dims (hidden 7,168, 8 routed + 1 shared expert) give the last figure")


@scenario("deepseek-v3-kv-and-ep-bound", ["Insights into DeepSeek-V3 (001)"], 2,
          "DeepSeek-V3: MLA KV per token against LLaMA-3.1-405B's GQA cache, and the decode floor set by "
          "expert-parallel all-to-alls when compute is fully overlapped (dual micro-batch): 32 tokens per GPU, "
          "8 routed + 1 shared expert per token, FP8 dispatch and BF16 combine, over one 400 Gb/s InfiniBand NIC "
          "(H800) and over GB200 NVL72's NVLink.",
          [_a43])
def deepseek_v3():
    ib = load_device("h800").scale_out.bandwidth_bytes_per_s_per_direction
    nvl = load_device("gb200").scale_up.bandwidth_bytes_per_s_per_direction
    per_layer = float(all_to_all_bytes(32, 9, 7000, exchange_bytes=(1.0, 2.0)))
    a, b = ep_bound_decode(per_layer, ib, 61), ep_bound_decode(per_layer, nvl, 61)
    arch = load_architecture("deepseek-v3")
    moe = next(g.mlp for g in arch.groups if g.mlp.kind == "moe")
    shared = 1 if moe.shared_intermediate_size else 0
    own = float(all_to_all_bytes(32, moe.top_k + shared, arch.hidden_size, exchange_bytes=(1.0, 2.0)))
    return {"ib_bandwidth": ib, "nvl72_bandwidth": nvl, "layer_comm_us_ib": a.layer_comm_s * 1e6,
            "tpot_ms_ib": a.tpot_s * 1e3, "tokens_per_s_ib": a.tokens_per_s, "tokens_per_s_nvl72": b.tokens_per_s,
            "tokens_per_s_ib_config_dims": ep_bound_decode(own, ib, arch.num_layers).tokens_per_s,
            "kv_bytes_per_token": {"deepseek-v3": kv_bytes_per_token(arch),
                                   "llama-3.1-405b": kv_bytes_per_token(load_architecture("llama-3.1-405b"))}}
