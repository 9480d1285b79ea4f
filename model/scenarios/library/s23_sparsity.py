"""Section 23: weight sparsity and layer skipping (Flash-LLM, sparse fine-tuning, Unified Layer Skipping)."""

from __future__ import annotations

import numpy as np

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.architecture.variants import skip_layers
from model.operators.memory import kv_bytes_per_token
from model.scenarios.base import CheckOutcome, check, close, pick, scenario, within
from model.serving.batching import kv_capacity, steady_state
from model.techniques.device_fit import fewest_devices, min_devices_for_bytes
from model.serving.policy import ENGINES
from model.techniques.weight_sparsity import memory_bound_speedup_limit, sparse_weight_bytes, sparse_weights

VLLM = ENGINES["vllm"]
GB = 1e9


# ---------------------------------------------------------------------------------------------------------
# Flash-LLM

def _opt175b(n: int, sparsity: float | None):
    d = deployment("opt-175b", "a100-sxm-80gb", weights="fp16", tp=n)
    return d if sparsity is None else sparse_weights(d, sparsity, value_bytes=2.0, index_bytes=2.0)


@check("SEED-A38", "A", "Flash-LLM: OPT-175B FP16 350 GB -> >= 5 x 80 GB GPUs; 80% sparsity at 4 B per non-zero "
       "(16-bit value + 16-bit index) -> 140 GB -> 2 GPUs")
def _a38(r):
    ok = (close(r["dense_gb"], 350) and r["dense_bound_gpus"] == 5 and close(r["sparse_gb"], 140)
          and r["sparse_bound_gpus"] == 2 and r["planner_dense_gpus"] >= 5 and r["planner_sparse_gpus"] == 2)
    return CheckOutcome(ok, pick(r, "dense_gb", "dense_bound_gpus", "sparse_gb", "sparse_bound_gpus",
                                 "planner_dense_gpus", "planner_sparse_gpus"),
                        "350 GB / >= 5 GPUs; 140 GB / 2 GPUs",
                        "planner: fewest A100-80GB GPUs (TP 1/2/4/8; 96 heads rule out 5 and 6) that hold OPT-175B "
                        "and one 512 + 128-token request at 90% usable memory; embeddings stay dense")


@check("SEED-B34", "B", "Flash-LLM: up to 3.8x tokens per GPU-second: fewer GPUs (A38) x fewer bytes per step "
       "at 70-80% sparsity (band >= 2x)")
def _b34(r):
    ratio = r["tokens_per_gpu_s_ratio"]["0.8"]
    ok = 2.0 <= ratio <= r["bound"]["0.8"] * r["gpu_ratio"]["0.8"]
    return CheckOutcome(ok, {"ratio": r["tokens_per_gpu_s_ratio"], "gpus": r["gpus"], "batch": r["batch"]},
                        ">= 2x at 80%",
                        "OPT-175B decode at 1,024 cached tokens on A100-80GB: dense FP16 with TP8 (FasterTransformer-"
                        "style, NVLink) against load-as-sparse/compute-as-dense weights on the fewest GPUs that hold "
                        "them (TP), both at the largest batch the sparse deployment's KV pool holds; tokens per "
                        "GPU-second")


@scenario("flash-llm-sparse-opt175b", ["Flash-LLM (001, 003)"], 23,
          "OPT-175B with unstructured weight sparsity (60-80%, non-zeros as a 16-bit value + a 16-bit index, "
          "decompressed on chip and computed as dense): GPUs needed on A100-80GB and decode tokens per GPU-second "
          "against the dense FP16 model on 8 GPUs with tensor parallelism.",
          [_a38, _b34])
def flash_llm():
    params = 175e9
    out = {"dense_gb": params * 2 / GB, "sparse_gb": float(sparse_weight_bytes(params, 0.8)) / GB}
    out["dense_bound_gpus"] = min_devices_for_bytes(out["dense_gb"], 80)
    out["sparse_bound_gpus"] = min_devices_for_bytes(out["sparse_gb"], 80)
    out["planner_dense_gpus"] = fewest_devices(lambda n: _opt175b(n, None), (1, 2, 4, 8)).choice
    out["planner_sparse_gpus"] = fewest_devices(lambda n: _opt175b(n, 0.8), (1, 2, 4, 8)).choice
    dense = _opt175b(8, None)
    out.update({"tokens_per_gpu_s_ratio": {}, "gpus": {"dense": 8}, "bound": {}, "gpu_ratio": {}, "batch": {}})
    for s in (0.6, 0.7, 0.8):
        fit = fewest_devices(lambda n, s=s: _opt175b(n, s), (1, 2, 4, 8))
        n, sparse = fit.choice, fit.deployment
        # the largest batch of 1,024-token sequences the sparse deployment holds (both run at that batch)
        batch = int(max(1, kv_capacity(sparse, VLLM, 1024).max_sequences[0]))
        t_dense = float(dense.step(batch, 1, 1023).time_s[0])
        t = float(sparse.step(batch, 1, 1023).time_s[0])
        out["tokens_per_gpu_s_ratio"][str(s)] = (batch / t / n) / (batch / t_dense / 8)
        out["gpus"][str(s)] = n
        out["batch"][str(s)] = batch
        out["bound"][str(s)] = float(memory_bound_speedup_limit(2.0, s))
        out["gpu_ratio"][str(s)] = 8 / n
    return out


# ---------------------------------------------------------------------------------------------------------
# Sparse fine-tuning (no numbers to check)

@scenario("sparse-finetuning-cpu-gpu", ["Sparse Finetuning for Inference Acceleration (004)"], 23,
          "A 7B decoder (Llama-2-7B standing in for MPT-7B) at 75% unstructured sparsity, with 16-bit or INT4 "
          "non-zeros and a bitmask index (1 bit per dense position = 0.5 B per non-zero at 75%): batch-1 decode "
          "tokens/s on a DDR5 desktop CPU and on an RTX 4090, against the dense FP16 and dense INT4 models.")
def sparse_finetuning():
    out = {}
    for gpu in ("host-desktop-ddr5", "rtx-4090"):
        dense16 = deployment("llama-2-7b", gpu, weights="fp16")
        dense4 = deployment("llama-2-7b", gpu, weights="int4")
        variants = {"dense_fp16": dense16, "dense_int4": dense4,
                    "sparse75_fp16": sparse_weights(dense16, 0.75, value_bytes=2.0, index_bytes=0.5),
                    "sparse75_int4": sparse_weights(dense4, 0.75, value_bytes=0.5, index_bytes=0.5)}
        out[gpu] = {k: float(1 / d.step(1, 1, 512).time_s[0]) for k, d in variants.items()}
    return out


# ---------------------------------------------------------------------------------------------------------
# Unified Layer Skipping

SKIPS = (4, 8, 16)


@check("SEED-C30", "C", "layer skipping: speed-up ~ L/(L - skipped) for FLOPs, weights and KV; batching unaffected")
def _c30(r):
    ok = True
    for k in SKIPS:
        ideal = r["layers"] / (r["layers"] - k)
        ok &= close(r["kv_ratio"][k], ideal, 1e-6) and close(r["decoder_flops_ratio"][k], ideal, 1e-6) \
            and close(r["decoder_weight_ratio"][k], ideal, 1e-6) \
            and within(r["step_ratio_b1"][k], 0.85 * ideal, ideal) \
            and within(r["throughput_ratio_b64"][k], 0.85 * ideal, 1.05 * ideal)
    ok &= all(r["steady_state_runs"].values())
    return CheckOutcome(ok, {"ideal": {k: r["layers"] / (r["layers"] - k) for k in SKIPS},
                             "step_b1": r["step_ratio_b1"], "throughput_b64": r["throughput_ratio_b64"]},
                        "KV, decoder FLOPs and weights exactly L/(L - k); step and batched throughput within 15%",
                        "Llama-3.1-8B (32 layers) on one H100 with 4, 8 and 16 middle layers skipped for every "
                        "token; embeddings and LM head stay, so the whole step gains a little less than L/(L - k); "
                        "vLLM continuous batching at 64 sequences (1,024 in / 256 out) runs unchanged")


@scenario("unified-layer-skipping", ["Unified Layer Skipping (004)"], 23,
          "Llama-3.1-8B on one H100 skipping a fixed, input-independent set of 4, 8 or 16 of its 32 layers (Unified "
          "Layer Skipping picks the count from the target speed-up): KV per token, decoder FLOPs and weights, the "
          "batch-1 decode step, and vLLM throughput at 64 concurrent sequences, against the full model.",
          [_c30])
def layer_skipping():
    full = load_architecture("llama-3.1-8b")
    d_full = deployment(full, "h100-sxm")
    out = {"layers": full.num_layers, "kv_ratio": {}, "decoder_flops_ratio": {}, "decoder_weight_ratio": {},
           "step_ratio_b1": {}, "throughput_ratio_b64": {}, "steady_state_runs": {}}

    def decoder(d, s, what):
        layer_rows = np.array([op.group >= 0 for op in d.graph.ops])
        counts = s.stage_counts.sum(axis=0)[layer_rows]
        return float(counts @ getattr(s.ops, what)[layer_rows, 0])

    s_full = d_full.step(1, 1, 1023)
    base_tp = steady_state(d_full, VLLM, 1024, 256, 64).output_tokens_per_s[0]
    for k in SKIPS:
        arch = skip_layers(full, k)
        d = deployment(arch, "h100-sxm")
        s = d.step(1, 1, 1023)
        out["kv_ratio"][k] = kv_bytes_per_token(full) / kv_bytes_per_token(arch)
        out["decoder_flops_ratio"][k] = decoder(d_full, s_full, "flops") / decoder(d, s, "flops")
        out["decoder_weight_ratio"][k] = decoder(d_full, s_full, "resident_bytes") / decoder(d, s, "resident_bytes")
        out["step_ratio_b1"][k] = float(s_full.time_s[0] / s.time_s[0])
        st = steady_state(d, VLLM, 1024, 256, 64)
        out["throughput_ratio_b64"][k] = float(st.output_tokens_per_s[0] / base_tp)
        out["steady_state_runs"][k] = bool(st.concurrency[0] == 64)
    return out
