"""Section 9: continuous batching and chunked prefill (Sarathi-Serve, SARATHI, DeepSpeed-FastGen, Prepacking)."""

from __future__ import annotations

import numpy as np

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.operators.memory import kv_bytes_per_token
from model.scenarios.base import CheckOutcome, check, close, pick, scenario
from model.serving.batching import decode_only_iteration
from model.techniques.chunked_prefill import packed_vs_padded_prefill, padding_factor, piggyback_cost, tbt_goodput
from model.serving.estimate import SLO, estimate, operating_points
from model.serving.policy import ENGINES
from model.techniques.rag import prefix_sharing_savings
from model.serving.workload import Lengths, Workload

VLLM = ENGINES["vllm"]
PREFILL_FIRST = VLLM.with_(chunked_prefill=False)


@check("SEED-C02", "C", "under a TBT SLO chunked prefill sustains a higher rate than prefill-prioritising batching; "
       "the gain is larger for Falcon-180B on 8 x A100 than for Mistral-7B on 1 x A100")
def _c02(r):
    m, f = r["mistral-7b"], r["falcon-180b"]
    ok = m["gain"] > 1 and f["gain"] > m["gain"]
    return CheckOutcome(ok, {"mistral_gain": m["gain"], "falcon_gain": f["gain"],
                             "mistral_rates": [m["prefill_first_rate"], m["chunked_rate"]],
                             "falcon_rates": [f["prefill_first_rate"], f["chunked_rate"]]},
                        "gain > 1 for both, Falcon-180B gain > Mistral-7B gain",
                        "strict SLO: p99 TBT <= 5 x the decode-only iteration of one 4K-context request")


@scenario("sarathi-serve-tbt-capacity", ["Sarathi-Serve (000, 001, 003, 004)"], 9,
          "Capacity (highest Poisson rate whose p99 time-between-tokens meets the SLO) of Mistral-7B on 1 x A100 "
          "SXM 80GB and Falcon-180B on 8 x A100 (TP4 x PP2 in one node), bf16, 1,500-token prompts and 250-token "
          "outputs. Sarathi-Serve: chunked prefill with a 512- or 2,048-token budget (the better one); baseline: "
          "prefill-prioritising vLLM. Strict SLO = 5 x the planner's decode-only iteration of one 4K-context "
          "request (Sarathi-Serve's rule for its strict SLO, external, verify).",
          [_c02])
def sarathi_serve():
    lengths = Lengths.fixed(1500, 250)
    out = {}
    for model, tp, pp in (("mistral-7b", 1, 1), ("falcon-180b", 4, 2)):
        d = deployment(model, "a100-sxm-80gb", tp=tp, pp=pp)
        slo = 5 * float(decode_only_iteration(d, VLLM, 1, 4096).time_s[0])
        base = tbt_goodput(operating_points(d, PREFILL_FIRST, lengths, points=16), slo)
        chunked = {b: tbt_goodput(operating_points(d, VLLM.with_(max_num_batched_tokens=b), lengths, points=16), slo)
                   for b in (512, 2048)}
        best = max(chunked.values())
        out[model] = {"tbt_slo_s": slo, "prefill_first_rate": base, "chunked_rate": chunked,
                      "gain": best / base if base > 0 else float("inf")}
    return out


# --- SARATHI: piggybacked decodes ------------------------------------------------------------------------
GRID_B = np.array([1, 2, 4, 8])
GRID_S = np.array([128, 256, 512, 1024])
CHUNK = 256


def _piggyback_grid(gpu: str) -> np.ndarray:
    d = deployment("llama-2-13b", gpu, weights="fp16", kv="fp16")
    bb, ss = np.meshgrid(GRID_B, GRID_S, indexing="ij")
    return piggyback_cost(d, bb.ravel(), ss.ravel(), CHUNK).ratio.reshape(bb.shape)


@check("SEED-B14", "B", "piggybacked decodes up to ~10x cheaper than a decode-only batch (LLaMA-13B FP16 on A6000); "
       "about 24x at B = 2, S = 512; the ratio falls as B or S grows")
def _b14(r):
    g = np.asarray(r["ratio_a6000"])
    falls = bool(np.all(np.diff(g, axis=0) < 0) and np.all(np.diff(g, axis=1) < 0))
    ok = g.max() >= 10 and falls
    return CheckOutcome(ok, {"max": float(g.max()), "B2_S512": r["ratio_B2_S512"], "falls_with_B_and_S": falls},
                        "max over the small-B, short-S grid >= 10x; falls in B and S",
                        f"LLaMA-13B dims (Llama-2-13B config), fp16 weights and KV, one {CHUNK}-token chunk, "
                        f"B in {GRID_B.tolist()}, S in {GRID_S.tolist()}")


@check("SEED-C03", "C", "the decode-throughput gain from piggybacking is larger on A6000 (higher ridge, lower BW) "
       "than on A100")
def _c03(r):
    a6000, a100 = np.asarray(r["ratio_a6000"]), np.asarray(r["ratio_a100"])
    ok = bool(np.all(a6000 > a100))
    return CheckOutcome(ok, {"max_a6000": float(a6000.max()), "max_a100": float(a100.max())},
                        "A6000 ratio > A100 ratio at every grid point")


@scenario("sarathi-piggyback-cost", ["SARATHI (001)"], 9,
          f"LLaMA-13B (Llama-2-13B config, 40 layers, d = 5120) in fp16 on one RTX A6000 and one A100 SXM 80GB. "
          f"Per-token cost of B decodes at S cached tokens in a decode-only iteration vs riding along a {CHUNK}-token "
          "prefill chunk (decode-maximal batching), over B = 1-8 and S = 128-1,024.",
          [_b14, _c03])
def sarathi():
    a6000, a100 = _piggyback_grid("rtx-a6000"), _piggyback_grid("a100-sxm-80gb")
    i, j = int(np.where(GRID_B == 2)[0][0]), int(np.where(GRID_S == 512)[0][0])
    return {"ratio_a6000": a6000.tolist(), "ratio_a100": a100.tolist(), "ratio_B2_S512": float(a6000[i, j]),
            "grid_B": GRID_B.tolist(), "grid_S": GRID_S.tolist()}


@scenario("deepspeed-fastgen-splitfuse", ["DeepSpeed-FastGen (000)"], 9,
          "Llama-2-13B (bf16) on one A100 SXM 80GB, long prompts (2,600 in / 60 out, the shape of FastGen's "
          "benchmark), goodput at p90 TTFT <= 3 s and p90 TPOT <= 100 ms: Dynamic SplitFuse as chunked prefill "
          "with a 2,048-token budget vs prefill-prioritising vLLM. What-if only (no catalogue check).")
def fastgen():
    d = deployment("llama-2-13b", "a100-sxm-80gb")
    work = Workload(Lengths.fixed(2600, 60), rate_per_s=1.0)
    slo = SLO(3.0, 0.1)
    split = estimate(d, work, VLLM.with_(max_num_batched_tokens=2048), slo).goodput_requests_per_s
    base = estimate(d, work, PREFILL_FIRST, slo).goodput_requests_per_s
    return {"splitfuse_goodput_rps": split, "vllm_goodput_rps": base,
            "gain": split / base if base else float("inf")}


@check("SEED-A44", "A", "padding factor B max S / sum S for lengths {100, 200, 1000, 2700} = 2.7x on linear ops; "
       "prefix sharing saves (n - 1) p KV_tok bytes and (n - 1) 2 P p FLOPs")
def _a44(r):
    n, p = r["requests"], r["prefix_tokens"]
    ok = (close(r["padding_linear"], 2.7) and close(r["prefix_kv_bytes"], (n - 1) * p * r["kv_tok"])
          and close(r["prefix_linear_flops"], (n - 1) * 2 * r["params_non_embedding"] * p))
    return CheckOutcome(ok, pick(r, "padding_linear", "prefix_kv_bytes", "prefix_linear_flops"),
                        f"2.7; (n-1) p KV_tok = {(n - 1) * p * r['kv_tok']:.4g} B; (n-1) 2 P p = "
                        f"{(n - 1) * 2 * r['params_non_embedding'] * p:.4g} FLOPs",
                        f"Llama-2-7B (KV_tok 524,288 B, P = non-embedding parameters), n = {n}, p = {p}; FLOPs are "
                        "the graph's linear-layer FLOPs of the prefix (attention reported separately)")


@scenario("prepacking-padding-waste", ["Prepacking (001)"], 9,
          "Prompts of 100, 200, 1,000 and 2,700 tokens prefilled on one A100 SXM 80GB with Llama-2-7B (bf16): padded "
          "to the longest (Hugging Face style) vs packed into one sequence with a block-diagonal mask. Also the "
          "prefix-sharing saving of 4 requests with a common 1,000-token prefix (BatchLLM's mechanism).",
          [_a44])
def prepacking():
    lengths = [100, 200, 1000, 2700]
    d = deployment("llama-2-7b", "a100-sxm-80gb")
    pk = packed_vs_padded_prefill(d, lengths)
    arch = load_architecture("llama-2-7b")
    emb = 2 * arch.vocab_size * arch.hidden_size  # untied embedding table and head
    from model.techniques.phases import model_weight_bytes

    params = model_weight_bytes(d) / 2 - emb
    save = prefix_sharing_savings(d, 4, 1000)
    return {"padding_linear": padding_factor(lengths), "padding_attention": padding_factor(lengths, "attention"),
            "padded_prefill_s": pk.padded_s, "packed_prefill_s": pk.packed_s,
            "padded_kv_bytes": pk.padded_kv_bytes, "packed_kv_bytes": pk.packed_kv_bytes,
            "requests": 4, "prefix_tokens": 1000, "kv_tok": kv_bytes_per_token(arch),
            "params_non_embedding": params, "prefix_kv_bytes": save.kv_bytes,
            "prefix_linear_flops": save.linear_flops, "prefix_attention_flops": save.attention_flops}
