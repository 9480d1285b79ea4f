"""Section 21: test-time compute (FLOPs-matched sampling, Kinetics' memory-aware cost, ParScale streams)."""

from __future__ import annotations

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.architecture.variants import from_layers, layers
from model.scenarios.base import CheckOutcome, check, close, pick, scenario
from model.techniques.phases import model_weight_bytes
from model.techniques.test_time_compute import (
    effective_flops, flops_matched_samples, kv_weight_crossover_tokens, parallel_streams, parscale_equivalent_params,
)

PRETRAIN_TOKENS_PER_PARAM = 20  # Chinchilla-style pre-training, D = 20 P (assumption for the amortised rule)
QUERIES = 1e9
TOKENS = 1000


@check("SEED-A42", "A", "inference-only FLOPs matched against a 14x larger model at equal generated tokens -> N = 14 "
       "samples; adding 6 P D pre-training changes N; the planner exposes both rules")
def _a42(r):
    ok = close(r["samples_inference_only"], 14.0, 1e-9) and not close(r["samples_with_pretraining"], 14.0, 1e-3)
    return CheckOutcome(ok, pick(r, "samples_inference_only", "samples_with_pretraining"),
                        "14 exactly; a different N once pre-training is amortised",
                        f"P_L = 14 P_s; pre-training D = {PRETRAIN_TOKENS_PER_PARAM} P tokens each, amortised over "
                        f"{QUERIES:.0e} queries of {TOKENS} tokens")


@scenario("test-time-flops-matching", ["Scaling LLM Test-Time Compute Optimally (000)"], 21,
          "FLOP accounting of best-of-N / search with a small model against one sample from a 14x larger model at "
          "equal generated tokens (inference-only rule and the rule with amortised pre-training). What-if: Qwen3-1.7B "
          "drawing 14 parallel samples (shared 512-token prompt, 1,000 tokens each, one batch on one H100) vs one "
          "sample from Qwen3-32B on one H100: latency and GPU-seconds.",
          [_a42])
def test_time():
    small = deployment("qwen3-1.7b", "h100-sxm")
    p_s = model_weight_bytes(small) / 2
    p_l = 14 * p_s
    n_inf = flops_matched_samples(p_s, p_l)
    n_pre = flops_matched_samples(p_s, p_l, TOKENS, pretrain_tokens_small=PRETRAIN_TOKENS_PER_PARAM * p_s,
                                  pretrain_tokens_large=PRETRAIN_TOKENS_PER_PARAM * p_l, queries=QUERIES)
    large = deployment("qwen3-32b", "h100-sxm")
    ctx = 512 + TOKENS / 2
    t_small = float(small.step(1, 512, 0).time_s[0]) + TOKENS * float(small.step(14, 1, ctx).time_s[0])
    t_large = float(large.step(1, 512, 0).time_s[0]) + TOKENS * float(large.step(1, 1, ctx).time_s[0])
    return {"params_small": p_s, "samples_inference_only": n_inf, "samples_with_pretraining": n_pre,
            "latency_14_samples_small_s": t_small, "latency_1_sample_32b_s": t_large}


CONTEXT = 32_768
BUDGET = 4096


@check("SEED-C20", "C", "the context at which KV bytes equal weight bytes is far shorter for a 0.6B model than a 32B; "
       "sparse attention lowers cost most for small models")
def _c20(r):
    ok = (r["crossover_tokens"]["qwen3-0.6b"] * 10 < r["crossover_tokens"]["qwen3-32b"]
          and r["sparse_saving"]["qwen3-0.6b"] > r["sparse_saving"]["qwen3-32b"])
    return CheckOutcome(ok, {"crossover_tokens": r["crossover_tokens"], "sparse_saving": r["sparse_saving"]},
                        "crossover(0.6B) < crossover(32B) / 10; saving(0.6B) > saving(32B)",
                        f"bf16 weights and KV on H100; eFLOPs at {CONTEXT} cached tokens, batch 1, sparse budget "
                        f"{BUDGET}")


@scenario("kinetics-memory-aware-cost", ["Kinetics (001)"], 21,
          f"Qwen3-0.6B vs Qwen3-32B (bf16) on an H100: the context where one sequence's KV equals the weights, and "
          f"Kinetics' memory-aware cost per generated token (2 P_act + attention + I x bytes, I = F / BW) at {CONTEXT} "
          f"cached tokens with full attention vs a {BUDGET}-token sparse attention budget.",
          [_c20])
def kinetics():
    cross, saving = {}, {}
    for m in ("qwen3-0.6b", "qwen3-32b"):
        d = deployment(m, "h100-sxm")
        cross[m] = kv_weight_crossover_tokens(d)
        full, sparse = effective_flops(d, CONTEXT).total, effective_flops(d, CONTEXT, kv_budget=BUDGET).total
        saving[m] = 1 - sparse / full
    return {"crossover_tokens": cross, "sparse_saving": saving}


STREAMS = 8
K_PARSCALE = 0.4  # ParScale's fitted k in N (k ln P + 1) (assumption, external, verify)
BATCHES = (1, 256)


def _dense_equivalent(base_model: str, device: str):
    arch = load_architecture(base_model)
    base = deployment(arch, device)
    n = model_weight_bytes(base) / 2
    emb = arch.vocab_size * arch.hidden_size * (1 if arch.tie_word_embeddings else 2)
    target = parscale_equivalent_params(n, STREAMS, K_PARSCALE)
    n_layers = round(arch.num_layers * (target - emb) / (n - emb))
    deeper = from_layers(arch, layers(arch)[:1] * n_layers, f"{arch.name}-x{n_layers}",
                         f"{n_layers} layers: the dense model ParScale's law equates with P = {STREAMS} streams")
    return base, deployment(deeper, device), target / n


@check("SEED-C21", "C", "at batch 1, P streams add far less latency and memory than the parameter-scaled dense model; "
       "the benefit ends once B x P crosses the ridge")
def _c21(r):
    b1, big = r["batch_1"], r[f"batch_{BATCHES[-1]}"]
    ok = (b1["streams_latency_increase"] * 2 < b1["dense_latency_increase"]
          and b1["streams_memory_increase_gb"] * 2 < b1["dense_memory_increase_gb"]
          and big["streams_latency_increase"] > big["dense_latency_increase"])
    return CheckOutcome(ok, r, "batch 1: streams' latency and memory increase < half the dense model's; at batch "
                        f"{BATCHES[-1]} (B x P = {BATCHES[-1] * STREAMS}, past the ridge) streams add more latency")


@scenario("parscale-parallel-streams", ['ParScale, "Parallel Scaling Law" (001)'], 21,
          f"Qwen3-1.7B (bf16) decoding with P = {STREAMS} parallel streams over shared weights on one A100 SXM 80GB vs "
          f"the dense model ParScale's law equates with it, N (k ln P + 1) with k = {K_PARSCALE} (built as Qwen3-1.7B "
          "with more layers), at batch 1 and 256 with 1,024 cached tokens: latency and memory increase over the plain "
          "model.",
          [_c21])
def parscale():
    base, dense, factor = _dense_equivalent("qwen3-1.7b", "a100-sxm-80gb")
    ctx = 1024
    out = {"dense_param_factor": factor}
    for b in BATCHES:
        plain = base.step(b, 1, ctx)
        t0, kv0 = float(plain.time_s[0]), float(plain.memory.kv_cache_bytes[0])
        s = parallel_streams(base, STREAMS, b, ctx)
        dn = dense.step(b, 1, ctx)
        out[f"batch_{b}"] = {
            "streams_latency_increase": float(s.step_s[0]) / t0 - 1,
            "dense_latency_increase": float(dn.time_s[0]) / t0 - 1,
            "streams_memory_increase_gb": (float(s.kv_bytes[0]) - kv0) / 1e9,
            "dense_memory_increase_gb": (model_weight_bytes(dense) - model_weight_bytes(base)
                                         + float(dn.memory.kv_cache_bytes[0]) - kv0) / 1e9}
    return out
