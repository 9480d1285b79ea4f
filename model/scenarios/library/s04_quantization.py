"""Section 4: weight and activation quantization (GLM-130B, GPTQ, SmoothQuant+, LLM.int8(), COMET, MixLLM,
PV-Tuning, "Give Me BF16 or Give Me Death")."""

from __future__ import annotations

import numpy as np

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.errors import RidgeplanError
from model.operators.params import parameter_counts
from model.precision import number_format
from model.scenarios.base import CheckOutcome, check, close, pick, scenario, within
from model.serving.batching import steady_state
from model.techniques.device_fit import fewest_devices, min_devices_for_bytes, widest_fitting_format
from model.techniques.kv_compression import mixed_bits
from model.serving.overrides import override_symbols
from model.serving.policy import ENGINES
from model.serving.static import static_batch

VLLM = ENGINES["vllm"]
TRTLLM = ENGINES["trtllm"]
GB = 1e9
WIDEST_FIRST = ("fp16", "int8", "int4")


def _payload_bytes(params: float, fmt: str) -> float:
    """Weight bytes at the format's payload bits (group scales excluded), as the abstracts count them."""
    return params * number_format(fmt).bits / 8


# ---------------------------------------------------------------------------------------------------------
# GLM-130B

@check("SEED-A02", "A", "GLM-130B weights: INT4 65 GB, INT8 130 GB, FP16 260 GB; 4 x 24 GB = 96 and 8 x 11 GB = 88 "
       "-> fits at INT4 only; the planner's minimum precision to fit = INT4; report KV headroom")
def _a02(r):
    ok = (all(close(r[f"nominal_{f}_gb"], e) for f, e in (("int4", 65), ("int8", 130), ("fp16", 260)))
          and close(r["aggregate_3090_gb"], 96) and close(r["aggregate_2080ti_gb"], 88)
          and r["fits_nominal_3090"] == ["int4"] and r["fits_nominal_2080ti"] == ["int4"]
          and r["widest_fitting_3090"] == "int4" and r["widest_fitting_2080ti"] == "int4"
          and r["kv_headroom_3090_gb"] > 0 and r["kv_headroom_2080ti_gb"] > 0)
    keys = ("nominal_int4_gb", "nominal_int8_gb", "nominal_fp16_gb", "planner_params_b", "widest_fitting_3090",
            "widest_fitting_2080ti", "kv_headroom_3090_gb", "kv_headroom_2080ti_gb")
    return CheckOutcome(ok, pick(r, *keys), "65/130/260 GB; INT4 is the widest format that fits both sets",
                        "planner per-GPU need (GB) on 4 x 3090: "
                        + ", ".join(f"{f} {v:.1f}" for f, v in r["need_3090"].items())
                        + "; on 8 x 2080 Ti: " + ", ".join(f"{f} {v:.1f}" for f, v in r["need_2080ti"].items())
                        + f"; the catalogue's 130B is nominal, the config counts {r['planner_params_b']:.1f}B")


@scenario("glm130b-int4-consumer-gpus", ["GLM-130B (000, 003)"], 4,
          "GLM-130B (config parameters; the abstract's 130B nominal for the identities) on 4 x RTX 3090 (TP4 over "
          "PCIe Gen4) and 8 x RTX 2080 Ti (TP8 over PCIe Gen3), vLLM-style 90% usable memory, one request of "
          "512 + 128 tokens: the widest of FP16 / INT8 / INT4 (GPTQ-style g128) weights that fits, and the KV "
          "headroom left per GPU. Baseline: FP16 and INT8 on the same GPUs.",
          [_a02])
def glm130b():
    out = {f"nominal_{f}_gb": _payload_bytes(130e9, f) / GB for f in WIDEST_FIRST}
    out["planner_params_b"] = parameter_counts(load_architecture("glm-130b")).total / 1e9
    for key, gpu, n, node in (("3090", "rtx-3090", 4, "pcie-4x-rtx-3090"),
                              ("2080ti", "rtx-2080-ti", 8, "pcie-8x-rtx-2080-ti")):
        cap = float(deployment("glm-130b", gpu).capacity_bytes)
        out[f"aggregate_{key}_gb"] = n * cap / GB
        out[f"fits_nominal_{key}"] = [f for f in WIDEST_FIRST if out[f"nominal_{f}_gb"] * GB <= n * cap]
        fit = widest_fitting_format(lambda f, gpu=gpu, n=n, node=node: deployment("glm-130b", gpu, weights=f, tp=n,
                                                                                  node=node), WIDEST_FIRST)
        out[f"widest_fitting_{key}"] = fit.choice
        out[f"kv_headroom_{key}_gb"] = fit.headroom_bytes / GB
        out[f"need_{key}"] = {f: v[1] / GB for f, v in fit.tried.items()}
    return out


# ---------------------------------------------------------------------------------------------------------
# GPTQ

@check("SEED-A03", "A", "175e9 weights: 3-bit 65.6 GB <= 80 GB; 4-bit 87.5 GB > 80 GB -> 'single GPU' implies <= 3.66 "
       "bits; the reported 3.25x and 4.5x stay <= 16/3 = 5.33")
def _a03(r):
    ok = (close(r["bytes_3bit_gb"], 65.6) and close(r["bytes_4bit_gb"], 87.5) and close(r["max_bits_80gb"], 3.66)
          and close(r["fp16_over_3bit_bound"], 16 / 3) and max(3.25, 4.5) <= r["fp16_over_3bit_bound"]
          and r["planner_fits_int3"] and not r["planner_fits_int4"])
    keys = ("bytes_3bit_gb", "bytes_4bit_gb", "max_bits_80gb", "fp16_over_3bit_bound", "planner_fits_int3",
            "planner_fits_int4")
    return CheckOutcome(ok, pick(r, *keys),
                        "65.6 GB, 87.5 GB, 3.66 bits, 5.33; OPT-175B fits one A100-80GB at 3 bits, not at 4",
                        "planner formats carry group-128 scales: int3 = 3.16, int4 = 4.16 bits per weight")


@check("SEED-B13", "B", "GPTQ 3-bit OPT-175B decode speed-up over FP16 ~3.25x on A100 and ~4.5x on A6000 (+-30%): FP16 "
       "multi-GPU step (pipelined, as HF accelerate) vs the 3-bit step on fewer GPUs")
def _b13(r):
    a, b = r["speedup_a100"], r["speedup_a6000"]
    ok = within(a, 3.25 * 0.7, 3.25 * 1.3) and within(b, 4.5 * 0.7, 4.5 * 1.3)
    return CheckOutcome(ok, {"a100": a, "a6000": b, "fp16_gpus": r["fp16_gpus"], "int3_gpus": r["int3_gpus"]},
                        "A100 2.28-4.23x, A6000 3.15-5.85x",
                        "batch 1, 128 cached tokens; FP16 on 5 x A100-80GB / 8 x A6000 as a 5- / 8-stage pipeline "
                        "(layers split in order, HF accelerate style, 95% of memory usable), 3-bit (int3 g128, "
                        "W3A16) on 1 x A100 / 2 x A6000 (2 stages)")


@scenario("gptq-opt175b-3bit", ["GPTQ (003)"], 4,
          "OPT-175B: how many GPUs at FP16, 4-bit and 3-bit (GPTQ g128 formats), and the batch-1 decode step of the "
          "3-bit model on 1 x A100-80GB and 2 x RTX A6000 against the FP16 model pipelined over 5 x A100-80GB and "
          "8 x RTX A6000 (GPU counts from the paper body, external: verify).",
          [_a03, _b13])
def gptq():
    out = {"bytes_3bit_gb": _payload_bytes(175e9, "int3") / GB, "bytes_4bit_gb": _payload_bytes(175e9, "int4") / GB,
           "max_bits_80gb": 80e9 * 8 / 175e9,
           "fp16_over_3bit_bound": number_format("fp16").bits / number_format("int3").bits}
    fit = widest_fitting_format(lambda f: deployment("opt-175b", "a100-sxm-80gb", weights=f),
                                ("fp16", "int8", "int4", "int3"))
    out["planner_fits_int3"] = bool(fit.tried["int3"][0])
    out["planner_fits_int4"] = bool(fit.tried["int4"][0])
    fp16 = {"a100": deployment("opt-175b", "a100-sxm-80gb", weights="fp16", pp=5, memory_utilization=0.95),
            "a6000": deployment("opt-175b", "rtx-a6000", weights="fp16", pp=8, node="pcie-8x-rtx-a6000",
                                memory_utilization=0.95)}
    int3 = {"a100": deployment("opt-175b", "a100-sxm-80gb", weights="int3"),
            "a6000": deployment("opt-175b", "rtx-a6000", weights="int3", pp=2, node="pcie-8x-rtx-a6000")}
    for k in fp16:
        for d in (fp16[k], int3[k]):
            if not static_batch(d, 1, 128, 128).fits:
                out[f"speedup_{k}"] = float("nan")
                break
        else:
            out[f"speedup_{k}"] = float(fp16[k].step(1, 1, 128).time_s[0] / int3[k].step(1, 1, 128).time_s[0])
    out["fp16_gpus"] = {k: d.layout.gpus_per_replica for k, d in fp16.items()}
    out["int3_gpus"] = {k: d.layout.gpus_per_replica for k, d in int3.items()}
    return out


# ---------------------------------------------------------------------------------------------------------
# SmoothQuant+

@check("SEED-A04", "A", "Code Llama-34B: FP16 68 GB > 40 GB -> 2 GPUs; W4 17 GB -> 1 GPU; 1 - 4/16 = 75% "
       "(scales excluded)")
def _a04(r):
    ok = (close(r["fp16_gb"], 68) and close(r["w4_gb"], 17) and r["bound_fp16_gpus"] == 2 and r["bound_w4_gpus"] == 1
          and r["planner_fp16_gpus"] == 2 and r["planner_w4_gpus"] == 1 and close(r["saving"], 0.75))
    return CheckOutcome(ok, pick(r, "fp16_gb", "w4_gb", "planner_fp16_gpus", "planner_w4_gpus", "saving"),
                        "68 GB / 2 GPUs, 17 GB / 1 GPU, 75%",
                        "sizes from the config's parameter count at payload bits; GPU counts from the planner's fit "
                        "(TP over NVLink, 90% usable)")


@check("SEED-B05", "B", "SmoothQuant+ W4 on one A100-40GB: per-token latency 0.68 of FP16 TP=2 on two (band 0.55-0.80)")
def _b05(r):
    return CheckOutcome(within(r["latency_ratio"], 0.55, 0.80), r["latency_ratio"], "0.55-0.80",
                        "batch 1 decode at 1,024 cached tokens; FP16 TP=2 over NVLink 3 (A100 SXM4 40GB) with its "
                        "all-reduces, W4 = int4 g128 weight-only (W4A16, dequantization in the GEMM)")


# The grid of request shapes (input / output tokens) the throughput claim is evaluated on
B06_INPUTS = (128, 512, 1024, 2048)
B06_OUTPUTS = (128, 512, 1024, 2048)
B06_BAND = (1.9, 4.0)


@check("SEED-B06", "B", "SmoothQuant+ throughput 1.9-4.0x of FP16 on two A100-40GB: KV room (40 - 17)/(80 - 68) ~1.9x "
       "times the step-time ratio; inside [1.9, 4.0] on every shape of a 4 x 4 grid of input/output lengths "
       "(128-2048 tokens each)",
       known_gap="the claim holds on 6 of the 16 shapes (128/1024, 512/512, 512/1024, 1024/512, 1024/1024, "
       "2048/512): W4/FP16 throughput ranges from 0.87x (128/128) to 4.95x (2048/2048). Short outputs fall below "
       "1.9x (prefill-heavy steps are compute-bound, and one A100 running W4A16 has half the FLOP/s of the two FP16 "
       "GPUs), long outputs rise above 4.0x (decode-dominated and KV-limited: the KV room ratio 3.9x times the W4 "
       "step-time ratio); the paper does not state its lengths")
def _b06(r):
    ratios = r["throughput_ratio"]
    inside = [k for k, v in ratios.items() if within(v, *B06_BAND)]
    return CheckOutcome(len(inside) == len(ratios),
                        {"throughput_ratio": ratios, "inside": inside, "shapes": len(ratios)},
                        f"every shape of the grid inside [{B06_BAND[0]}, {B06_BAND[1]}]",
                        f"vLLM continuous batching at the KV-limited concurrency; grid (input/output tokens) "
                        f"{B06_INPUTS} x {B06_OUTPUTS}; KV room ratio {r['kv_room_ratio']:.2f}; holds on "
                        f"{len(inside)} of {len(ratios)} shapes: {', '.join(inside) or 'none'}")


@scenario("smoothquant-plus-w4-one-gpu", ["SmoothQuant+ (003)"], 4,
          "Code Llama-34B: W4A16 (int4 g128) on one A100-40GB SXM against FP16 with TP=2 on two (NVLink 3): memory "
          "fit, batch-1 per-token latency, and vLLM throughput at the concurrency each one's KV pool allows.",
          [_a04, _b05, _b06])
def smoothquant_plus():
    params = parameter_counts(load_architecture("codellama-34b")).total
    out = {"fp16_gb": _payload_bytes(params, "fp16") / GB, "w4_gb": _payload_bytes(params, "int4") / GB,
           "saving": 1 - number_format("int4").bits / number_format("fp16").bits}
    out["bound_fp16_gpus"] = min_devices_for_bytes(out["fp16_gb"], 40)
    out["bound_w4_gpus"] = min_devices_for_bytes(out["w4_gb"], 40)
    for fmt in ("fp16", "int4"):
        fit = fewest_devices(lambda n, fmt=fmt: deployment("codellama-34b", "a100-sxm-40gb", weights=fmt, tp=n),
                             (1, 2, 4))
        out[f"planner_{'fp16' if fmt == 'fp16' else 'w4'}_gpus"] = fit.choice
    fp16 = deployment("codellama-34b", "a100-sxm-40gb", weights="fp16", tp=2)
    w4 = deployment("codellama-34b", "a100-sxm-40gb", weights="int4")
    out["latency_ratio"] = float(w4.step(1, 1, 1024).time_s[0] / fp16.step(1, 1, 1024).time_s[0])
    out["throughput_ratio"] = {}
    for i, o in ((i, o) for i in B06_INPUTS for o in B06_OUTPUTS):
        a = steady_state(fp16, VLLM, i, o).output_tokens_per_s[0]
        b = steady_state(w4, VLLM, i, o).output_tokens_per_s[0]
        out["throughput_ratio"][f"{i}/{o}"] = float(b / a)
    out["kv_room_ratio"] = _kv_room(w4) / _kv_room(fp16)
    return out


def _kv_room(d) -> float:
    """Usable memory of the replica left after its weights (what the KV cache can take)."""
    n = d.layout.gpus_per_replica
    return n * (d.usable_bytes - static_batch(d, 1, 1, 1).memory.weights_bytes)


# ---------------------------------------------------------------------------------------------------------
# LLM.int8()

@check("SEED-A05", "A", "175e9 params: 350 GB FP16 -> 175 GB INT8 (ratio 0.5 + metadata); a single consumer "
       "server fits only if aggregate memory > 175 GB + KV (8 x 24 GB = 192 GB assumed)")
def _a05(r):
    ok = (close(r["fp16_gb"], 350) and close(r["int8_gb"], 175) and within(r["planner_ratio"], 0.5, 0.5 * 1.01)
          and r["fits_int8_full_memory"] and not r["fits_fp16_full_memory"]
          and r["fits_int8_full_memory"] == (r["aggregate_gb"] > r["planner_int8_total_gb"]))
    return CheckOutcome(ok, pick(r, "fp16_gb", "int8_gb", "planner_ratio", "aggregate_gb",
                                 "planner_int8_total_gb", "fits_int8_full_memory",
                                 "kv_headroom_per_gpu_gb", "fits_int8_vllm_90pct"),
                        "350 / 175 GB, ratio 0.5 (+ metadata), INT8 fits 8 x 24 GB only with the whole memory usable",
                        "OPT-175B on 8 x RTX 4090 (TP8, PCIe): with vLLM's 90% usable memory INT8 does not fit; with "
                        "all 24 GB usable (bitsandbytes/HF) it fits with the headroom shown for KV")


@scenario("llm-int8-opt175b-consumer-server", ["LLM.int8() (000)"], 4,
          "OPT-175B with LLM.int8() weights (INT8 vector-wise, the fp16 outlier path ignored: <0.1% of values) on "
          "one 8 x RTX 4090 server (24 GB each, TP8 over PCIe): FP16 vs INT8 fit and the KV room left, with all "
          "device memory usable and with vLLM's 90%.",
          [_a05])
def llm_int8():
    params = 175e9
    out = {"fp16_gb": _payload_bytes(params, "fp16") / GB, "int8_gb": _payload_bytes(params, "int8") / GB}
    mk = lambda w, u: deployment("opt-175b", "rtx-4090", weights=w, tp=8, node="pcie-8x-rtx-4090",  # noqa: E731
                                 memory_utilization=u)
    f16, i8 = static_batch(mk("fp16", 1.0), 1, 512, 128), static_batch(mk("int8", 1.0), 1, 512, 128)
    out["planner_ratio"] = i8.memory.weights_bytes / f16.memory.weights_bytes
    out["aggregate_gb"] = 8 * mk("int8", 1.0).capacity_bytes / GB
    out["planner_int8_total_gb"] = 8 * i8.memory.total_bytes / GB
    out["fits_int8_full_memory"] = bool(i8.fits)
    out["fits_fp16_full_memory"] = bool(f16.fits)
    out["kv_headroom_per_gpu_gb"] = i8.memory.headroom_bytes / GB
    out["fits_int8_vllm_90pct"] = bool(static_batch(mk("int8", 0.9), 1, 512, 128).fits)
    return out


# ---------------------------------------------------------------------------------------------------------
# COMET

@check("SEED-B12", "B", "COMET W4A4KV4 on one A100-80G: 2.88x kernel over cuBLAS FP16, 2.02x throughput over "
       "TensorRT-LLM (+-30%; kernel <= INT4/FP16 = 4x)",
       known_gap="the kernel ratio is reproduced (large-GEMM INT4/FP16 efficiency 0.6/0.87 x 4), but end to end the "
                 "planner gives ~3.2-3.7x over a TensorRT-LLM FP16 baseline: KV4 lets it hold ~5x the sequences "
                 "and its decode stays memory-bound, while COMET's 2.02x implies costs the planner does not model "
                 "(the 8-bit channels of its mixed W4A8 kernels, SM load imbalance, dequantizing the INT4 KV inside "
                 "attention) or a capped batch")
def _b12(r):
    ok = within(r["kernel_speedup"], 2.88 * 0.7, 2.88 * 1.3) and r["kernel_speedup"] <= 4.0 and \
        within(r["e2e_speedup"], 2.02 * 0.7, 2.02 * 1.3)
    return CheckOutcome(ok, {"kernel": r["kernel_speedup"], "end_to_end": r["e2e_speedup"],
                             "concurrency": r["concurrency"]}, "kernel 2.02-3.74x and <= 4x; end to end 1.41-2.63x",
                        "LLaMA-2-13B on one A100-80GB SXM; kernel = the gate/up GEMM at 8,192 tokens; end to end: "
                        "TensorRT-LLM policy (full-length KV reservation), 1,024 in / 512 out, FP16 W16A16KV16 "
                        "baseline vs W4A4KV4 (int4 g128 weights and KV, INT4 tensor cores), each at its own "
                        "KV-limited concurrency")


@scenario("comet-w4a4kv4", ["COMET (003)"], 4,
          "LLaMA-2-13B on one A100-80GB SXM4: W4A4KV4 (INT4 tensor cores, 4-bit KV) against the FP16 TensorRT-LLM "
          "deployment: the speed-up of a large GEMM and the serving throughput with the concurrency KV4 allows.",
          [_b12])
def comet():
    base = deployment("llama-2-13b", "a100-sxm-80gb", weights="fp16")
    w4a4 = deployment("llama-2-13b", "a100-sxm-80gb", weights="int4", activations="int4", kv="int4")
    row = [i for i, op in enumerate(base.graph.ops) if op.name == "gate_up_proj"][0]
    kernel = float(base.step(1, 8192, 0).times.time_s[row, 0] / w4a4.step(1, 8192, 0).times.time_s[row, 0])
    policy = TRTLLM.with_(max_num_seqs=1024)
    a, b = steady_state(base, policy, 1024, 512), steady_state(w4a4, policy, 1024, 512)
    return {"kernel_speedup": kernel, "e2e_speedup": float(b.output_tokens_per_s[0] / a.output_tokens_per_s[0]),
            "concurrency": {"fp16": float(a.concurrency[0]), "w4a4kv4": float(b.concurrency[0])}}


# ---------------------------------------------------------------------------------------------------------
# MixLLM, MixDQ

@check("SEED-A29", "A", "0.9 x 4 + 0.1 x 8 = 4.4 bits = 1.10 x 4; MixDQ 3-4x vs FP16 -> average 4.0-5.33 bits")
def _a29(r):
    ok = (close(r["mixllm_bits"], 4.4) and close(r["mixllm_over_w4"], 1.10) and close(r["mixdq_bits_at_4x"], 4.0)
          and close(r["mixdq_bits_at_3x"], 16 / 3) and close(r["weight_bytes_ratio"], 1.10, 0.02))
    return CheckOutcome(ok, pick(r, "mixllm_bits", "mixllm_over_w4", "mixdq_bits_at_3x", "mixdq_bits_at_4x",
                                 "weight_bytes_ratio"),
                        "4.4 bits (1.10 x 4); 4.0-5.33 bits",
                        "weight_bytes_ratio: the planner's resident weights of Llama-3.1-70B at 4.4 vs 4.0 bits "
                        "(dense layers; embeddings stay 16-bit)")


@scenario("mixllm-mixed-precision", ["MixLLM (002)"], 4,
          "Llama-3.1-70B with MixLLM's global mix of 4-bit and 8-bit output features (10% at 8 bits, 4.4 bits on "
          "average) against plain 4-bit: memory and the batch-1 decode step on one H100; MixDQ's 3-4x memory "
          "saving read back as average bits.",
          [_a29])
def mixllm():
    bits = mixed_bits([0.9, 0.1], [4, 8])
    d = deployment("llama-3.1-70b", "h100-sxm", weights="int4")
    w4 = override_symbols(d, "dense weights at exactly 4.0 bits", b_w=4.0 / 8)
    mix = override_symbols(d, f"dense weights at {bits} bits (MixLLM mix)", b_w=bits / 8)
    s4, sm = w4.step(1, 1, 1024), mix.step(1, 1, 1024)
    dense_rows = np.array([op.weight_role == "dense" for op in d.graph.ops])
    wb = lambda s: float((s.stage_counts.sum(axis=0)[dense_rows] @ s.ops.resident_bytes[dense_rows])[0])  # noqa: E731
    return {"mixllm_bits": bits, "mixllm_over_w4": bits / 4, "mixdq_bits_at_3x": 16 / 3, "mixdq_bits_at_4x": 16 / 4,
            "weight_bytes_ratio": wb(sm) / wb(s4),
            "decode_step_ratio": float(sm.time_s[0] / s4.time_s[0])}


# ---------------------------------------------------------------------------------------------------------
# PV-Tuning (no check: quality claims)

@scenario("pv-tuning-2bit-70b", ["PV-Tuning (002)"], 4,
          "Llama-2-70B at ~2 bits per parameter (vector-quantized, AQLM/QuIP#-style: 2.0 bits + codebooks, priced as "
          "2.06 bits) on one 24 GB RTX 4090, against the int2 g32 format (3 bits with scales) and Llama-2-13B at "
          "FP16 on the same GPU: fit and batch-1 decode speed (the quality side is out of scope).")
def pv_tuning():
    base = deployment("llama-2-70b", "rtx-4090", weights="int2")
    vq = override_symbols(base, "VQ weights: 2.0 bits + codebooks ~ 2.06 bits per weight", b_w=2.06 / 8)
    small = deployment("llama-2-13b", "rtx-4090", weights="fp16")
    out = {}
    for name, d in (("70b_vq2", vq), ("70b_int2_g32", base), ("13b_fp16", small)):
        est = static_batch(d, 1, 512, 128)
        out[f"fits_{name}"] = bool(est.fits)
        out[f"need_gb_{name}"] = est.memory.total_bytes / GB
        out[f"tokens_per_s_{name}"] = (1 / est.tpot_s) if est.fits else 0.0
    return out


# ---------------------------------------------------------------------------------------------------------
# "Give Me BF16 or Give Me Death"

CONCURRENCY = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256])


def _cheapest(model: str, gpu: str, price: float, weights: str, activations: str | None) -> np.ndarray:
    """$ per million output tokens of the cheapest TP degree that carries each concurrency (inf when none)."""
    best = np.full(CONCURRENCY.size, np.inf)
    for tp in (1, 2, 4, 8):
        try:
            d = deployment(model, gpu, weights=weights, activations=activations, tp=tp)
        except RidgeplanError as err:  # layouts the model cannot take are skipped
            if err.field != "tp":
                raise
            continue
        s = steady_state(d, VLLM, 1000, 300, CONCURRENCY)
        cost = tp * price / np.maximum(s.output_tokens_per_s, 1e-9) * 1e6 / 3600
        best = np.minimum(best, np.where(s.concurrency >= CONCURRENCY, cost, np.inf))
    return best


@check("SEED-C04", "C", "the cost-optimal format flips from W4A16 to W8A8 as concurrency rises, and flips at lower "
       "concurrency on high-end GPUs")
def _c04(r):
    f = r["flip_concurrency"]
    ok = (all(v is not None and v > 1 for v in f.values()) and f["h100-sxm"] < f["l40s"]
          and f["a100-sxm-80gb"] < f["l40s"])
    return CheckOutcome(ok, f, "W4A16 cheapest at concurrency 1 everywhere; flip on H100 and A100 < flip on L40S",
                        "Llama-3.1-70B, vLLM, 1,000 in / 300 out; each format at its cheapest TP (1-8) that "
                        "carries the concurrency; W8A8 = FP8 on L40S/H100, INT8 on A100; prices $0.79 / $1.30 / "
                        "$3.00 per GPU-hour")


@scenario("give-me-bf16-format-crossover", ['"Give Me BF16 or Give Me Death" (000, 003)'], 4,
          "Llama-3.1-70B served by vLLM (1,000 in / 300 out) on a mid-tier GPU (L40S) and high-end GPUs (A100-80GB, "
          "H100): $ per output token of W4A16 (int4 g128) and W8A8 (FP8 where the GPU has it, else INT8) at "
          "concurrency 1-256, each at its cheapest tensor-parallel degree; the concurrency where W8A8 becomes "
          "cheaper. Accuracy tags come from model.serving.quality (W8A8-FP lossless, W4A16 ~ W8A8-INT).",
          [_c04])
def give_me_bf16():
    out = {"flip_concurrency": {}, "cost_per_mtok": {}}
    for gpu, price, w8 in (("l40s", 0.79, ("fp8", "fp8")), ("a100-sxm-80gb", 1.30, ("int8", "int8")),
                           ("h100-sxm", 3.00, ("fp8", "fp8"))):
        w4 = _cheapest("llama-3.1-70b", gpu, price, "int4", None)
        w8a8 = _cheapest("llama-3.1-70b", gpu, price, *w8)
        cheaper = w8a8 <= w4
        out["flip_concurrency"][gpu] = int(CONCURRENCY[np.argmax(cheaper)]) if cheaper.any() else None
        out["cost_per_mtok"][gpu] = {"W4A16": w4.round(3).tolist(), "W8A8": w8a8.round(3).tolist()}
    return out


NOT_EXPRESSIBLE = {
    "Arbitrary-precision tensor cores, bipolar-INT (000, 003)": (
        "its gains come from bit-serial GEMMs (a p-bit x q-bit GEMM as p*q one-bit GEMMs plus shift-adds) at "
        "arbitrary widths such as W3A8 or W2A4; the planner prices GEMMs on the tensor-core peaks a device lists "
        "(fp16/bf16/fp8/int8/int4/fp4) and has no one-bit path or p*q cost rule",
        "a bit-serial compute path (peak_flop_per_s.int1 and T = p q 2mnk / F_1bit + recovery) and p/q-bit "
        "activation formats in model.precision"),
    "PTQ benchmark (\"Benchmarking Post-Training Quantization in LLMs\") (002)": (
        "its claims are accuracy results across methods and architectures (out of scope); the format table they "
        "would feed, model.serving.quality, keys risk by format only",
        "a quality table keyed by method x bit width x model family (dense, MoE, Mamba, VLM) x size"),
}
